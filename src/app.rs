//! The running service: load keys, tokens and permissions, connect to NATS (waiting for it,
//! with backoff and jitter, at start and after losing it), serve the callout, the HTTP
//! listeners (public and operations) and the service endpoints until shutdown.
//!
//! [`App::build`] and [`App::run`] read as their steps; each step is a function below.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::callout::{self, Callout, decision::Policy};
use crate::clock::now_secs;
use crate::config::{Config, PermissionSource, StoreBackend};
use crate::enforcement::Enforcement;
use crate::enforcement::lease::{Leadership, Lease};
use crate::http::{self, HttpState};
use crate::keys::{CalloutKeys, read_secret_key};
pub use crate::nats::connect;
use crate::nats::{connect_as, system_connection};
use crate::oidc::{self, Providers};
use crate::ops::{Health, Instance, Ops};
use crate::permissions::published;
use crate::permissions::{Permissions, Snapshot};
use crate::reload::{Reloader, Source};
use crate::rooms::store::{KvRooms, RedbRooms, RoomStore};
use crate::rooms::{RoomIndex, RoomService};
use crate::tokens::refresh::{RefreshService, RefreshSettings};
use crate::tokens::revocation::Revocations;
use crate::tokens::store::{KvSettings, KvStore, RedbStore, TokenStore};
use crate::tokens::{TokenKeys, TokenService, feed};

/// How long the start waits for identity providers' keys (then they come in the background).
const PROVIDER_START_LIMIT: Duration = Duration::from_secs(5);

/// A built service: connected, subscribed and bound, ready to [`App::run`].
pub struct App {
    client: async_nats::Client,
    /// The connection authorization requests arrive and are answered on (see [`callout::serve`]).
    requests: async_nats::Client,
    /// The store whose revocations bucket this instance follows (JetStream backend).
    shared: Option<Arc<KvStore>>,
    /// Rooms as data, and with the JetStream backend the bucket this instance follows.
    rooms: Arc<RoomService>,
    shared_rooms: Option<Arc<KvRooms>>,
    callout: Arc<Callout>,
    tokens: Arc<TokenService>,
    permissions: Permissions,
    ops: Arc<Ops>,
    http: Option<tokio::net::TcpListener>,
    admin: Option<tokio::net::TcpListener>,
    /// Publishes the audit trail (absent when auditing is off).
    audit: Option<crate::audit::Publisher>,
    config: Config,
}

/// The tasks of a running service, all stopped by one token.
type Tasks = JoinSet<anyhow::Result<()>>;

