//! The registry of live connections: decision records joined with connect/disconnect
//! events and CONNZ, indexed by user, session, device, token id and room.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::permissions::Asserted;
use crate::tokens::revocation::{Revocation, RevocationKind, split_user_device};
pub use crate::wire::{ConnKey, DecisionRecord};

/// A live connection as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user: String,
    /// The decision, unless it was lost (e.g. made before this instance started):
    /// such connections are handled at user level.
    pub decision: Option<DecisionRecord>,
}

/// Connections and their indexes. Not thread-safe by itself; the owner locks it.
#[derive(Debug, Default)]
pub struct Registry {
    /// Each connection with when it was recorded (the registry's clock): a CONNZ list
    /// taken earlier knows nothing of a connection recorded after it and must not remove it.
    entries: HashMap<ConnKey, (Entry, u64)>,
    /// When each connection was first recorded (registry order, and the clock), kept when
    /// its entry is replaced: "oldest" for the connection limit.
    first: HashMap<ConnKey, (u64, Instant)>,
    by_user: HashMap<String, HashSet<ConnKey>>,
    by_session: HashMap<String, HashSet<ConnKey>>,
    by_device: HashMap<String, HashSet<ConnKey>>,
    by_tid: HashMap<String, HashSet<ConnKey>>,
    by_room: HashMap<String, HashSet<ConnKey>>,
    /// When each connection was removed (disconnected, kicked): a CONNZ list taken earlier
    /// still names it and must not bring it back. Kept until a reconcile asked later ends.
    removed: HashMap<ConnKey, u64>,
    /// Connections one complete list did not name: the next that does not name them either
    /// removes them. A decision record can arrive before nats-server has registered the
    /// connection in its account, so one list is not proof that it is gone.
    missing: HashSet<ConnKey>,
    clock: u64,
}

fn index(map: &mut HashMap<String, HashSet<ConnKey>>, key: &str, conn: &ConnKey) {
    map.entry(key.to_string()).or_default().insert(conn.clone());
}

