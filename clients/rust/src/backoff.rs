//! Jittered exponential backoff, so that many clients cut off at once do not all come back in
//! the same millisecond.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `base` up to `max`, each drawn at random from its upper half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay's upper bound.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0 for the first retry): in `[d/2, d]` where
    /// `d = min(base * 2^attempt, max)`.
    #[must_use]
    pub fn delay(&self, attempt: usize) -> Duration {
        let shift = u32::try_from(attempt.min(20)).unwrap_or(20);
        let d = self.base.saturating_mul(1u32 << shift).min(self.max);
        let half = d / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_up_to_the_cap_and_are_jittered() {
        let b = Backoff::default();
        for attempt in 0..40 {
            let cap = (b.base * 2u32.pow(attempt.min(20) as u32)).min(b.max);
            let d = b.delay(attempt);
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {attempt}: {d:?} outside {cap:?}"
            );
        }
        let draws: std::collections::BTreeSet<_> = (0..20).map(|_| b.delay(5)).collect();
        assert!(draws.len() > 1, "no jitter");
    }
}