impl App {
    /// Load everything the configuration names, connect and bind. Fails fast with a
    /// message naming the file or setting at fault.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let keys = load_callout_keys(&config)?;
        let providers = load_providers(&config).await;
        let token_keys = load_token_keys(&config, &providers)?;
        let snapshot = load_permissions(&config)?;
        let policy = Policy::with_token_reset_roles(&config.callout, &config.enforcement.token_reset_roles)
            .map_err(anyhow::Error::msg)?;
        // Checked again here (a configuration built in code skips `Config::validate`): no
        // grant of this policy may reach a delegate's subject.
        let routes = crate::access::Routes::from_settings(&config.access.delegate)
            .and_then(|r| {
                r.check_private(&policy.read_subject, &policy.write_subject, &policy.inbox_prefix)
                    .map(|()| r)
            })
            .map_err(|e| anyhow::anyhow!("invalid setting access.delegate: {e}"))?;
        let minting = config.credentials().is_some();
        let policy = policy.with_delegates(routes.clone()).with_credentials(minting);
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
        let (tokens, shared, embedded) = open_tokens(&config, token_keys.clone(), &client).await?;
        let tokens = Arc::new(tokens);
        let (rooms, shared_rooms) = open_rooms(&config, embedded, &client).await?;
        let (audit, audit_publisher) = crate::audit::Audit::open(&client, &config.audit)
            .await
            .context("while opening the audit trail")?;
        rooms.audit_into(audit.clone());
        let operator = crate::operator::OperatorKeys::load(&config.callout)
            .context("while loading the operator-mode account keys")?;
        // Connections made with minted credentials are read back by their signers.
        let mint_signers: Vec<String> = operator
            .iter()
            .flat_map(|op| op.signers().map(str::to_string))
            .collect();
        // Delegates are asked on the service's own connection.
        let delegates = Arc::new(
            crate::access::Delegates::new(routes, config.access.max_in_flight, config.access.cache_entries)
                .with_client(client.clone()),
        );
        let limits = Arc::new(crate::limits::Gate::new(config.limits.clone()));
        let callout = Arc::new(
            Callout::new(
                keys,
                token_keys,
                permissions.clone(),
                tokens.revocations().clone(),
                policy,
            )
            .with_operator(operator)
            .with_rooms(rooms.index().clone())
            .with_audit(audit.clone())
            .with_delegates(delegates)
            .with_limits(limits.clone()),
        );
        let enforcement =
            build_enforcement(&config, &health, &permissions, &tokens, rooms.index(), limits).await?;
        if let Some(e) = &enforcement {
            e.audit_into(audit.clone());
            e.read_mints_of(mint_signers);
            if !callout.delegates().is_empty() {
                e.delegate_to(callout.delegates().clone(), &config.callout.account);
            }
        }
        let reloader = build_reloader(&config, &client, &permissions, enforcement.clone());
        let ops = Arc::new(
            Ops::new(
                Instance::new(&config.callout.queue_group),
                reloader,
                tokens.clone(),
            )
            .with_health(health.clone())
            .with_callout(callout.clone())
            .with_enforcement(enforcement)
            .with_providers(providers)
            .with_audit(audit),
        );
        not_ready_until_subscribed(&ops, shared.is_some(), shared_rooms.is_some());
        let requests = connect_as(&config, "requests", Some((&health, "nats-requests"))).await?;
        Ok(App {
            client,
            requests,
            shared,
            rooms,
            shared_rooms,
            callout,
            tokens,
            permissions,
            ops,
            http,
            admin,
            audit: audit_publisher,
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

    /// Rooms as data.
    pub fn rooms(&self) -> Arc<RoomService> {
        self.rooms.clone()
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
        Arc::new(
            HttpState::new(
                self.tokens.clone(),
                self.permissions.clone(),
                self.config.http.clone(),
                self.ops.clone(),
            )
            .with_guest_refresh(self.config.tokens.guest_refresh)
            .with_rooms(self.rooms.clone())
            .with_protocol((&self.config.callout).into())
            .with_credentials(Some(self.minter())),
        )
    }

    /// What mints NATS credentials (it answers `operator-mode-only` in config mode).
    fn minter(&self) -> crate::callout::credentials::Minter {
        crate::callout::credentials::Minter {
            callout: self.callout.clone(),
            ttl: self.config.credentials(),
        }
    }

    /// Serve until `shutdown` resolves, then finish the requests in flight and drain.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let state = self.http_state();
        let minter = self.minter();
        let App {
            client,
            requests,
            shared,
            rooms,
            shared_rooms,
            callout,
            tokens,
            permissions,
            ops,
            http,
            admin,
            audit,
            config,
        } = self;
        let mut tasks = Tasks::new();
        if let Some(publisher) = audit {
            tasks.spawn(publisher.run(stop.clone()));
        }
        // Every live revocation is in force before the first authorization is answered.
        let revocations_loaded = spawn_revocation_feed(&mut tasks, shared, &tokens, &ops, &stop);
        let rooms_loaded = spawn_rooms_feed(&mut tasks, shared_rooms, &rooms, &ops, &stop);
        let serving = Serving {
            requests,
            service: client.clone(),
            callout,
            queue: config.callout.queue_group.clone(),
            max_in_flight: config.callout.max_in_flight,
        };
        tasks.spawn(serving.run([revocations_loaded, rooms_loaded], ops.clone(), stop.clone()));
        let endpoints = crate::endpoints::Endpoints {
            client: client.clone(),
            tokens: tokens.clone(),
            permissions,
            rooms: rooms.clone(),
            ops: ops.clone(),
            credentials: minter,
        };
        let s = stop.clone();
        tasks.spawn(async move { Ok(endpoints.serve(s).await?) });
        spawn_reloader(&mut tasks, &ops, config.enforcement.watch, &stop);
        spawn_enforcement(&mut tasks, &ops, &client, &stop);
        spawn_listeners(&mut tasks, [(http, false), (admin, true)], &state, &stop);
        spawn_key_refreshes(&mut tasks, &ops, &stop);
        tasks.spawn(sweep_rooms(rooms, config.tokens.janitor_interval, stop.clone()));
        tasks.spawn(crate::tokens::janitor::run(
            tokens,
            config.tokens.janitor_interval,
            config.tokens.janitor_batch,
            stop.clone(),
        ));
        tokio::select! {
            _ = shutdown => {}
            Some(done) = tasks.join_next() => warn!(result = ?done.map(|r| r.map_err(|e| e.to_string())), "a task ended early"),
        }
        stop_and_drain(tasks, stop, client).await
    }
}

/// The issuer (and xkey) the callout answers with, and the previous ones during a rotation.
fn load_callout_keys(config: &Config) -> anyhow::Result<CalloutKeys> {
    let c = &config.callout;
    CalloutKeys::load(&c.issuer_seed_file, c.xkey_seed_file.as_deref())
        .and_then(|k| {
            k.with_previous(
                c.previous_issuer_seed_file.as_deref(),
                c.previous_xkey_seed_file.as_deref(),
            )
        })
        .context("while loading the callout keys")
}

/// Identity providers: their keys are fetched now (bounded) and kept fresh in `run`.
async fn load_providers(config: &Config) -> Arc<Providers> {
    let providers = Arc::new(Providers::new(&config.identity, config.tokens.max_token_ttl));
    oidc::fetch::refresh_all(&oidc::fetch::client(), &providers, PROVIDER_START_LIMIT).await;
    providers
}

/// Our token keys, trusting the providers' tokens beside ours.
fn load_token_keys(config: &Config, providers: &Arc<Providers>) -> anyhow::Result<Arc<TokenKeys>> {
    let mut keys = TokenKeys::from_settings(&config.tokens).context("while loading the token keys")?;
    if !providers.is_empty() {
        keys = keys.with_trusted(providers.clone());
    }
    Ok(Arc::new(keys))
}

/// From files: loaded now, and a bad set stops the start. From KV: the first published set
/// arrives with the watch (no authorization is answered before).
fn load_permissions(config: &Config) -> anyhow::Result<Snapshot> {
    match config.permissions.source {
        PermissionSource::Files => Snapshot::load_dir(&config.permissions.dir).map_err(|e| {
            anyhow::anyhow!(
                "while loading permissions from {}:\n{e}",
                config.permissions.dir.display()
            )
        }),
        PermissionSource::Kv => Snapshot::from_sources(&[]).map_err(anyhow::Error::msg),
    }
}

/// The token store the configuration names with its revocation index; for JetStream also
/// the store whose revocations bucket the instance follows (the index starts empty then).
async fn open_tokens(
    config: &Config,
    keys: Arc<TokenKeys>,
    client: &async_nats::Client,
) -> anyhow::Result<(TokenService, Option<Arc<KvStore>>, Option<Arc<redb::Database>>)> {
    let t = &config.tokens;
    let secret = read_secret_key(&t.refresh_secret_file).context("while loading the refresh-token secret")?;
    let settings = RefreshSettings {
        idle: t.refresh_idle,
        absolute: t.refresh_absolute,
        grace: t.refresh_grace,
        tombstone: t.refresh_idle,
    };
    let (store, shared, embedded): (Arc<dyn TokenStore>, _, _) = match config.store.backend {
        StoreBackend::Redb => {
            if let Some(dir) = t.store_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("while creating {}", dir.display()))?;
            }
            let store = RedbStore::open(&t.store_path)
                .with_context(|| format!("while opening the token store {}", t.store_path.display()))?;
            let db = store.database();
            (Arc::new(store), None, Some(db))
        }
        StoreBackend::Jetstream => {
            let kv = Arc::new(KvStore::new(client.clone(), kv_settings(config, &settings)));
            (kv.clone() as Arc<dyn TokenStore>, Some(kv), None)
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
        embedded,
    ))
}

