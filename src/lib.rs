//! nats-callout: a NATS auth-callout service.
//!
//! # Layout
//!
//! One concept per module, lower layers first; nothing depends on a layer above it (a
//! test checks that the module graph has no cycle).
//!
//! - [`version`]: what this binary is: version, commit, clean or dirty sources.
//! - [`names`]: validated names (users, rooms, devices): one subject token each.
//! - [`clock`]: unix seconds now, RFC 3339 times written and read.
//! - [`verified`]: what passed its signature check once, remembered by its text (bounded).
//! - [`password`]: argon2id password hashes.
//! - [`forwarded`]: the client's address behind trusted proxies.
//! - [`health`]: what each part the service depends on says of its own state.
//! - [`kv`]: the JetStream key-value buckets shared state lives in: created, or checked.
//! - [`permissions`]: the permission files, the immutable snapshot decisions read, its shared handle and role privileges.
//! - [`wire`]: the wire contract: every NATS subject the service uses or serves, decision records, token-reset requests.
//! - [`subjects`]: subject templates such as `chat.{room}.>`.
//! - [`access`]: delegated decisions: the rooms app services decide, asking them (bounded, cached), invalidation.
//! - [`config`]: the settings (file and environment), one file per section, validated.
//! - [`keys`]: key material, loaded and generated: issuer nkey, xkey, token signing key, secrets.
//! - [`nats`]: the service's NATS connections: options, credentials, waiting for NATS with backoff.
//! - [`claims`]: NATS JWTs on nkeys: requests in, user JWTs and responses out.
//! - [`tokens`]: our access tokens, the refresh-token store, revocations.
//! - [`operator`]: operator mode: the AUTH and target accounts' keys; the set-up `keys --operator` writes.
//! - [`oidc`]: OpenID providers: their tokens verified with cached keys, kept fresh in the background; logging in through them.
//! - [`audit`]: the audit trail: decisions and changes of access as JSON events, never blocking a decision.
//! - [`rooms`]: rooms as data: created, shared and taken back by users and apps; the index decisions read.
//! - [`context`]: the user context of an access token (`/api/auth/me`, `auth.v1.usercontext`).
//! - [`limits`]: per-user limits on live connections (connections, subscriptions) and the opt-in connect rate.
//! - [`callout`]: the request path (envelope, verification, the pure [`callout::decision`], replies) and its NATS loop.
//! - [`explain`]: what a connection of a user would get, room by room, and why (files, data, scope).
//! - [`enforcement`]: live connections (registry) and the enforcer (notices, kicks, token reset).
//! - [`reload`]: hot reload of the permission files.
//! - [`telemetry`]: logs (escaped text or JSON) and metrics.
//! - [`ops`]: readiness, status and service discovery of a running instance.
//! - [`endpoints`]: the service's own NATS endpoints (user context, token reset, revoke, status, discovery).
//! - [`http`]: the HTTP API, its access rules and the chat page.
//! - [`app`]: the running service: everything built and wired, served until shutdown.
//! - [`cli`]: the command line.
//! - `testing`: the shared test world (feature `testing`): keys, permission texts, requests as nats-server sends them, the fuzz targets.
pub mod access;
pub mod app;
pub mod audit;
pub mod callout;
pub mod claims;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod endpoints;
pub mod enforcement;
pub mod explain;
pub mod forwarded;
pub mod health;
pub mod http;
pub mod keys;
pub mod kv;
pub mod limits;
pub mod names;
pub mod nats;
pub mod oidc;
pub mod operator;
pub mod ops;
pub mod password;
pub mod permissions;
pub mod reload;
pub mod rooms;
pub mod subjects;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tokens;
pub mod verified;
pub mod version;
pub mod wire;
