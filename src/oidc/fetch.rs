//! Fetching a provider's discovery document and keys, and keeping them fresh in the
//! background. Only this module talks HTTP to providers for keys; nothing on the request
//! path waits for it.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::keys::KeySet;
use super::{Endpoints, Provider, Providers};
use crate::clock::now_secs;

/// The largest document read from a provider.
pub const MAX_DOCUMENT: usize = 1024 * 1024;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url}: answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: more than {MAX_DOCUMENT} bytes")]
    TooLarge { url: String },
    #[error("{url}: not the expected JSON: {reason}")]
    Json { url: String, reason: String },
    #[error("discovery names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch { found: String, expected: String },
    #[error(transparent)]
    Keys(#[from] super::keys::KeysError),
}

/// The HTTP client for providers: short timeouts, no redirects, system roots.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("nats-callout/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// GET `url` as bytes: 200 and at most [`MAX_DOCUMENT`].
pub async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, FetchError> {
    let fail = |reason: String| FetchError::Http {
        url: url.to_string(),
        reason,
    };
    let mut resp = http
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| fail(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    read_limited(&mut resp, url).await
}

/// The body of a response, at most [`MAX_DOCUMENT`] bytes.
pub async fn read_limited(resp: &mut reqwest::Response, url: &str) -> Result<Vec<u8>, FetchError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| FetchError::Http {
        url: url.to_string(),
        reason: e.without_url().to_string(),
    })? {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(FetchError::TooLarge { url: url.to_string() });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The discovery document, checked to be the provider's own (`issuer` matches exactly).
pub async fn discover(http: &reqwest::Client, provider: &Provider) -> Result<Endpoints, FetchError> {
    let url = provider.settings.discovery_url();
    let body = get(http, &url).await?;
    let e: Endpoints = serde_json::from_slice(&body).map_err(|err| FetchError::Json {
        url: url.clone(),
        reason: err.to_string(),
    })?;
    if e.issuer != provider.settings.issuer {
        return Err(FetchError::IssuerMismatch {
            found: e.issuer,
            expected: provider.settings.issuer.clone(),
        });
    }
    Ok(e)
}

/// Discovery (unless `jwks_url` is set), then the keys; on success they are in use.
pub async fn refresh(http: &reqwest::Client, provider: &Provider) -> Result<usize, FetchError> {
    let jwks_url = match &provider.settings.jwks_url {
        Some(u) => {
            // Discovery still tells the login endpoints, when there is one.
            if let Ok(e) = discover(http, provider).await {
                provider.set_endpoints(e);
            }
            u.clone()
        }
        None => {
            let e = discover(http, provider).await?;
            let u = e.jwks_uri.clone();
            provider.set_endpoints(e);
            u
        }
    };
    let body = get(http, &jwks_url).await?;
    let accepted: &[Algorithm] = &provider.rules.accepted;
    let (keys, skipped) = KeySet::parse(&body, accepted)?;
    if !skipped.is_empty() {
        info!(provider = provider.name(), skipped = ?skipped, "some provider keys are not used");
    }
    let n = keys.len();
    provider.set_keys(keys, now_secs());
    Ok(n)
}

/// One attempt for each provider at once, each bounded by `limit` (at start).
pub async fn refresh_all(http: &reqwest::Client, providers: &Providers, limit: Duration) {
    let attempts = providers.iter().map(|p| async move {
        match tokio::time::timeout(limit, refresh(http, p)).await {
            Ok(Ok(n)) => info!(provider = p.name(), keys = n, "provider keys fetched"),
            Ok(Err(e)) => {
                warn!(provider = p.name(), error = %e, "provider keys not fetched; its tokens are refused until they are");
                p.set_failed(e.to_string());
            }
            Err(_) => {
                warn!(provider = p.name(), "provider keys not fetched in time; retrying in the background");
                p.set_failed(format!("no answer within {limit:?}"));
            }
        }
    });
    futures::future::join_all(attempts).await;
}

/// Keep one provider's keys fresh until `stop`: every `refresh_interval` (sooner, with
/// backoff, after a failure), and when a token names an unknown key, but never twice
/// within `min_refresh_interval`.
pub async fn keep_fresh(http: reqwest::Client, provider: Arc<Provider>, stop: CancellationToken) {
    let every = provider.settings.refresh_interval;
    let min = provider.settings.min_refresh_interval;
    let mut failures: u32 = 0;
    let mut last = Instant::now();
    let mut next = last + if provider.status().ok { every } else { min };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
            () = provider.wanted() => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep_until(last + min) => {}
                }
                metrics::counter!("nats_callout_oidc_unknown_kid_refreshes_total", "provider" => provider.name().to_string()).increment(1);
            }
        }
        last = Instant::now();
        let result = refresh(&http, &provider).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("nats_callout_oidc_key_fetches_total", "provider" => provider.name().to_string(), "result" => outcome).increment(1);
        next = match result {
            Ok(n) => {
                if failures > 0 {
                    info!(provider = provider.name(), keys = n, "provider reachable again");
                }
                failures = 0;
                last + every
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                warn!(provider = provider.name(), error = %e, failures, "provider keys not fetched; the cached keys stay in use");
                provider.set_failed(e.to_string());
                let backoff = min.saturating_mul(1 << failures.min(6)).min(every);
                last + backoff
            }
        };
    }
}
