//! nats-callout: a NATS auth-callout service.
//!
//! # Layout
//! - [`callout`]: the request path (envelope, verification, the pure [`callout::decision`], replies) and its NATS loop.
//! - [`claims`]: NATS JWTs (requests in, user JWTs and responses out) on nkeys.
//! - [`tokens`]: our EdDSA access tokens.
//! - [`permissions`]: the permission files and the immutable snapshot decisions read.
//! - [`names`], [`subjects`]: validated names and subject templates.
//! - [`config`], [`keys`], [`password`]: settings, key material, password hashing.
//! - [`app`], [`cli`]: the running service and the command line.
pub mod app;
pub mod callout;
pub mod claims;
pub mod cli;
pub mod config;
pub mod endpoints;
pub mod http;
pub mod keys;
pub mod names;
pub mod ops;
pub mod password;
pub mod permissions;
pub mod reload;
pub mod sessions;
pub mod subjects;
pub mod telemetry;
pub mod tokens;
