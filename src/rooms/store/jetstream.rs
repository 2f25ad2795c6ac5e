//! [`KvRooms`]: rooms in one JetStream key-value bucket, `<store.bucket_prefix>_rooms`,
//! shared by every instance and followed by each ([`KvRooms::follow`]) into its index.
//!
//! # Layout (values are JSON)
//! - `room.<name>` → [`RoomRecord`]: a room and its first owner, created and deleted by one
//!   write (compare-and-set: two instances creating one name, one wins).
//! - `member.<room>.<user>` → [`MemberRecord`]: one key per membership, so a room of
//!   50,000 members never nears a message's size limit and concurrent changes of one room
//!   never fight over one key (of two changes of one membership, the last committed stands).
//!
//! A membership names its room's incarnation; one written for a room deleted meanwhile, or
//! left when the memberships of a deleted room were being removed (a crash), grants nothing
//! and is swept by compare-and-set (never a newer membership of the same name).

use std::time::Duration;

use async_nats::jetstream::kv;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Committed, RoomStore, decode, encode, unavailable};
use crate::kv::{BucketSpec, Latest, Watched};
use crate::rooms::index::{Orphan, RoomIndex};
use crate::rooms::model::{MemberRecord, RoomError, RoomEvent, RoomRecord};

/// Changes of one key at once against concurrent writers (a sweep, a delete).
const CONCURRENCY: usize = 64;

/// Rooms in JetStream.
pub struct KvRooms {
    js: async_nats::jetstream::Context,
    spec: BucketSpec,
    bucket: OnceCell<kv::Store>,
}

impl std::fmt::Debug for KvRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvRooms")
            .field("bucket", &self.spec.name)
            .finish_non_exhaustive()
    }
}

fn room_key(name: &str) -> String {
    format!("room.{name}")
}

fn member_key(room: &str, user: &str) -> String {
    format!("member.{room}.{user}")
}

/// The event a bucket entry stands for (`None` for a key of no known shape).
fn event_of(entry: &kv::Entry) -> Result<Option<RoomEvent>, RoomError> {
    let removed = matches!(entry.operation, kv::Operation::Delete | kv::Operation::Purge);
    let mut parts = entry.key.splitn(3, '.');
    Ok(match (parts.next(), parts.next(), parts.next()) {
        (Some("room"), Some(name), None) if removed => Some(RoomEvent::RoomDeleted(name.to_string())),
        (Some("room"), Some(_), None) => Some(RoomEvent::Room(decode("rooms", &entry.value)?)),
        (Some("member"), Some(room), Some(user)) if removed => Some(RoomEvent::MemberRemoved {
            room: room.to_string(),
            user: user.to_string(),
        }),
        (Some("member"), Some(room), Some(user)) => Some(RoomEvent::Member {
            room: room.to_string(),
            user: user.to_string(),
            member: decode("room_members", &entry.value)?,
        }),
        _ => None,
    })
}

/// Put every entry, `in_flight` at a time.
async fn put_all(
    b: &kv::Store,
    entries: impl Iterator<Item = Result<(String, Vec<u8>), RoomError>>,
    in_flight: usize,
) -> Result<(), RoomError> {
    use futures::StreamExt;
    let puts = futures::stream::iter(entries).map(|entry| async move {
        let (key, value) = entry?;
        b.put(&key, value.into()).await.map_err(|e| unavailable(&key, e))
    });
    let mut puts = puts.buffer_unordered(in_flight.max(1));
    while let Some(done) = puts.next().await {
        done?;
    }
    Ok(())
}

impl KvRooms {
    /// The bucket `<prefix>_rooms` with `replicas`; created (or checked) at first use.
    pub fn new(client: async_nats::Client, prefix: &str, replicas: usize) -> KvRooms {
        KvRooms {
            js: crate::kv::context(client),
            spec: BucketSpec {
                name: format!("{prefix}_rooms"),
                description: "nats-callout rooms and memberships",
                history: 1,
                max_age: Duration::ZERO,
                replicas,
            },
            bucket: OnceCell::new(),
        }
    }

    async fn open(&self) -> Result<&kv::Store, RoomError> {
        self.bucket
            .get_or_try_init(|| async { crate::kv::ensure(&self.js, &self.spec).await })
            .await
            .map_err(|e| unavailable("rooms bucket", e))
    }

    /// The latest value of `key` and its revision, if it holds one.
    async fn latest<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<(T, u64)>, RoomError> {
        let b = self.open().await?;
        match crate::kv::latest(b, key).await.map_err(|e| unavailable(key, e))? {
            Latest::Value(bytes, rev) => Ok(Some((decode(key, &bytes)?, rev))),
            Latest::Absent | Latest::Deleted(_) => Ok(None),
        }
    }

