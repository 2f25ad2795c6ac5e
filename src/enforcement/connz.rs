//! CONNZ: what the servers say is connected, per account, paged 1,024 at a time, read
//! into typed answers; a reconcile joins it with the registry.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Enforcement;
use super::registry::ConnKey;
use crate::wire::server_request;

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

/// One server's answer to `$SYS.REQ.SERVER.*.CONNZ` (the parts used).
#[derive(Deserialize)]
struct ConnzReply {
    server: ReplyServer,
    data: ConnzPage,
}

#[derive(Deserialize)]
struct ReplyServer {
    id: String,
}

#[derive(Deserialize)]
struct ConnzPage {
    #[serde(default)]
    connections: Vec<ConnzConnection>,
    #[serde(default)]
    total: u64,
    #[serde(default)]
    offset: u64,
    #[serde(default = "page_size")]
    limit: u64,
}

fn page_size() -> u64 {
    1024
}

#[derive(Deserialize)]
struct ConnzConnection {
    cid: u64,
    #[serde(default)]
    authorized_user: String,
}

/// Reconcile every `every` (at least a second) until `stop`; missed ticks are delayed, not
/// bunched. Beside the feeds, never in their way: a reconcile waits for answers.
pub(super) async fn reconcile_every(me: Arc<Enforcement>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => tokio::select! {
                _ = stop.cancelled() => return,
                _ = me.reconcile() => {}
            },
        }
    }
}

impl Enforcement {
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
                let Ok(reply) = serde_json::from_slice::<ConnzReply>(&m.payload) else {
                    continue;
                };
                let id = reply.server.id;
                let page = reply.data;
                // A server with no connection left still counts: its old entries go.
                let alive = out.seen.entry(id.clone()).or_default();
                for c in page.connections {
                    alive.insert(c.cid);
                    let conn = ConnKey {
                        server: id.clone(),
                        cid: c.cid,
                    };
                    out.users.push((conn, c.authorized_user));
                }
                let got = page.offset + page.limit;
                if page.total > got {
                    pending.push((Some(id), got));
                } else {
                    out.complete.insert(id);
                }
                if server.is_some() {
                    break;
                }
            }
        }
        Ok(out)
    }
}
