//! Login rate limiting: a fixed one-minute window per key (user name, client address).

use std::collections::HashMap;
use std::sync::Mutex;

/// Counts attempts per key per minute; forgets old windows as it goes.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimiter {
    /// Count one attempt for `key`; `Err(seconds)` when over `limit` this minute.
    pub fn hit(&self, key: &str, limit: u32, now: i64) -> Result<(), u64> {
        let window = now - now.rem_euclid(60);
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| *start == window);
        }
        let entry = w.entry(key.to_string()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        if entry.1 > limit {
            Err((window + 60 - now).max(1) as u64)
        } else {
            Ok(())
        }
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
}
