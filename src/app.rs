//! The running service: load keys, tokens and permissions, connect to NATS (waiting for it,
//! with backoff and jitter, at start and after losing it), serve the callout, the HTTP
//! listeners (public and operations) and the service endpoints until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::callout::{self, Callout, decision::Policy};
use crate::clock::now_secs;
use crate::config::Config;
use crate::config::{PermissionSource, StoreBackend};
use crate::enforcement::Enforcement;
use crate::enforcement::lease::{Leadership, Lease};
use crate::http::{self, HttpState};
use crate::keys::{CalloutKeys, read_secret_key};
use crate::oidc::{self, Providers};
use crate::ops::{Health, Instance, Ops};
use crate::permissions::published;
use crate::permissions::{Permissions, Snapshot};
use crate::reload::{Reloader, Source};
use crate::tokens::TokenKeys;
use crate::tokens::feed;
use crate::tokens::refresh::{RefreshService, RefreshSettings};
use crate::tokens::revocation::Revocations;
use crate::tokens::service::TokenService;
use crate::tokens::store::{KvSettings, KvStore, RedbStore, TokenStore};

/// A built service: connected, subscribed and bound, ready to [`App::run`].
pub struct App {
    client: async_nats::Client,
    /// The connection authorization requests arrive and are answered on (see [`callout::serve`]).
    requests: async_nats::Client,
    /// The store whose revocations bucket this instance follows (JetStream backend).
    shared: Option<Arc<KvStore>>,
    callout: Arc<Callout>,
    tokens: Arc<TokenService>,
    permissions: Permissions,
    ops: Arc<Ops>,
    http: Option<tokio::net::TcpListener>,
    admin: Option<tokio::net::TcpListener>,
    config: Config,
}

/// The token store the configuration names with its revocation index; for JetStream also
/// the store whose revocations bucket the instance follows (the index starts empty then).
async fn open_tokens(
    config: &Config,
    keys: Arc<TokenKeys>,
    client: &async_nats::Client,
) -> anyhow::Result<(TokenService, Option<Arc<KvStore>>)> {
    let t = &config.tokens;
    let secret = read_secret_key(&t.refresh_secret_file).context("while loading the refresh-token secret")?;
    let settings = RefreshSettings {
        idle: t.refresh_idle,
        absolute: t.refresh_absolute,
        grace: t.refresh_grace,
        tombstone: t.refresh_idle,
    };
    let (store, shared): (Arc<dyn TokenStore>, _) = match config.store.backend {
        StoreBackend::Redb => {
            if let Some(dir) = t.store_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("while creating {}", dir.display()))?;
            }
            let store = RedbStore::open(&t.store_path)
                .with_context(|| format!("while opening the token store {}", t.store_path.display()))?;
            (Arc::new(store), None)
        }
        StoreBackend::Jetstream => {
            let kv = Arc::new(KvStore::new(client.clone(), kv_settings(config, &settings)));
            (kv.clone() as Arc<dyn TokenStore>, Some(kv))
        }
    };
    let refresh = RefreshService::new(store, secret, settings);
    let revocations = match shared {
        None => Revocations::new(refresh.revocations(now_secs()).await?),
        Some(_) => Revocations::default(),
    };
    Ok((
        TokenService::new(keys, refresh, revocations, t.access_ttl),
        shared,
    ))
}

/// How this instance knows it enforces: alone with the embedded store, by the lease with
/// the shared one.
fn leadership(config: &Config) -> Leadership {
    match config.store.backend {
        StoreBackend::Redb => Leadership::Solo,
        StoreBackend::Jetstream => {
            let name = format!("{}_leases", config.store.bucket_prefix);
            let spec = Lease::bucket(name, config.enforcement.lease_ttl, config.store.replicas);
            Leadership::Lease(Lease::new(nuid::next().to_string(), spec))
        }
    }
}

