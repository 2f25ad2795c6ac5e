//! Our own tokens: short EdDSA access tokens (and, later, the refresh-token store).

pub mod access;

pub use access::{AccessClaims, MintRequest, TokenError, TokenKeys};
