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
/// lists are complete, with their connections; and the JWTs connections were made with.
struct ConnzLists {
    listed: Vec<(ConnKey, String)>,
    complete: HashMap<String, HashSet<u64>>,
    jwts: HashMap<ConnKey, String>,
}

/// What the servers listed for one account: connections per server, each with its user,
/// and the servers whose every page arrived.
#[derive(Default)]
struct AccountConnz {
    seen: HashMap<String, HashSet<u64>>,
    users: Vec<(ConnKey, String)>,
    complete: HashSet<String>,
    jwts: HashMap<ConnKey, String>,
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
    /// How many subscriptions it holds.
    #[serde(default)]
    subscriptions: u32,
    /// The user JWT it connected with (none for callout users).
    #[serde(default)]
    jwt: String,
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
        let ConnzLists {
            mut listed,
            complete,
            jwts,
        } = asked_ok.unwrap_or_else(|e| {
            warn!(error = %e, "CONNZ reconcile failed");
            ConnzLists {
                listed: Vec::new(),
                complete: HashMap::new(),
                jwts: HashMap::new(),
            }
        });
        // Connections made with minted credentials are their decisions' users'.
        let minted = self.resolve_minted(&mut listed, &jwts);
        {
            let mut r = self.registry();
            r.reconcile(asked, listed, &complete);
            debug!(
                connections = r.len(),
                servers = complete.len(),
                "reconciled with CONNZ"
            );
        }
        // Their decisions, unless they went (or were decided) meanwhile.
        for d in minted {
            let unknown = self.registry().get(&d.conn).is_some_and(|e| e.decision.is_none());
            if unknown && let Some(d) = self.on_minted(d) {
                self.check_minted_delegated(d).await;
            }
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
        let mut jwts = HashMap::new();
        for list in lists {
            for (server, cids) in list.seen {
                seen.entry(server).or_default().extend(cids);
            }
            users.extend(list.users);
            complete.push(list.complete);
            jwts.extend(list.jwts);
        }
        // Only a server complete for every account may remove connections.
        seen.retain(|server, _| complete.iter().all(|c| c.contains(server)));
        Ok(ConnzLists {
            listed: users,
            complete: seen,
            jwts,
        })
    }

    /// CONNZ of one account from every server, paged.
    async fn account_connz(&self, acc: &str) -> anyhow::Result<AccountConnz> {
        let mut out = AccountConnz::default();
        self.each_page(acc, None, |id, page| {
            // A server with no connection left still counts: its old entries go.
            let alive = out.seen.entry(id.to_string()).or_default();
            for c in &page.connections {
                alive.insert(c.cid);
                let conn = ConnKey {
                    server: id.to_string(),
                    cid: c.cid,
                };
                if !c.jwt.is_empty() {
                    out.jwts.insert(conn.clone(), c.jwt.clone());
                }
                out.users.push((conn, c.authorized_user.clone()));
            }
            if page.total <= page.offset + page.limit {
                out.complete.insert(id.to_string());
            }
            true
        })
        .await?;
        Ok(out)
    }

    /// The connections of `acc` holding more than `floor` subscriptions, from every
    /// server, with their users and counts: each server's list sorted by subscriptions,
    /// read only as far as it stays above the floor (usually one page).
    pub(super) async fn busiest(&self, acc: &str, floor: u32) -> anyhow::Result<Vec<(ConnKey, String, u32)>> {
        let mut out = Vec::new();
        self.each_page(acc, Some("subs"), |id, page| {
            let above = page.connections.iter().filter(|c| c.subscriptions > floor);
            out.extend(above.map(|c| {
                let conn = ConnKey {
                    server: id.to_string(),
                    cid: c.cid,
                };
                (conn, c.authorized_user.clone(), c.subscriptions)
            }));
            page.connections.last().is_some_and(|c| c.subscriptions > floor)
        })
        .await?;
        Ok(out)
    }

    /// Every page of `acc`'s CONNZ (sorted by `sort` when given) from every server: `on_page`
    /// sees each with its server's id and says whether that server's next page is wanted.
    /// One ask to all servers first, then one per server and page; each waits half a second.
    async fn each_page(
        &self,
        acc: &str,
        sort: Option<&str>,
        mut on_page: impl FnMut(&str, &ConnzPage) -> bool,
    ) -> anyhow::Result<()> {
        let mut pending: Vec<(Option<String>, u64)> = vec![(None, 0)];
        while let Some((server, offset)) = pending.pop() {
            let subject = server_request(server.as_deref(), "CONNZ");
            let inbox = self.sys.new_inbox();
            let mut replies = self.sys.subscribe(inbox.clone()).await?;
            let mut body = json!({"acc": acc, "auth": true, "limit": 1024, "offset": offset});
            if let Some(sort) = sort {
                body["sort"] = sort.into();
            }
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
                let more = on_page(&id, &page);
                let got = page.offset + page.limit;
                if more && page.total > got {
                    pending.push((Some(id), got));
                }
                if server.is_some() {
                    break;
                }
            }
        }
        Ok(())
    }
}