fn unindex(map: &mut HashMap<String, HashSet<ConnKey>>, key: &str, conn: &ConnKey) {
    if let Some(set) = map.get_mut(key) {
        set.remove(conn);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

impl Registry {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, conn: &ConnKey) -> Option<&Entry> {
        self.entries.get(conn).map(|(e, _)| e)
    }

    /// The registry's clock now: entries recorded from here on are newer (see
    /// [`Registry::reconcile`]).
    pub fn now(&self) -> u64 {
        self.clock
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn record(&mut self, conn: ConnKey, entry: Entry) {
        let now = self.tick();
        self.removed.remove(&conn);
        self.missing.remove(&conn);
        self.first.entry(conn.clone()).or_insert((now, Instant::now()));
        self.entries.insert(conn, (entry, now));
    }

    /// Record a decision (replacing what was known of that connection).
    pub fn add_decision(&mut self, d: DecisionRecord) {
        let conn = d.conn.clone();
        self.take(&conn);
        index(&mut self.by_user, &d.user, &conn);
        index(&mut self.by_session, &d.session, &conn);
        if let Some(dev) = &d.device {
            index(&mut self.by_device, dev, &conn);
        }
        index(&mut self.by_tid, &d.tid, &conn);
        for (room, _) in &d.rooms {
            index(&mut self.by_room, room, &conn);
        }
        self.record(
            conn,
            Entry {
                user: d.user.clone(),
                decision: Some(d),
            },
        );
    }

    /// A connection seen in events or CONNZ. Keeps a known decision; otherwise
    /// records the user only.
    pub fn add_seen(&mut self, conn: ConnKey, user: &str) {
        if self.get(&conn).is_some_and(|e| e.user == user) {
            return;
        }
        self.take(&conn);
        index(&mut self.by_user, user, &conn);
        self.record(
            conn,
            Entry {
                user: user.to_string(),
                decision: None,
            },
        );
    }

    /// Forget a connection (disconnected, kicked), known or not.
    pub fn remove(&mut self, conn: &ConnKey) -> Option<Entry> {
        let now = self.tick();
        self.removed.insert(conn.clone(), now);
        self.first.remove(conn);
        self.take(conn)
    }

    /// Take an entry out of the map and its indexes.
    fn take(&mut self, conn: &ConnKey) -> Option<Entry> {
        self.missing.remove(conn);
        let (e, _) = self.entries.remove(conn)?;
        unindex(&mut self.by_user, &e.user, conn);
        if let Some(d) = &e.decision {
            unindex(&mut self.by_session, &d.session, conn);
            if let Some(dev) = &d.device {
                unindex(&mut self.by_device, dev, conn);
            }
            unindex(&mut self.by_tid, &d.tid, conn);
            for (room, _) in &d.rooms {
                unindex(&mut self.by_room, room, conn);
            }
        }
        Some(e)
    }

    /// Apply a CONNZ reconcile asked at `asked` (the registry's [`Registry::now`] then):
    /// `listed` names every connection the answers named, with its user; `complete` holds
    /// the servers whose every page arrived, with their connections. A connection removed
    /// since the ask is not brought back, one recorded since is not dropped, and one is
    /// dropped only when a second list in a row misses it. Ends the reconcile (pass empty
    /// lists for one that failed). Returns how many were dropped.
    pub fn reconcile(
        &mut self,
        asked: u64,
        listed: Vec<(ConnKey, String)>,
        complete: &HashMap<String, HashSet<u64>>,
    ) -> usize {
        for (conn, user) in listed {
            if self.removed.get(&conn).is_none_or(|t| *t <= asked) {
                self.add_seen(conn, &user);
            }
        }
        let dropped = complete
            .iter()
            .map(|(server, alive)| self.retain_server(server, alive, asked))
            .sum();
        // Reconciles run one after another: no list asked before this one is still to come.
        self.removed.retain(|_, t| *t > asked);
        dropped
    }

    /// Drop the connections on `server` that are not in `alive` for the second list in a
    /// row, among those recorded before `asked` (a connection decided since is live though
    /// the list does not name it). Returns how many were dropped.
    fn retain_server(&mut self, server: &str, alive: &HashSet<u64>, asked: u64) -> usize {
        self.missing
            .retain(|k| !(k.server == server && alive.contains(&k.cid)));
        let absent: Vec<ConnKey> = self
            .entries
            .iter()
            .filter(|(k, (_, recorded))| k.server == server && !alive.contains(&k.cid) && *recorded <= asked)
            .map(|(k, _)| k.clone())
            .collect();
        let mut dropped = 0;
        for k in absent {
            if self.missing.contains(&k) {
                self.take(&k);
                self.first.remove(&k);
                dropped += 1;
            } else {
                self.missing.insert(k);
            }
        }
        dropped
    }

    fn collect(map: &HashMap<String, HashSet<ConnKey>>, key: &str) -> Vec<ConnKey> {
        let mut v: Vec<ConnKey> = map
            .get(key)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn by_user(&self, user: &str) -> Vec<ConnKey> {
        Self::collect(&self.by_user, user)
    }

    /// How many live connections `user` holds.
    pub fn count(&self, user: &str) -> usize {
        self.by_user.get(user).map_or(0, HashSet::len)
    }

    /// `user`'s live connections as the connection limit sees them, but those in `skip`.
    pub fn limit_view<'a>(
        &'a self,
        user: &str,
        skip: &HashSet<ConnKey>,
    ) -> Vec<crate::limits::cap::Conn<'a>> {
        let Some(conns) = self.by_user.get(user) else {
            return Vec::new();
        };
        conns
            .iter()
            .filter(|k| !skip.contains(*k))
            .filter_map(|k| {
                let (key, (entry, _)) = self.entries.get_key_value(k)?;
                let (order, since) = self.first.get(k).copied()?;
                Some(crate::limits::cap::Conn {
                    key,
                    order,
                    since,
                    session: entry.decision.as_ref().map(|d| d.session.as_str()),
                })
            })
            .collect()
    }

    /// The servers that hold a live connection.
    pub fn servers(&self) -> HashSet<&str> {
        self.entries.keys().map(|k| k.server.as_str()).collect()
    }

    /// Users with live connections on `server`, with how many each.
    pub fn users_on(&self, server: &str) -> HashMap<String, usize> {
        let mut out: HashMap<String, usize> = HashMap::new();
        for (k, (e, _)) in &self.entries {
            if k.server == server {
                *out.entry(e.user.clone()).or_default() += 1;
            }
        }
        out
    }
    pub fn by_session(&self, session: &str) -> Vec<ConnKey> {
        Self::collect(&self.by_session, session)
    }
    pub fn by_device(&self, device: &str) -> Vec<ConnKey> {
        Self::collect(&self.by_device, device)
    }
    pub fn by_tid(&self, tid: &str) -> Vec<ConnKey> {
        Self::collect(&self.by_tid, tid)
    }
    pub fn by_room(&self, room: &str) -> Vec<ConnKey> {
        Self::collect(&self.by_room, room)
    }

    /// The connections a revocation may cover: candidates, each still to be judged
    /// against the revocation index. A device revocation scoped to one user (`user/device`)
    /// names that user's connections on the device, and those whose decision is unknown.
    pub fn covered_by(&self, rev: &Revocation) -> Vec<ConnKey> {
        match rev.kind {
            RevocationKind::Session => self.by_session(&rev.value),
            RevocationKind::Device => match split_user_device(&rev.value) {
                Some((user, device)) => self
                    .by_user(user)
                    .into_iter()
                    .filter(|k| {
                        self.get(k).is_some_and(|e| {
                            e.decision
                                .as_ref()
                                .is_none_or(|d| d.device.as_deref() == Some(device))
                        })
                    })
                    .collect(),
                None => self.by_device(&rev.value),
            },
            RevocationKind::User => self.by_user(&rev.value),
            RevocationKind::All => {
                let mut all: Vec<ConnKey> = self.entries.keys().cloned().collect();
                all.sort();
                all
            }
        }
    }

    /// Every user with at least one live connection.
    /// If `user` has live connections: what a provider asserted for them, as their latest
    /// known decision says (`None` for a user of the files alone, or when no decision is known).
    pub fn live_user(&self, user: &str) -> Option<Option<Asserted>> {
        let conns = self.by_user.get(user)?;
        let asserted = conns
            .iter()
            .filter_map(|k| self.entries.get(k)?.0.decision.as_ref())
            .max_by_key(|d| d.at)
            .and_then(|d| d.asserted.clone());
        Some(asserted)
    }

    /// Every user with live connections, with [`Registry::live_user`]'s assertion.
    pub fn live_users(&self) -> Vec<(String, Option<Asserted>)> {
        self.by_user
            .keys()
            .filter_map(|u| Some((u.clone(), self.live_user(u)?)))
            .collect()
    }

    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.by_user.keys().map(String::as_str)
    }

    pub fn all(&self) -> impl Iterator<Item = (&ConnKey, &Entry)> {
        self.entries.iter().map(|(k, (e, _))| (k, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::Access;

    fn rec(server: &str, cid: u64, user: &str, device: &str, tid: &str, rooms: &[&str]) -> DecisionRecord {
        DecisionRecord {
            conn: ConnKey {
                server: server.into(),
                cid,
            },
            user: user.into(),
            session: format!("s-{user}-{device}"),
            device: Some(device.into()),
            tid: tid.into(),
            iat: 1,
            rooms: rooms.iter().map(|r| (r.to_string(), Access::ReadWrite)).collect(),
            privileges: Default::default(),
            leafnode: false,
            expires_at: 100,
            snapshot_epoch: 1,
            revocation_epoch: 0,
            rooms_epoch: 0,
            asserted: None,
            client_id: None,
            at: 0,
        }
    }

    #[test]
    fn indexes_find_exactly_the_matching_connections() {
        let mut r = Registry::default();
        r.add_decision(rec("A", 1, "bob", "phone", "t1", &["all1", "bob1"]));
        r.add_decision(rec("A", 2, "bob", "laptop", "t2", &["all1"]));
        r.add_decision(rec("B", 1, "alice", "phone", "t3", &["all1", "alice1"]));
        let k = |s: &str, c| ConnKey {
            server: s.into(),
            cid: c,
        };
        assert_eq!(r.by_user("bob"), vec![k("A", 1), k("A", 2)]);
        assert_eq!(r.by_device("phone"), vec![k("A", 1), k("B", 1)]);
        assert_eq!(r.by_tid("t2"), vec![k("A", 2)]);
        assert_eq!(r.by_room("all1").len(), 3);
        assert_eq!(r.by_room("bob1"), vec![k("A", 1)]);
        assert_eq!(r.by_session("s-bob-laptop"), vec![k("A", 2)]);
        r.remove(&k("A", 1));
        assert_eq!(r.by_room("bob1"), Vec::<ConnKey>::new());
        assert_eq!(r.by_user("bob"), vec![k("A", 2)]);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn a_revocation_covers_exactly_its_connections_table() {
        let mut r = Registry::default();
        r.add_decision(rec("A", 1, "bob", "phone", "t1", &["all1"]));
        r.add_decision(rec("A", 2, "bob", "laptop", "t2", &["all1"]));
        r.add_decision(rec("A", 3, "alice", "phone", "t3", &["all1"]));
        let k = |c| ConnKey {
            server: "A".into(),
            cid: c,
        };
        r.add_seen(k(4), "bob"); // decision lost (made before a restart)
        let rev = |kind, value: &str| Revocation {
            kind,
            value: value.into(),
            cutoff: 1,
            expires_at: 2,
        };
        let cases = [
            (rev(RevocationKind::Device, "bob/phone"), vec![k(1), k(4)]),
            (rev(RevocationKind::Device, "alice/phone"), vec![k(3)]),
            (rev(RevocationKind::Device, "bob/tablet"), vec![k(4)]),
            (rev(RevocationKind::Device, "phone"), vec![k(1), k(3)]),
            (rev(RevocationKind::Session, "s-bob-laptop"), vec![k(2)]),
            (rev(RevocationKind::User, "bob"), vec![k(1), k(2), k(4)]),
            (rev(RevocationKind::All, ""), vec![k(1), k(2), k(3), k(4)]),
        ];
        for (rev, want) in cases {
            assert_eq!(r.covered_by(&rev), want, "{rev:?}");
        }
    }

    #[test]
    fn seen_keeps_a_known_decision_and_reconcile_drops_the_dead() {
        let mut r = Registry::default();
        r.add_decision(rec("A", 1, "bob", "phone", "t1", &["all1"]));
        r.add_seen(
            ConnKey {
                server: "A".into(),
                cid: 1,
            },
            "bob",
        );
        assert!(
            r.get(&ConnKey {
                server: "A".into(),
                cid: 1
            })
            .unwrap()
            .decision
            .is_some()
        );
        r.add_seen(
            ConnKey {
                server: "A".into(),
                cid: 7,
            },
            "carol",
        );
        assert!(
            r.get(&ConnKey {
                server: "A".into(),
                cid: 7
            })
            .unwrap()
            .decision
            .is_none()
        );
        let alive: HashSet<u64> = [7].into_iter().collect();
        let asked = r.now();
        assert_eq!(r.retain_server("A", &alive, asked), 0, "one list is not proof");
        assert_eq!(r.retain_server("A", &alive, asked), 1, "the second is");
        assert_eq!(r.len(), 1);
        assert!(r.by_tid("t1").is_empty());
    }

    #[test]
    fn a_connection_recorded_after_connz_was_asked_survives_its_list() {
        let mut r = Registry::default();
        r.add_decision(rec("A", 1, "bob", "phone", "t1", &["all1"]));
        let asked = r.now();
        // Decided while the (older) CONNZ answer was on its way: not in its list.
        r.add_decision(rec("A", 2, "bob", "laptop", "t2", &["all1"]));
        let alive: HashSet<u64> = HashSet::new();
        assert_eq!(r.retain_server("A", &alive, asked), 0);
        assert_eq!(r.retain_server("A", &alive, asked), 1, "only the older one goes");
        assert_eq!(r.by_tid("t2").len(), 1);
        assert!(r.by_tid("t1").is_empty());
    }

    #[test]
    fn a_connection_gone_after_connz_was_asked_is_not_brought_back_by_its_list() {
        let mut r = Registry::default();
        let k = |c| ConnKey {
            server: "A".into(),
            cid: c,
        };
        r.add_decision(rec("A", 1, "bob", "phone", "t1", &["all1"]));
        r.add_decision(rec("A", 2, "bob", "laptop", "t2", &["all1"]));
        let asked = r.now();
        // While the answer was on its way: 1 disconnected, 3 connected and left at once.
        r.remove(&k(1));
        r.remove(&k(3));
        let listed = vec![(k(1), "bob".into()), (k(2), "bob".into()), (k(3), "carol".into())];
        let complete: HashMap<String, HashSet<u64>> =
            [("A".to_string(), [1, 2, 3].into_iter().collect())].into();
        assert_eq!(r.reconcile(asked, listed.clone(), &complete), 0);
        assert_eq!(r.len(), 1, "only the live one stays");
        assert_eq!(r.by_tid("t2"), vec![k(2)], "its decision kept");
        // The reconcile is over: a list asked later than the removals is believed again.
        let later = r.now();
        assert_eq!(r.reconcile(later, listed, &complete), 0);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn the_first_record_of_a_connection_keeps_its_place() {
        let mut r = Registry::default();
        let k = |c| ConnKey {
            server: "A".into(),
            cid: c,
        };
        r.add_seen(k(2), "bob");
        r.add_decision(rec("A", 1, "bob", "phone", "t1", &["all1"]));
        // The decision of the first comes after its connect event: it stays the oldest.
        r.add_decision(rec("A", 2, "bob", "laptop", "t2", &["all1"]));
        let none = HashSet::new();
        let mut view = r.limit_view("bob", &none);
        view.sort_by_key(|c| c.order);
        let order: Vec<u64> = view.iter().map(|c| c.key.cid).collect();
        assert_eq!(order, vec![2, 1]);
        assert_eq!(view[0].session, Some("s-bob-laptop"));
        assert_eq!(r.count("bob"), 2);
        r.remove(&k(2));
        assert_eq!(r.limit_view("bob", &none).len(), 1);
        let skip: HashSet<ConnKey> = [k(1)].into();
        assert!(r.limit_view("bob", &skip).is_empty());
    }

    #[test]
    fn a_decision_the_server_does_not_list_yet_survives_one_list() {
        let mut r = Registry::default();
        let k = |c| ConnKey {
            server: "A".into(),
            cid: c,
        };
        let lists = |cids: &[u64]| -> HashMap<String, HashSet<u64>> {
            [("A".to_string(), cids.iter().copied().collect())].into()
        };
        // The record came before nats-server registered the connection in its account.
        r.add_decision(rec("A", 1, "bob", "phone", "t1", &["all1"]));
        let asked = r.now();
        assert_eq!(r.reconcile(asked, vec![], &lists(&[])), 0);
        assert_eq!(r.by_tid("t1"), vec![k(1)], "kept, with its decision");
        // The next list names it: no longer suspect.
        let asked = r.now();
        assert_eq!(r.reconcile(asked, vec![(k(1), "bob".into())], &lists(&[1])), 0);
        assert_eq!(r.reconcile(asked, vec![], &lists(&[])), 0, "a first miss again");
        // Gone without a disconnect event: the second list in a row that misses it drops it.
        assert_eq!(r.reconcile(asked, vec![], &lists(&[])), 1);
        assert!(r.is_empty());
    }
}
