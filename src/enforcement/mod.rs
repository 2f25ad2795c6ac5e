//! Live connections and live enforcement: the [`registry`] (decision records joined with
//! connect/disconnect events, the `feeds`, and CONNZ, `connz`; connections made with
//! minted credentials carry their decision in their JWT, `minted`) and the `enforcer` (LDM,
//! then KICK after a grace; revocations kick at once), throttled, with exactly one enforcer
//! among the instances (a [`lease::Lease`] in JetStream KV). Every task it starts is owned
//! by one [`JoinSet`] under the service's cancellation token and awaited when it stops.

pub mod assess;
mod connz;
mod delegated;
mod enforcer;
mod feeds;
pub mod lease;
mod limiter;
mod minted;
pub mod notices;
pub mod registry;
pub mod throttle;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::EnforcementSettings;
use crate::permissions::Permissions;
use crate::tokens::revocation::Revocations;
use enforcer::Job;
use registry::{ConnKey, Registry};

/// A live connection as the admin console shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveConnection {
    pub user: String,
    pub server: String,
    pub cid: u64,
    /// Rooms granted (unknown for a connection decided before this instance started).
    pub rooms: Vec<String>,
    pub device: Option<String>,
    pub session: Option<String>,
    /// When it was allowed (unix seconds), when known.
    pub since: Option<i64>,
}

/// Counters of what the enforcer did.
#[derive(Debug, Default)]
pub struct EnforcementStats {
    pub ldm_sent: AtomicU64,
    pub kicks_sent: AtomicU64,
    pub throttled: AtomicU64,
    /// Milliseconds from the last change to its last affected connection closed.
    pub last_lag_ms: AtomicU64,
    /// CONNZ reconciles completed (every list asked for was answered or timed out).
    pub reconciles: AtomicU64,
}

/// What the workers take from: changes, revocations (first) and notices.
struct Queues {
    changes: mpsc::UnboundedReceiver<Job>,
    revokes: mpsc::UnboundedReceiver<Job>,
    notices: mpsc::UnboundedReceiver<notices::Notice>,
    /// What the limiter publishes.
    limits: mpsc::UnboundedReceiver<limiter::Outgoing>,
}

/// The registry plus the enforcer. One per instance.
pub struct Enforcement {
    leadership: lease::Leadership,
    registry: Mutex<Registry>,
    permissions: Permissions,
    revocations: Revocations,
    settings: EnforcementSettings,
    /// Rooms as data: their changes are judged like permission edits.
    rooms: Arc<crate::rooms::RoomIndex>,
    accounts: Vec<String>,
    sys: async_nats::Client,
    changes: mpsc::UnboundedSender<Job>,
    revokes: mpsc::UnboundedSender<Job>,
    /// Notices to users, sent by one task in order.
    notices: mpsc::UnboundedSender<notices::Notice>,
    /// Notices made while another instance enforces, in case this one takes over.
    held: notices::Held,
    queues: Mutex<Option<Queues>>,
    pub stats: EnforcementStats,
    /// Kicks go into the audit trail (set once, after the trail is open).
    audit: std::sync::OnceLock<crate::audit::Audit>,
    /// The app services deciding delegated rooms (set once, when there are any).
    delegated: std::sync::OnceLock<delegated::Delegated>,
    /// Per-user limits: the connect rate, connection and subscription caps.
    limiter: limiter::Limiter,
    /// Operator mode: the keys minted credentials are signed with (set once).
    mints: std::sync::OnceLock<minted::Mints>,
}

impl Enforcement {
    pub fn new(
        sys: async_nats::Client,
        permissions: Permissions,
        revocations: Revocations,
        rooms: Arc<crate::rooms::RoomIndex>,
        settings: EnforcementSettings,
        accounts: Vec<String>,
        leadership: lease::Leadership,
    ) -> Arc<Self> {
        let (limiter, lrx) = limiter::Limiter::new();
        let (changes, crx) = mpsc::unbounded_channel();
        let (revokes, rrx) = mpsc::unbounded_channel();
        let (notices, nrx) = mpsc::unbounded_channel();
        Arc::new(Enforcement {
            leadership,
            registry: Mutex::default(),
            permissions,
            revocations,
            settings,
            rooms,
            accounts,
            sys,
            changes,
            revokes,
            notices,
            held: notices::Held::default(),
            queues: Mutex::new(Some(Queues {
                changes: crx,
                revokes: rrx,
                notices: nrx,
                limits: lrx,
            })),
            stats: EnforcementStats::default(),
            audit: std::sync::OnceLock::new(),
            delegated: std::sync::OnceLock::new(),
            limiter,
            mints: std::sync::OnceLock::new(),
        })
    }

