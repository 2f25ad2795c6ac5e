//! NATS credentials (operator mode): the client's own user nkey, the user JWTs the service
//! mints for it (`POST /api/auth/nats-credentials`), and when a connect uses one rather than
//! the callout.
//!
//! The rules: the first connect asks for credentials; a 404 (`operator-mode-only`,
//! `credentials-off`) turns them off for the client's life (the callout decides every connect
//! then, exactly as without them), as does nats-server refusing a freshly minted JWT. Any
//! other refusal (403, 400, 5xx, the service unreachable) leaves that one connect to the
//! callout. A JWT holds the grant of the rooms it was minted for, so each connection (each
//! room list) gets its own; a reconnect of that connection reuses it until four fifths of its
//! life, unless a lame-duck or grants-changed notice came (the grant may have changed), its
//! connection lived less than [`SHORT_LIVED`] (a kick), or nats-server refused it. At four
//! fifths of its life the kit replaces the connection make-before-break with fresh ones.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nkeys::KeyPair;
use tokio::sync::Notify;

/// A connection made with a JWT that ended sooner than this was likely closed on purpose (a
/// kick, a revocation): its reconnect asks for fresh credentials instead of reusing them.
pub(crate) const SHORT_LIVED: Duration = Duration::from_secs(5);

/// How a connection authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// A user JWT the service minted for the client's own nkey (operator mode): nats-server
    /// asked no callout.
    Credentials,
    /// The access token in CONNECT, decided by the callout.
    #[default]
    Callout,
}

impl Via {
    /// `credentials` or `callout`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Via::Credentials => "credentials",
            Via::Callout => "callout",
        }
    }
}

/// The client's user nkey (generated per client; its seed never leaves the process) and
/// whether credentials are still worth asking for.
pub(crate) struct Credentials {
    key: KeyPair,
    off: AtomicBool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("public_key", &self.key.public_key())
            .field("off", &self.is_off())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// A fresh user nkey; `enabled: false` never asks.
    pub(crate) fn new(enabled: bool) -> Credentials {
        Credentials {
            key: KeyPair::new_user(),
            off: AtomicBool::new(!enabled),
        }
    }

    pub(crate) fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// The nonce signed with the client's key (nats-server checks it against the JWT's `sub`).
    pub(crate) fn sign(&self, nonce: &[u8]) -> Option<Vec<u8>> {
        self.key.sign(nonce).ok()
    }

    pub(crate) fn is_off(&self) -> bool {
        self.off.load(Ordering::SeqCst)
    }

    /// The callout decides every connect from now on.
    pub(crate) fn turn_off(&self, why: &str) {
        if !self.off.swap(true, Ordering::SeqCst) {
            tracing::info!(
                reason = why,
                "no NATS credentials: the callout decides every connect"
            );
        }
    }
}

/// A JWT minted for one room list.
struct Held {
    jwt: String,
    rooms: Vec<String>,
    renew_at: Instant,
    /// When a connection made with it came up.
    up_since: Option<Instant>,
    /// Not to be used again (a short-lived connection, a refusal, a notice).
    spent: bool,
    /// No connection was made with it yet.
    fresh: bool,
}

/// The credentials side of one connection: the JWT it holds and how its last attempt went.
#[derive(Default)]
pub(crate) struct ConnAuth {
    held: Option<Held>,
    /// How the last connect attempt authenticated.
    via: Via,
    /// Wakes the connection's renewal when a JWT is held.
    changed: Arc<Notify>,
}

impl ConnAuth {
    pub(crate) fn via(&self) -> Via {
        self.via
    }

    pub(crate) fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// The JWT held for `rooms`, if a reconnect may use it again at `now`.
    pub(crate) fn reusable(&mut self, rooms: &[String], now: Instant) -> Option<String> {
        let h = self.held.as_mut()?;
        if h.spent || h.rooms != rooms || now >= h.renew_at {
            return None;
        }
        Some(h.jwt.clone())
    }

    /// A JWT just minted for `rooms`, living `life` from `now`.
    pub(crate) fn hold(&mut self, jwt: String, rooms: Vec<String>, life: Duration, now: Instant) {
        self.held = Some(Held {
            jwt,
            rooms,
            renew_at: now + life * 4 / 5,
            up_since: None,
            spent: false,
            fresh: true,
        });
        self.changed.notify_one();
    }

    /// The attempt under way authenticates this way.
    pub(crate) fn attempt(&mut self, via: Via) {
        self.via = via;
    }

    pub(crate) fn connected(&mut self, now: Instant) {
        if self.via == Via::Credentials
            && let Some(h) = &mut self.held
        {
            h.up_since = Some(now);
            h.fresh = false;
        }
    }

    /// The connection was lost: one made with the JWT that lived only briefly does not
    /// reconnect with it.
    pub(crate) fn disconnected(&mut self, now: Instant) {
        if self.via == Via::Credentials
            && let Some(h) = &mut self.held
            && h.up_since.is_some_and(|t| now.duration_since(t) < SHORT_LIVED)
        {
            h.spent = true;
        }
    }

