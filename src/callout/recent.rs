//! What the admin console shows of this instance's recent decisions: the latest denies with
//! their reasons, and decision times for a p99 (bounded rings; the totals are in `Counters`).
//! Recording a decision time takes no lock: it is on every authorization's path.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

/// Denies kept.
pub const DENIES_KEPT: usize = 100;
/// Decision times kept for the percentile.
pub const TIMES_KEPT: usize = 2048;

/// One denied (or refused) connection.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DenyEntry {
    /// Unix seconds.
    pub at: i64,
    /// The reason code (`token-expired`, `unknown-user`, ...).
    pub reason: String,
    /// For people (never a token).
    pub detail: String,
    /// The user the token named, when it verified.
    pub user: Option<String>,
    /// `nats`, `websocket`, ...
    pub kind: String,
    /// The rooms asked for (cut at 200 bytes).
    pub requested: String,
}

/// The latest denies and decision times.
#[derive(Debug)]
pub struct Recent {
    denies: Mutex<VecDeque<DenyEntry>>,
    /// A ring written at `written % TIMES_KEPT`, lock-free.
    times_ns: Box<[AtomicU64]>,
    written: AtomicUsize,
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            denies: Mutex::default(),
            times_ns: (0..TIMES_KEPT).map(|_| AtomicU64::new(0)).collect(),
            written: AtomicUsize::new(0),
        }
    }
}

impl Recent {
    pub fn deny(&self, entry: DenyEntry) {
        let mut d = self.denies.lock().unwrap_or_else(|p| p.into_inner());
        if d.len() == DENIES_KEPT {
            d.pop_front();
        }
        d.push_back(entry);
    }

    pub fn time(&self, ns: u64) {
        let i = self.written.fetch_add(1, Ordering::Relaxed) % TIMES_KEPT;
        self.times_ns[i].store(ns, Ordering::Relaxed);
    }

    /// The latest denies, newest first.
    pub fn denies(&self) -> Vec<DenyEntry> {
        let d = self.denies.lock().unwrap_or_else(|p| p.into_inner());
        d.iter().rev().cloned().collect()
    }

    /// The 99th percentile of the kept decision times, in milliseconds (0 with none).
    pub fn p99_ms(&self) -> f64 {
        let kept = self.written.load(Ordering::Relaxed).min(TIMES_KEPT);
        let mut t: Vec<u64> = self.times_ns[..kept]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        if t.is_empty() {
            return 0.0;
        }
        t.sort_unstable();
        let i = ((t.len() as f64) * 0.99).ceil() as usize;
        t[i.clamp(1, t.len()) - 1] as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: i64) -> DenyEntry {
        DenyEntry {
            at: i,
            reason: "no-token".into(),
            detail: String::new(),
            user: None,
            kind: "nats".into(),
            requested: String::new(),
        }
    }

    #[test]
    fn the_rings_keep_the_latest_and_the_percentile_is_of_what_they_keep() {
        let r = Recent::default();
        assert_eq!(r.p99_ms(), 0.0);
        for i in 0..(DENIES_KEPT as i64 + 5) {
            r.deny(entry(i));
        }
        let d = r.denies();
        assert_eq!(d.len(), DENIES_KEPT);
        assert_eq!((d[0].at, d[DENIES_KEPT - 1].at), (DENIES_KEPT as i64 + 4, 5));
        for ms in 1..=100u64 {
            r.time(ms * 1_000_000);
        }
        assert_eq!(r.p99_ms(), 99.0);
        for _ in 0..TIMES_KEPT {
            r.time(1_000_000);
        }
        assert_eq!(r.p99_ms(), 1.0, "old times fall out");
    }
}