/// The JetStream buckets' settings: records outlive every session they may describe,
/// revocation entries every token they may cover.
/// How long the start waits for identity providers' keys (then they come in the background).
const PROVIDER_START_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn kv_settings(config: &Config, refresh: &RefreshSettings) -> KvSettings {
    let t = &config.tokens;
    KvSettings {
        prefix: config.store.bucket_prefix.clone(),
        replicas: config.store.replicas,
        records_max_age: refresh.absolute + refresh.tombstone,
        revocations_max_age: t.access_ttl.max(t.max_token_ttl) + std::time::Duration::from_secs(2),
    }
}

impl App {
    /// Load everything the configuration names, connect and bind. Fails fast with a
    /// message naming the file or setting at fault.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let c = &config.callout;
        let keys = CalloutKeys::load(&c.issuer_seed_file, c.xkey_seed_file.as_deref())
            .and_then(|k| {
                k.with_previous(
                    c.previous_issuer_seed_file.as_deref(),
                    c.previous_xkey_seed_file.as_deref(),
                )
            })
            .context("while loading the callout keys")?;
        // Identity providers: their keys are fetched now (bounded) and kept fresh in `run`.
        let providers = Arc::new(Providers::new(&config.identity, config.tokens.max_token_ttl));
        let provider_http = oidc::fetch::client();
        oidc::fetch::refresh_all(&provider_http, &providers, PROVIDER_START_LIMIT).await;
        let mut token_keys =
            TokenKeys::from_settings(&config.tokens).context("while loading the token keys")?;
        if !providers.is_empty() {
            token_keys = token_keys.with_trusted(providers.clone());
        }
        let token_keys = Arc::new(token_keys);
        // From files: loaded now, and a bad set stops the start. From KV: the first
        // published set arrives with the watch (no authorization is answered before).
        let snapshot = match config.permissions.source {
            PermissionSource::Files => Snapshot::load_dir(&config.permissions.dir).map_err(|e| {
                anyhow::anyhow!(
                    "while loading permissions from {}:\n{e}",
                    config.permissions.dir.display()
                )
            })?,
            PermissionSource::Kv => Snapshot::from_sources(&[]).map_err(anyhow::Error::msg)?,
        };
        let policy = Policy::with_token_reset_roles(&config.callout, &config.enforcement.token_reset_roles)
            .map_err(anyhow::Error::msg)?;
        info!(
            users = snapshot.user_count(),
            rooms = snapshot.room_count(),
            issuer = keys.issuer_public(),
            xkey = keys.xkey().is_some(),
            "permissions and keys loaded"
        );
        let permissions = Permissions::new(snapshot);
        // Listeners first: the HTTP API answers (and /readyz says why it is not ready)
        // while NATS is still out of reach.
        let http = bind(&config.http.listen, "the HTTP API").await?;
        let admin = bind(&config.http.admin_listen, "the operations listener").await?;
        let health = Arc::new(Health::default());

