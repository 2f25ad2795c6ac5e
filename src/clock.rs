//! The clock: unix seconds now, and times written and read as RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix time in seconds.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A unix time as RFC 3339 in UTC, to the second (times before 1970 are written as 1970).
pub fn rfc3339(secs: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)).to_string()
}

/// The delay before attempt `n` to reach something again (NATS, JetStream): none for the first, then doubling from 100 ms up
/// to 5 s, plus up to a quarter more at random, so that many instances (and clients) do
/// not come back in step.
pub fn backoff(attempt: usize) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    let exp = u32::try_from(attempt - 2).unwrap_or(u32::MAX).min(16);
    let base = 100u64.saturating_mul(1 << exp).min(5_000);
    let jitter = rand::random::<u64>() % (base / 4 + 1);
    Duration::from_millis(base + jitter)
}

/// A time that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither unix seconds nor an RFC 3339 time")]
pub struct BadTime(pub String);

/// Unix seconds (`1764633600`) or an RFC 3339 time (`2025-12-02T00:00:00Z`).
pub fn parse_time(s: &str) -> Result<i64, BadTime> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| BadTime(s.to_string()))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::ZERO);
        for (attempt, base) in [(2, 100), (3, 200), (4, 400), (10, 5_000), (1_000, 5_000)] {
            let d = backoff(attempt).as_millis() as u64;
            assert!((base..=base + base / 4).contains(&d), "attempt {attempt}: {d} ms");
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| backoff(10)).collect();
        assert!(spread.len() > 1, "jitter");
    }

    #[test]
    fn times_round_trip_and_bad_ones_are_refused() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time(&rfc3339(1_764_633_600)), Ok(1_764_633_600));
        assert_eq!(parse_time(" 42 "), Ok(42));
        assert_eq!(parse_time("2025-12-02 00:00:00"), Ok(1_764_633_600));
        for bad in ["", "yesterday", "2025-13-01T00:00:00Z", "1e9"] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }
}
