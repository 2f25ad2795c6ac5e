//! The enforcer's side of per-user limits ([`crate::limits`]): counting connects (the
//! reconnects it caused excused), closing the oldest connections of a user over its
//! connection cap, counting subscriptions on the server's connection list, and publishing
//! what it did for every instance's decisions (and a notice to the user).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Enforcement;
use super::assess::Action;
use super::registry::ConnKey;
use crate::limits::rate::{Counted, Rate};
use crate::limits::{
    Gate, LiveConnections, TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTS, TOO_MANY_SUBSCRIPTIONS, cap,
};
use crate::wire::{LIMITS_SUBJECT, LimitFact, notice_subject};

/// The `type` of the notice a user's connection closed for a limit gets.
pub const CONNECTION_CLOSED: &str = "connection-closed";

/// A message for the service's connection: (subject, body).
pub(super) type Outgoing = (String, Vec<u8>);

/// What the enforcer keeps for limits.
pub(super) struct Limiter {
    /// Settings, and what every decision refuses (set once, see [`Enforcement::limit_with`]).
    gate: OnceLock<Arc<Gate>>,
    rate: Mutex<Option<Rate>>,
    /// Connections being closed for a limit: not counted again.
    closing: Mutex<HashSet<ConnKey>>,
    /// Users to look at again, and when (a tolerated connection's grace ends).
    watch: Mutex<HashMap<String, Instant>>,
    outbox: mpsc::UnboundedSender<Outgoing>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Limiter {
    pub(super) fn new() -> (Limiter, mpsc::UnboundedReceiver<Outgoing>) {
        let (outbox, rx) = mpsc::unbounded_channel();
        let l = Limiter {
            gate: OnceLock::new(),
            rate: Mutex::new(None),
            closing: Mutex::default(),
            watch: Mutex::default(),
            outbox,
        };
        (l, rx)
    }

    pub(super) fn gate(&self) -> &Gate {
        self.gate.get_or_init(Arc::default)
    }

    /// Use `gate` (the first call wins): its connect rate is counted from now.
    pub(super) fn set_gate(&self, gate: Arc<Gate>) {
        let rate = gate.settings().connect_rate.clone().map(Rate::new);
        if self.gate.set(gate).is_ok() {
            *lock(&self.rate) = rate;
        }
    }

    fn send(&self, subject: String, body: serde_json::Value) {
        let _ = self.outbox.send((subject, body.to_string().into_bytes()));
    }
}

impl LiveConnections for Enforcement {
    fn live(&self, user: &str) -> usize {
        self.registry().count(user)
    }
}

impl Enforcement {
    /// A new connection was decided (on any instance): count the connect, then the user's
    /// connections. The enforcer only.
    pub(super) fn limits_on_decision(&self, user: &str, server: &str) {
        if !self.is_leader() {
            return;
        }
        let counted = lock(&self.limiter.rate)
            .as_mut()
            .map(|r| r.connect(user, server, Instant::now()));
        match counted {
            Some(Counted::Exceeded) => self.cool_down(user),
            Some(Counted::Excused(why)) => debug!(user, why, "reconnect not counted"),
            _ => {}
        }
        self.check_connections(user);
    }

    /// A connection was seen (connect event): the user's connections, counted again.
    pub(super) fn limits_on_connect(&self, user: &str) {
        if self.is_leader() {
            self.check_connections(user);
        }
    }

    /// `n` reconnects of `user` that this instance caused (a notice, a kick): not counted.
    pub(super) fn excuse(&self, user: &str, n: usize) {
        let grace = self.settings.grace;
        if let Some(r) = lock(&self.limiter.rate).as_mut() {
            let until = Instant::now() + r.excuse_for(grace);
            r.excuse(user, n, until);
        }
    }

    /// A server goes away (lame-duck mode, shutdown): its clients' reconnects are not counted.
    pub(super) fn on_server_leaving(&self, server: &str, why: &str) {
        if !self.is_leader() || lock(&self.limiter.rate).is_none() {
            return;
        }
        let users = self.registry().users_on(server);
        info!(
            server,
            why,
            users = users.len(),
            "server leaving: its clients' reconnects are not counted"
        );
        for (user, n) in users {
            self.excuse(&user, n);
        }
    }

