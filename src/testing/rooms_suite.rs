//! The rooms' store as one suite, run on every backend: the unit tests run it on redb, the
//! integration tests on JetStream KV (a real nats-server). What it holds every store to:
//! changes of one room made at once end as the last committed one; a crash between the
//! writes of a change leaves nothing that grants access; the index a restart loads equals
//! the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::RoomSettings;
use crate::permissions::{Access, Snapshot};
use crate::rooms::service::NewMember;
use crate::rooms::store::RoomStore;
use crate::rooms::{Actor, JoinPolicy, NewRoom, RoomError, RoomIndex, RoomService};

/// One instance of the service's rooms, loaded (and, on JetStream, following its bucket
/// until dropped).
pub struct Instance {
    pub rooms: Arc<RoomService>,
    pub store: Arc<dyn RoomStore>,
    /// Whatever the backend keeps with it (the database; what keeps it following its store).
    pub keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// A rooms store under test.
#[async_trait::async_trait]
pub trait RoomsBackend: Sync {
    /// An instance over this backend's data: the same data every time (after dropping the
    /// previous one, a restart; while it lives, another instance where the store allows).
    async fn instance(&self) -> Instance;
    /// What a crash in the middle of deleting `room` leaves behind: as far as the backend
    /// can be cut between the writes of one change.
    async fn crash_mid_delete(&self, instance: &Instance, room: &str);
}

/// A service over `store` with the default rules (no reserved names).
pub fn service(store: Arc<dyn RoomStore>, shared: bool) -> Arc<RoomService> {
    Arc::new(RoomService::new(
        store,
        Arc::new(RoomIndex::default()),
        RoomSettings::default(),
        Vec::new(),
        shared,
    ))
}

fn actor(user: &str) -> Actor<'_> {
    Actor {
        user,
        admin: false,
        may_create: true,
    }
}

fn member(user: &str, access: Access) -> NewMember<'_> {
    NewMember {
        user,
        access,
        owner: false,
        known: true,
    }
}

fn new_room(name: &str) -> NewRoom {
    NewRoom {
        name: name.into(),
        description: Some("a room".into()),
        join: JoinPolicy::Invite,
    }
}

/// One room as an index holds it: join policy, creator, members (access, owner).
type Held = (JoinPolicy, String, Vec<(String, Access, bool)>);

/// Everything an index holds, comparable, by room.
fn state(index: &RoomIndex) -> BTreeMap<String, Held> {
    index
        .all_rooms()
        .into_iter()
        .map(|r| {
            let members = index.members(&r.name);
            (r.name.clone(), (r.join, r.created_by.clone(), members))
        })
        .collect()
}

pub async fn changes_are_in_the_index_and_a_restart_loads_the_same(b: &dyn RoomsBackend) {
    let empty = Snapshot::empty();
    let before = {
        let i = b.instance().await;
        let rooms = &i.rooms;
        rooms
            .create(&actor("alice"), new_room("proj"), &empty, 1)
            .await
            .unwrap();
        let open = NewRoom {
            join: JoinPolicy::Open,
            ..new_room("lobby")
        };
        rooms.create(&actor("bob"), open, &empty, 1).await.unwrap();
        let err = rooms
            .create(&actor("carol"), new_room("proj"), &empty, 2)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "room-exists");
        for (user, access) in [
            ("bob", Access::Read),
            ("carol", Access::ReadWrite),
            ("dave", Access::Write),
        ] {
            rooms
                .put_member(&actor("alice"), "proj", member(user, access), 3)
                .await
                .unwrap();
        }
        rooms
            .put_member(&actor("alice"), "proj", member("bob", Access::ReadWrite), 4)
            .await
            .unwrap();
        rooms
            .remove_member(&actor("dave"), "proj", "dave", 5)
            .await
            .unwrap();
        rooms.join(&actor("carol"), "lobby", 6).await.unwrap();
        let err = rooms.join(&actor("carol"), "proj", 6).await.unwrap_err();
        assert_eq!(err.code(), "room-not-open");
        let err = rooms
            .put_member(&actor("bob"), "proj", member("erin", Access::Read), 7)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "not-room-owner");
        let idx = rooms.index();
        assert_eq!(idx.access("bob", "proj"), Some(Access::ReadWrite));
        assert_eq!(idx.access("dave", "proj"), None);
        assert_eq!(idx.access("carol", "lobby"), Some(Access::ReadWrite));
        assert_eq!(idx.owned_by("alice"), 1);
        state(idx)
    };
    assert_eq!(before.len(), 2);
    let again = b.instance().await;
    assert_eq!(
        state(again.rooms.index()),
        before,
        "the index a restart loads equals the store"
    );
}