        let client = connect_as(&config, "service", Some((&health, "nats"))).await?;
        let (tokens, shared) = open_tokens(&config, token_keys.clone(), &client).await?;
        let tokens = Arc::new(tokens);
        let operator = crate::operator::OperatorKeys::load(&config.callout)
            .context("while loading the operator-mode account keys")?;
        let callout = Arc::new(
            Callout::new(
                keys,
                token_keys,
                permissions.clone(),
                tokens.revocations().clone(),
                policy,
            )
            .with_operator(operator),
        );
        let enforcement = match system_connection(&config, &health).await? {
            Some(sys) => Some(Enforcement::new(
                sys,
                permissions.clone(),
                tokens.revocations().clone(),
                config.enforcement.clone(),
                enforced_accounts(&config),
                leadership(&config),
            )),
            None => {
                warn!(
                    "no nats.system_user or nats.system_credentials_file: live enforcement (LDM/KICK) is off"
                );
                None
            }
        };
        let source = match config.permissions.source {
            PermissionSource::Files => Source::Dir(config.permissions.dir.clone()),
            PermissionSource::Kv => Source::Kv {
                client: client.clone(),
                bucket: published::bucket(&config.store.bucket_prefix, config.store.replicas),
            },
        };
        let placements = config.callout.placements().into_iter().collect();
        let reloader = Reloader::new(source, permissions.clone(), placements, enforcement.clone());
        let ops = Arc::new(Ops {
            health: health.clone(),
            counters: callout.counters(),
            enforcement,
            providers,
            ..Ops::new(
                Instance::new(&config.callout.queue_group),
                reloader,
                tokens.clone(),
            )
        });
        // Not ready until their subscriptions are in place (see `health::ready_after_flush`).
        for part in ["callout", "endpoints", "enforcement"] {
            if part != "enforcement" || ops.enforcement.is_some() {
                health.set(part, false, "subscribing");
            }
        }
        if shared.is_some() {
            health.set(feed::PART, false, "loading from JetStream");
        }
        let requests = connect_as(&config, "requests", Some((&health, "nats-requests"))).await?;
        Ok(App {
            client,
            requests,
            shared,
            callout,
            tokens,
            permissions,
            ops,
            http,
            admin,
            config,
        })
    }

    /// The shared request handler (to swap snapshots, or to inspect in tests).
    pub fn callout(&self) -> Arc<Callout> {
        self.callout.clone()
    }

    pub fn tokens(&self) -> Arc<TokenService> {
        self.tokens.clone()
    }

    pub fn reloader(&self) -> Arc<Reloader> {
        self.ops.reloader.clone()
    }

    pub fn enforcement(&self) -> Option<Arc<Enforcement>> {
        self.ops.enforcement.clone()
    }

    pub fn ops(&self) -> Arc<Ops> {
        self.ops.clone()
    }

    /// Where the HTTP API listens (port 0 in the config picks a free port).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where the operations listener listens.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The HTTP state for this service.
    pub fn http_state(&self) -> Arc<HttpState> {
        Arc::new(HttpState {
            guest_refresh: self.config.tokens.guest_refresh,
            ..HttpState::new(
                self.tokens.clone(),
                self.permissions.clone(),
                self.config.http.clone(),
                self.ops.clone(),
            )
        })
    }

    /// Serve until `shutdown` resolves, then finish the requests in flight and drain.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let state = self.http_state();
        let App {
            client,
            requests,
            shared,
            callout,
            tokens,
            permissions,
            ops,
            http,
            admin,
            config,
        } = self;

        let mut tasks = tokio::task::JoinSet::new();
        let s = stop.clone();
        let max = config.callout.max_in_flight;
        // Every live revocation is in force before the first authorization is answered.
        let (loaded_tx, mut loaded) = tokio::sync::watch::channel(shared.is_none());
        if let Some(store) = shared {
            let (revocations, health, stop) =
                (tokens.revocations().clone(), ops.health.clone(), stop.clone());
            tasks.spawn(async move {
                feed::follow(store, revocations, health, loaded_tx, stop).await;
                Ok(())
            });
        }
        tasks.spawn({
            let (client, health, queue) = (
                client.clone(),
                ops.health.clone(),
                config.callout.queue_group.clone(),
            );
            let mut permissions_loaded = ops.reloader.loaded();
            async move {
                tokio::select! {
                    _ = s.cancelled() => return Ok(()),
                    _ = async {
                        feed::until_loaded(&mut loaded).await;
                        feed::until_loaded(&mut permissions_loaded).await;
                    } => {}
                }
                let sub = callout::subscribe(&requests, &queue).await?;
                tokio::spawn(crate::health::ready_after_flush(
                    requests.clone(),
                    health,
                    "callout",
                ));
                let conns = callout::Connections {
                    requests: requests.clone(),
                    service: client,
                };
                callout::serve(conns, sub, callout, max, s.cancelled_owned()).await;
                let drained = tokio::time::timeout(std::time::Duration::from_secs(5), requests.drain()).await;
                if !matches!(drained, Ok(Ok(()))) {
                    warn!("the requests connection did not drain within 5 s");
                }
                Ok(())
            }
        });
        tasks.spawn(
            crate::endpoints::Endpoints {
                client: client.clone(),
                tokens: tokens.clone(),
                permissions,
                ops: ops.clone(),
            }
            .serve(stop.clone()),
        );
        tasks.spawn({
            let stop = stop.clone();
            let watch = config.enforcement.watch;
            let reloader = ops.reloader.clone();
            async move {
                if let Err(e) = reloader.run(watch, stop).await {
                    warn!(error = %e, "permission watcher stopped");
                }
                Ok(())
            }
        });
        if let Some(enforcement) = ops.enforcement.clone() {
            let (client, stop, health) = (client.clone(), stop.clone(), ops.health.clone());
            tasks.spawn(async move {
                if let Err(e) = enforcement.run(client, health, stop).await {
                    warn!(error = %e, "live enforcement stopped");
                }
                Ok(())
            });
        }
        for (listener, router, what) in [
            (http, http::router(state.clone()), "HTTP API"),
            (admin, http::admin_router(state), "operations listener"),
        ] {
            let Some(listener) = listener else { continue };
            info!(addr = ?listener.local_addr().ok(), "{what} listening");
            let s = stop.clone();
            tasks.spawn(async move {
                let app = router.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(s.cancelled_owned())
                    .await
                {
                    warn!(error = %e, "{what} failed");
                }
                Ok(())
            });
        }
        for provider in ops.providers.iter() {
            let fresh = oidc::fetch::keep_fresh(oidc::fetch::client(), provider.clone(), stop.clone());
            tasks.spawn(async move {
                fresh.await;
                Ok(())
            });
        }
        tasks.spawn(janitor(
            tokens,
            config.tokens.janitor_interval,
            config.tokens.janitor_batch,
            stop.clone(),
        ));

        tokio::select! {
            _ = shutdown => {}
            Some(done) = tasks.join_next() => warn!(result = ?done.map(|r| r.map_err(|e| e.to_string())), "a task ended early"),
        }
        stop.cancel();
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(std::time::Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            warn!("tasks did not stop within 10 s");
        }
        // A connection that never came up has nothing to drain: do not wait for it.
        match tokio::time::timeout(std::time::Duration::from_secs(5), client.drain()).await {
            Ok(r) => r.context("while draining the NATS connection")?,
            Err(_) => warn!("NATS did not drain within 5 s"),
        }
        info!("stopped");
        Ok(())
    }
}

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