    /// The revision of `key`'s latest change (after a delete: its marker).
    async fn revision(&self, key: &str) -> Result<u64, RoomError> {
        let b = self.open().await?;
        match crate::kv::latest(b, key).await.map_err(|e| unavailable(key, e))? {
            Latest::Value(_, rev) | Latest::Deleted(rev) => Ok(rev),
            Latest::Absent => Ok(0),
        }
    }

    /// The newest revision of any of `keys` (their last writes or deletions): once the watch
    /// has applied it, the index holds what they did.
    async fn newest(&self, keys: impl IntoIterator<Item = String>) -> Result<u64, RoomError> {
        let asked = keys.into_iter().map(|k| async move { self.revision(&k).await });
        let revisions = futures::future::try_join_all(asked).await?;
        Ok(revisions.into_iter().max().unwrap_or(0))
    }

    /// Remove `user`'s membership of `room` if `stale` says it is of an incarnation that is
    /// gone: never a membership written since for the room as it is now.
    async fn remove_stale(
        &self,
        room: &str,
        user: &str,
        stale: impl Fn(&MemberRecord) -> bool,
    ) -> Result<bool, RoomError> {
        let key = member_key(room, user);
        let Some((m, rev)) = self.latest::<MemberRecord>(&key).await? else {
            return Ok(false);
        };
        if !stale(&m) {
            return Ok(false);
        }
        let b = self.open().await?;
        match b.delete_expect_revision(&key, Some(rev)).await {
            Ok(()) => Ok(true),
            // Written again meanwhile: not ours to remove.
            Err(e) if e.to_string().contains("wrong last sequence") => Ok(false),
            Err(e) => Err(unavailable(&key, e)),
        }
    }

    /// Write `rooms` and `members` as they are, `in_flight` puts at a time: a bulk load
    /// (benchmarks, imports) with none of the checks of [`RoomStore`]'s operations. Every
    /// instance's watch brings them in, as any change.
    ///
    /// # Errors
    /// The bucket cannot be opened, a record does not encode, or a put fails.
    pub async fn import(
        &self,
        rooms: &[RoomRecord],
        members: &[(String, String, MemberRecord)],
        in_flight: usize,
    ) -> Result<(), RoomError> {
        let b = self.open().await?;
        // The rooms first: a membership read before its room would be no one's.
        let rooms = rooms.iter().map(|r| Ok((room_key(&r.name), encode(r)?)));
        put_all(b, rooms, in_flight).await?;
        let members = members
            .iter()
            .map(|(room, user, m)| Ok((member_key(room, user), encode(m)?)));
        put_all(b, members, in_flight).await?;
        Ok(())
    }

    /// Follow the bucket into `index` until `stop`: what it held first, quietly (loading is
    /// no change of anyone's access), then every change as it comes. `loaded` turns true
    /// once the index holds everything stored when the watch began.
    pub async fn follow(
        &self,
        index: &RoomIndex,
        loaded: tokio::sync::watch::Sender<bool>,
        stop: CancellationToken,
    ) {
        let (events, mut seen) = tokio::sync::mpsc::channel(1024);
        let open = || async { self.open().await.cloned().map_err(|e| e.to_string()) };
        // The watch ends with `stop` and closes the channel, which ends the loop below.
        let watch = crate::kv::follow(open, ">".into(), stop, events);
        let apply = async {
            let mut pending: Vec<RoomEvent> = Vec::new();
            while let Some(w) = seen.recv().await {
                match w {
                    Watched::Entry(entry) => {
                        let rev = entry.revision;
                        match event_of(&entry) {
                            Ok(Some(e)) if *loaded.borrow() => {
                                index.apply(std::slice::from_ref(&e));
                            }
                            Ok(Some(e)) => pending.push(e),
                            Ok(None) => {}
                            Err(e) => warn!(key = %entry.key, error = %e, "ignored a malformed room entry"),
                        }
                        if *loaded.borrow() {
                            index.set_applied(rev);
                        } else if pending.len() >= 4096 {
                            index.apply_quietly(&std::mem::take(&mut pending));
                            index.set_applied(rev);
                        }
                    }
                    Watched::CaughtUp { .. } => {
                        index.apply_quietly(&std::mem::take(&mut pending));
                        if !*loaded.borrow() {
                            let (rooms, members) = index.counts();
                            info!(rooms, memberships = members, "rooms loaded from JetStream");
                        }
                        loaded.send_replace(true);
                    }
                    Watched::Broken { reason, failures } => {
                        if failures == 1 || failures.is_power_of_two() {
                            warn!(error = %reason, attempt = failures, "rooms watch interrupted; resuming");
                        }
                    }
                }
            }
        };
        tokio::join!(watch, apply);
    }
}

