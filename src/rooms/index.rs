//! The rooms in memory: every room and membership the store holds, kept current from it,
//! indexed per user and per room. Decisions read it and never the store.
//!
//! A membership counts (is *effective*) only while its room exists with the same
//! [`RoomRecord::id`]: a membership left by a crash, or written for a room deleted meanwhile,
//! is held but grants nothing. Every applied change says whose access it changed
//! ([`AccessChange`]), for live enforcement and notices ([`RoomIndex::subscribe`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::model::{AccessChange, MemberRecord, RoomEvent, RoomRecord};
use crate::permissions::Access;

/// Every room and membership, indexed.
pub struct RoomIndex {
    inner: RwLock<Inner>,
    /// Bumped by every change that changed someone's access.
    epoch: AtomicU64,
    changes: broadcast::Sender<Arc<Vec<AccessChange>>>,
    /// The shared store's revision applied so far (0 for the embedded store).
    applied: watch::Sender<u64>,
}

impl Default for RoomIndex {
    fn default() -> Self {
        RoomIndex {
            inner: RwLock::default(),
            epoch: AtomicU64::new(0),
            changes: broadcast::channel(1024).0,
            applied: watch::channel(0).0,
        }
    }
}

impl std::fmt::Debug for RoomIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rooms, members) = self.counts();
        f.debug_struct("RoomIndex")
            .field("rooms", &rooms)
            .field("memberships", &members)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    /// Names shared by the maps below.
    names: HashSet<Arc<str>>,
    rooms: BTreeMap<Arc<str>, RoomRecord>,
    /// Every membership held, by room name (effective or not).
    members: HashMap<Arc<str>, HashMap<Arc<str>, MemberRecord>>,
    /// Effective memberships by user.
    by_user: HashMap<Arc<str>, HashMap<Arc<str>, Access>>,
    /// Effective owner memberships by user.
    owned: HashMap<Arc<str>, usize>,
    memberships: usize,
}

/// What a user holds of a room: access, and whether as an owner.
type Held = Option<(Access, bool)>;

