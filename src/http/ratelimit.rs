//! Rate limiting: a fixed one-minute window per key (a validated user name, a client
//! address or its IPv6 /64). The windows of a minute are dropped when the next one starts,
//! and a minute holds at most [`MAX_KEYS`] keys, so the state cannot grow without bound
//! whatever clients send.

use std::collections::HashMap;
use std::sync::Mutex;

/// The most keys one minute counts. Beyond it a new key is refused until the minute rolls
/// (an attack from that many addresses or names at once); keys already counted go on.
pub const MAX_KEYS: usize = 100_000;

/// Counts attempts per key in the current minute.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    /// The start of the minute counted (unix seconds).
    minute: i64,
    counts: HashMap<String, u32>,
}

impl RateLimiter {
    /// Count one attempt for `key`; `Err(seconds)` (until the minute ends) when over `limit`
    /// this minute.
    pub fn hit(&self, key: &str, limit: u32, now: i64) -> Result<(), u64> {
        let minute = now - now.rem_euclid(60);
        let retry = (minute + 60 - now).max(1) as u64;
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if minute > w.minute {
            // A new minute: last minute's windows go, and the memory they held with them.
            *w = Windows {
                minute,
                counts: HashMap::new(),
            };
        }
        let full = w.counts.len() >= MAX_KEYS;
        let count = match w.counts.get_mut(key) {
            Some(c) => c,
            None if full => return Err(retry),
            None => w.counts.entry(key.to_string()).or_insert(0),
        };
        *count = count.saturating_add(1);
        if *count > limit { Err(retry) } else { Ok(()) }
    }

    /// Keys counted in the current minute.
    pub fn keys(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_per_minute() {
        let r = RateLimiter::default();
        for _ in 0..3 {
            r.hit("user:bob", 3, 120).unwrap();
        }
        assert_eq!(r.hit("user:bob", 3, 130), Err(50));
        r.hit("user:alice", 3, 130).unwrap();
        r.hit("user:bob", 3, 180).unwrap();
    }

    #[test]
    fn a_minutes_windows_go_when_the_next_minute_starts() {
        let r = RateLimiter::default();
        for i in 0..1000 {
            r.hit(&format!("addr:{i}"), 30, 120).unwrap();
        }
        assert_eq!(r.keys(), 1000);
        r.hit("addr:0", 30, 181).unwrap();
        assert_eq!(r.keys(), 1, "the old minute's keys are gone");
    }

    #[test]
    fn a_full_minute_refuses_new_keys_and_counts_old_ones() {
        let r = RateLimiter::default();
        for i in 0..MAX_KEYS {
            r.hit(&i.to_string(), 5, 0).unwrap();
        }
        assert_eq!(r.hit("new", 5, 10), Err(50));
        assert_eq!(r.keys(), MAX_KEYS);
        r.hit("0", 5, 10).unwrap();
        r.hit("new", 5, 60).unwrap();
    }
}
