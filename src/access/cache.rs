//! Delegates' answers kept per user and room, positive and negative, each until its table's
//! `cache` has passed; bounded: past the bound the oldest entries go first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::permissions::Access;

type Key = (String, String);

/// The answers kept. Failed asks are never kept (the next connect asks again).
#[derive(Debug)]
pub struct Cache {
    inner: Mutex<Inner>,
    max: usize,
}

/// When an ask started, as the cache counts forgets: an answer to an ask that started
/// before a forget is not kept (it may be what the forget meant to drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

#[derive(Debug, Default)]
struct Inner {
    /// (user, room) -> the answer, until when, and the insertion it came from.
    entries: HashMap<Key, (Option<Access>, Instant, u64)>,
    /// Insertions, oldest first (an entry replaced or removed leaves a stale one behind,
    /// skipped when it comes up).
    order: VecDeque<(Key, u64)>,
    next: u64,
    /// Forgets so far.
    forgets: u64,
}

impl Cache {
    /// A cache of at most `max` answers.
    #[must_use]
    pub fn new(max: usize) -> Cache {
        Cache {
            inner: Mutex::default(),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer kept for `user` in `room`, if it is still fresh at `now`.
    pub fn get(&self, user: &str, room: &str, now: Instant) -> Option<Option<Access>> {
        let inner = self.lock();
        let (access, until, _) = inner.entries.get(&(user.to_string(), room.to_string()))?;
        (now < *until).then_some(*access)
    }

    /// The generation an ask starting now belongs to.
    pub fn generation(&self) -> Generation {
        Generation(self.lock().forgets)
    }

    /// Keep `access` for `user` in `room` for `ttl` (nothing for a zero `ttl`, nor when a
    /// forget came after `asked`).
    pub fn put(
        &self,
        user: &str,
        room: &str,
        access: Option<Access>,
        ttl: Duration,
        now: Instant,
        asked: Generation,
    ) {
        if ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        if inner.forgets != asked.0 {
            return;
        }
        let seq = inner.next;
        inner.next += 1;
        let key = (user.to_string(), room.to_string());
        inner.entries.insert(key.clone(), (access, now + ttl, seq));
        inner.order.push_back((key, seq));
        while inner.entries.len() > self.max {
            let Some((old, old_seq)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&old).is_some_and(|e| e.2 == old_seq) {
                inner.entries.remove(&old);
            }
        }
        // Stale order entries are bounded too: rebuilt when they outnumber the live ones.
        if inner.order.len() > 2 * self.max {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(k, s)| entries.get(k).is_some_and(|e| e.2 == *s));
        }
    }

    /// Forget the answers for `user` (every user when `None`) in `room` (every room when
    /// `None`); how many were forgotten.
    pub fn forget(&self, user: Option<&str>, room: Option<&str>) -> usize {
        let mut inner = self.lock();
        inner.forgets += 1;
        let before = inner.entries.len();
        inner
            .entries
            .retain(|(u, r), _| !(user.is_none_or(|x| x == u) && room.is_none_or(|x| x == r)));
        before - inner.entries.len()
    }

    /// Answers kept now (fresh or not yet evicted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    impl Cache {
        fn put_now(&self, user: &str, room: &str, access: Option<Access>, ttl: Duration, now: Instant) {
            self.put(user, room, access, ttl, now, self.generation());
        }
    }

    #[test]
    fn an_answer_asked_before_a_forget_is_not_kept() {
        let c = Cache::new(10);
        let t0 = Instant::now();
        let asked = c.generation();
        c.forget(Some("bob"), None);
        c.put("bob", "team-a", Some(Access::Read), TTL, t0, asked);
        assert_eq!(c.get("bob", "team-a", t0), None);
        c.put("bob", "team-a", Some(Access::Read), TTL, t0, c.generation());
        assert_eq!(c.get("bob", "team-a", t0), Some(Some(Access::Read)));
    }

    #[test]
    fn answers_are_kept_until_their_ttl() {
        let c = Cache::new(10);
        let t0 = Instant::now();
        c.put_now("bob", "team-a", Some(Access::Read), TTL, t0);
        c.put_now("bob", "team-b", None, TTL, t0);
        assert_eq!(c.get("bob", "team-a", t0), Some(Some(Access::Read)));
        assert_eq!(
            c.get("bob", "team-b", t0),
            Some(None),
            "negative answers are kept"
        );
        assert_eq!(c.get("alice", "team-a", t0), None);
        assert_eq!(c.get("bob", "team-a", t0 + TTL), None, "expired");
        c.put_now("bob", "team-c", Some(Access::Read), Duration::ZERO, t0);
        assert_eq!(c.get("bob", "team-c", t0), None, "cache = 0 keeps nothing");
    }

    #[test]
    fn the_oldest_go_first_past_the_bound() {
        let c = Cache::new(3);
        let t0 = Instant::now();
        for i in 0..3 {
            c.put_now("u", &format!("r{i}"), Some(Access::Read), TTL, t0);
        }
        // r0 answered again: now the newest.
        c.put_now("u", "r0", Some(Access::Write), TTL, t0);
        c.put_now("u", "r3", Some(Access::Read), TTL, t0);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("u", "r1", t0), None, "the oldest went");
        assert_eq!(c.get("u", "r0", t0), Some(Some(Access::Write)));
        for i in 0..1000 {
            c.put_now("u", &format!("x{i}"), None, TTL, t0);
            c.put_now("u", "x0", None, TTL, t0);
        }
        assert_eq!(c.len(), 3);
        assert!(c.lock().order.len() <= 7, "{}", c.lock().order.len());
    }

    #[test]
    fn forgetting_by_user_room_or_both() {
        let c = Cache::new(10);
        let t0 = Instant::now();
        for (u, r) in [("bob", "a"), ("bob", "b"), ("alice", "a"), ("alice", "b")] {
            c.put_now(u, r, Some(Access::Read), TTL, t0);
        }
        assert_eq!(c.forget(Some("bob"), Some("a")), 1);
        assert_eq!(c.forget(None, Some("b")), 2);
        assert_eq!(c.forget(Some("alice"), None), 1);
        assert!(c.is_empty());
        c.put_now("bob", "a", None, TTL, t0);
        assert_eq!(c.forget(None, None), 1);
    }
}