/// Rooms as data, in the token store's redb file (loaded now) or in their JetStream
/// bucket (followed in `run`; nothing is decided before it is loaded).
async fn open_rooms(
    config: &Config,
    embedded: Option<Arc<redb::Database>>,
    client: &async_nats::Client,
) -> anyhow::Result<(Arc<RoomService>, Option<Arc<KvRooms>>)> {
    let index = Arc::new(RoomIndex::default());
    let reserved = config.callout.auth_users.clone();
    let settings = config.rooms.clone();
    let (store, shared): (Arc<dyn RoomStore>, _) = match embedded {
        Some(db) => (
            Arc::new(RedbRooms::open(db).context("while opening the rooms' tables")?),
            None,
        ),
        None => {
            let kv = Arc::new(KvRooms::new(
                client.clone(),
                &config.store.bucket_prefix,
                config.store.replicas,
            ));
            (kv.clone() as Arc<dyn RoomStore>, Some(kv))
        }
    };
    let service = Arc::new(RoomService::new(
        store,
        index,
        settings,
        reserved,
        shared.is_some(),
    ));
    service.load().await.context("while loading the rooms")?;
    Ok((service, shared))
}

/// The JetStream buckets' settings: records outlive every session they may describe,
/// revocation entries every token they may cover.
pub fn kv_settings(config: &Config, refresh: &RefreshSettings) -> KvSettings {
    let t = &config.tokens;
    KvSettings {
        prefix: config.store.bucket_prefix.clone(),
        replicas: config.store.replicas,
        records_max_age: refresh.absolute + refresh.tombstone,
        revocations_max_age: t.access_ttl.max(t.max_token_ttl) + Duration::from_secs(2),
    }
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

/// Live enforcement over the system account's connection; none without one.
async fn build_enforcement(
    config: &Config,
    health: &Arc<Health>,
    permissions: &Permissions,
    tokens: &TokenService,
    rooms: &Arc<RoomIndex>,
    limits: Arc<crate::limits::Gate>,
) -> anyhow::Result<Option<Arc<Enforcement>>> {
    let Some(sys) = system_connection(config, health).await? else {
        warn!("no nats.system_user or nats.system_credentials_file: live enforcement (LDM/KICK) is off");
        if config.callout.mode == crate::config::CalloutMode::Operator
            && config.tokens.credentials().is_some()
        {
            warn!("NATS credentials need live enforcement to close their connections: none are minted");
        }
        if config.limits.connect_rate.is_some() {
            warn!("limits.connect_rate is set but needs live enforcement: it is off");
        }
        return Ok(None);
    };
    let enforcement = Enforcement::new(
        sys,
        permissions.clone(),
        tokens.revocations().clone(),
        rooms.clone(),
        config.enforcement.clone(),
        config.callout.enforced_accounts(),
        leadership(config),
    );
    enforcement.limit_with(limits);
    Ok(Some(enforcement))
}

/// The permission set's reloader: from the directory or the published set.
fn build_reloader(
    config: &Config,
    client: &async_nats::Client,
    permissions: &Permissions,
    enforcement: Option<Arc<Enforcement>>,
) -> Arc<Reloader> {
    let source = match config.permissions.source {
        PermissionSource::Files => Source::Dir(config.permissions.dir.clone()),
        PermissionSource::Kv => Source::Kv {
            client: client.clone(),
            bucket: published::bucket(&config.store.bucket_prefix, config.store.replicas),
        },
    };
    let placements = config.callout.placements().into_iter().collect();
    Reloader::new(source, permissions.clone(), placements, enforcement)
}

/// Not ready until their subscriptions are in place (see `health::ready_after_flush`), nor,
/// on JetStream, until the revocations and the rooms are loaded.
fn not_ready_until_subscribed(ops: &Ops, shared: bool, shared_rooms: bool) {
    for part in ["callout", "endpoints", "enforcement"] {
        if part != "enforcement" || ops.enforcement.is_some() {
            ops.health.set(part, false, "subscribing");
        }
    }
    if shared {
        ops.health.set(feed::PART, false, "loading from JetStream");
    }
    if shared_rooms {
        ops.health.set(ROOMS_PART, false, "loading from JetStream");
    }
}

/// The readiness part of the rooms' JetStream bucket.
const ROOMS_PART: &str = "rooms";

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

/// With the shared store, follow its revocations (the answer says when they are loaded);
/// with the embedded one they are loaded already.
fn spawn_revocation_feed(
    tasks: &mut Tasks,
    shared: Option<Arc<KvStore>>,
    tokens: &TokenService,
    ops: &Ops,
    stop: &CancellationToken,
) -> tokio::sync::watch::Receiver<bool> {
    let (loaded_tx, loaded) = tokio::sync::watch::channel(shared.is_none());
    if let Some(store) = shared {
        let (revocations, health, stop) = (tokens.revocations().clone(), ops.health.clone(), stop.clone());
        tasks.spawn(async move {
            feed::follow(store, revocations, health, loaded_tx, stop).await;
            Ok(())
        });
    }
    loaded
}

/// With the shared store, follow the rooms' bucket (the answer says when it is loaded);
/// with the embedded one they are loaded already.
fn spawn_rooms_feed(
    tasks: &mut Tasks,
    shared: Option<Arc<KvRooms>>,
    rooms: &Arc<RoomService>,
    ops: &Ops,
    stop: &CancellationToken,
) -> tokio::sync::watch::Receiver<bool> {
    let (loaded_tx, loaded) = tokio::sync::watch::channel(shared.is_none());
    if let Some(store) = shared {
        let (rooms, health, stop) = (rooms.clone(), ops.health.clone(), stop.clone());
        let mut ready = loaded_tx.subscribe();
        tasks.spawn(async move {
            let follow = store.follow(rooms.index(), loaded_tx, stop);
            let report = async {
                feed::until_loaded(&mut ready).await;
                health.set(ROOMS_PART, true, "watching");
            };
            tokio::join!(follow, report);
            Ok(())
        });
    }
    loaded
}

/// Sweep memberships that grant nothing (left by a crash, or written for a room deleted
/// meanwhile), every `every`.
async fn sweep_rooms(
    rooms: Arc<RoomService>,
    every: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if let Err(e) = rooms.sweep(now_secs(), Duration::from_secs(60)).await {
            warn!(error = %e, "rooms sweep failed");
        }
    }
}