impl Inner {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(n) = self.names.get(s) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(s);
        self.names.insert(n.clone());
        n
    }

    /// What `user` holds of `room`: their membership of this incarnation of the room, or as
    /// its creator (the first owner) when they have none.
    fn held(&self, room: &str, user: &str) -> Held {
        let r = self.rooms.get(room)?;
        match self.members.get(room).and_then(|m| m.get(user)) {
            Some(m) if m.room_id == r.id => (!m.left).then_some((m.access, m.owner)),
            _ if r.created_by == user => Some((Access::ReadWrite, true)),
            _ => None,
        }
    }

    /// Everyone whose holding of `room` a change of the room itself may touch.
    fn concerned(&self, room: &str) -> Vec<Arc<str>> {
        let mut users: Vec<Arc<str>> = self
            .members
            .get(room)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(r) = self.rooms.get(room) {
            let creator = r.created_by.clone();
            users.push(
                self.names
                    .get(creator.as_str())
                    .cloned()
                    .unwrap_or_else(|| Arc::from(creator)),
            );
        }
        users
    }

    /// Apply `f` to `room`, judging `users` before and after (and, for a change of the room
    /// itself, everyone concerned after it): the index per user follows, and every change of
    /// access is reported.
    fn judged(
        &mut self,
        room: &Arc<str>,
        users: Vec<Arc<str>>,
        whole_room: bool,
        f: impl FnOnce(&mut Inner),
        out: &mut Vec<AccessChange>,
    ) {
        let before: Vec<Held> = users.iter().map(|u| self.held(room, u)).collect();
        f(self);
        let mut users = users;
        if whole_room {
            users.extend(self.concerned(room));
        }
        let mut seen = HashSet::new();
        for (i, user) in users.iter().enumerate() {
            if !seen.insert(user.clone()) {
                continue;
            }
            let b = match before.get(i) {
                Some(b) => *b,
                // Concerned only after the change (a new creator): held nothing before.
                None => None,
            };
            let a = self.held(room, user);
            if a != b {
                let user = self.intern(user);
                self.update(room, &user, b, a);
                out.push(change(&user, room, b.map(|h| h.0), a.map(|h| h.0)));
            }
        }
    }

    /// Keep the per-user maps as `user` now holds `room`.
    fn update(&mut self, room: &Arc<str>, user: &Arc<str>, before: Held, after: Held) {
        match after {
            Some((a, _)) => {
                self.by_user
                    .entry(user.clone())
                    .or_default()
                    .insert(room.clone(), a);
            }
            None => {
                if let Some(rooms) = self.by_user.get_mut(user) {
                    rooms.remove(room);
                    if rooms.is_empty() {
                        self.by_user.remove(user);
                    }
                }
            }
        }
        let (was, is) = (before.is_some_and(|h| h.1), after.is_some_and(|h| h.1));
        if was != is {
            let n = self.owned.entry(user.clone()).or_default();
            if is {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.owned.remove(user);
                }
            }
        }
    }

    fn apply(&mut self, event: &RoomEvent, out: &mut Vec<AccessChange>) {
        match event {
            RoomEvent::Room(r) => {
                let name = self.intern(&r.name);
                let users = self.concerned(&name);
                let r = r.clone();
                let key = name.clone();
                self.judged(
                    &name,
                    users,
                    true,
                    move |i| {
                        i.rooms.insert(key, r);
                    },
                    out,
                );
            }
            RoomEvent::RoomDeleted(room) => {
                let name = self.intern(room);
                let users = self.concerned(&name);
                self.judged(
                    &name,
                    users,
                    true,
                    |i| {
                        // Its memberships stay until the store says they are gone: they grant
                        // nothing without the room, and one a crash left behind is an orphan
                        // to sweep.
                        i.rooms.remove(room.as_str());
                    },
                    out,
                );
            }
            RoomEvent::Member { room, user, member } => {
                let (room, user) = (self.intern(room), self.intern(user));
                let member = member.clone();
                let (r, u) = (room.clone(), user.clone());
                self.judged(
                    &room,
                    vec![user],
                    false,
                    move |i| {
                        if i.members.entry(r).or_default().insert(u, member).is_none() {
                            i.memberships += 1;
                        }
                    },
                    out,
                );
            }
            RoomEvent::MemberRemoved { room, user } => {
                let (room, user) = (self.intern(room), self.intern(user));
                let (r, u) = (room.clone(), user.clone());
                self.judged(
                    &room,
                    vec![user],
                    false,
                    move |i| {
                        if i.members.get_mut(&r).and_then(|m| m.remove(&u)).is_some() {
                            i.memberships -= 1;
                        }
                    },
                    out,
                );
            }
        }
    }

    /// Explicit memberships of `room` that grant nothing in it (another incarnation's).
    fn stale(&self, room: &str, m: &MemberRecord) -> bool {
        self.rooms.get(room).is_none_or(|r| r.id != m.room_id)
    }
}

fn change(user: &str, room: &str, before: Option<Access>, after: Option<Access>) -> AccessChange {
    AccessChange {
        user: user.to_string(),
        room: room.to_string(),
        before,
        after,
    }
}

/// A membership that grants nothing: its room is gone, or was created again since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub room: String,
    pub user: String,
    pub added_at: i64,
}

impl RoomIndex {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply committed changes in order; what they changed of anyone's access is returned
    /// and told to subscribers.
    pub fn apply(&self, events: &[RoomEvent]) -> Vec<AccessChange> {
        let out = self.apply_quietly(events);
        if !out.is_empty() {
            let _ = self.changes.send(Arc::new(out.clone()));
        }
        out
    }

    /// [`RoomIndex::apply`] without telling subscribers: loading what the store held
    /// before this instance started is no change of anyone's access.
    pub fn apply_quietly(&self, events: &[RoomEvent]) -> Vec<AccessChange> {
        let mut out = Vec::new();
        {
            let mut inner = self.write();
            for e in events {
                inner.apply(e, &mut out);
            }
        }
        if !out.is_empty() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
        out
    }