    /// Enforce the per-user limits of `gate`'s settings, and refuse there what this
    /// instance's enforcer applied (the first call wins; without one, only the permission
    /// files' caps with default settings).
    pub fn limit_with(self: &Arc<Self>, gate: Arc<crate::limits::Gate>) {
        let live: std::sync::Weak<dyn crate::limits::LiveConnections> = Arc::downgrade(self) as _;
        gate.count_with(live);
        self.limiter.set_gate(gate);
    }

    /// The roles that give `auth.v1.tokenReset` (`enforcement.token_reset_roles`).
    pub fn token_reset_roles(&self) -> &[crate::permissions::Role] {
        &self.settings.token_reset_roles
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record kicks in `audit` (the first call wins).
    pub fn audit_into(&self, audit: crate::audit::Audit) {
        let _ = self.audit.set(audit);
    }

    /// Live connections known.
    pub fn len(&self) -> usize {
        self.registry().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live connection known, for the admin console: newest first.
    pub fn connections(&self) -> Vec<LiveConnection> {
        let r = self.registry();
        let mut out: Vec<LiveConnection> = r
            .all()
            .map(|(k, e)| LiveConnection {
                user: e.user.clone(),
                server: k.server.clone(),
                cid: k.cid,
                rooms: e
                    .decision
                    .as_ref()
                    .map(|d| d.rooms.iter().map(|(r, _)| r.clone()).collect())
                    .unwrap_or_default(),
                device: e.decision.as_ref().and_then(|d| d.device.clone()),
                session: e.decision.as_ref().map(|d| d.session.clone()),
                since: e.decision.as_ref().map(|d| d.at).filter(|t| *t > 0),
            })
            .collect();
        out.sort_by(|a, b| b.since.cmp(&a.since).then_with(|| a.user.cmp(&b.user)));
        out
    }

    /// Connections of a user (for tests and status).
    pub fn connections_of(&self, user: &str) -> Vec<ConnKey> {
        self.registry().by_user(user)
    }

    /// Whether this instance is the enforcer now (the only instance, or the lease holder).
    pub fn is_leader(&self) -> bool {
        self.leadership.held()
    }

    /// How this instance knows it enforces.
    pub fn leadership(&self) -> &lease::Leadership {
        &self.leadership
    }

    /// Live connections known and whether this instance enforces, as gauges.
    fn publish_gauges(&self) {
        metrics::gauge!("nats_callout_live_connections").set(self.len() as f64);
        metrics::gauge!("nats_callout_enforcer").set(if self.is_leader() { 1.0 } else { 0.0 });
    }

    /// Run the registry feeds, the lease (when shared), the CONNZ reconciles, the two
    /// enforcement workers and the notices until `stop`; each is a task of one set, awaited before this
    /// returns.
    pub async fn run(
        self: Arc<Self>,
        service: async_nats::Client,
        health: Arc<crate::health::Health>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let Queues {
            changes,
            revokes,
            notices,
            limits,
        } = self
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| anyhow::anyhow!("enforcement already running"))?;
        let feeds = feeds::Feeds::subscribe(&self, &service).await?;
        // The gauges exist from the start (before readiness), not from the first beat.
        self.publish_gauges();
        let mut tasks = JoinSet::new();
        let (sys, svc) = (self.sys.clone(), service.clone());
        tasks.spawn(async move {
            let _ = sys.flush().await;
            crate::health::ready_after_flush(svc, health, "enforcement").await;
        });
        let s = &self.settings;
        tasks.spawn(enforcer::work(
            self.clone(),
            changes,
            s.rate_per_second,
            s.burst,
            stop.clone(),
        ));
        let revocation_burst = s.burst.max(100);
        tasks.spawn(enforcer::work(
            self.clone(),
            revokes,
            s.revocation_rate_per_second,
            revocation_burst,
            stop.clone(),
        ));
        if let lease::Leadership::Lease(l) = &self.leadership {
            let me = Arc::downgrade(&self);
            let acquired = move || {
                if let Some(me) = me.upgrade() {
                    me.on_acquire();
                }
            };
            tasks.spawn(
                l.clone()
                    .run(crate::kv::context(service.clone()), acquired, stop.clone()),
            );
        }
        tasks.spawn(notices::send(service.clone(), notices, stop.clone()));
        tasks.spawn(limiter::send(service.clone(), limits, stop.clone()));
        tasks.spawn(limiter::subscriptions_every(
            self.clone(),
            self.limiter.gate().settings().subscriptions_interval,
            stop.clone(),
        ));
        tasks.spawn(connz::reconcile_every(
            self.clone(),
            s.reconcile_interval,
            stop.clone(),
        ));
        tasks.spawn(feeds.run(self.clone(), stop.clone()));
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                warn!(error = %e, "an enforcement task failed");
            }
        }
        Ok(())
    }
}
