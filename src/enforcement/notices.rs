//! Notices: a user's live connections are told on `nats-callout.notice.<user>` when their
//! grant of a room changes, so that a client learns it may now join (or why it lost a room).
//! A notice tells; it never grants: the client reconnects to get the room. Only the enforcer
//! sends them, one message per change, which every connection of the user hears once; the
//! other instances keep theirs for a moment (`Held`), and one that takes over sends those
//! (an enforcer that died may not have).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::permissions::{Access, Snapshot, User};
use crate::rooms::{AccessChange, RoomIndex};

/// The `type` of a notice that a grant changed.
pub const GRANTS_CHANGED: &str = "grants-changed";

/// What changed a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Rooms as data: a membership added, changed or removed, a room deleted.
    Rooms,
    /// The permission files (or the published set) were reloaded.
    Permissions,
}

/// One user's grant of one room changed: `{"type": "grants-changed", "user", "room",
/// "access", "previous", "source"}`, the accesses `none`, `read`, `write` or `readwrite`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub user: String,
    pub room: String,
    pub access: Level,
    pub previous: Level,
    pub source: Source,
}

/// An access as a notice names it (`none` for no access).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    None,
    Read,
    Write,
    Readwrite,
}

impl From<Option<Access>> for Level {
    fn from(a: Option<Access>) -> Self {
        match a {
            None => Level::None,
            Some(Access::Read) => Level::Read,
            Some(Access::Write) => Level::Write,
            Some(Access::ReadWrite) => Level::Readwrite,
        }
    }
}

impl Notice {
    fn new(user: &str, room: &str, before: Option<Access>, after: Option<Access>, source: Source) -> Self {
        Notice {
            kind: GRANTS_CHANGED,
            user: user.to_string(),
            room: room.to_string(),
            access: after.into(),
            previous: before.into(),
            source,
        }
    }

    /// Whether the grant grew (read or write given).
    #[must_use]
    pub fn grew(&self) -> bool {
        let (b, a) = (self.previous, self.access);
        let reads = |l: Level| matches!(l, Level::Read | Level::Readwrite);
        let writes = |l: Level| matches!(l, Level::Write | Level::Readwrite);
        (reads(a) && !reads(b)) || (writes(a) && !writes(b))
    }
}

/// The notice for a change of rooms in data, as `user` holds the room with the files too
/// (`None`: a user the files do not know holds it by data alone): a change the files' grant
/// already covers tells nothing.
#[must_use]
pub fn of_room_change(snapshot: &Snapshot, user: Option<&User>, change: &AccessChange) -> Option<Notice> {
    let files = user.and_then(|u| snapshot.access(u, &change.room));
    let (before, after) = (
        Access::either(files, change.before),
        Access::either(files, change.after),
    );
    (before != after).then(|| Notice::new(&change.user, &change.room, before, after, Source::Rooms))
}

/// Every room `user` holds, by name, from the files and from data.
fn held(snapshot: &Snapshot, rooms: &RoomIndex, user: &User) -> BTreeMap<String, Access> {
    let mut out: BTreeMap<String, Access> = snapshot.rooms_for(user).into_iter().collect();
    for (room, access) in rooms.rooms_of(user.id()) {
        let a = out.get(&room).map_or(access, |f| f.union(access));
        out.insert(room, a);
    }
    out
}

/// The notices for `user` after the files went from `old` to `new` (their data rooms
/// unchanged): one per room whose grant differs. `None` for a user the files do not
/// know: in `old`, they held nothing; in `new`, they are being disconnected.
#[must_use]
pub fn of_reload(
    old: Option<&User>,
    new: &User,
    snapshots: (&Snapshot, &Snapshot),
    rooms: &RoomIndex,
) -> Vec<Notice> {
    let (old_snapshot, new_snapshot) = snapshots;
    let before = old.map(|u| held(old_snapshot, rooms, u)).unwrap_or_default();
    let after = held(new_snapshot, rooms, new);
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter_map(|room| {
            let (b, a) = (before.get(room).copied(), after.get(room).copied());
            (b != a).then(|| Notice::new(new.id(), room, b, a, Source::Permissions))
        })
        .collect()
}

/// The most notices an instance that does not enforce keeps.
const MAX_HELD: usize = 10_000;

/// Notices made while this instance does not enforce, kept for a while: if it takes over, it
/// sends those the enforcer before it may have missed (a change made while it was dying, or
/// while nobody held the lease yet). Some may be told twice then; none is lost.
#[derive(Debug, Default)]
pub(super) struct Held(Mutex<VecDeque<(Instant, Notice)>>);

impl Held {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Notice)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `notice`, made at `now`, forgetting those older than `window` (and the oldest
    /// beyond [`MAX_HELD`]).
    pub fn keep(&self, notice: Notice, now: Instant, window: Duration) {
        let mut q = self.queue();
        while q.front().is_some_and(|(at, _)| now.duration_since(*at) > window) || q.len() >= MAX_HELD {
            q.pop_front();
        }
        q.push_back((now, notice));
    }

    /// Every notice kept that is not older than `window`, oldest first; none is kept after.
    pub fn take(&self, now: Instant, window: Duration) -> Vec<Notice> {
        let mut q = self.queue();
        q.drain(..)
            .filter(|(at, _)| now.duration_since(*at) <= window)
            .map(|(_, n)| n)
            .collect()
    }
}

