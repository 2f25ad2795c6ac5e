//! What a room in data is: its record, its members, the changes to them, and why an
//! operation on them is refused.

use serde::{Deserialize, Serialize};

use crate::permissions::Access;

/// Who may join a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinPolicy {
    /// Only those an owner (or an admin) adds.
    #[default]
    Invite,
    /// Anyone may join; a user is granted the room once joined.
    Open,
}

/// A room created as data. Its creator is its first owner (read and write) until a
/// membership of theirs says otherwise, so that a room and its first owner are one record:
/// created in one write, whatever the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRecord {
    pub name: String,
    /// This incarnation of the name: a membership counts only for the room it was made in
    /// (a room deleted and created again starts empty, whatever a crash left behind).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub join: JoinPolicy,
    pub created_at: i64,
    pub created_by: String,
}

/// One user's membership of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRecord {
    /// The [`RoomRecord::id`] of the room it was made in.
    pub room_id: String,
    pub access: Access,
    #[serde(default)]
    pub owner: bool,
    pub added_at: i64,
    pub added_by: String,
    /// The member left or was removed (kept only for the room's creator, whose first
    /// ownership the room record itself holds).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left: bool,
}

/// A committed change, as the index applies it. `revision` orders changes of the shared
/// store (0 for the embedded one, whose changes are applied in commit order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    Room(RoomRecord),
    RoomDeleted(String),
    Member {
        room: String,
        user: String,
        member: MemberRecord,
    },
    MemberRemoved {
        room: String,
        user: String,
    },
}

/// How one user's access to one room changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessChange {
    pub user: String,
    pub room: String,
    pub before: Option<Access>,
    pub after: Option<Access>,
}

impl AccessChange {
    /// Whether anything was taken away (read or write).
    #[must_use]
    pub fn lost(&self) -> bool {
        match (self.before, self.after) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(b), Some(a)) => (b.can_read() && !a.can_read()) || (b.can_write() && !a.can_write()),
        }
    }

    /// Whether anything was given (read or write).
    #[must_use]
    pub fn gained(&self) -> bool {
        match (self.before, self.after) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(b), Some(a)) => (a.can_read() && !b.can_read()) || (a.can_write() && !b.can_write()),
        }
    }
}

/// Why an operation on rooms was refused. [`RoomError::code`] is the stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("invalid room name {0:?}: letters, digits, '_' and '-', at most 64, not a reserved name")]
    BadRoomName(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("room {0:?} exists (in data, or defined or matched by the permission files)")]
    RoomExists(String),
    #[error("no room {0:?}")]
    UnknownRoom(String),
    #[error("no user {0:?} is known to the service")]
    UnknownUser(String),
    #[error("only the room's owners (and admins) may do this")]
    NotRoomOwner,
    #[error("you own {owned} rooms, the most allowed (rooms.max_owned)")]
    TooManyRooms { owned: usize },
    #[error("room {0:?} is not open: only its owners add members")]
    RoomNotOpen(String),
    #[error("your roles and groups may not create rooms (rooms.creators)")]
    NotCreator,
    #[error("room store: {0}")]
    Store(String),
}

impl RoomError {
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            RoomError::BadRoomName(_) => "bad-room-name",
            RoomError::BadRequest(_) => "bad-request",
            RoomError::RoomExists(_) => "room-exists",
            RoomError::UnknownRoom(_) => "unknown-room",
            RoomError::UnknownUser(_) => "unknown-user",
            RoomError::NotRoomOwner => "not-room-owner",
            RoomError::TooManyRooms { .. } => "too-many-rooms",
            RoomError::RoomNotOpen(_) => "room-not-open",
            RoomError::NotCreator => "not-a-room-creator",
            RoomError::Store(_) => "store-unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_know_what_they_take_and_give() {
        use Access::*;
        let c = |before, after| AccessChange {
            user: "bob".into(),
            room: "r".into(),
            before,
            after,
        };
        // (before, after, lost, gained)
        let cases = [
            (None, Some(Read), false, true),
            (Some(Read), None, true, false),
            (Some(ReadWrite), Some(Read), true, false),
            (Some(Read), Some(ReadWrite), false, true),
            (Some(Read), Some(Write), true, true),
            (Some(Read), Some(Read), false, false),
            (None, None, false, false),
        ];
        for (b, a, lost, gained) in cases {
            assert_eq!(
                (c(b, a).lost(), c(b, a).gained()),
                (lost, gained),
                "{b:?} -> {a:?}"
            );
        }
    }
}
