//! Revocations shared through JetStream: every live entry of the revocations bucket is
//! loaded before the instance answers its first authorization, then the bucket is watched,
//! so an entry written by any instance is applied here at once, and one written while this
//! instance was cut off is applied when it is back (the watch resumes after the last
//! revision it applied).

use std::sync::Arc;

use async_nats::jetstream::kv::Operation;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::revocation::{Revocation, Revocations};
use super::store::KvStore;
use crate::clock::now_secs;
use crate::health::Health;

/// The readiness part this feed reports as.
pub const PART: &str = "revocations";

/// Follows the revocations bucket of `store` into `revocations` until `stop`. `loaded`
/// turns true once every entry stored when the watch began has been applied.
pub async fn follow(
    store: Arc<KvStore>,
    revocations: Revocations,
    health: Arc<Health>,
    loaded: watch::Sender<bool>,
    stop: CancellationToken,
) {
    health.set(PART, false, "loading from JetStream");
    let mut last: Option<u64> = None;
    let mut failures = 0u32;
    while !stop.is_cancelled() {
        let reason = match watch_once(&store, &revocations, &health, &loaded, &mut last, &stop).await {
            Ok(()) => return,
            Err(reason) => reason,
        };
        failures += 1;
        let stale = if *loaded.borrow() { "stale" } else { "not loaded" };
        health.set(PART, false, format!("{stale}: {reason}"));
        metrics::gauge!("nats_callout_revocations_stale").set(1.0);
        if failures == 1 || failures.is_power_of_two() {
            warn!(error = %reason, attempt = failures, "revocation watch interrupted; resuming");
        }
        let delay = crate::clock::backoff(failures as usize);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One watch, from after `last` (or every current entry): returns `Ok` on `stop`, the
/// reason when the watch broke.
async fn watch_once(
    store: &KvStore,
    revocations: &Revocations,
    health: &Health,
    loaded: &watch::Sender<bool>,
    last: &mut Option<u64>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let bucket = store.revocation_bucket().await.map_err(|e| e.to_string())?;
    let mut entries = match *last {
        Some(rev) => bucket.watch_all_from_revision(rev + 1).await,
        None => bucket.watch_with_history(">").await,
    }
    .map_err(|e| e.to_string())?;
    // An empty bucket delivers nothing to wait for.
    let stored = bucket.status().await.map_err(|e| e.to_string())?.values();
    let mut caught_up = stored == 0 || last.is_some();
    if caught_up {
        mark_live(health, loaded);
    }
    loop {
        let entry = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            e = entries.next() => e,
        };
        let entry = match entry {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the watch ended".into()),
        };
        *last = Some(entry.revision);
        if entry.operation == Operation::Put {
            match serde_json::from_slice::<Revocation>(&entry.value) {
                Ok(r) if r.expires_at >= now_secs() => revocations.apply([r]),
                Ok(_) => {}
                Err(e) => {
                    warn!(revision = entry.revision, error = %e, "ignored a malformed revocation entry")
                }
            }
        }
        if !caught_up && entry.delta == 0 {
            caught_up = true;
            info!(
                entries = revocations.load().len(),
                "revocations loaded from JetStream"
            );
            mark_live(health, loaded);
        }
    }
}

fn mark_live(health: &Health, loaded: &watch::Sender<bool>) {
    health.set(PART, true, "watching");
    metrics::gauge!("nats_callout_revocations_stale").set(0.0);
    loaded.send_replace(true);
}

/// Keeps the caller waiting until `loaded` is true (at once without a feed).
pub async fn until_loaded(loaded: &mut watch::Receiver<bool>) {
    let _ = loaded.wait_for(|l| *l).await;
}
