//! nats-callout: a NATS auth-callout service.
pub mod claims;
pub mod names;
pub mod password;
pub mod permissions;
pub mod tokens;