    /// This instance became the enforcer: the servers named so far are not new, and every
    /// user's connections are counted.
    pub(super) fn limits_on_acquire(&self) {
        let servers: Vec<String> = self
            .registry()
            .servers()
            .into_iter()
            .map(str::to_string)
            .collect();
        if let Some(r) = lock(&self.limiter.rate).as_mut() {
            let now = Instant::now();
            for s in &servers {
                r.know_server(s, now);
            }
        }
        self.check_all_connections();
    }

    /// Every user's connections against its cap (the permissions changed, or this instance
    /// took over). The enforcer only.
    pub(super) fn check_all_connections(&self) {
        if !self.is_leader() || self.permissions.load().smallest_limits().connections.is_none() {
            return;
        }
        let users: Vec<String> = self.registry().users().map(str::to_string).collect();
        for u in users {
            self.check_connections(&u);
        }
    }

    /// Every second: users whose tolerated connection's grace ended are counted again; what
    /// expired is forgotten.
    pub(super) fn limits_beat(&self) {
        let now = Instant::now();
        self.limiter.gate().prune(now);
        if let Some(r) = lock(&self.limiter.rate).as_mut() {
            r.prune(now);
        }
        if !self.is_leader() {
            lock(&self.limiter.watch).clear();
            return;
        }
        let due: Vec<String> = {
            let w = lock(&self.limiter.watch);
            w.iter()
                .filter(|(_, t)| **t <= now)
                .map(|(u, _)| u.clone())
                .collect()
        };
        for u in due {
            self.check_connections(&u);
        }
    }

    /// A connection closed for a limit is gone (or could not be closed).
    pub(super) fn limits_closed(&self, conn: &ConnKey) {
        lock(&self.limiter.closing).remove(conn);
    }

    /// `user`'s connections against its connection cap: the oldest beyond it are closed.
    fn check_connections(&self, user: &str) {
        let snapshot = self.permissions.load();
        if snapshot.smallest_limits().connections.is_none() {
            // Nobody is capped (the common case): nothing to count.
            lock(&self.limiter.watch).clear();
            return;
        }
        let asserted = self.registry().live_user(user).flatten();
        let cap = snapshot
            .effective(user, asserted.as_ref())
            .and_then(|u| u.limits().connections);
        let Some(cap) = cap else {
            lock(&self.limiter.watch).remove(user);
            return;
        };
        let grace = self.limiter.gate().settings().join_grace;
        let (plan, sessions) = {
            let r = self.registry();
            let closing = lock(&self.limiter.closing);
            let view = r.limit_view(user, &closing);
            let plan = cap::plan(&view, cap as usize, grace, Instant::now());
            let sessions: Vec<Option<String>> = plan
                .close
                .iter()
                .map(|k| {
                    let c = view.iter().find(|c| c.key == k);
                    c.and_then(|c| c.session.map(str::to_string))
                })
                .collect();
            (plan, sessions)
        };
        match plan.recheck_at {
            Some(t) => lock(&self.limiter.watch).insert(user.to_string(), t),
            None => lock(&self.limiter.watch).remove(user),
        };
        if !plan.close.is_empty() {
            info!(
                user,
                cap,
                closing = plan.close.len(),
                "too many connections: closing the oldest"
            );
        }
        for (conn, session) in plan.close.into_iter().zip(sessions) {
            self.close_for_limit(conn, user, session, TOO_MANY_CONNECTIONS);
        }
    }