    /// Changes of access as they are applied.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<AccessChange>>> {
        self.changes.subscribe()
    }

    /// Bumped by every change of access: a decision made before it may be stale.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// `user`'s access to `room` through data, if any.
    pub fn access(&self, user: &str, room: &str) -> Option<Access> {
        self.read().by_user.get(user)?.get(room).copied()
    }

    /// Every room `user` is a member of, with the access, by name.
    pub fn rooms_of(&self, user: &str) -> Vec<(String, Access)> {
        let inner = self.read();
        let mut out: Vec<(String, Access)> = inner
            .by_user
            .get(user)
            .map(|r| r.iter().map(|(n, a)| (n.to_string(), *a)).collect())
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    /// The room `name`, if it exists.
    pub fn room(&self, name: &str) -> Option<RoomRecord> {
        self.read().rooms.get(name).cloned()
    }

    /// What `user` holds of `room`: the access and whether as an owner.
    pub fn held(&self, room: &str, user: &str) -> Option<(Access, bool)> {
        self.read().held(room, user)
    }

    /// Everyone who holds `room`, by user: access and whether an owner.
    pub fn members(&self, room: &str) -> Vec<(String, Access, bool)> {
        let inner = self.read();
        let mut out: Vec<(String, Access, bool)> = inner
            .concerned(room)
            .into_iter()
            .filter_map(|u| inner.held(room, &u).map(|(a, o)| (u.to_string(), a, o)))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The explicit membership record of `user` in `room`, effective or not (the store
    /// removes it when the room goes).
    pub fn record(&self, room: &str, user: &str) -> Option<MemberRecord> {
        self.read().members.get(room)?.get(user).cloned()
    }

    /// Every explicit membership record of `room` (what deleting it removes).
    pub fn records(&self, room: &str) -> Vec<String> {
        self.read()
            .members
            .get(room)
            .map(|m| m.keys().map(|u| u.to_string()).collect())
            .unwrap_or_default()
    }

    /// How many rooms `user` owns.
    pub fn owned_by(&self, user: &str) -> usize {
        self.read().owned.get(user).copied().unwrap_or(0)
    }

    /// Open rooms after `after` (by name), at most `limit`, for which `skip` is false.
    pub fn open_rooms(
        &self,
        after: Option<&str>,
        limit: usize,
        skip: impl Fn(&str) -> bool,
    ) -> Vec<RoomRecord> {
        let inner = self.read();
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        inner
            .rooms
            .range::<str, _>((from, std::ops::Bound::Unbounded))
            .map(|(_, r)| r)
            .filter(|r| r.join == super::JoinPolicy::Open && !skip(&r.name))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Every room, by name (the console).
    pub fn all_rooms(&self) -> Vec<RoomRecord> {
        self.read().rooms.values().cloned().collect()
    }

    /// Up to `limit` rooms in name order after `after`: a range of the sorted map, so a page
    /// costs its own size, whatever the number of rooms.
    pub fn rooms_page(&self, after: Option<&str>, limit: usize) -> Vec<RoomRecord> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.read()
            .rooms
            .range::<str, _>((from, Bound::Unbounded))
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Memberships that grant nothing (their room is gone or was made again).
    pub fn orphans(&self) -> Vec<Orphan> {
        let inner = self.read();
        let mut out = Vec::new();
        for (room, members) in &inner.members {
            for (user, m) in members {
                if inner.stale(room, m) {
                    out.push(Orphan {
                        room: room.to_string(),
                        user: user.to_string(),
                        added_at: m.added_at,
                    });
                }
            }
        }
        out
    }

    /// Rooms and memberships held.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.read();
        (inner.rooms.len(), inner.memberships)
    }

    /// The shared store's revision applied so far.
    pub fn set_applied(&self, revision: u64) {
        self.applied.send_if_modified(|r| {
            let newer = revision > *r;
            if newer {
                *r = revision;
            }
            newer
        });
    }

    /// Wait until the shared store's revision `revision` is applied (a change just written
    /// is then visible here); `false` after `timeout`.
    pub async fn wait_applied(&self, revision: u64, timeout: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::JoinPolicy;

    use crate::testing::member_event as member;

    fn room(name: &str, id: &str, join: JoinPolicy) -> RoomEvent {
        crate::testing::room_event(name, id, "alice", join)
    }

    fn removed(room: &str, user: &str) -> RoomEvent {
        RoomEvent::MemberRemoved {
            room: room.into(),
            user: user.into(),
        }
    }

    #[test]
    fn a_room_and_its_first_owner_are_one_record() {
        let i = RoomIndex::default();
        let ch = i.apply(&[room("r", "1", JoinPolicy::Invite)]);
        assert_eq!(ch.len(), 1);
        assert!(ch[0].gained() && ch[0].user == "alice");
        assert_eq!(i.held("r", "alice"), Some((Access::ReadWrite, true)));
        assert_eq!(i.owned_by("alice"), 1);
        // The creator's own membership, when written, is what counts.
        let ch = i.apply(&[member("r", "1", "alice", Access::Read, false)]);
        assert!(ch[0].lost());
        assert_eq!(
            (i.held("r", "alice"), i.owned_by("alice")),
            (Some((Access::Read, false)), 0)
        );
        // Left: the record says so (deleting it would bring the creator's ownership back).
        let mut left = member("r", "1", "alice", Access::Read, false);
        if let RoomEvent::Member { member, .. } = &mut left {
            member.left = true;
        }
        i.apply(&[left]);
        assert_eq!(i.held("r", "alice"), None);
        assert!(i.members("r").is_empty());
    }

    #[test]
    fn a_membership_counts_only_for_its_room() {
        let i = RoomIndex::default();
        i.apply(&[room("r", "1", JoinPolicy::Invite)]);
        i.apply(&[member("r", "1", "bob", Access::Read, false)]);
        assert_eq!(i.rooms_of("bob"), [("r".to_string(), Access::Read)]);
        assert_eq!(i.members("r").len(), 2);
        // Deleted: everybody loses it, and the memberships go.
        let before = i.epoch();
        let ch = i.apply(&[RoomEvent::RoomDeleted("r".into())]);
        assert_eq!(ch.len(), 2);
        assert!(ch.iter().all(AccessChange::lost));
        assert!(i.epoch() > before);
        assert_eq!((i.access("bob", "r"), i.owned_by("alice")), (None, 0));
        // The membership is held (an orphan) until the store removes it.
        assert_eq!(i.counts(), (0, 1));
        assert_eq!(i.orphans().len(), 1);
        i.apply(&[RoomEvent::MemberRemoved {
            room: "r".into(),
            user: "bob".into(),
        }]);
        assert_eq!((i.counts(), i.orphans().len()), ((0, 0), 0));
        // Made again: a membership of the old one (a crash, a race) grants nothing.
        i.apply(&[
            member("r", "1", "bob", Access::Read, false),
            room("r", "2", JoinPolicy::Open),
        ]);
        assert_eq!(i.access("bob", "r"), None);
        assert_eq!(i.orphans().len(), 1);
        assert_eq!(i.open_rooms(None, 10, |_| false).len(), 1);
        assert_eq!(i.open_rooms(Some("r"), 10, |_| false).len(), 0);
    }

    #[test]
    fn changes_of_one_membership_say_what_they_take() {
        let i = RoomIndex::default();
        i.apply(&[
            room("r", "1", JoinPolicy::Invite),
            member("r", "1", "bob", Access::ReadWrite, false),
        ]);
        let ch = i.apply(&[member("r", "1", "bob", Access::Read, false)]);
        assert_eq!(ch.len(), 1);
        assert!(ch[0].lost() && !ch[0].gained());
        let ch = i.apply(&[member("r", "1", "bob", Access::Read, false)]);
        assert!(ch.is_empty(), "the same again changes nothing");
        let ch = i.apply(&[removed("r", "bob")]);
        assert!(ch[0].lost());
        assert!(i.rooms_of("bob").is_empty());
        assert_eq!(i.members("r").len(), 1, "alice, the creator");
    }

    #[tokio::test]
    async fn applied_revisions_are_awaited() {
        let i = Arc::new(RoomIndex::default());
        let j = i.clone();
        let waiter = tokio::spawn(async move { j.wait_applied(5, Duration::from_secs(5)).await });
        i.set_applied(3);
        i.set_applied(5);
        assert!(waiter.await.unwrap());
        assert!(!i.wait_applied(9, Duration::from_millis(10)).await);
    }
}
