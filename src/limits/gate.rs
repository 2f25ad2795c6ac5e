//! What every instance refuses at the decision, from the limits the enforcer applied: a
//! user cooling down after too many connects, and a login session just closed for a limit
//! (for `too-many-connections` only while its user still holds its cap, so that two
//! clients of one user do not close each other in turn). Bounded: at most
//! [`MAX_ENTRIES`] of each, expired ones dropped first.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tracing::warn;

use super::{TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTS, TOO_MANY_SUBSCRIPTIONS};
use crate::config::LimitsSettings;
use crate::permissions::Limits;
use crate::wire::LimitFact;

/// The most cool-downs, and the most closed sessions, kept at once.
pub const MAX_ENTRIES: usize = 100_000;

/// How many live connections a user holds (the registry's count).
pub trait LiveConnections: Send + Sync {
    fn live(&self, user: &str) -> usize;
}

#[derive(Default)]
struct State {
    /// Users cooling down, until when.
    cooling: HashMap<String, Instant>,
    /// Login sessions closed for a limit: (user, reason, until).
    closed: HashMap<String, (String, &'static str, Instant)>,
}

/// The refusals of the decision path, shared by the callout and the enforcer.
pub struct Gate {
    settings: LimitsSettings,
    state: Mutex<State>,
    live: OnceLock<Weak<dyn LiveConnections>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new(LimitsSettings::default())
    }
}

/// A reason of a fact, as one of ours (facts name nothing else).
fn known_reason(reason: &str) -> Option<&'static str> {
    [TOO_MANY_CONNECTIONS, TOO_MANY_SUBSCRIPTIONS, TOO_MANY_CONNECTS]
        .into_iter()
        .find(|r| *r == reason)
}

/// Insert into a bounded map: expired entries go first; when still full, nothing is added.
fn bounded_insert<V>(
    map: &mut HashMap<String, V>,
    key: String,
    value: V,
    until: impl Fn(&V) -> Instant,
    now: Instant,
) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.retain(|_, v| until(v) > now);
        if map.len() >= MAX_ENTRIES {
            metrics::counter!("nats_callout_limit_facts_dropped_total").increment(1);
            return;
        }
    }
    map.insert(key, value);
}

impl Gate {
    #[must_use]
    pub fn new(settings: LimitsSettings) -> Self {
        Gate {
            settings,
            state: Mutex::default(),
            live: OnceLock::new(),
        }
    }

    /// How limits are enforced.
    #[must_use]
    pub fn settings(&self) -> &LimitsSettings {
        &self.settings
    }

    /// Count live connections with `live` (the registry; the first call wins).
    pub fn count_with(&self, live: Weak<dyn LiveConnections>) {
        let _ = self.live.set(live);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply a fact the enforcer published, from `now`.
    pub fn apply(&self, fact: &LimitFact, now: Instant) {
        let Some(reason) = known_reason(&fact.reason) else {
            warn!(reason = %fact.reason.escape_debug(), "ignored a limit fact of an unknown reason");
            return;
        };
        // Bounded whatever the sender says.
        let until = now + Duration::from_millis(fact.for_ms.min(86_400_000));
        let mut s = self.state();
        match (&fact.session, reason) {
            (None, TOO_MANY_CONNECTS) => {
                bounded_insert(&mut s.cooling, fact.user.clone(), until, |t| *t, now);
            }
            (Some(session), TOO_MANY_CONNECTIONS | TOO_MANY_SUBSCRIPTIONS) => {
                let entry = (fact.user.clone(), reason, until);
                bounded_insert(&mut s.closed, session.clone(), entry, |e| e.2, now);
            }
            _ => warn!(reason, "ignored a limit fact without what it needs"),
        }
    }

    /// Why `user`, connecting in login session `session` under `limits`, is refused now, if
    /// it is: the code of the limit.
    #[must_use]
    pub fn check(&self, user: &str, session: &str, limits: Limits, now: Instant) -> Option<&'static str> {
        let closed = {
            let s = self.state();
            if s.cooling.get(user).is_some_and(|until| *until > now) {
                return Some(TOO_MANY_CONNECTS);
            }
            match s.closed.get(session) {
                Some((u, reason, until)) if u == user && *until > now => *reason,
                _ => return None,
            }
        };
        if closed == TOO_MANY_SUBSCRIPTIONS {
            return Some(closed);
        }
        // Closed as the oldest of too many: refused while the user's others fill its cap.
        let cap = limits.connections? as usize;
        let live = self.live.get().and_then(Weak::upgrade).map(|l| l.live(user));
        live.is_none_or(|n| n >= cap).then_some(closed)
    }

    /// Drop what expired (called every few seconds).
    pub fn prune(&self, now: Instant) {
        let mut s = self.state();
        s.cooling.retain(|_, until| *until > now);
        s.closed.retain(|_, e| e.2 > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Fixed(usize);
    impl LiveConnections for Fixed {
        fn live(&self, _: &str) -> usize {
            self.0
        }
    }

    fn fact(user: &str, session: Option<&str>, reason: &str, secs: u64) -> LimitFact {
        LimitFact {
            user: user.into(),
            session: session.map(str::to_string),
            reason: reason.into(),
            for_ms: secs * 1000,
        }
    }

    #[test]
    fn refusals_follow_the_facts_and_expire() {
        let g = Gate::default();
        let live: Arc<dyn LiveConnections> = Arc::new(Fixed(1));
        g.count_with(Arc::downgrade(&live));
        let now = Instant::now();
        let cap1 = Limits {
            connections: Some(1),
            subscriptions: None,
        };
        let cap2 = Limits {
            connections: Some(2),
            subscriptions: None,
        };
        assert_eq!(g.check("bob", "s1", cap1, now), None);
        g.apply(&fact("bob", None, TOO_MANY_CONNECTS, 60), now);
        assert_eq!(g.check("bob", "s1", cap1, now), Some(TOO_MANY_CONNECTS));
        assert_eq!(g.check("alice", "s9", cap1, now), None, "per user");
        let later = now + Duration::from_secs(61);
        assert_eq!(g.check("bob", "s1", cap1, later), None, "the cool-down ended");

        g.apply(&fact("carol", Some("s1"), TOO_MANY_CONNECTIONS, 60), now);
        assert_eq!(
            g.check("carol", "s1", cap1, now),
            Some(TOO_MANY_CONNECTIONS),
            "carol holds her cap"
        );
        assert_eq!(g.check("carol", "s1", cap2, now), None, "room for one more");
        assert_eq!(g.check("carol", "s2", cap1, now), None, "another session");
        assert_eq!(
            g.check("eve", "s1", cap1, now),
            None,
            "another user naming the session"
        );

        g.apply(&fact("carol", Some("s3"), TOO_MANY_SUBSCRIPTIONS, 60), now);
        assert_eq!(
            g.check("carol", "s3", Limits::default(), now),
            Some(TOO_MANY_SUBSCRIPTIONS)
        );
        g.apply(&fact("carol", Some("s4"), "made-up", 60), now);
        assert_eq!(g.check("carol", "s4", cap1, now), None);
        g.prune(later);
        assert_eq!(g.check("carol", "s3", Limits::default(), now), None);
    }
}
