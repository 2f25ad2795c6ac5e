//! A token bucket with jitter: spreads kicks so one big edit cannot start a reconnect storm.

use std::time::Duration;

use tokio::time::Instant;

pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: rate_per_second.max(0.001),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
    }

    /// Take one token, waiting (plus up to 20% jitter) when empty. Returns whether it waited.
    pub async fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return false;
        }
        let wait = (1.0 - self.tokens) / self.rate;
        let jitter = wait * 0.2 * rand::random::<f64>();
        tokio::time::sleep(Duration::from_secs_f64(wait + jitter)).await;
        self.refill();
        self.tokens = (self.tokens - 1.0).max(0.0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_the_rate_holds() {
        let mut b = TokenBucket::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            assert!(!b.take().await);
        }
        for _ in 0..10 {
            b.take().await;
        }
        // 10 more tokens at 10/s take at least one (virtual) second.
        assert!(
            start.elapsed() >= Duration::from_millis(950),
            "{:?}",
            start.elapsed()
        );
    }
}
