//! Delegated rooms on live connections: when an app service invalidates its answers
//! (`auth.v1.access.invalidate`), the live connections holding a room it names are asked
//! about again, and a room lost is taken back as after a file edit (the lame-duck notice,
//! then a kick after the grace).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use super::Enforcement;
use super::assess::Action;
use super::registry::{ConnKey, DecisionRecord};
use crate::access::{Answer, Ask, Delegates, Invalidate};

/// The delegates live connections are judged with, and the account users go to by default.
pub(super) struct Delegated {
    pub delegates: Arc<Delegates>,
    pub account: String,
}

impl Enforcement {
    /// Judge delegated rooms with `delegates` (users without an account of their own are in
    /// `default_account`). The first call wins.
    pub fn delegate_to(&self, delegates: Arc<Delegates>, default_account: &str) {
        let _ = self.delegated.set(Delegated {
            delegates,
            account: default_account.to_string(),
        });
    }

    /// Answers for `req` were forgotten: ask again about the live connections holding a
    /// delegated room it names, and re-authorize those that lost one. Returns how many.
    pub async fn on_delegates_invalidated(&self, req: &Invalidate) -> usize {
        let Some(dl) = self.delegated.get() else { return 0 };
        if !self.is_leader() {
            return 0;
        }
        let since = Instant::now();
        let routes = dl.delegates.routes();
        let named =
            |room: &str| routes.route(room).is_some() && req.room.as_deref().is_none_or(|r| r == room);
        let (held, unknown) = {
            let r = self.registry();
            let keys: Vec<ConnKey> = match &req.user {
                Some(u) => r.by_user(u),
                None => r.all().map(|(k, _)| k.clone()).collect(),
            };
            let (mut held, mut unknown): (Vec<(ConnKey, DecisionRecord)>, Vec<ConnKey>) =
                (Vec::new(), Vec::new());
            for k in keys {
                match r.get(&k).map(|e| e.decision.as_ref()) {
                    Some(Some(d)) if d.rooms.iter().any(|(room, _)| named(room)) => held.push((k, d.clone())),
                    // Decided elsewhere or before a restart: which rooms it holds is not
                    // known here, and its user's answers changed. Decide it again.
                    Some(None) if req.user.is_some() => unknown.push(k),
                    _ => {}
                }
            }
            (held, unknown)
        };
        let mut affected = unknown;
        affected.extend(self.lost_delegated(dl, held, &named).await);
        info!(
            user = req.user.as_deref().unwrap_or("*"),
            room = req.room.as_deref().unwrap_or("*"),
            connections = affected.len(),
            "delegates' answers invalidated: connections to re-authorize"
        );
        let n = affected.len();
        for conn in affected {
            self.enqueue(conn, Action::Reauthorize("room-lost"), since);
        }
        n
    }

    /// The connections among `held` that lost one of their rooms `named` (delegated), asked
    /// again: "none", no answer, a bad one, or the user gone takes a room back.
    pub(super) async fn lost_delegated(
        &self,
        dl: &Delegated,
        held: Vec<(ConnKey, DecisionRecord)>,
        named: &(dyn Fn(&str) -> bool + Sync),
    ) -> Vec<ConnKey> {
        let answers = self.ask_again(dl, &held, named).await;
        held.into_iter()
            .filter(|(_, d)| {
                d.rooms
                    .iter()
                    .filter(|(room, _)| named(room))
                    .any(
                        |(room, granted)| match answers.get(&(d.user.clone(), room.clone())) {
                            Some(Answer::Access(Some(now))) => {
                                (granted.can_read() && !now.can_read())
                                    || (granted.can_write() && !now.can_write())
                            }
                            _ => true,
                        },
                    )
            })
            .map(|(conn, _)| conn)
            .collect()
    }

    /// Each user's delegated rooms among `held` asked again (one ask per user and room, the
    /// users at once).
    async fn ask_again(
        &self,
        dl: &Delegated,
        held: &[(ConnKey, DecisionRecord)],
        named: &(dyn Fn(&str) -> bool + Sync),
    ) -> HashMap<(String, String), Answer> {
        let snapshot = self.permissions.load();
        let mut per_user: HashMap<&str, Vec<Ask>> = HashMap::new();
        for (_, d) in held {
            let Some(user) = snapshot.effective(&d.user, d.asserted.as_ref()) else {
                continue; // removed from the files: no answer, the room is taken back
            };
            let asks = per_user.entry(d.user.as_str()).or_default();
            for (room, _) in d.rooms.iter().filter(|(r, _)| named(r)) {
                if asks.iter().any(|a| a.room == *room) {
                    continue;
                }
                let account = user.account().unwrap_or(&dl.account);
                asks.push(Ask::of(
                    &user,
                    room,
                    account,
                    d.client_id.clone(),
                    d.device.clone(),
                ));
            }
        }
        let asked = futures::future::join_all(per_user.into_iter().map(|(user, asks)| async move {
            let answers = dl.delegates.resolve(&asks).await;
            asks.into_iter()
                .filter_map(|a| answers.get(&a.room).map(|ans| ((user.to_string(), a.room), ans)))
                .collect::<Vec<_>>()
        }))
        .await;
        asked.into_iter().flatten().collect()
    }
}
