//! Per-user limits on live connections, enforced like revocations (nats-server 2.15.1 does
//! not apply the limits of a user JWT to callout users):
//!
//! - **connections**: beyond a user's cap the oldest of its connections is closed at once
//!   (`too-many-connections`); a newer connection of the same login session is tolerated
//!   for `limits.join_grace` (a client kit's make-before-break join), [`cap`];
//! - **subscriptions**: a connection holding more than its user's cap (as the server's
//!   connection list counts them) is closed (`too-many-subscriptions`);
//! - **connect rate** (opt-in): a user allowed more than N times in a window is refused for
//!   a cool-down (`too-many-connects`), reconnects the service or a server caused aside, [`rate`].
//!
//! The enforcer (one instance, see [`crate::enforcement::lease`]) counts and closes; every
//! instance refuses at the decision what the enforcer published on [`LIMITS_SUBJECT`]
//! ([`Gate`]): a session just closed for a limit, a user cooling down.
//!
//! [`LIMITS_SUBJECT`]: crate::wire::LIMITS_SUBJECT

pub mod cap;
mod gate;
pub mod rate;

pub use gate::{Gate, LiveConnections};

/// A connection closed because its user holds more connections than its cap.
pub const TOO_MANY_CONNECTIONS: &str = "too-many-connections";
/// A connection closed because it holds more subscriptions than its user's cap.
pub const TOO_MANY_SUBSCRIPTIONS: &str = "too-many-subscriptions";
/// A user refused because it connected too often.
pub const TOO_MANY_CONNECTS: &str = "too-many-connects";