    /// Close `conn` of `user` for the limit `reason`: its session refused a while on every
    /// instance, the user told, then the kick (audited as a kick with this reason).
    fn close_for_limit(&self, conn: ConnKey, user: &str, session: Option<String>, reason: &'static str) {
        if !lock(&self.limiter.closing).insert(conn.clone()) {
            return;
        }
        let cooldown = self.limiter.gate().settings().closed_cooldown;
        if let Some(session) = session {
            self.publish_fact(LimitFact {
                user: user.to_string(),
                session: Some(session),
                reason: reason.to_string(),
                for_ms: cooldown.as_millis() as u64,
            });
        }
        let notice = json!({"type": CONNECTION_CLOSED, "user": user, "reason": reason, "server": conn.server, "cid": conn.cid});
        self.limiter.send(notice_subject(user), notice);
        metrics::counter!("nats_callout_limits_total", "action" => "closed", "reason" => reason).increment(1);
        info!(user, server = %conn.server, cid = conn.cid, reason, "closing a connection for a limit");
        self.enqueue(conn, Action::Kick(reason), Instant::now());
    }

    /// `user` connected too often: refused everywhere for the cool-down.
    fn cool_down(&self, user: &str) {
        let Some(rate) = self.limiter.gate().settings().connect_rate.clone() else {
            return;
        };
        warn!(user, connects = rate.connects, window = ?rate.window, cooldown = ?rate.cooldown, "too many connects: refused for the cool-down");
        metrics::counter!("nats_callout_limits_total", "action" => "cool-down", "reason" => TOO_MANY_CONNECTS).increment(1);
        if let Some(audit) = self.audit.get() {
            let what =
                json!({"user": user, "reason": TOO_MANY_CONNECTS, "forSeconds": rate.cooldown.as_secs()});
            audit.action("limit", "service", crate::clock::now_secs(), what);
        }
        self.publish_fact(LimitFact {
            user: user.to_string(),
            session: None,
            reason: TOO_MANY_CONNECTS.to_string(),
            for_ms: rate.cooldown.as_millis() as u64,
        });
    }

    /// Apply a fact here at once, and publish it for the other instances.
    fn publish_fact(&self, fact: LimitFact) {
        self.limiter.gate().apply(&fact, Instant::now());
        if let Ok(v) = serde_json::to_value(&fact) {
            self.limiter.send(LIMITS_SUBJECT.to_string(), v);
        }
    }

    /// The connections holding more subscriptions than their users' caps, closed. Only
    /// while some user or group has such a cap; reads each server's connection list sorted
    /// by subscriptions, down to the smallest cap.
    async fn check_subscriptions(&self) {
        let Some(floor) = self.permissions.load().smallest_limits().subscriptions else {
            return;
        };
        for acc in &self.accounts {
            let busy = match self.busiest(acc, floor).await {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, account = %acc, "could not count subscriptions");
                    continue;
                }
            };
            let snapshot = self.permissions.load();
            for (conn, listed, subs) in busy {
                let (user, asserted, session) = {
                    let r = self.registry();
                    // A connection made with credentials is listed by its nkey.
                    let user = r.get(&conn).map_or(listed, |e| e.user.clone());
                    let asserted = r.live_user(&user).flatten();
                    let session = r
                        .get(&conn)
                        .and_then(|e| e.decision.as_ref())
                        .map(|d| d.session.clone());
                    (user, asserted, session)
                };
                let cap = snapshot
                    .effective(&user, asserted.as_ref())
                    .and_then(|u| u.limits().subscriptions);
                if cap.is_some_and(|cap| subs > cap) {
                    info!(user = %user, subscriptions = subs, cap, "too many subscriptions");
                    self.close_for_limit(conn, &user, session, TOO_MANY_SUBSCRIPTIONS);
                }
            }
        }
    }
}

/// Publish what the limiter sends (facts, notices) on the service's connection until `stop`.
pub(super) async fn send(
    client: async_nats::Client,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    stop: CancellationToken,
) {
    loop {
        let (subject, body) = tokio::select! {
            () = stop.cancelled() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        if let Err(e) = client.publish(subject, body.into()).await {
            warn!(error = %e, "a limit fact or notice could not be sent");
        }
    }
}

/// Count subscriptions every `every` while this instance enforces, until `stop`.
pub(super) async fn subscriptions_every(me: Arc<Enforcement>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                if me.is_leader() {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = me.check_subscriptions() => {}
                    }
                }
            }
        }
    }
}