    /// The grant may have changed (a lame-duck or grants-changed notice): the next connect
    /// asks afresh.
    pub(crate) fn forget(&mut self) {
        if let Some(h) = &mut self.held {
            h.spent = true;
        }
    }

    /// nats-server refused the attempt. With a JWT: it is not used again, and `true` when it
    /// was a fresh one (credentials do not work here: turn them off).
    pub(crate) fn refused(&mut self) -> bool {
        if self.via != Via::Credentials {
            return false;
        }
        let fresh = self.held.as_ref().is_some_and(|h| h.fresh);
        self.forget();
        fresh
    }

    /// How long until the JWT held is due for renewal (`None`: none held, or spent).
    pub(crate) fn renew_in(&self, now: Instant) -> Option<Duration> {
        let h = self.held.as_ref().filter(|h| !h.spent)?;
        Some(h.renew_at.saturating_duration_since(now))
    }
}

/// The shared per-connection state.
pub(crate) type Shared = Arc<Mutex<ConnAuth>>;

/// What is left of a JWT's life at receipt (`exp`, `iat` in unix seconds, `now_ms` this
/// machine's clock in milliseconds): until `exp` here, but never more than it was issued for
/// (`exp - iat`), so a clock behind the service's cannot stretch it.
pub(crate) fn life(exp: i64, iat: Option<i64>, now_ms: i64) -> Duration {
    let left = exp.saturating_mul(1000).saturating_sub(now_ms);
    let issued = iat.map_or(left, |iat| (exp - iat).saturating_mul(1000));
    Duration::from_millis(u64::try_from(left.min(issued)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn a_jwt_is_reused_for_its_rooms_until_four_fifths_of_its_life() {
        let t0 = Instant::now();
        let mut a = ConnAuth::default();
        assert_eq!(a.reusable(&rooms(&["all1"]), t0), None);
        a.hold("j".into(), rooms(&["all1"]), Duration::from_secs(100), t0);
        a.attempt(Via::Credentials);
        a.connected(t0);
        assert_eq!(a.reusable(&rooms(&["all1"]), t0).as_deref(), Some("j"));
        assert_eq!(
            a.reusable(&rooms(&["all1", "all2"]), t0),
            None,
            "another room list"
        );
        assert_eq!(a.reusable(&rooms(&["all1"]), t0 + Duration::from_secs(80)), None);
        assert_eq!(a.renew_in(t0), Some(Duration::from_secs(80)));
        // A connection that lived long: reconnect with it.
        a.disconnected(t0 + Duration::from_secs(30));
        assert!(
            a.reusable(&rooms(&["all1"]), t0 + Duration::from_secs(30))
                .is_some()
        );
    }

    #[test]
    fn a_short_lived_connection_a_notice_or_a_refusal_spends_the_jwt() {
        let t0 = Instant::now();
        let fresh = |a: &mut ConnAuth| {
            a.hold("j".into(), rooms(&["all1"]), Duration::from_secs(100), t0);
            a.attempt(Via::Credentials);
        };
        let mut a = ConnAuth::default();
        fresh(&mut a);
        a.connected(t0);
        a.disconnected(t0 + Duration::from_secs(1));
        assert_eq!(a.reusable(&rooms(&["all1"]), t0), None, "kicked at once");
        assert_eq!(a.renew_in(t0), None);

        fresh(&mut a);
        a.forget();
        assert_eq!(a.reusable(&rooms(&["all1"]), t0), None, "a notice");

        fresh(&mut a);
        assert!(a.refused(), "a fresh JWT refused: credentials do not work here");
        fresh(&mut a);
        a.connected(t0);
        assert!(!a.refused(), "one that worked before: only it is dropped");
        assert_eq!(a.reusable(&rooms(&["all1"]), t0), None);
        a.attempt(Via::Callout);
        assert!(!a.refused(), "the callout's refusal is the token's");
    }

    #[test]
    fn life_is_bounded_by_what_the_jwt_was_issued_for() {
        assert_eq!(life(1100, Some(1000), 1_000_000), Duration::from_secs(100));
        // This clock is behind the service's: no longer than issued.
        assert_eq!(life(1100, Some(1000), 900_000), Duration::from_secs(100));
        // Ahead: what is left here, to the millisecond (iat and exp are whole seconds).
        assert_eq!(life(1100, Some(1000), 1_090_500), Duration::from_millis(9500));
        assert_eq!(life(1100, None, 1_050_000), Duration::from_secs(50));
        assert_eq!(life(1100, Some(1000), 1_200_000), Duration::ZERO);
    }

    #[test]
    fn the_seed_never_shows() {
        let c = Credentials::new(true);
        let seed = c.key.seed().unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains(&seed) && shown.contains(&c.public_key()),
            "{shown}"
        );
        assert!(c.public_key().starts_with('U'));
        assert!(Credentials::new(false).is_off());
    }
}
