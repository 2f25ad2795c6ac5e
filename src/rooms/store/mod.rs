//! Where rooms live, behind [`RoomStore`], with two backends: [`embedded::RedbRooms`] (redb
//! tables beside the token store, one process) and [`jetstream::KvRooms`] (a JetStream
//! bucket every instance shares and watches).
//!
//! Both keep a room as one record (its creator its first owner, see [`RoomRecord`]) and
//! every membership as a record of its own, tied to the room's incarnation: no change is
//! ever half-written. A room is created or deleted by one write of its record; a membership
//! written for a room deleted meanwhile, or left behind by a crash while a room's
//! memberships were removed, grants nothing and is swept ([`RoomStore::remove_orphans`]).

use super::index::Orphan;
use super::model::{MemberRecord, RoomError, RoomEvent, RoomRecord};

pub mod embedded;
pub mod jetstream;

pub use embedded::RedbRooms;
pub use jetstream::KvRooms;

/// What a write committed: the events to apply (the embedded store applies them at once,
/// in commit order) and, for the shared store, the revision its watch will bring them at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    pub events: Vec<RoomEvent>,
    pub revision: Option<u64>,
}

/// The rooms' store. Every operation is one change: it happens whole or not at all.
#[async_trait::async_trait]
pub trait RoomStore: Send + Sync {
    /// Everything stored, as events in order (the embedded store's start; the shared
    /// store is followed instead, see [`jetstream::KvRooms::follow`]).
    async fn load(&self) -> Result<Vec<RoomEvent>, RoomError>;

    /// Create `room` (its creator its first owner), unless the name is taken:
    /// [`RoomError::RoomExists`].
    async fn create(&self, room: &RoomRecord) -> Result<Committed, RoomError>;

    /// Delete the room `name`, then the memberships `members` of it: `None` if there was no
    /// such room.
    async fn delete(&self, name: &str, members: &[String]) -> Result<Option<Committed>, RoomError>;

    /// Write `user`'s membership of `room` (whose incarnation `member.room_id` names):
    /// [`RoomError::UnknownRoom`] when that room is gone.
    async fn put_member(&self, room: &str, user: &str, member: &MemberRecord)
    -> Result<Committed, RoomError>;

    /// Remove `user`'s membership record of `room`: `None` if there was none.
    async fn remove_member(&self, room: &str, user: &str) -> Result<Option<Committed>, RoomError>;

    /// Remove memberships that grant nothing, if they still do (the index found them).
    async fn remove_orphans(&self, orphans: &[Orphan]) -> Result<Committed, RoomError>;
}

/// A store failure, for the caller (logged with its cause there).
fn unavailable(what: &str, e: impl std::fmt::Display) -> RoomError {
    RoomError::Store(format!("{what}: {e}"))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, RoomError> {
    serde_json::to_vec(v).map_err(|e| unavailable("encode", e))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, RoomError> {
    serde_json::from_slice(bytes).map_err(|e| unavailable(what, e))
}