/// The callout's side of a running service: what it serves with.
struct Serving {
    requests: async_nats::Client,
    service: async_nats::Client,
    callout: Arc<Callout>,
    queue: String,
    max_in_flight: usize,
}

impl Serving {
    /// Once the revocations and the permission set are loaded, answer authorization
    /// requests until `stop`; then drain the requests connection.
    async fn run(
        self,
        loaded: [tokio::sync::watch::Receiver<bool>; 2],
        ops: Arc<Ops>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut permissions_loaded = ops.reloader.loaded();
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = async {
                for mut l in loaded {
                    feed::until_loaded(&mut l).await;
                }
                feed::until_loaded(&mut permissions_loaded).await;
            } => {}
        }
        let sub = callout::subscribe(&self.requests, &self.queue).await?;
        let ready = crate::health::ready_after_flush(self.requests.clone(), ops.health.clone(), "callout");
        let conns = callout::Connections {
            requests: self.requests.clone(),
            service: self.service,
        };
        let serve = callout::serve(
            conns,
            sub,
            self.callout,
            self.max_in_flight,
            stop.cancelled_owned(),
        );
        tokio::join!(ready, serve);
        let drained = tokio::time::timeout(Duration::from_secs(5), self.requests.drain()).await;
        if !matches!(drained, Ok(Ok(()))) {
            warn!("the requests connection did not drain within 5 s");
        }
        Ok(())
    }
}

