//! Who enforces: exactly one instance, by a lease in JetStream KV. The lease is a key
//! created only if absent, renewed by revision (compare-and-set) and gone by the bucket's
//! `max_age` when its holder stops renewing, so another instance takes over within about
//! one lease time. A holder counts itself the enforcer only until a safety margin before
//! the lease could expire at the server, measured from before its last renewal was sent:
//! two instances never both act. An instance alone (the redb backend) is [`Leadership::Solo`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::kv::{BucketSpec, Latest};

/// The key the enforcer's lease is kept under.
pub const KEY: &str = "enforcer";

/// How this instance knows whether it enforces.
#[derive(Debug, Clone)]
pub enum Leadership {
    /// The only instance: always.
    Solo,
    /// While it holds the lease.
    Lease(Arc<Lease>),
}

impl Leadership {
    /// Whether this instance enforces now.
    #[must_use]
    pub fn held(&self) -> bool {
        match self {
            Leadership::Solo => true,
            Leadership::Lease(l) => l.held(),
        }
    }
}

/// One instance's side of the lease.
#[derive(Debug)]
pub struct Lease {
    holder: String,
    /// Where the lease lives; its `max_age` is the lease time.
    bucket: BucketSpec,
    ttl: Duration,
    /// Until when this instance may act (its view, with the margin).
    until: Mutex<Option<Instant>>,
    /// Times this instance acquired the lease.
    pub acquired: std::sync::atomic::AtomicU64,
}

/// What one attempt to hold the lease came to.
enum Step {
    /// Held, at this revision.
    Held(u64),
    /// Someone else holds it.
    Other,
    /// JetStream did not answer: keep what we have until it runs out.
    Unknown,
}

impl Lease {
    /// A lease `holder` (an instance id) keeps in `bucket` (see [`Lease::bucket`]) for the
    /// bucket's `max_age` per renewal.
    #[must_use]
    pub fn new(holder: impl Into<String>, bucket: BucketSpec) -> Arc<Self> {
        Arc::new(Lease {
            holder: holder.into(),
            ttl: bucket.max_age,
            bucket,
            until: Mutex::new(None),
            acquired: Default::default(),
        })
    }

    /// The bucket the lease lives in: a value expires `ttl` after it was written.
    #[must_use]
    pub fn bucket(name: String, ttl: Duration, replicas: usize) -> BucketSpec {
        BucketSpec {
            name,
            description: "nats-callout leases (one enforcer)",
            history: 1,
            max_age: ttl,
            replicas,
        }
    }

    /// The instance id that holds, or tries to hold, the lease.
    #[must_use]
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn until(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this instance may act as the enforcer now.
    #[must_use]
    pub fn held(&self) -> bool {
        self.until().is_some_and(|t| Instant::now() < t)
    }

    /// Renewals per lease time, and the part of it never counted on.
    fn period(&self) -> Duration {
        self.ttl / 4
    }

    fn margin(&self) -> Duration {
        self.ttl / 5
    }

    /// Hold or take the lease until `stop` (then let it go, so another
    /// instance takes over at once). `on_acquire` runs each time this instance becomes the
    /// enforcer (to judge what changed while nobody, or another, was).
    pub async fn run(
        self: Arc<Self>,
        js: async_nats::jetstream::Context,
        on_acquire: impl Fn() + Send,
        stop: CancellationToken,
    ) {
        let mut bucket: Option<kv::Store> = None;
        let mut revision: Option<u64> = None;
        loop {
            if bucket.is_none() {
                match crate::kv::ensure(&js, &self.bucket).await {
                    Ok(b) => bucket = Some(b),
                    Err(e) => warn!(error = %e, "lease bucket unavailable"),
                }
            }
            if let Some(b) = &bucket {
                let was_held = self.held();
                let sent = Instant::now();
                match self.step(b, revision).await {
                    Step::Held(rev) => {
                        revision = Some(rev);
                        *self.until() = Some(sent + self.ttl - self.margin());
                        if !was_held {
                            self.acquired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            info!(holder = %self.holder, "this instance is the enforcer");
                            on_acquire();
                        }
                    }
                    Step::Other => {
                        revision = None;
                        if self.until().take().is_some() {
                            warn!(holder = %self.holder, "lost the enforcer lease");
                        }
                    }
                    Step::Unknown => {}
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.period()) => {}
            }
        }
        // Let go: stop acting first, then free the key for the next instance.
        *self.until() = None;
        if let (Some(b), Some(rev)) = (bucket, revision)
            && let Err(e) = b.delete_expect_revision(KEY, Some(rev)).await
        {
            debug!(error = %e, "could not release the enforcer lease; it expires by itself");
        }
    }

    /// Renew at `revision`, or create when not holding.
    async fn step(&self, bucket: &kv::Store, revision: Option<u64>) -> Step {
        let value = bytes::Bytes::from(self.holder.clone());
        let attempt = match revision {
            Some(rev) => match bucket.update(KEY, value, rev).await {
                Ok(rev) => Ok(Some(rev)),
                Err(e) if crate::kv::lost_race(&e) => Ok(None),
                Err(e) => Err(e.to_string()),
            },
            None => crate::kv::create(bucket, KEY, value).await,
        };
        match attempt {
            Ok(Some(rev)) => Step::Held(rev),
            // Taken, or a renewal that reached the server but whose answer was lost: still
            // ours if the key holds our id.
            Ok(None) => match crate::kv::latest(bucket, KEY).await {
                Ok(Latest::Value(v, rev)) if v == self.holder.as_bytes() => Step::Held(rev),
                Ok(_) => Step::Other,
                Err(_) => Step::Unknown,
            },
            Err(e) => {
                debug!(error = %e, "lease renewal failed");
                Step::Unknown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_only_until_its_margin() {
        let l = Lease::new("a", Lease::bucket("b".into(), Duration::from_secs(5), 1));
        assert!(!l.held(), "nothing held before the first renewal");
        *l.until() = Some(Instant::now() + Duration::from_secs(1));
        assert!(l.held());
        *l.until() = Some(Instant::now() - Duration::from_millis(1));
        assert!(!l.held());
        assert!(
            l.period() * 3 < l.ttl - l.margin(),
            "three renewals fit in one lease"
        );
        assert!(Leadership::Solo.held());
    }
}
