//! The security part of the suite: the HTTP surfaces around the grant, tried as an attacker
//! would (issue 20), one module per promise README's Security model makes.
//!
//! - [`memory`]: unauthenticated input is bounded before it is stored, counted or logged;
//! - [`client_address`]: the client's address comes from one header, from trusted proxies;
//! - [`keylogin`]: nobody can lock a user out of key login;
//! - [`csrf`]: no cross-site request logs a browser in or out;
//! - [`names`]: names have one owner (`guest-`, providers and the files' users);
//! - [`logs`]: client text cannot read as another field of a log line;
//! - [`templates`]: a write subject always ends in the sender's own name;
//! - [`redirect`]: the identity provider's callback is never built from a request;
//! - [`devices`]: a bare device id reaches only the caller's own devices;
//! - [`privilege`]: app services do not reset tokens unless granted;
//! - [`delegation`]: no user can subscribe to a delegate's subject or answer its asks;
//! - [`demo_cluster`]: the cluster demo survives one of its processes.

mod client_address;
mod csrf;
mod delegation;
mod demo_cluster;
mod devices;
mod keylogin;
mod logs;
mod memory;
mod names;
mod privilege;
mod redirect;
mod templates;

use nats_callout::config::{GuestRefresh, HttpSettings};

use crate::http::{Api, permissions_with};

/// The demo files and a guest group with its room.
const GUEST_FILES: &str = "[groups.guest]\nmembers = []\n\n[rooms.lobby]\nmembers = [\"@guest\"]\n";

/// The HTTP API under `settings`, guests on, over the demo files and a guest group (keep
/// the directory as long as the API).
fn with_guests(settings: HttpSettings) -> (Api, tempfile::TempDir) {
    let files = permissions_with(GUEST_FILES);
    let settings = HttpSettings {
        guests: true,
        ..settings
    };
    (
        Api::with_guests(settings, files.path(), GuestRefresh::Default),
        files,
    )
}
