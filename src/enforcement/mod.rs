//! Live connections and live enforcement: the registry (decision records joined with
//! connect/disconnect events and CONNZ) and the enforcer (LDM, then KICK after a grace;
//! revocations kick at once), throttled, with exactly one enforcer among the instances
//! (a [`lease::Lease`] in JetStream KV).

pub mod assess;
pub mod lease;
pub mod registry;
pub mod throttle;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::EnforcementSettings;
use crate::permissions::{Permissions, Snapshot};
use crate::tokens::revocation::{Revocation, RevocationIndex, Revocations};
use crate::wire::{DECISION_SUBJECT, TokenResetRequest, account_event, server_request};
use assess::{Action, Current, assess};
use registry::{ConnKey, DecisionRecord, Registry};
use throttle::TokenBucket;

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

/// What a CONNZ round found: every connection named, with its user, and the servers whose
/// lists are complete, with their connections.
type ConnzLists = (Vec<(ConnKey, String)>, HashMap<String, HashSet<u64>>);

/// What the servers listed for one account: connections per server, each with its user,
/// and the servers whose every page arrived.
#[derive(Default)]
struct AccountConnz {
    seen: HashMap<String, HashSet<u64>>,
    users: Vec<(ConnKey, String)>,
    complete: HashSet<String>,
}

struct Job {
    conn: ConnKey,
    action: Action,
    /// When the change that caused it happened (for the lag metric).
    since: Instant,
}

/// The registry plus the enforcer. One per instance.
pub struct Enforcement {
    leadership: lease::Leadership,
    registry: Mutex<Registry>,
    permissions: Permissions,
    revocations: Revocations,
    settings: EnforcementSettings,
    accounts: Vec<String>,
    sys: async_nats::Client,
    changes: mpsc::UnboundedSender<Job>,
    revokes: mpsc::UnboundedSender<Job>,
    queues: Mutex<Option<(mpsc::UnboundedReceiver<Job>, mpsc::UnboundedReceiver<Job>)>>,
    pub stats: EnforcementStats,
}

#[derive(Deserialize)]
struct EventServer {
    id: String,
}
#[derive(Deserialize)]
struct EventClient {
    id: u64,
    #[serde(default)]
    user: String,
    #[serde(default)]
    acc: String,
}
#[derive(Deserialize)]
struct ConnectEvent {
    server: EventServer,
    client: EventClient,
}

impl Enforcement {
    pub fn new(
        sys: async_nats::Client,
        permissions: Permissions,
        revocations: Revocations,
        settings: EnforcementSettings,
        accounts: Vec<String>,
        leadership: lease::Leadership,
    ) -> Arc<Self> {
        let (changes, crx) = mpsc::unbounded_channel();
        let (revokes, rrx) = mpsc::unbounded_channel();
        Arc::new(Enforcement {
            leadership,
            registry: Mutex::default(),
            permissions,
            revocations,
            settings,
            accounts,
            sys,
            changes,
            revokes,
            queues: Mutex::new(Some((crx, rrx))),
            stats: EnforcementStats::default(),
        })
    }