/// Watch the permission set and reload it.
fn spawn_reloader(tasks: &mut Tasks, ops: &Ops, watch: bool, stop: &CancellationToken) {
    let (reloader, stop) = (ops.reloader.clone(), stop.clone());
    tasks.spawn(async move {
        if let Err(e) = reloader.run(watch, stop).await {
            warn!(error = %e, "permission watcher stopped");
        }
        Ok(())
    });
}

/// Live enforcement, when configured.
fn spawn_enforcement(tasks: &mut Tasks, ops: &Ops, client: &async_nats::Client, stop: &CancellationToken) {
    let Some(enforcement) = ops.enforcement.clone() else {
        return;
    };
    let (client, stop, health) = (client.clone(), stop.clone(), ops.health.clone());
    tasks.spawn(async move {
        if let Err(e) = enforcement.run(client, health, stop).await {
            warn!(error = %e, "live enforcement stopped");
        }
        Ok(())
    });
}

/// The public listener and the operations listener (`true`), each where it is bound.
fn spawn_listeners(
    tasks: &mut Tasks,
    listeners: [(Option<tokio::net::TcpListener>, bool); 2],
    state: &Arc<HttpState>,
    stop: &CancellationToken,
) {
    for (listener, operations) in listeners {
        let Some(listener) = listener else { continue };
        let (router, what) = if operations {
            (http::admin_router(state.clone()), "operations listener")
        } else {
            (http::router(state.clone()), "HTTP API")
        };
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
}

/// Keep every identity provider's keys fresh.
fn spawn_key_refreshes(tasks: &mut Tasks, ops: &Ops, stop: &CancellationToken) {
    for provider in ops.providers.iter() {
        let fresh = oidc::fetch::keep_fresh(oidc::fetch::client(), provider.clone(), stop.clone());
        tasks.spawn(async move {
            fresh.await;
            Ok(())
        });
    }
}

/// Stop every task (waiting up to 10 s), then drain the service connection.
async fn stop_and_drain(
    mut tasks: Tasks,
    stop: CancellationToken,
    client: async_nats::Client,
) -> anyhow::Result<()> {
    stop.cancel();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        warn!("tasks did not stop within 10 s");
    }
    // A connection that never came up has nothing to drain: do not wait for it.
    match tokio::time::timeout(Duration::from_secs(5), client.drain()).await {
        Ok(r) => r.context("while draining the NATS connection")?,
        Err(_) => warn!("NATS did not drain within 5 s"),
    }
    info!("stopped");
    Ok(())
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