/// Publish every notice queued, in order, until `stop`.
pub(super) async fn send(
    client: async_nats::Client,
    mut queue: mpsc::UnboundedReceiver<Notice>,
    stop: CancellationToken,
) {
    loop {
        let notice = tokio::select! {
            () = stop.cancelled() => return,
            n = queue.recv() => match n {
                Some(n) => n,
                None => return,
            },
        };
        let subject = crate::wire::notice_subject(&notice.user);
        let body = match serde_json::to_vec(&notice) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "a notice could not be encoded");
                continue;
            }
        };
        match client.publish(subject, body.into()).await {
            Ok(()) => {
                metrics::counter!("nats_callout_notices_total", "source" => source_label(notice.source))
                    .increment(1);
                debug!(user = %notice.user, room = %notice.room, access = ?notice.access, "notice sent");
            }
            Err(e) => warn!(user = %notice.user, error = %e, "a notice could not be sent"),
        }
    }
}

fn source_label(s: Source) -> &'static str {
    match s {
        Source::Rooms => "rooms",
        Source::Permissions => "permissions",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::JoinPolicy;
    use crate::testing::{member_event, room_event, snapshot};

    const FILES: &str = r#"
[users.bob]
[users.bob.rooms]
news = "read"
"team-*" = "read"
[users.alice]
[users.root]
roles = ["admin"]
[rooms.all1]
members = ["bob", "alice"]
"#;

    fn change(user: &str, room: &str, before: Option<Access>, after: Option<Access>) -> AccessChange {
        AccessChange {
            user: user.into(),
            room: room.into(),
            before,
            after,
        }
    }

    #[test]
    fn a_data_change_is_told_as_the_user_holds_the_room_with_the_files() {
        let s = snapshot(FILES);
        let bob = s.user("bob").unwrap();
        // A new room: told, and it grew.
        let n = of_room_change(&s, Some(bob), &change("bob", "proj", None, Some(Access::Read))).unwrap();
        assert_eq!(
            (n.previous, n.access, n.source),
            (Level::None, Level::Read, Source::Rooms)
        );
        assert!(n.grew());
        // Write on a room the files let him read: readwrite now.
        let n = of_room_change(&s, Some(bob), &change("bob", "news", None, Some(Access::Write))).unwrap();
        assert_eq!((n.previous, n.access), (Level::Read, Level::Readwrite));
        // Read on a room the files already give read: nothing to tell.
        assert_eq!(
            of_room_change(&s, Some(bob), &change("bob", "news", None, Some(Access::Read))),
            None
        );
        assert_eq!(
            of_room_change(&s, Some(bob), &change("bob", "team-x", None, Some(Access::Read))),
            None
        );
        // Taken back: told, and it did not grow.
        let n = of_room_change(
            &s,
            Some(bob),
            &change("bob", "proj", Some(Access::ReadWrite), None),
        )
        .unwrap();
        assert_eq!((n.previous, n.access), (Level::Readwrite, Level::None));
        assert!(!n.grew());
        // The JSON a client reads.
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "grants-changed", "user": "bob", "room": "proj",
                "access": "none", "previous": "readwrite", "source": "rooms"})
        );
        // A user of data alone (a provider's, not in the files).
        let n = of_room_change(&s, None, &change("eve", "news", None, Some(Access::Read))).unwrap();
        assert_eq!((n.previous, n.access), (Level::None, Level::Read));
    }

    #[test]
    fn held_notices_are_the_recent_ones_in_order_and_bounded() {
        let held = Held::default();
        let t0 = Instant::now();
        let window = Duration::from_secs(10);
        let n = |room: &str| Notice::new("bob", room, None, Some(Access::Read), Source::Rooms);
        held.keep(n("old"), t0, window);
        held.keep(n("a"), t0 + Duration::from_secs(8), window);
        held.keep(n("b"), t0 + Duration::from_secs(9), window);
        let rooms: Vec<String> = held
            .take(t0 + Duration::from_secs(15), window)
            .into_iter()
            .map(|n| n.room)
            .collect();
        assert_eq!(rooms, ["a", "b"]);
        assert!(
            held.take(t0 + Duration::from_secs(15), window).is_empty(),
            "taken once"
        );
        for i in 0..MAX_HELD + 5 {
            held.keep(n(&format!("r{i}")), t0, window);
        }
        let kept = held.take(t0, window);
        assert_eq!(kept.len(), MAX_HELD);
        assert_eq!(kept[0].room, "r5", "the oldest go first");
    }

    #[test]
    fn a_reload_tells_each_room_whose_grant_differs() {
        let rooms = RoomIndex::default();
        rooms.apply(&[
            room_event("proj", "1", "alice", JoinPolicy::Invite),
            member_event("proj", "1", "bob", Access::Read, false),
        ]);
        let old = snapshot(FILES);
        let new = snapshot(&FILES.replace(
            "news = \"read\"",
            "news = \"readwrite\"\nproj = \"write\"\nextra = \"read\"",
        ));
        let (o, n) = (old.user("bob"), new.user("bob").unwrap());
        let mut got: Vec<(String, Level, Level)> = of_reload(o, n, (&old, &new), &rooms)
            .into_iter()
            .map(|n| (n.room, n.previous, n.access))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("extra".into(), Level::None, Level::Read),
                ("news".into(), Level::Read, Level::Readwrite),
                // The files' write joins the data membership's read.
                ("proj".into(), Level::Read, Level::Readwrite),
            ]
        );
        // Unchanged files: nothing.
        assert!(of_reload(o, old.user("bob").unwrap(), (&old, &old), &rooms).is_empty());
        // A user new to the files: every room they hold is news.
        let carol_files = snapshot(&format!(
            "{FILES}\n[users.carol]\n[users.carol.rooms]\nc1 = \"read\"\n"
        ));
        let got = of_reload(
            None,
            carol_files.user("carol").unwrap(),
            (&old, &carol_files),
            &rooms,
        );
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].room.as_str(), got[0].access), ("c1", Level::Read));
    }
}