/// Bind a listener, or none for an empty address.
async fn bind(addr: &str, what: &str) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("while binding {what} to {addr}"))?;
    Ok(Some(l))
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
async fn system_connection(
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

/// The accounts whose connections live enforcement follows, as the server names them:
/// every account users may be placed in (by name in config mode, by public key in
/// operator mode).
fn enforced_accounts(config: &Config) -> Vec<String> {
    let c = &config.callout;
    match c.mode {
        crate::config::CalloutMode::Config => c.placements(),
        crate::config::CalloutMode::Operator => c.accounts.values().map(|a| a.public_key.clone()).collect(),
    }
}

/// [`connect`], naming the connection `<nats.name>-<role>`; with `health`, it waits for
/// NATS (see [`waiting`]) instead of failing.
async fn connect_as(
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

/// One janitor run: purge in batches until a batch is not full, then prune the index.
async fn purge_all(
    tokens: &TokenService,
    now: i64,
    batch: usize,
) -> Result<crate::tokens::store::PurgeReport, crate::tokens::refresh::RefreshError> {
    let mut total = crate::tokens::store::PurgeReport::default();
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

/// Remove expired and revoked records in batches, on a schedule.
async fn janitor(
    tokens: Arc<TokenService>,
    every: std::time::Duration,
    batch: usize,
    stop: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let mut tick = tokio::time::interval(every.max(std::time::Duration::from_secs(1)));
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

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
