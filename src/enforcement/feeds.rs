//! The feeds the registry follows: decision records (every instance publishes its own),
//! connect and disconnect events of every account users are placed in, and revocations
//! applied here.

use std::sync::Arc;

use async_nats::Subscriber;
use futures::StreamExt;
use futures::stream::SelectAll;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Enforcement;
use super::minted::JwtUser;
use super::registry::{ConnKey, DecisionRecord};
use crate::wire::{DECISION_SUBJECT, LIMITS_SUBJECT, LimitFact, account_event, server_event};

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
    /// The user JWT a client connected with (none for callout users).
    #[serde(default)]
    jwt: String,
}

/// `$SYS.ACCOUNT.<acc>.CONNECT` / `.DISCONNECT` (the parts used).
#[derive(Deserialize)]
struct ConnectEvent {
    server: EventServer,
    client: EventClient,
}

impl ConnectEvent {
    fn conn(&self) -> ConnKey {
        ConnKey {
            server: self.server.id.clone(),
            cid: self.client.id,
        }
    }
}

/// The subscriptions, made before the feeds run (so nothing is missed once ready).
pub(super) struct Feeds {
    decisions: Subscriber,
    /// Limits the enforcer applied ([`crate::wire::LIMITS_SUBJECT`]).
    limits: Subscriber,
    /// Servers entering lame-duck mode or shutting down.
    leaving: SelectAll<Subscriber>,
    connects: SelectAll<Subscriber>,
    disconnects: SelectAll<Subscriber>,
}

impl Feeds {
    pub(super) async fn subscribe(e: &Enforcement, service: &async_nats::Client) -> anyhow::Result<Feeds> {
        let decisions = service.subscribe(DECISION_SUBJECT).await?;
        let limits = service.subscribe(LIMITS_SUBJECT).await?;
        let leaving = vec![
            e.sys.subscribe(server_event("*", "LAMEDUCK")).await?,
            e.sys.subscribe(server_event("*", "SHUTDOWN")).await?,
        ];
        // The accounts users are placed in (one in config mode; every allowed account in
        // operator mode).
        let (mut connects, mut disconnects) = (Vec::new(), Vec::new());
        for acc in &e.accounts {
            connects.push(e.sys.subscribe(account_event(acc, "CONNECT")).await?);
            disconnects.push(e.sys.subscribe(account_event(acc, "DISCONNECT")).await?);
        }
        Ok(Feeds {
            decisions,
            limits,
            leaving: futures::stream::select_all(leaving),
            connects: futures::stream::select_all(connects),
            disconnects: futures::stream::select_all(disconnects),
        })
    }

    /// Follow every feed until `stop`; the gauges are published every second.
    pub(super) async fn run(mut self, me: Arc<Enforcement>, stop: CancellationToken) {
        let mut revocations = me.revocations.subscribe();
        let mut rooms = me.rooms.subscribe();
        let mut beat = tokio::time::interval(std::time::Duration::from_secs(1));
        // Delegated rooms of connections made with minted credentials, asked about again.
        let mut checks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    checks.shutdown().await;
                    return;
                }
                Some(_) = checks.join_next() => {}
                _ = beat.tick() => {
                    me.publish_gauges();
                    me.limits_beat();
                }
                Some(m) = self.limits.next() => match serde_json::from_slice::<LimitFact>(&m.payload) {
                    Ok(f) => me.limiter.gate().apply(&f, std::time::Instant::now()),
                    Err(e) => warn!(error = %e, "ignored a malformed limit fact"),
                },
                Some(m) = self.leaving.next() => {
                    // `$SYS.SERVER.<id>.LAMEDUCK|SHUTDOWN`
                    let mut parts = m.subject.split('.').skip(2);
                    if let (Some(id), Some(why)) = (parts.next(), parts.next()) {
                        me.on_server_leaving(id, why);
                    }
                }
                Some(m) = self.decisions.next() => match serde_json::from_slice::<DecisionRecord>(&m.payload) {
                    Ok(d) => me.on_decision(d),
                    Err(e) => warn!(error = %e, "ignored a malformed decision record"),
                },
                Some(m) = self.connects.next() => {
                    if let Ok(ev) = serde_json::from_slice::<ConnectEvent>(&m.payload)
                        && me.accounts.contains(&ev.client.acc)
                    {
                        let conn = ev.conn();
                        match me.identify(&ev.client.jwt, conn.clone()) {
                            Some(JwtUser::Minted(d)) => {
                                if let Some(d) = me.on_minted(*d) {
                                    let me = me.clone();
                                    checks.spawn(async move { me.check_minted_delegated(d).await });
                                }
                            }
                            // A JWT's subject, never the name a client may add in CONNECT.
                            Some(JwtUser::Other(sub)) => me.on_seen(conn, &sub),
                            None => me.on_seen(conn, &ev.client.user),
                        }
                    }
                }
                Some(m) = self.disconnects.next() => {
                    if let Ok(ev) = serde_json::from_slice::<ConnectEvent>(&m.payload) {
                        me.registry().remove(&ev.conn());
                    }
                }
                r = rooms.recv() => match r {
                    Ok(changes) => me.on_room_changes(&changes),
                    // Too many changes at once to follow one by one: judge everyone.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => me.on_acquire(),
                    Err(_) => {}
                },
                r = revocations.recv() => match r {
                    Ok(revs) => me.on_revocations(&revs),
                    // Too many at once to follow one by one: judge everyone (a connection made
                    // with credentials meets no callout that would refuse it).
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => me.on_acquire(),
                    Err(_) => {}
                },
            }
        }
    }
}
