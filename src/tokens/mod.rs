//! Our own tokens: short EdDSA access tokens, rotating refresh tokens, revocation.

pub mod access;
pub mod challenge;
pub mod feed;
pub mod janitor;
pub mod refresh;
pub mod revocation;
pub mod secret;
pub mod service;
pub mod store;

pub use access::{AccessClaims, MintRequest, TokenError, TokenKeys};
pub use refresh::{Opening, SessionSelector};
pub use service::TokenService;
