//! Rooms as data: rooms created, shared and taken back by users and apps at run time, beside
//! the rooms of the permission files. A user's access is the union of both; a room the files
//! name or match by a pattern cannot be created in data, so data never widens a file room.
//!
//! - [`model`]: a room, a membership, a change, and why an operation is refused;
//! - [`index`]: every room and membership in memory, which decisions read (never the store);
//! - [`store`]: the redb tables and the JetStream bucket they are kept in;
//! - [`service`]: the operations and who may do them, for the HTTP API and
//!   [`requests`] (`auth.v1.rooms.*`, for app services).

pub mod index;
pub mod model;
pub mod requests;
pub mod service;
pub mod store;

pub use index::RoomIndex;
pub use model::{AccessChange, JoinPolicy, MemberRecord, RoomError, RoomEvent, RoomRecord};
pub use service::{Actor, MemberView, NewRoom, RoomService, RoomView};

use crate::permissions::{Access, Snapshot, User};

/// What `user` may do in `room`: the permission files' grant and their membership in data,
/// together.
#[must_use]
pub fn access(snapshot: &Snapshot, index: &RoomIndex, user: &User, room: &str) -> Option<Access> {
    let files = snapshot.access(user, room);
    if files == Some(Access::ReadWrite) {
        return files;
    }
    Access::either(files, index.access(user.id(), room))
}

#[cfg(test)]
mod suite {
    //! The store suite on the embedded store.
    crate::testing::rooms_suite::run_suite!(crate::testing::rooms_suite::RedbRoomsBackend::default());
}