#[async_trait::async_trait]
impl RoomStore for KvRooms {
    async fn load(&self) -> Result<Vec<RoomEvent>, RoomError> {
        // Followed instead (every instance watches the bucket).
        Ok(Vec::new())
    }

    async fn create(&self, room: &RoomRecord) -> Result<Committed, RoomError> {
        let b = self.open().await?;
        let key = room_key(&room.name);
        match crate::kv::create(b, &key, encode(room)?.into())
            .await
            .map_err(|e| unavailable(&key, e))?
        {
            Some(rev) => Ok(Committed {
                events: vec![RoomEvent::Room(room.clone())],
                revision: Some(rev),
            }),
            None => Err(RoomError::RoomExists(room.name.clone())),
        }
    }

    async fn delete(&self, name: &str, members: &[String]) -> Result<Option<Committed>, RoomError> {
        let key = room_key(name);
        let Some((room, rev)) = self.latest::<RoomRecord>(&key).await? else {
            return Ok(None);
        };
        let b = self.open().await?;
        match b.delete_expect_revision(&key, Some(rev)).await {
            Ok(()) => {}
            Err(e) if e.to_string().contains("wrong last sequence") => {
                return Err(RoomError::Store(format!(
                    "room {name:?} changed meanwhile; try again"
                )));
            }
            Err(e) => return Err(unavailable(&key, e)),
        }
        // The room is gone; its memberships grant nothing now. Remove them (a crash here
        // leaves some for the sweep), and only them: not those of a room made again since.
        let mut last: &[String] = &[];
        for chunk in members.chunks(CONCURRENCY) {
            let mut removals = Vec::with_capacity(chunk.len());
            for user in chunk {
                removals.push(self.remove_stale(name, user, |m| m.room_id == room.id));
            }
            let removed = futures::future::join_all(removals).await;
            if let Some(Err(e)) = removed.into_iter().find(Result::is_err) {
                warn!(room = %name, error = %e, "memberships of a deleted room left for the sweep");
            }
            last = chunk;
        }
        // The last chunk's removals came after everything else this did.
        let removed = last.iter().map(|u| member_key(name, u));
        let revision = self.newest(std::iter::once(key.clone()).chain(removed)).await?;
        Ok(Some(Committed {
            events: vec![RoomEvent::RoomDeleted(name.to_string())],
            revision: Some(revision),
        }))
    }

    async fn put_member(
        &self,
        room: &str,
        user: &str,
        member: &MemberRecord,
    ) -> Result<Committed, RoomError> {
        match self.latest::<RoomRecord>(&room_key(room)).await? {
            Some((r, _)) if r.id == member.room_id => {}
            _ => return Err(RoomError::UnknownRoom(room.to_string())),
        }
        let b = self.open().await?;
        let key = member_key(room, user);
        let rev = b
            .put(&key, encode(member)?.into())
            .await
            .map_err(|e| unavailable(&key, e))?;
        Ok(Committed {
            events: vec![RoomEvent::Member {
                room: room.to_string(),
                user: user.to_string(),
                member: member.clone(),
            }],
            revision: Some(rev),
        })
    }

    async fn remove_member(&self, room: &str, user: &str) -> Result<Option<Committed>, RoomError> {
        let key = member_key(room, user);
        if self.latest::<MemberRecord>(&key).await?.is_none() {
            return Ok(None);
        }
        let b = self.open().await?;
        b.delete(&key).await.map_err(|e| unavailable(&key, e))?;
        let revision = self.revision(&key).await?;
        Ok(Some(Committed {
            events: vec![RoomEvent::MemberRemoved {
                room: room.to_string(),
                user: user.to_string(),
            }],
            revision: Some(revision),
        }))
    }

    async fn remove_orphans(&self, orphans: &[Orphan]) -> Result<Committed, RoomError> {
        let mut removed = Vec::new();
        let mut last = None;
        for o in orphans {
            let current = self
                .latest::<RoomRecord>(&room_key(&o.room))
                .await?
                .map(|(r, _)| r.id);
            if self
                .remove_stale(&o.room, &o.user, |m| {
                    current.as_deref() != Some(m.room_id.as_str())
                })
                .await?
            {
                removed.push(RoomEvent::MemberRemoved {
                    room: o.room.clone(),
                    user: o.user.clone(),
                });
                last = Some(member_key(&o.room, &o.user));
            }
        }
        // Removed one after another: the last removal is the newest.
        let revision = match last {
            Some(key) => Some(self.newest([key]).await?),
            None => None,
        };
        Ok(Committed {
            events: removed,
            revision,
        })
    }
}