pub async fn changes_of_one_room_at_once_end_as_the_last_committed(b: &dyn RoomsBackend) {
    let empty = Snapshot::empty();
    let i = b.instance().await;
    let rooms = i.rooms.clone();
    rooms
        .create(&actor("alice"), new_room("busy"), &empty, 1)
        .await
        .unwrap();
    // Twenty members added, ten of them removed, all at once; and one member changed
    // by many writers at once.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..20 {
        let rooms = rooms.clone();
        tasks.spawn(async move {
            let user = format!("u{n}");
            rooms
                .put_member(&actor("alice"), "busy", member(&user, Access::Read), 2)
                .await
                .unwrap();
            if n % 2 == 0 {
                rooms
                    .remove_member(&actor("alice"), "busy", &user, 3)
                    .await
                    .unwrap();
            }
        });
    }
    for n in 0..10 {
        let rooms = rooms.clone();
        let access = if n % 2 == 0 { Access::Read } else { Access::Write };
        tasks.spawn(async move {
            rooms
                .put_member(&actor("alice"), "busy", member("zed", access), 4)
                .await
                .unwrap();
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let idx = rooms.index();
    let held: Vec<String> = idx.members("busy").into_iter().map(|(u, _, _)| u).collect();
    let mut want: Vec<String> = (0..20).filter(|n| n % 2 == 1).map(|n| format!("u{n}")).collect();
    want.extend(["alice".into(), "zed".into()]);
    want.sort();
    assert_eq!(held, want);
    let zed = idx.access("zed", "busy");
    assert!(matches!(zed, Some(Access::Read | Access::Write)));
    // The store holds what this instance holds: the last write to zed's membership stands.
    let live = state(idx);
    drop(rooms);
    drop(i);
    let again = b.instance().await;
    assert_eq!(state(again.rooms.index()), live);
}

pub async fn a_crash_between_writes_leaves_nothing_that_grants(b: &dyn RoomsBackend) {
    let empty = Snapshot::empty();
    let i = b.instance().await;
    i.rooms
        .create(&actor("alice"), new_room("doomed"), &empty, 1)
        .await
        .unwrap();
    for user in ["bob", "carol"] {
        i.rooms
            .put_member(&actor("alice"), "doomed", member(user, Access::ReadWrite), 2)
            .await
            .unwrap();
    }
    b.crash_mid_delete(&i, "doomed").await;
    drop(i);
    let again = b.instance().await;
    let idx = again.rooms.index();
    match idx.room("doomed") {
        // The change never happened: the room is whole.
        Some(_) => assert_eq!(idx.members("doomed").len(), 3),
        // It happened: nobody holds the room, whatever memberships were left.
        None => {
            for user in ["alice", "bob", "carol"] {
                assert_eq!(idx.access(user, "doomed"), None, "{user}");
            }
        }
    }
    // A room of that name made again starts empty.
    if idx.room("doomed").is_none() {
        again
            .rooms
            .create(&actor("erin"), new_room("doomed"), &empty, 3)
            .await
            .unwrap();
        assert_eq!(idx.members("doomed").len(), 1, "only its creator");
        assert_eq!(idx.access("bob", "doomed"), None);
    }
    // The sweep removes what a crash left; a restart finds no orphan in the store.
    again.rooms.sweep(10_000, Duration::ZERO).await.unwrap();
    assert!(idx.orphans().is_empty());
    drop(again);
    let last = b.instance().await;
    assert!(
        last.rooms.index().orphans().is_empty(),
        "an orphan is left in the store"
    );
}

pub async fn a_membership_of_a_room_gone_is_refused(b: &dyn RoomsBackend) {
    let empty = Snapshot::empty();
    let i = b.instance().await;
    let rooms = &i.rooms;
    let err = rooms
        .put_member(&actor("alice"), "nowhere", member("bob", Access::Read), 1)
        .await
        .unwrap_err();
    assert_eq!(err, RoomError::UnknownRoom("nowhere".into()));
    rooms
        .create(&actor("alice"), new_room("short"), &empty, 1)
        .await
        .unwrap();
    let id = rooms.index().room("short").unwrap().id;
    rooms.delete(&actor("alice"), "short").await.unwrap();
    // A writer that still had the old room in hand: its membership is refused.
    let stale = crate::rooms::MemberRecord {
        room_id: id,
        access: Access::Read,
        owner: false,
        added_at: 2,
        added_by: "alice".into(),
        left: false,
    };
    assert_eq!(
        i.store
            .put_member("short", "bob", &stale)
            .await
            .unwrap_err()
            .code(),
        "unknown-room"
    );
    assert_eq!(
        rooms.delete(&actor("alice"), "short").await.unwrap_err().code(),
        "unknown-room"
    );
}

#[macro_export]
macro_rules! run_rooms_suite {
    ($backend:expr) => {
        #[tokio::test]
        async fn changes_are_in_the_index_and_a_restart_loads_the_same() {
            let backend = $backend;
            $crate::testing::rooms_suite::changes_are_in_the_index_and_a_restart_loads_the_same(&backend)
                .await;
        }
        #[tokio::test]
        async fn changes_of_one_room_at_once_end_as_the_last_committed() {
            let backend = $backend;
            $crate::testing::rooms_suite::changes_of_one_room_at_once_end_as_the_last_committed(&backend)
                .await;
        }
        #[tokio::test]
        async fn a_crash_between_writes_leaves_nothing_that_grants() {
            let backend = $backend;
            $crate::testing::rooms_suite::a_crash_between_writes_leaves_nothing_that_grants(&backend).await;
        }
        #[tokio::test]
        async fn a_membership_of_a_room_gone_is_refused() {
            let backend = $backend;
            $crate::testing::rooms_suite::a_membership_of_a_room_gone_is_refused(&backend).await;
        }
    };
}
pub use run_rooms_suite as run_suite;

/// The embedded store: a redb file in a temp dir.
pub struct RedbRoomsBackend {
    dir: tempfile::TempDir,
}

impl Default for RedbRoomsBackend {
    fn default() -> Self {
        RedbRoomsBackend {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }
}

#[async_trait::async_trait]
impl RoomsBackend for RedbRoomsBackend {
    async fn instance(&self) -> Instance {
        let db = crate::tokens::store::RedbStore::open(&self.dir.path().join("tokens.redb"))
            .expect("the store opens")
            .database();
        let store: Arc<dyn RoomStore> =
            Arc::new(crate::rooms::store::RedbRooms::open(db.clone()).expect("tables"));
        let rooms = service(store.clone(), false);
        rooms.load().await.expect("loads");
        Instance {
            rooms,
            store,
            keep: Some(Box::new(db)),
        }
    }

    /// A delete is one write transaction: cut short after removing the room's record (the
    /// process dies before the commit), it leaves everything as it was.
    async fn crash_mid_delete(&self, instance: &Instance, room: &str) {
        let db = instance
            .keep
            .as_ref()
            .and_then(|k| k.downcast_ref::<Arc<redb::Database>>())
            .expect("the database");
        let w = db.begin_write().expect("a write");
        {
            let mut rooms = w
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("rooms"))
                .expect("the rooms' table");
            rooms.remove(room).expect("removed in the transaction");
        }
        drop(w);
    }
}
