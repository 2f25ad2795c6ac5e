//! The enforcer: what a change means for each live connection ([`assess`]) and carrying it
//! out, throttled: a lame-duck notice (LDM) and, after the grace, a kick; revocations kick
//! at once. Only the instance holding the lease acts.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Enforcement;
use super::assess::{Action, Current, assess};
use super::notices;
use super::registry::{ConnKey, DecisionRecord, Entry};
use super::throttle::TokenBucket;
use crate::permissions::Snapshot;
use crate::tokens::revocation::{Revocation, RevocationIndex};
use crate::wire::{TokenResetRequest, server_request};

/// No delegate: every room is judged against the files and data.
static NO_DELEGATES: crate::access::Routes = crate::access::Routes::EMPTY;

/// One connection to act on.
pub(super) struct Job {
    pub conn: ConnKey,
    pub action: Action,
    /// When the change that caused it happened (for the lag metric).
    pub since: Instant,
}

impl Enforcement {
    /// What connections are judged against now.
    pub(super) fn current<'a>(
        &'a self,
        snapshot: &'a Snapshot,
        old: Option<&'a Snapshot>,
        revoked: &'a RevocationIndex,
    ) -> Current<'a> {
        Current {
            snapshot,
            rooms: &self.rooms,
            old,
            revoked,
            token_reset_roles: &self.settings.token_reset_roles,
            delegates: self
                .delegated
                .get()
                .map_or(&NO_DELEGATES, |d| d.delegates.routes()),
        }
    }

    pub(super) fn enqueue(&self, conn: ConnKey, action: Action, since: Instant) {
        let job = Job { conn, action, since };
        let q = if matches!(action, Action::Kick(_)) {
            &self.revokes
        } else {
            &self.changes
        };
        let _ = q.send(job);
    }

    /// Record `d` in the registry: its connection, user and entry as recorded.
    pub(super) fn record_decision(&self, d: DecisionRecord) -> (ConnKey, String, Option<Entry>) {
        let conn = d.conn.clone();
        let user = d.user.clone();
        let mut r = self.registry();
        r.add_decision(d);
        let entry = r.get(&conn).cloned();
        (conn, user, entry)
    }

    /// A connection of `user` seen (a connect event) without a decision to go with it.
    pub(super) fn on_seen(&self, conn: ConnKey, user: &str) {
        self.registry().add_seen(conn, user);
        self.limits_on_connect(user);
    }

    /// A new decision arrived: record it; if it was made on an older snapshot or
    /// revocation epoch, judge it again now.
    pub fn on_decision(&self, d: DecisionRecord) {
        let stale = d.snapshot_epoch < self.permissions.epoch()
            || d.revocation_epoch < self.revocations.epoch()
            || d.rooms_epoch < self.rooms.epoch();
        let (conn, user, entry) = self.record_decision(d);
        self.limits_on_decision(&user, &conn.server);
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

    /// The permission snapshot changed from `old` to the current one: connections that lost
    /// something decide again, and users whose grants changed are told.
    pub fn on_snapshot_change(&self, old: &Snapshot) {
        self.judge_all(Some(old), "permission change");
        // A cap set or lowered applies to the connections already there.
        self.check_all_connections();
        let new = self.permissions.load();
        let users = self.registry().live_users();
        let mut told = 0;
        for (user, asserted) in users {
            let Some(now) = new.effective(&user, asserted.as_ref()) else {
                continue; // removed: decided again (and refused)
            };
            let before = old.effective(&user, asserted.as_ref());
            for n in notices::of_reload(before.as_deref(), &now, (old, &new), &self.rooms) {
                told += 1;
                self.notify(n);
            }
        }
        if told > 0 {
            info!(
                notices = told,
                enforcer = self.is_leader(),
                "permission change: users to tell"
            );
        }
    }

    /// This instance just became the enforcer: judge every connection against the
    /// permissions and revocations now (changes may have come while nobody enforced).
    pub fn on_acquire(&self) {
        self.judge_all(None, "enforcer takeover");
        if !self.is_leader() {
            return;
        }
        self.limits_on_acquire();
        let held = self.held.take(Instant::now(), self.held_for());
        if !held.is_empty() {
            info!(
                notices = held.len(),
                "enforcer takeover: sending the notices of the last moments"
            );
        }
        for n in held {
            let _ = self.notices.send(n);
        }
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

    /// Rooms in data changed: the connections of users who lost something decide again
    /// (the lame-duck notice, then a kick after the grace), as after a permission edit.
    pub fn on_room_changes(&self, changes: &[crate::rooms::AccessChange]) {
        self.tell(changes);
        if !self.is_leader() {
            return;
        }
        let since = Instant::now();
        let users: HashSet<&str> = changes
            .iter()
            .filter(|c| c.lost())
            .map(|c| c.user.as_str())
            .collect();
        if users.is_empty() {
            return;
        }
        let (snapshot, revoked) = (self.permissions.load(), self.revocations.load());
        let current = self.current(&snapshot, None, &revoked);
        let affected: Vec<(ConnKey, Action)> = {
            let r = self.registry();
            users
                .iter()
                .flat_map(|u| r.by_user(u))
                .filter_map(|k| {
                    let entry = r.get(&k)?;
                    let action = match entry.decision {
                        // Decided elsewhere or before a restart: which rooms it holds is not
                        // known here, and this user lost one. Decide it again.
                        None => Action::Reauthorize("room-lost"),
                        Some(_) => assess(entry, &current),
                    };
                    (action != Action::Keep).then_some((k, action))
                })
                .collect()
        };
        info!(
            users = users.len(),
            connections = affected.len(),
            "rooms changed: connections to re-authorize"
        );
        for (conn, action) in affected {
            self.enqueue(conn, action, since);
        }
    }

    /// Send `notice` if this instance enforces; otherwise keep it a while, in case it takes
    /// over from an enforcer that could not send it.
    fn notify(&self, notice: notices::Notice) {
        if self.is_leader() {
            let _ = self.notices.send(notice);
        } else {
            self.held.keep(notice, Instant::now(), self.held_for());
        }
    }

    /// How long notices are kept by an instance that does not enforce: the time a takeover
    /// can take, twice.
    fn held_for(&self) -> Duration {
        self.settings.lease_ttl * 2
    }

    /// Tell the users how `changes` changed their grants (whether or not this instance knows
    /// their connections yet: one may be just connecting), judged as the registry knows them.
    fn tell(&self, changes: &[crate::rooms::AccessChange]) {
        let snapshot = self.permissions.load();
        let asserted: Vec<_> = {
            let r = self.registry();
            changes.iter().map(|c| r.live_user(&c.user).flatten()).collect()
        };
        for (change, asserted) in changes.iter().zip(asserted) {
            let user = snapshot.effective(&change.user, asserted.as_ref());
            if let Some(n) = notices::of_room_change(&snapshot, user.as_deref(), change) {
                self.notify(n);
            }
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
        // Client text: bounded (the subject by `problem`, the reason here); the log format
        // quotes and escapes it.
        let reason: String = req.reason.chars().take(200).collect();
        info!(
            tids = req.tids.len(),
            users = req.users.len(),
            sessions = req.sessions.len(),
            connections = conns.len(),
            reason = %reason,
            subject = req.subject.as_deref().unwrap_or(""),
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
        let user = self.registry().get(&job.conn).map(|e| e.user.clone());
        // Its reconnect is ours: not counted (excused before the kick, which it follows fast).
        if let Some(u) = &user {
            self.excuse(u, 1);
        }
        match self.sys_request(&job.conn.server, "KICK", job.conn.cid).await {
            Ok(v) if v.get("error").is_none() => {
                self.stats.kicks_sent.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("nats_callout_kicks_total", "reason" => reason.to_string()).increment(1);
                info!(server = %job.conn.server, cid = job.conn.cid, reason, leafnode, "kicked");
                if let Some(audit) = self.audit.get() {
                    let what = json!({"user": user, "server": job.conn.server, "cid": job.conn.cid, "reason": reason});
                    audit.action("kick", "service", crate::clock::now_secs(), what);
                }
            }
            Ok(v) => {
                debug!(server = %job.conn.server, cid = job.conn.cid, reply = %v, "kick: connection already gone")
            }
            Err(e) => warn!(server = %job.conn.server, cid = job.conn.cid, error = %e, "kick failed"),
        }
        self.registry().remove(&job.conn);
        self.limits_closed(&job.conn);
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
                // The reconnect a notice asks for is ours: not counted.
                if let Some(u) = self.registry().get(&job.conn).map(|e| e.user.clone()) {
                    self.excuse(&u, 1);
                }
                match self.sys_request(&job.conn.server, "LDM", job.conn.cid).await {
                    Ok(v) if v.get("error").is_none() => {
                        self.stats.ldm_sent.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("nats_callout_ldm_total", "reason" => reason).increment(1);
                        info!(server = %job.conn.server, cid = job.conn.cid, reason, "lame-duck notice sent");
                        // A timer per notice, not owned by the enforcer's tasks: it only
                        // queues the kick (or records the lag) and ends by itself within the
                        // grace; at shutdown the queue it feeds is gone and it does nothing.
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
}

/// One queue's worker: jobs in order, at most `rate` a second (`burst` at once), until
/// `stop`.
pub(super) async fn work(
    me: Arc<Enforcement>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    rate: f64,
    burst: u32,
    stop: CancellationToken,
) {
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
}