    /// The roles that give `auth.v1.tokenReset` (`enforcement.token_reset_roles`).
    pub fn token_reset_roles(&self) -> &[crate::permissions::Role] {
        &self.settings.token_reset_roles
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
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

    /// What connections are judged against now.
    fn current<'a>(
        &'a self,
        snapshot: &'a Snapshot,
        old: Option<&'a Snapshot>,
        revoked: &'a RevocationIndex,
    ) -> Current<'a> {
        Current {
            snapshot,
            old,
            revoked,
            token_reset_roles: &self.settings.token_reset_roles,
        }
    }

    fn enqueue(&self, conn: ConnKey, action: Action, since: Instant) {
        let job = Job { conn, action, since };
        let q = if matches!(action, Action::Kick(_)) {
            &self.revokes
        } else {
            &self.changes
        };
        let _ = q.send(job);
    }

    /// A new decision arrived: record it; if it was made on an older snapshot or
    /// revocation epoch, judge it again now.
    /// Live connections known and whether this instance enforces, as gauges.
    fn publish_gauges(&self) {
        metrics::gauge!("nats_callout_live_connections").set(self.len() as f64);
        metrics::gauge!("nats_callout_enforcer").set(if self.is_leader() { 1.0 } else { 0.0 });
    }

    pub fn on_decision(&self, d: DecisionRecord) {
        let stale =
            d.snapshot_epoch < self.permissions.epoch() || d.revocation_epoch < self.revocations.epoch();
        let conn = d.conn.clone();
        let entry = {
            let mut r = self.registry();
            r.add_decision(d);
            r.get(&conn).cloned()
        };
        if stale
            && self.is_leader()
            && let Some(e) = entry
        {
            let (snapshot, revoked) = (self.permissions.load(), self.revocations.load());
            let action = assess(&e, &self.current(&snapshot, None, &revoked));
            if action != Action::Keep {
                info!(server = %conn.server, cid = conn.cid, ?action, "stale decision re-evaluated");
                self.enqueue(conn, action, Instant::now());
            }
        }
    }

    /// The permission snapshot changed from `old` to the current one.
    pub fn on_snapshot_change(&self, old: &Snapshot) {
        self.judge_all(Some(old), "permission change");
    }

    /// This instance just became the enforcer: judge every connection against the
    /// permissions and revocations now (changes may have come while nobody enforced).
    pub fn on_acquire(&self) {
        self.judge_all(None, "enforcer takeover");
    }

    fn judge_all(&self, old: Option<&Snapshot>, why: &'static str) {
        if !self.is_leader() {
            return;
        }
        let since = Instant::now();
        let new = self.permissions.load();
        let revoked = self.revocations.load();
        let current = self.current(&new, old, &revoked);
        let affected: Vec<(ConnKey, Action)> = {
            let r = self.registry();
            r.all()
                .map(|(k, e)| (k.clone(), assess(e, &current)))
                .filter(|(_, a)| *a != Action::Keep)
                .collect()
        };
        info!(connections = affected.len(), "{why}: connections to re-authorize");
        for (conn, action) in affected {
            self.enqueue(conn, action, since);
        }
    }

    /// Revocations were applied: kick the matching connections at once.
    pub fn on_revocations(&self, revs: &[Revocation]) {
        if !self.is_leader() {
            return;
        }
        let since = Instant::now();
        let idx = self.revocations.load();
        let snapshot = self.permissions.load();
        let current = self.current(&snapshot, None, &idx);
        // Connections whose decision is unknown cannot be matched by session or device:
        // those a revocation may cover decide again (a revoked token is then refused).
        let (kick, recheck): (HashSet<ConnKey>, HashSet<ConnKey>) = {
            let r = self.registry();
            let (mut kick, mut recheck) = (HashSet::new(), HashSet::new());
            for rev in revs {
                for k in r.covered_by(rev) {
                    let Some(e) = r.get(&k) else { continue };
                    if matches!(assess(e, &current), Action::Kick(_)) {
                        kick.insert(k);
                    } else if e.decision.is_none() {
                        recheck.insert(k);
                    }
                }
            }
            (kick, recheck)
        };
        for conn in recheck.into_iter().filter(|c| !kick.contains(c)) {
            self.enqueue(conn, Action::Reauthorize("revoked-unknown-decision"), since);
        }
        for conn in kick {
            self.enqueue(conn, Action::Kick("revoked"), since);
        }
    }

    /// Token reset: the connections holding these token ids, of these users or in these
    /// login sessions decide again (LDM, then KICK after the grace). Returns how many.
    pub fn token_reset(&self, req: &TokenResetRequest) -> usize {
        let since = Instant::now();
        let conns: HashSet<ConnKey> = {
            let r = self.registry();
            let by_tid = req.tids.iter().flat_map(|t| r.by_tid(t));
            let by_user = req.users.iter().flat_map(|u| r.by_user(u));
            let by_session = req.sessions.iter().flat_map(|s| r.by_session(s));
            by_tid.chain(by_user).chain(by_session).collect()
        };
        info!(
            tids = req.tids.len(),
            users = req.users.len(),
            sessions = req.sessions.len(),
            connections = conns.len(),
            reason = %req.reason,
            "token reset"
        );
        let n = conns.len();
        for c in conns {
            self.enqueue(c, Action::Reauthorize("token-reset"), since);
        }
        n
    }

    async fn sys_request(&self, server: &str, verb: &str, cid: u64) -> Result<Value, String> {
        let subject = server_request(Some(server), verb);
        let req = self
            .sys
            .request(subject, json!({ "cid": cid }).to_string().into());
        match tokio::time::timeout(Duration::from_secs(3), req).await {
            Ok(Ok(m)) => serde_json::from_slice(&m.payload).map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    async fn kick(&self, job: &Job, reason: &str) {
        let leafnode = self.is_leafnode(&job.conn);
        match self.sys_request(&job.conn.server, "KICK", job.conn.cid).await {
            Ok(v) if v.get("error").is_none() => {
                self.stats.kicks_sent.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("nats_callout_kicks_total", "reason" => reason.to_string()).increment(1);
                info!(server = %job.conn.server, cid = job.conn.cid, reason, leafnode, "kicked");
            }
            Ok(v) => {
                debug!(server = %job.conn.server, cid = job.conn.cid, reply = %v, "kick: connection already gone")
            }
            Err(e) => warn!(server = %job.conn.server, cid = job.conn.cid, error = %e, "kick failed"),
        }
        self.registry().remove(&job.conn);
        self.record_lag(job.since);
    }

    fn record_lag(&self, since: Instant) {
        let lag = since.elapsed();
        self.stats
            .last_lag_ms
            .store(lag.as_millis() as u64, Ordering::Relaxed);
        metrics::histogram!("nats_callout_enforcement_lag_seconds").record(lag.as_secs_f64());
    }

    fn is_leafnode(&self, conn: &ConnKey) -> bool {
        self.registry()
            .get(conn)
            .and_then(|e| e.decision.as_ref())
            .is_some_and(|d| d.leafnode)
    }

    async fn execute(self: &Arc<Self>, job: Job) {
        match job.action {
            Action::Keep => {}
            Action::Kick(reason) => self.kick(&job, reason).await,
            Action::Reauthorize(reason) => {
                if self.is_leafnode(&job.conn) {
                    return self.kick(&job, reason).await;
                }
                match self.sys_request(&job.conn.server, "LDM", job.conn.cid).await {
                    Ok(v) if v.get("error").is_none() => {
                        self.stats.ldm_sent.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("nats_callout_ldm_total", "reason" => reason).increment(1);
                        info!(server = %job.conn.server, cid = job.conn.cid, reason, "lame-duck notice sent");
                        let me = self.clone();
                        let grace = self.settings.grace;
                        tokio::spawn(async move {
                            tokio::time::sleep(grace).await;
                            let still_there = me.registry().get(&job.conn).is_some();
                            if still_there {
                                me.enqueue(job.conn, Action::Kick(reason), job.since);
                            } else {
                                me.record_lag(job.since);
                            }
                        });
                    }
                    Ok(v) => {
                        let unknown = v.to_string().contains("no such client");
                        if unknown {
                            self.registry().remove(&job.conn);
                        } else {
                            // Old clients refuse the notice: kick at once.
                            self.kick(&job, reason).await;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "lame-duck notice failed; kicking");
                        self.kick(&job, reason).await;
                    }
                }
            }
        }
    }

    /// Run the registry feeds, the lease (when shared) and the two enforcement workers until `stop`.
    pub async fn run(
        self: Arc<Self>,
        service: async_nats::Client,
        health: Arc<crate::health::Health>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let (changes, revokes) = self
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| anyhow::anyhow!("enforcement already running"))?;
        let mut decisions = service.subscribe(DECISION_SUBJECT).await?;
        // The accounts users are placed in (one in config mode; every allowed account in
        // operator mode).
        let accounts = &self.accounts;
        let (mut connects, mut disconnects) = (Vec::new(), Vec::new());
        for acc in accounts {
            connects.push(self.sys.subscribe(account_event(acc, "CONNECT")).await?);
            disconnects.push(self.sys.subscribe(account_event(acc, "DISCONNECT")).await?);
        }
        let mut connects = futures::stream::select_all(connects);
        let mut disconnects = futures::stream::select_all(disconnects);
        // The gauges exist from the start (before readiness), not from the first beat.
        self.publish_gauges();
        let (sys, svc) = (self.sys.clone(), service.clone());
        tokio::spawn(async move {
            let _ = sys.flush().await;
            crate::health::ready_after_flush(svc, health, "enforcement").await;
        });
        let mut revocations = self.revocations.subscribe();

        let worker = |mut rx: mpsc::UnboundedReceiver<Job>, rate: f64, burst: u32| {
            let me = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut bucket = TokenBucket::new(rate, burst);
                loop {
                    let job = tokio::select! {
                        _ = stop.cancelled() => return,
                        j = rx.recv() => match j { Some(j) => j, None => return },
                    };
                    if bucket.take().await {
                        me.stats.throttled.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("nats_callout_enforcement_throttled_total").increment(1);
                    }
                    me.execute(job).await;
                }
            })
        };
        let s = &self.settings;
        let w1 = worker(changes, s.rate_per_second, s.burst);
        let w2 = worker(revokes, s.revocation_rate_per_second, s.burst.max(100));

        if let lease::Leadership::Lease(l) = &self.leadership {
            let (l, me, stop) = (l.clone(), Arc::downgrade(&self), stop.clone());
            let js = crate::kv::context(service.clone());
            tokio::spawn(l.run(
                js,
                move || {
                    if let Some(me) = me.upgrade() {
                        me.on_acquire();
                    }
                },
                stop,
            ));
        }
        // CONNZ reconciles run beside the feeds, never in their way: a reconcile waits for
        // answers (half a second per account at least), and events queued behind it would
        // delay kicks.
        let reconciler = {
            let (me, stop) = (self.clone(), stop.clone());
            let every = self.settings.reconcile_interval.max(Duration::from_secs(1));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => me.reconcile().await,
                    }
                }
            })
        };
        let mut beat = tokio::time::interval(Duration::from_millis(1000));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = beat.tick() => self.publish_gauges(),
                Some(m) = decisions.next() => match serde_json::from_slice::<DecisionRecord>(&m.payload) {
                    Ok(d) => self.on_decision(d),
                    Err(e) => warn!(error = %e, "ignored a malformed decision record"),
                },
                Some(m) = connects.next() => {
                    if let Ok(ev) = serde_json::from_slice::<ConnectEvent>(&m.payload) && accounts.contains(&ev.client.acc) {
                        self.registry().add_seen(ConnKey { server: ev.server.id, cid: ev.client.id }, &ev.client.user);
                    }
                }
                Some(m) = disconnects.next() => {
                    if let Ok(ev) = serde_json::from_slice::<ConnectEvent>(&m.payload) {
                        self.registry().remove(&ConnKey { server: ev.server.id, cid: ev.client.id });
                    }
                }
                r = revocations.recv() => match r {
                    Ok(revs) => self.on_revocations(&revs),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => {}
                },
            }
        }
        w1.abort();
        w2.abort();
        reconciler.abort();
        Ok(())
    }

    /// Reconcile with CONNZ: what every server lists joins the registry, and a server whose
    /// every page arrived removes the connections it no longer has.
    pub async fn reconcile(&self) {
        // What the registry knew before the lists were asked: only that may be removed.
        let asked = self.registry().now();
        let asked_ok = self.ask_connz().await;
        let result = if asked_ok.is_ok() { "ok" } else { "failed" };
        let (listed, complete) = asked_ok.unwrap_or_else(|e| {
            warn!(error = %e, "CONNZ reconcile failed");
            Default::default()
        });
        {
            let mut r = self.registry();
            r.reconcile(asked, listed, &complete);
            debug!(
                connections = r.len(),
                servers = complete.len(),
                "reconciled with CONNZ"
            );
        }
        if result == "ok" {
            self.stats.reconciles.fetch_add(1, Ordering::Relaxed);
        }
        metrics::counter!("nats_callout_reconciles_total", "result" => result).increment(1);
    }

    /// CONNZ of every account from every server, one reply per server, paged 1,024
    /// connections at a time: the connections named with their users, and the servers
    /// whose every page of every account arrived with their connections.
    async fn ask_connz(&self) -> anyhow::Result<ConnzLists> {
        // Every account at once: each ask waits for its answers (half a second).
        let lists =
            futures::future::try_join_all(self.accounts.iter().map(|a| self.account_connz(a))).await?;
        let mut seen: HashMap<String, HashSet<u64>> = HashMap::new();
        let mut users: Vec<(ConnKey, String)> = Vec::new();
        let mut complete: Vec<HashSet<String>> = Vec::new();
        for list in lists {
            for (server, cids) in list.seen {
                seen.entry(server).or_default().extend(cids);
            }
            users.extend(list.users);
            complete.push(list.complete);
        }
        // Only a server complete for every account may remove connections.
        seen.retain(|server, _| complete.iter().all(|c| c.contains(server)));
        Ok((users, seen))
    }

    /// CONNZ of one account from every server, paged.
    async fn account_connz(&self, acc: &str) -> anyhow::Result<AccountConnz> {
        let mut out = AccountConnz::default();
        let mut pending: Vec<(Option<String>, u64)> = vec![(None, 0)];
        while let Some((server, offset)) = pending.pop() {
            let subject = server_request(server.as_deref(), "CONNZ");
            let inbox = self.sys.new_inbox();
            let mut replies = self.sys.subscribe(inbox.clone()).await?;
            let body = json!({"acc": acc, "auth": true, "limit": 1024, "offset": offset});
            self.sys
                .publish_with_reply(subject, inbox, body.to_string().into())
                .await?;
            let deadline = tokio::time::sleep(Duration::from_millis(500));
            tokio::pin!(deadline);
            loop {
                let m = tokio::select! { _ = &mut deadline => break, m = replies.next() => match m { Some(m) => m, None => break } };
                let Ok(v) = serde_json::from_slice::<Value>(&m.payload) else {
                    continue;
                };
                let Some(id) = v["server"]["id"].as_str() else {
                    continue;
                };
                let data = &v["data"];
                // A server with no connection left still counts: its old entries go.
                let alive = out.seen.entry(id.to_string()).or_default();
                for c in data["connections"].as_array().into_iter().flatten() {
                    let Some(cid) = c["cid"].as_u64() else { continue };
                    alive.insert(cid);
                    let user = c["authorized_user"].as_str().unwrap_or_default().to_string();
                    out.users.push((
                        ConnKey {
                            server: id.to_string(),
                            cid,
                        },
                        user,
                    ));
                }
                let (total, got) = (
                    data["total"].as_u64().unwrap_or(0),
                    data["offset"].as_u64().unwrap_or(0) + data["limit"].as_u64().unwrap_or(1024),
                );
                if total > got {
                    pending.push((Some(id.to_string()), got));
                } else {
                    out.complete.insert(id.to_string());
                }
                if server.is_some() {
                    break;
                }
            }
        }
        Ok(out)
    }
}
