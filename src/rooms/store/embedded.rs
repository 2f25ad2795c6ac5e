//! [`RedbRooms`]: rooms in the token store's redb file (one process). Every change is one
//! write transaction.
//!
//! # Layout (values are JSON)
//! - `rooms`: name → [`RoomRecord`].
//! - `room_members`: (room, user) → [`MemberRecord`].

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Committed, RoomStore, decode, encode, unavailable};
use crate::rooms::index::Orphan;
use crate::rooms::model::{MemberRecord, RoomError, RoomEvent, RoomRecord};

const ROOMS: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms");
const MEMBERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("room_members");

/// Rooms in a redb database (shared with the token store: one file to back up).
pub struct RedbRooms {
    db: Arc<Database>,
}

impl std::fmt::Debug for RedbRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbRooms").finish_non_exhaustive()
    }
}

fn db_error(e: impl std::fmt::Display) -> RoomError {
    unavailable("redb", e)
}

impl RedbRooms {
    /// The rooms' tables in `db`, created if missing.
    ///
    /// # Errors
    /// The database refuses a write.
    pub fn open(db: Arc<Database>) -> Result<RedbRooms, RoomError> {
        let w = db.begin_write().map_err(db_error)?;
        w.open_table(ROOMS).map_err(db_error)?;
        w.open_table(MEMBERS).map_err(db_error)?;
        w.commit().map_err(db_error)?;
        Ok(RedbRooms { db })
    }

    /// One write transaction: `f` with both tables; committed when `f` says so.
    fn write<T>(
        &self,
        f: impl FnOnce(
            &mut redb::Table<'_, &'static str, &'static [u8]>,
            &mut redb::Table<'_, (&'static str, &'static str), &'static [u8]>,
        ) -> Result<(T, bool), RoomError>,
    ) -> Result<T, RoomError> {
        let w = self.db.begin_write().map_err(db_error)?;
        let (out, commit) = {
            let mut rooms = w.open_table(ROOMS).map_err(db_error)?;
            let mut members = w.open_table(MEMBERS).map_err(db_error)?;
            f(&mut rooms, &mut members)?
        };
        if commit {
            w.commit().map_err(db_error)?;
        } else {
            w.abort().map_err(db_error)?;
        }
        Ok(out)
    }
    /// Write `rooms` and `members` as they are, in one write transaction: a bulk load
    /// (benchmarks, imports) with none of the checks of [`RoomStore`]'s operations and no
    /// events; a running service does not see them until it loads the store again.
    ///
    /// # Errors
    /// The database refuses the write, or a record does not encode.
    pub fn import(
        &self,
        rooms: &[RoomRecord],
        members: &[(String, String, MemberRecord)],
    ) -> Result<(), RoomError> {
        self.write(|room_table, member_table| {
            for room in rooms {
                room_table
                    .insert(room.name.as_str(), encode(room)?.as_slice())
                    .map_err(db_error)?;
            }
            for (room, user, member) in members {
                member_table
                    .insert((room.as_str(), user.as_str()), encode(member)?.as_slice())
                    .map_err(db_error)?;
            }
            Ok(((), true))
        })
    }
}

