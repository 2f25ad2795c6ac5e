//! The janitor: on a schedule, removes expired and revoked records from the token store in
//! batches, then forgets revocation entries no token can match any more.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::TokenService;
use super::refresh::RefreshError;
use super::store::PurgeReport;
use crate::clock::now_secs;

/// One janitor run: purge in batches until a batch is not full, then prune the index.
async fn purge_all(tokens: &TokenService, now: i64, batch: usize) -> Result<PurgeReport, RefreshError> {
    let mut total = PurgeReport::default();
    loop {
        let r = tokens.refresh().purge(now, batch).await?;
        total.refresh_tokens += r.refresh_tokens;
        total.sessions += r.sessions;
        total.revocations += r.revocations;
        if r.total() < batch {
            tokens.revocations().prune(now);
            return Ok(total);
        }
    }
}

/// Remove expired and revoked records in batches, every `every`, until `stop`.
pub async fn run(
    tokens: Arc<TokenService>,
    every: Duration,
    batch: usize,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        match purge_all(&tokens, now_secs(), batch).await {
            Ok(r) => {
                metrics::counter!("nats_callout_janitor_runs_total", "result" => "ok").increment(1);
                metrics::counter!("nats_callout_janitor_removed_total").increment(r.total() as u64);
                info!(
                    refresh_tokens = r.refresh_tokens,
                    sessions = r.sessions,
                    revocations = r.revocations,
                    "janitor run"
                )
            }
            Err(e) => {
                metrics::counter!("nats_callout_janitor_runs_total", "result" => "failed").increment(1);
                warn!(error = %e, "janitor failed")
            }
        }
    }
}
