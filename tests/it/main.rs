//! The integration tests, one binary with a module per area. Every test that needs NATS
//! starts its own real nats-server (free ports, temp dir); the helpers in [`support`] are
//! split by what they start.
//!
//! - [`callout`]: the chat scenario, bad input, connection types, hostile requests and the
//!   grant-escape suite;
//! - [`http`]: the HTTP API, one module per endpoint, on the router without a socket;
//! - [`tokens`]: the token life cycle end to end (HTTP login, NATS connect, refresh, reuse);
//! - [`enforcement`]: live permissions, revocations reaching live connections, token reset;
//! - [`explain`]: `explain` offline, `--live` and in the console: each room's access, reason and source;
//! - [`oidc`]: identity providers (the real npm `oidc-provider`): their tokens, groups, roles;
//! - [`operator`]: operator mode on a real nats-server with an operator and accounts;
//! - [`audit`]: the audit trail: decisions field by field, changes of access, the stream;
//! - [`limits`]: per-user limits: the connection cap (one and two instances), the
//!   subscription cap, the connect rate and the reconnects it does not count;
//! - [`browser`]: the chat page in headless Chromium;
//! - [`clients`]: the JavaScript client kit's own tests (`node --test`) against a real world,
//!   and its browser mode in headless Chromium;
//! - [`jetstream`]: the shared JetStream store, instances sharing it, a three-node cluster;
//! - [`production`]: metrics, readiness, discovery, signals, TLS, logs;
//! - [`cli`]: the binary as an operator runs it;
//! - [`release`]: build information (`--version`, status, metric), the changelog, the
//!   dependencies the book lists;
//! - [`demo`]: the demo's own files (`make demo`, `make demo-cluster`) serve bob;
//! - [`deploy`]: the Dockerfile, compose file, systemd unit and production files, read statically;
//! - [`server_setup`]: the nats-server configuration `keys` writes and prints, used as README
//!   says with a real nats-server;
//! - [`properties`]: property tests of the decision and the fuzz inputs replayed;
//! - [`delegation`]: delegated decisions: app services answering for their rooms, failing
//!   closed, the cache and invalidation;
//! - [`rooms`]: rooms as data: the HTTP API, live connections, app services, instances;
//! - [`security`]: the HTTP surfaces around the grant, tried as an attacker would;
//! - [`architecture`]: the module graph has no cycle; the layout lists are true;
//! - [`docs`]: README is a front page, the book's links resolve, its reference pages are
//!   complete;
//! - [`support`]: what the tests start (servers, the service, clients), shared.

mod architecture;
mod audit;
mod browser;
mod callout;
mod cli;
mod clients;
mod delegation;
mod demo;
mod deploy;
mod docs;
mod enforcement;
mod explain;
mod http;
mod jetstream;
mod limits;
mod oidc;
mod operator;
mod production;
mod properties;
mod release;
mod rooms;
mod security;
mod server_setup;
mod support;
mod tokens;
