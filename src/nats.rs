//! The service's NATS connections: options (name, TLS), credentials (a `.creds` file, an
//! nkey seed, or a user and password), and connections that wait for NATS with backoff,
//! reporting their state to readiness.

use std::sync::Arc;

use anyhow::Context;
use tracing::warn;

use crate::config::Config;
use crate::health::Health;

/// Connection options shared by the service's connections: name and TLS.
fn nats_options(config: &Config, role: &str) -> anyhow::Result<async_nats::ConnectOptions> {
    let n = &config.nats;
    let mut opts = async_nats::ConnectOptions::new().name(format!("{}-{role}", n.name));
    if let Some(ca) = &n.tls_ca_file {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    match (&n.tls_cert_file, &n.tls_key_file) {
        (Some(cert), Some(key)) => {
            opts = opts
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true)
        }
        (None, None) => {}
        _ => anyhow::bail!("nats.tls_cert_file and nats.tls_key_file go together"),
    }
    Ok(opts)
}

/// Connect to NATS with the service's credentials (user/password or nkey seed), once:
/// for the CLI, which reports a server that is not there.
pub async fn connect(config: &Config) -> anyhow::Result<async_nats::Client> {
    connect_as(config, "service", None).await
}

/// Options that wait for NATS: the first connect returns at once and keeps trying in the
/// background, every loss is retried without end, and the connection reports its state
/// as `part` of `health` (readiness says why it is not ready).
fn waiting(
    opts: async_nats::ConnectOptions,
    health: &Arc<Health>,
    part: &'static str,
) -> async_nats::ConnectOptions {
    let h = health.clone();
    h.set(part, false, "connecting");
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    opts.retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(crate::clock::backoff)
        .event_callback(move |e| {
            let (h, attempts) = (h.clone(), attempts.clone());
            async move {
                use std::sync::atomic::Ordering::Relaxed;
                match e {
                    async_nats::Event::Connected => {
                        attempts.store(0, Relaxed);
                        h.set(part, true, "connected");
                    }
                    async_nats::Event::Disconnected => h.set(part, false, "disconnected, reconnecting"),
                    async_nats::Event::ClientError(err) => {
                        let n = attempts.fetch_add(1, Relaxed) + 1;
                        if h.get(part).is_some_and(|c| !c.ok) {
                            h.set(part, false, format!("cannot reach NATS: {err} (attempt {n})"));
                        }
                        if n == 1 || n.is_power_of_two() {
                            warn!(connection = part, attempt = n, error = %err, "cannot reach NATS; retrying");
                        }
                    }
                    _ => {}
                }
            }
        })
}

/// The system account's connection (live enforcement), by `.creds` file or user/password;
/// `None` when neither is configured.
pub async fn system_connection(
    config: &Config,
    health: &Arc<Health>,
) -> anyhow::Result<Option<async_nats::Client>> {
    let n = &config.nats;
    if n.system_credentials_file.is_none() && n.system_user.is_none() {
        return Ok(None);
    }
    // Only now: the part reports itself (not ready until connected).
    let opts = waiting(nats_options(config, "system")?, health, "nats-system");
    let opts = match (&n.system_credentials_file, &n.system_user) {
        (Some(creds), _) => opts
            .credentials_file(creds)
            .await
            .with_context(|| format!("while reading {}", creds.display()))?,
        (None, Some(user)) => {
            let password = config
                .system_password()?
                .map(|s| s.expose().to_string())
                .unwrap_or_default();
            opts.user_and_password(user.clone(), password)
        }
        (None, None) => return Ok(None),
    };
    let sys = opts
        .connect(config.nats.servers())
        .await
        .context("while connecting to NATS as the system user")?;
    Ok(Some(sys))
}

/// [`connect`], naming the connection `<nats.name>-<role>`; with `health`, it waits for
/// NATS (see `waiting`) instead of failing.
pub async fn connect_as(
    config: &Config,
    role: &str,
    health: Option<(&Arc<Health>, &'static str)>,
) -> anyhow::Result<async_nats::Client> {
    let mut opts = nats_options(config, role)?;
    if let Some(creds) = &config.nats.credentials_file {
        opts = opts
            .credentials_file(creds)
            .await
            .with_context(|| format!("while reading {}", creds.display()))?;
    } else if let Some(seed_file) = &config.nats.nkey_seed_file {
        let seed = crate::keys::read_secret(seed_file)?;
        opts = opts.nkey(seed);
    } else if let Some(user) = &config.nats.user {
        let password = config
            .nats_password()?
            .map(|s| s.expose().to_string())
            .unwrap_or_default();
        opts = opts.user_and_password(user.clone(), password);
    }
    if let Some((h, part)) = health {
        opts = waiting(opts, h, part);
    }
    opts.connect(config.nats.servers())
        .await
        .with_context(|| format!("while connecting to NATS at {}", config.nats.url))
}
