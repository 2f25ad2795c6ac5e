//! The connect rate (pure, the clock passed in): connects per user in a sliding window,
//! without the reconnects the service caused (it knows whom it told to reconnect or closed)
//! or a server caused (a lame-duck or shutdown event; a server first seen moments ago, as a
//! restarted server has a new id).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::ConnectRate;

/// The most users followed at once; beyond it new users are not counted until some leave
/// the window (the state cannot grow without bound).
pub const MAX_USERS: usize = 1_000_000;

/// What one connect came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Not counted: a reconnect the service (`service`) or a server (`server`) caused.
    Excused(&'static str),
    /// Counted, within the rate.
    Counted,
    /// Counted, and beyond the rate: the user cools down.
    Exceeded,
}

/// Connect counts and excuses, for the enforcer.
#[derive(Debug)]
pub struct Rate {
    limit: ConnectRate,
    /// Recent counted connects per user, oldest first.
    connects: HashMap<String, VecDeque<Instant>>,
    /// Reconnects excused per user, each until when.
    excused: HashMap<String, VecDeque<Instant>>,
    /// When each server was first seen.
    servers: HashMap<String, Instant>,
}

impl Rate {
    #[must_use]
    pub fn new(limit: ConnectRate) -> Self {
        Rate {
            limit,
            connects: HashMap::new(),
            excused: HashMap::new(),
            servers: HashMap::new(),
        }
    }

    /// How long an excuse is kept: a reconnect told now comes within a grace and a window.
    #[must_use]
    pub fn excuse_for(&self, grace: Duration) -> Duration {
        grace + self.limit.window
    }

    /// `n` reconnects of `user` the service or a server caused, excused until `until`.
    pub fn excuse(&mut self, user: &str, n: usize, until: Instant) {
        if self.excused.len() >= MAX_USERS && !self.excused.contains_key(user) {
            return;
        }
        let q = self.excused.entry(user.to_string()).or_default();
        q.extend(std::iter::repeat_n(until, n.min(10_000)));
    }

    /// A server known since long ago (at takeover: those the registry already names).
    pub fn know_server(&mut self, server: &str, now: Instant) {
        let long_ago = now.checked_sub(self.limit.settle).unwrap_or(now);
        self.servers.entry(server.to_string()).or_insert(long_ago);
    }

    /// `user` was allowed on `server` at `now`.
    pub fn connect(&mut self, user: &str, server: &str, now: Instant) -> Counted {
        let first = *self.servers.entry(server.to_string()).or_insert(now);
        if now < first + self.limit.settle {
            return Counted::Excused("server");
        }
        if let Some(q) = self.excused.get_mut(user) {
            while q.front().is_some_and(|until| *until <= now) {
                q.pop_front();
            }
            let used = q.pop_front().is_some();
            if q.is_empty() {
                self.excused.remove(user);
            }
            if used {
                return Counted::Excused("service");
            }
        }
        if self.connects.len() >= MAX_USERS && !self.connects.contains_key(user) {
            return Counted::Counted;
        }
        let q = self.connects.entry(user.to_string()).or_default();
        let window = self.limit.window;
        while q.front().is_some_and(|t| *t + window <= now) {
            q.pop_front();
        }
        q.push_back(now);
        if q.len() > self.limit.connects as usize {
            // The cool-down starts now; counting starts afresh after it.
            self.connects.remove(user);
            return Counted::Exceeded;
        }
        Counted::Counted
    }

    /// Forget what no longer matters at `now` (users out of the window, spent excuses).
    pub fn prune(&mut self, now: Instant) {
        let window = self.limit.window;
        self.connects
            .retain(|_, q| q.back().is_some_and(|t| *t + window > now));
        self.excused
            .retain(|_, q| q.back().is_some_and(|until| *until > now));
    }

    /// Users followed now (for tests and gauges).
    #[must_use]
    pub fn users(&self) -> usize {
        self.connects.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate() -> Rate {
        Rate::new(ConnectRate {
            connects: 3,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(60),
            settle: Duration::from_secs(5),
        })
    }

    #[test]
    fn more_than_n_connects_in_the_window_exceed() {
        let t0 = Instant::now();
        let mut r = rate();
        r.know_server("S", t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(r.connect("bob", "S", at(0)), Counted::Counted);
        assert_eq!(r.connect("bob", "S", at(1)), Counted::Counted);
        assert_eq!(r.connect("bob", "S", at(2)), Counted::Counted);
        assert_eq!(r.connect("alice", "S", at(2)), Counted::Counted, "per user");
        assert_eq!(r.connect("bob", "S", at(3)), Counted::Exceeded);
        // Afresh after the cool-down; the window slides.
        assert_eq!(r.connect("bob", "S", at(100)), Counted::Counted);
        assert_eq!(r.connect("bob", "S", at(105)), Counted::Counted);
        assert_eq!(r.connect("bob", "S", at(111)), Counted::Counted);
        assert_eq!(
            r.connect("bob", "S", at(112)),
            Counted::Counted,
            "the first left the window"
        );
        r.prune(at(200));
        assert_eq!(r.users(), 0);
    }

    #[test]
    fn reconnects_the_service_or_a_server_caused_do_not_count() {
        let t0 = Instant::now();
        let mut r = rate();
        r.know_server("S", t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        // A kick storm: bob's five connections told to reconnect.
        r.excuse("bob", 5, at(20));
        for i in 0..5 {
            assert_eq!(r.connect("bob", "S", at(1 + i)), Counted::Excused("service"));
        }
        assert_eq!(
            r.connect("bob", "S", at(7)),
            Counted::Counted,
            "excuses are used up"
        );
        // Excuses expire.
        r.excuse("bob", 1, at(8));
        assert_eq!(r.connect("bob", "S", at(9)), Counted::Counted);
        // A server first seen now (restarted: a new id): its first moments are not counted.
        for _ in 0..10 {
            assert_eq!(r.connect("bob", "NEW", at(30)), Counted::Excused("server"));
        }
        assert_eq!(r.connect("bob", "NEW", at(36)), Counted::Counted);
    }
}