fn room_of(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<RoomRecord>, RoomError> {
    match t.get(name).map_err(db_error)? {
        Some(v) => Ok(Some(decode("rooms", v.value())?)),
        None => Ok(None),
    }
}

#[async_trait::async_trait]
impl RoomStore for RedbRooms {
    async fn load(&self) -> Result<Vec<RoomEvent>, RoomError> {
        let r = self.db.begin_read().map_err(db_error)?;
        let rooms = r.open_table(ROOMS).map_err(db_error)?;
        let members = r.open_table(MEMBERS).map_err(db_error)?;
        let mut out = Vec::new();
        for row in rooms.iter().map_err(db_error)? {
            let (_, v) = row.map_err(db_error)?;
            out.push(RoomEvent::Room(decode("rooms", v.value())?));
        }
        for row in members.iter().map_err(db_error)? {
            let (k, v) = row.map_err(db_error)?;
            let (room, user) = k.value();
            out.push(RoomEvent::Member {
                room: room.to_string(),
                user: user.to_string(),
                member: decode("room_members", v.value())?,
            });
        }
        Ok(out)
    }

    async fn create(&self, room: &RoomRecord) -> Result<Committed, RoomError> {
        self.write(|rooms, _| {
            if room_of(rooms, &room.name)?.is_some() {
                return Err(RoomError::RoomExists(room.name.clone()));
            }
            rooms
                .insert(room.name.as_str(), encode(room)?.as_slice())
                .map_err(db_error)?;
            Ok((
                Committed {
                    events: vec![RoomEvent::Room(room.clone())],
                    revision: None,
                },
                true,
            ))
        })
    }

    async fn delete(&self, name: &str, _members: &[String]) -> Result<Option<Committed>, RoomError> {
        self.write(|rooms, members| {
            if rooms.remove(name).map_err(db_error)?.is_none() {
                return Ok((None, false));
            }
            // Every membership of the room, whatever the index knew.
            let users: Vec<String> = members
                .range((name, "")..)
                .map_err(db_error)?
                .map_while(|row| {
                    let (k, _) = row.ok()?;
                    let (room, user) = k.value();
                    (room == name).then(|| user.to_string())
                })
                .collect();
            for u in &users {
                members.remove((name, u.as_str())).map_err(db_error)?;
            }
            let mut events = vec![RoomEvent::RoomDeleted(name.to_string())];
            events.extend(users.into_iter().map(|user| RoomEvent::MemberRemoved {
                room: name.to_string(),
                user,
            }));
            Ok((
                Some(Committed {
                    events,
                    revision: None,
                }),
                true,
            ))
        })
    }

    async fn put_member(
        &self,
        room: &str,
        user: &str,
        member: &MemberRecord,
    ) -> Result<Committed, RoomError> {
        self.write(|rooms, members| {
            if room_of(rooms, room)?.is_none_or(|r| r.id != member.room_id) {
                return Err(RoomError::UnknownRoom(room.to_string()));
            }
            members
                .insert((room, user), encode(member)?.as_slice())
                .map_err(db_error)?;
            let event = RoomEvent::Member {
                room: room.to_string(),
                user: user.to_string(),
                member: member.clone(),
            };
            Ok((
                Committed {
                    events: vec![event],
                    revision: None,
                },
                true,
            ))
        })
    }

    async fn remove_member(&self, room: &str, user: &str) -> Result<Option<Committed>, RoomError> {
        self.write(|_, members| {
            if members.remove((room, user)).map_err(db_error)?.is_none() {
                return Ok((None, false));
            }
            let event = RoomEvent::MemberRemoved {
                room: room.to_string(),
                user: user.to_string(),
            };
            Ok((
                Some(Committed {
                    events: vec![event],
                    revision: None,
                }),
                true,
            ))
        })
    }

    async fn remove_orphans(&self, orphans: &[Orphan]) -> Result<Committed, RoomError> {
        self.write(|rooms, members| {
            let mut events = Vec::new();
            for o in orphans {
                let current = room_of(rooms, &o.room)?;
                let record: Option<MemberRecord> = match members
                    .get((o.room.as_str(), o.user.as_str()))
                    .map_err(db_error)?
                {
                    Some(v) => Some(decode("room_members", v.value())?),
                    None => None,
                };
                let stale = record.is_some_and(|m| current.as_ref().is_none_or(|r| r.id != m.room_id));
                if stale {
                    members
                        .remove((o.room.as_str(), o.user.as_str()))
                        .map_err(db_error)?;
                    events.push(RoomEvent::MemberRemoved {
                        room: o.room.clone(),
                        user: o.user.clone(),
                    });
                }
            }
            let changed = !events.is_empty();
            Ok((
                Committed {
                    events,
                    revision: None,
                },
                changed,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::Access;

    /// What `import` wrote is what a start loads: the rooms, then their memberships.
    #[tokio::test]
    async fn an_import_is_loaded_as_written() {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let store = RedbRooms::open(Arc::new(db)).unwrap();
        let room = RoomRecord {
            name: "d0".into(),
            id: "i0".into(),
            description: None,
            join: crate::rooms::JoinPolicy::Invite,
            created_at: 1,
            created_by: "bob".into(),
        };
        let member = MemberRecord {
            room_id: "i0".into(),
            access: Access::Read,
            owner: false,
            added_at: 1,
            added_by: "bench".into(),
            left: false,
        };
        let members = vec![("d0".to_string(), "alice".to_string(), member.clone())];
        store.import(std::slice::from_ref(&room), &members).unwrap();
        assert_eq!(
            store.load().await.unwrap(),
            vec![
                RoomEvent::Room(room),
                RoomEvent::Member {
                    room: "d0".into(),
                    user: "alice".into(),
                    member
                }
            ]
        );
    }
}
