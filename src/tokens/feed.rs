//! Revocations shared through JetStream: every live entry of the revocations bucket is
//! loaded before the instance answers its first authorization, then the bucket is watched,
//! so an entry written by any instance is applied here at once, and one written while this
//! instance was cut off is applied when it is back (the watch resumes after the last
//! revision it applied).

use std::sync::Arc;

use async_nats::jetstream::kv::Operation;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::revocation::{Revocation, Revocations};
use super::store::KvStore;
use crate::clock::now_secs;
use crate::health::Health;
use crate::kv::Watched;

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
    let (events, mut seen) = tokio::sync::mpsc::channel(256);
    let open = move || {
        let store = store.clone();
        async move { store.revocation_bucket().await.map_err(|e| e.to_string()) }
    };
    // The watch ends with `stop` and closes the channel, which ends the loop below.
    let watch = crate::kv::follow(open, ">".into(), stop, events);
    let apply = async {
        while let Some(event) = seen.recv().await {
            match event {
                Watched::Entry(entry) => {
                    if entry.operation != Operation::Put {
                        continue;
                    }
                    match serde_json::from_slice::<Revocation>(&entry.value) {
                        Ok(r) if r.expires_at >= now_secs() => revocations.apply([r]),
                        Ok(_) => {}
                        Err(e) => {
                            warn!(revision = entry.revision, error = %e, "ignored a malformed revocation entry")
                        }
                    }
                }
                Watched::CaughtUp { .. } => {
                    if !*loaded.borrow() {
                        info!(
                            entries = revocations.load().len(),
                            "revocations loaded from JetStream"
                        );
                    }
                    health.set(PART, true, "watching");
                    metrics::gauge!("nats_callout_revocations_stale").set(0.0);
                    loaded.send_replace(true);
                }
                Watched::Broken { reason, failures } => {
                    let stale = if *loaded.borrow() { "stale" } else { "not loaded" };
                    health.set(PART, false, format!("{stale}: {reason}"));
                    metrics::gauge!("nats_callout_revocations_stale").set(1.0);
                    if failures == 1 || failures.is_power_of_two() {
                        warn!(error = %reason, attempt = failures, "revocation watch interrupted; resuming");
                    }
                }
            }
        }
    };
    tokio::join!(watch, apply);
}

/// Keeps the caller waiting until `loaded` is true (at once without a feed).
pub async fn until_loaded(loaded: &mut watch::Receiver<bool>) {
    let _ = loaded.wait_for(|l| *l).await;
}
