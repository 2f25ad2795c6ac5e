//! The operations on rooms, with who may do them: create, delete, add and remove members,
//! join an open room, list. Shared by the HTTP API and the NATS endpoints
//! (`auth.v1.rooms.*`); each change is written to the store and is in this instance's index
//! before it is answered.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::index::RoomIndex;
use super::model::{JoinPolicy, MemberRecord, RoomError, RoomRecord};
use super::store::{Committed, RoomStore};
use crate::config::RoomSettings;
use crate::names::validate_name;
use crate::permissions::{Access, Snapshot};
use crate::tokens::TokenService;

/// How long an answer waits for its change to come back through the shared store's watch.
const VISIBLE_WITHIN: Duration = Duration::from_secs(5);
/// The longest description kept.
pub const MAX_DESCRIPTION: usize = 500;

/// Who acts: a user, or an app service acting for one (`as_admin`: may manage every room).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub user: &'a str,
    /// Admins (and app services) manage every room.
    pub admin: bool,
    /// May create rooms (`rooms.creators`; never a guest).
    pub may_create: bool,
}

/// `POST /api/rooms`, `auth.v1.rooms.create`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRoom {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub join: JoinPolicy,
}

/// A membership to write.
#[derive(Debug, Clone, Copy)]
pub struct NewMember<'a> {
    pub user: &'a str,
    pub access: Access,
    pub owner: bool,
    /// Whether the service has ever heard of `user` (see [`RoomService::is_known`]).
    pub known: bool,
}

/// A room as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub join: JoinPolicy,
    /// Its creator.
    pub owner: String,
    pub created_at: i64,
}

impl From<RoomRecord> for RoomView {
    fn from(r: RoomRecord) -> Self {
        RoomView {
            name: r.name,
            description: r.description,
            join: r.join,
            owner: r.created_by,
            created_at: r.created_at,
        }
    }
}

/// A member as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: String,
    pub access: Access,
    pub owner: bool,
}

/// Rooms as data: the store, the index decisions read, the rules.
pub struct RoomService {
    store: Arc<dyn RoomStore>,
    index: Arc<RoomIndex>,
    settings: RoomSettings,
    /// The names a room may not take (`callout.auth_users`).
    reserved: Vec<String>,
    /// The shared store: changes become visible through its watch.
    shared: bool,
    /// The embedded store: changes are applied in the order they were committed.
    order: tokio::sync::Mutex<()>,
    /// Every change goes into the audit trail (set once, after the trail is open).
    audit: std::sync::OnceLock<crate::audit::Audit>,
}

impl std::fmt::Debug for RoomService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomService")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl RoomService {
    pub fn new(
        store: Arc<dyn RoomStore>,
        index: Arc<RoomIndex>,
        settings: RoomSettings,
        reserved: Vec<String>,
        shared: bool,
    ) -> Self {
        RoomService {
            store,
            index,
            settings,
            reserved,
            shared,
            order: tokio::sync::Mutex::new(()),
            audit: std::sync::OnceLock::new(),
        }
    }

    /// Record every change in `audit` (the first call wins).
    pub fn audit_into(&self, audit: crate::audit::Audit) {
        let _ = self.audit.set(audit);
    }

    /// A change by `by` into the audit trail (`nats-callout.audit.room`).
    fn audited(&self, by: &str, what: serde_json::Value) {
        if let Some(audit) = self.audit.get() {
            audit.action("room", by, crate::clock::now_secs(), what);
        }
    }

    /// Rooms in a redb database in memory, with the default settings (tests, and the
    /// HTTP API's state until the service gives its own).
    #[must_use]
    pub fn in_memory() -> RoomService {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory database opens");
        let store = super::store::RedbRooms::open(Arc::new(db)).expect("its tables are created");
        RoomService::new(
            Arc::new(store),
            Arc::default(),
            RoomSettings::default(),
            Vec::new(),
            false,
        )
    }

    pub fn index(&self) -> &Arc<RoomIndex> {
        &self.index
    }

    pub fn settings(&self) -> &RoomSettings {
        &self.settings
    }

    /// Load what the embedded store holds (the shared store is followed instead).
    pub async fn load(&self) -> Result<(), RoomError> {
        let events = self.store.load().await?;
        self.index.apply_quietly(&events);
        Ok(())
    }

    /// Run one change and make it visible here before answering.
    async fn write<F, Fut>(&self, op: F) -> Result<Option<Committed>, RoomError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Committed>, RoomError>>,
    {
        if self.shared {
            let committed = op().await?;
            if let Some(rev) = committed.as_ref().and_then(|c| c.revision)
                && !self.index.wait_applied(rev, VISIBLE_WITHIN).await
            {
                warn!(
                    revision = rev,
                    "a room change is not yet back from the store's watch"
                );
            }
            return Ok(committed);
        }
        let _order = self.order.lock().await;
        let committed = op().await?;
        if let Some(c) = &committed {
            self.index.apply(&c.events);
        }
        Ok(committed)
    }

    /// A room name as rooms in data may take it.
    fn check_name(&self, name: &str) -> Result<(), RoomError> {
        if validate_name(name).is_err() || self.reserved.iter().any(|r| r == name) {
            return Err(RoomError::BadRoomName(name.chars().take(80).collect()));
        }
        Ok(())
    }

    /// The room `name` in data, if it exists.
    fn existing(&self, name: &str) -> Result<RoomRecord, RoomError> {
        self.check_name(name)?;
        self.index
            .room(name)
            .ok_or_else(|| RoomError::UnknownRoom(name.to_string()))
    }

    /// Whether `actor` manages `room`: an owner, or an admin.
    fn manages(&self, actor: &Actor<'_>, room: &str) -> bool {
        actor.admin || self.index.held(room, actor.user).is_some_and(|(_, owner)| owner)
    }

    /// Create a room owned by `actor` (its creator, its first owner).
    pub async fn create(
        &self,
        actor: &Actor<'_>,
        new: NewRoom,
        snapshot: &Snapshot,
        now: i64,
    ) -> Result<RoomView, RoomError> {
        self.check_name(&new.name)?;
        if let Some(d) = &new.description
            && (d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control))
        {
            return Err(RoomError::BadRequest(format!(
                "description: at most {MAX_DESCRIPTION} characters, no control characters"
            )));
        }
        if !actor.may_create {
            return Err(RoomError::NotCreator);
        }
        // Data never widens a room of the files.
        if snapshot.claims_room(&new.name) || self.index.room(&new.name).is_some() {
            return Err(RoomError::RoomExists(new.name));
        }
        let owned = self.index.owned_by(actor.user);
        if owned >= self.settings.max_owned {
            return Err(RoomError::TooManyRooms { owned });
        }
        let room = RoomRecord {
            name: new.name,
            id: nuid::next().to_string(),
            description: new.description,
            join: new.join,
            created_at: now,
            created_by: actor.user.to_string(),
        };
        self.write(|| async { self.store.create(&room).await.map(Some) })
            .await?;
        info!(room = %room.name, owner = %room.created_by, join = ?room.join, "room created");
        self.audited(
            &room.created_by,
            serde_json::json!({"change": "created", "room": room.name, "join": room.join}),
        );
        Ok(room.into())
    }

    /// Delete a room and its memberships (owners, admins).
    pub async fn delete(&self, actor: &Actor<'_>, name: &str) -> Result<(), RoomError> {
        self.existing(name)?;
        if !self.manages(actor, name) {
            return Err(RoomError::NotRoomOwner);
        }
        let members = self.index.records(name);
        let done = self
            .write(|| async { self.store.delete(name, &members).await })
            .await?;
        if done.is_none() {
            return Err(RoomError::UnknownRoom(name.to_string()));
        }
        info!(room = %name, by = %actor.user, members = members.len(), "room deleted");
        self.audited(
            actor.user,
            serde_json::json!({"change": "deleted", "room": name, "members": members.len()}),
        );
        Ok(())
    }

    /// Add a member to `room` or change their access (owners, admins).
    pub async fn put_member(
        &self,
        actor: &Actor<'_>,
        room: &str,
        new: NewMember<'_>,
        now: i64,
    ) -> Result<MemberView, RoomError> {
        let NewMember {
            user,
            access,
            owner,
            known,
        } = new;
        let r = self.existing(room)?;
        if !self.manages(actor, room) {
            return Err(RoomError::NotRoomOwner);
        }
        if validate_name(user).is_err() || !known {
            return Err(RoomError::UnknownUser(user.chars().take(80).collect()));
        }
        let member = MemberRecord {
            room_id: r.id,
            access,
            owner,
            added_at: now,
            added_by: actor.user.to_string(),
            left: false,
        };
        self.write(|| async { self.store.put_member(room, user, &member).await.map(Some) })
            .await?;
        info!(room = %room, user = %user, access = %access, owner, by = %actor.user, "room member set");
        self.audited(
            actor.user,
            serde_json::json!({"change": "member-set", "room": room, "user": user, "access": access, "owner": owner}),
        );
        Ok(MemberView {
            user_id: user.to_string(),
            access,
            owner,
        })
    }

    /// Remove `user` from `room`: owners and admins remove anyone, a member may leave.
    pub async fn remove_member(
        &self,
        actor: &Actor<'_>,
        room: &str,
        user: &str,
        now: i64,
    ) -> Result<(), RoomError> {
        let r = self.existing(room)?;
        if actor.user != user && !self.manages(actor, room) {
            return Err(RoomError::NotRoomOwner);
        }
        if self.index.held(room, user).is_none() {
            return Err(RoomError::UnknownUser(user.chars().take(80).collect()));
        }
        if r.created_by == user {
            // The creator's first ownership is the room record's: a record says they left.
            let left = MemberRecord {
                room_id: r.id,
                access: Access::Read,
                owner: false,
                added_at: now,
                added_by: actor.user.to_string(),
                left: true,
            };
            self.write(|| async { self.store.put_member(room, user, &left).await.map(Some) })
                .await?;
        } else {
            self.write(|| async { self.store.remove_member(room, user).await })
                .await?;
        }
        info!(room = %room, user = %user, by = %actor.user, "room member removed");
        self.audited(
            actor.user,
            serde_json::json!({"change": "member-removed", "room": room, "user": user}),
        );
        Ok(())
    }

    /// Join an open room (read and write); a member only once joined.
    pub async fn join(&self, actor: &Actor<'_>, room: &str, now: i64) -> Result<MemberView, RoomError> {
        let r = self.existing(room)?;
        if r.join != JoinPolicy::Open {
            return Err(RoomError::RoomNotOpen(room.to_string()));
        }
        if let Some((access, owner)) = self.index.held(room, actor.user) {
            return Ok(MemberView {
                user_id: actor.user.to_string(),
                access,
                owner,
            });
        }
        let member = MemberRecord {
            room_id: r.id,
            access: Access::ReadWrite,
            owner: false,
            added_at: now,
            added_by: actor.user.to_string(),
            left: false,
        };
        self.write(|| async { self.store.put_member(room, actor.user, &member).await.map(Some) })
            .await?;
        info!(room = %room, user = %actor.user, "open room joined");
        self.audited(actor.user, serde_json::json!({"change": "joined", "room": room}));
        Ok(MemberView {
            user_id: actor.user.to_string(),
            access: Access::ReadWrite,
            owner: false,
        })
    }

    /// Every room in data after `after` by name, at most `limit`, each with its members
    /// (the admin console).
    pub fn every_room(&self, after: Option<&str>, limit: usize) -> Vec<(RoomView, Vec<MemberView>)> {
        self.index
            .rooms_page(after, limit)
            .into_iter()
            .map(|r| {
                let members = self
                    .index
                    .members(&r.name)
                    .into_iter()
                    .map(|(user_id, access, owner)| MemberView {
                        user_id,
                        access,
                        owner,
                    })
                    .collect();
                (RoomView::from(r), members)
            })
            .collect()
    }

    /// The members of `room`: for its members and admins.
    pub fn members(&self, actor: &Actor<'_>, room: &str) -> Result<Vec<MemberView>, RoomError> {
        self.existing(room)?;
        if !actor.admin && self.index.held(room, actor.user).is_none() {
            return Err(RoomError::NotRoomOwner);
        }
        Ok(self
            .index
            .members(room)
            .into_iter()
            .map(|(user_id, access, owner)| MemberView {
                user_id,
                access,
                owner,
            })
            .collect())
    }

    /// The rooms in data `user` holds, with the access and the room.
    pub fn rooms_of(&self, user: &str) -> Vec<(RoomView, Access, bool)> {
        self.index
            .rooms_of(user)
            .into_iter()
            .filter_map(|(name, _)| {
                let r = self.index.room(&name)?;
                let (access, owner) = self.index.held(&name, user)?;
                Some((r.into(), access, owner))
            })
            .collect()
    }

    /// Open rooms `user` has not joined, by name after `after`, at most `limit`.
    pub fn open_rooms(&self, user: &str, after: Option<&str>, limit: usize) -> Vec<RoomView> {
        self.index
            .open_rooms(after, limit, |room| self.index.held(room, user).is_some())
            .into_iter()
            .map(RoomView::from)
            .collect()
    }

    /// Whether the service has heard of `user`: in the files, a member of a room, or with
    /// a session in the store.
    pub async fn is_known(
        &self,
        snapshot: &Snapshot,
        tokens: &TokenService,
        user: &str,
    ) -> Result<bool, RoomError> {
        if validate_name(user).is_err() {
            return Ok(false);
        }
        if snapshot.user(user).is_some() || !self.index.rooms_of(user).is_empty() {
            return Ok(true);
        }
        let sessions = tokens
            .refresh()
            .store()
            .sessions_of(user)
            .await
            .map_err(|e| RoomError::Store(e.to_string()))?;
        Ok(!sessions.is_empty())
    }

    /// Remove memberships that grant nothing and were written more than `grace` ago (a
    /// younger one may belong to a change still under way elsewhere).
    pub async fn sweep(&self, now: i64, grace: Duration) -> Result<usize, RoomError> {
        let cutoff = now - i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        let orphans: Vec<_> = self
            .index
            .orphans()
            .into_iter()
            .filter(|o| o.added_at <= cutoff)
            .collect();
        if orphans.is_empty() {
            return Ok(0);
        }
        let committed = self
            .write(|| async { self.store.remove_orphans(&orphans).await.map(Some) })
            .await?;
        let n = committed.map_or(0, |c| c.events.len());
        if n > 0 {
            info!(memberships = n, "swept memberships of rooms that are gone");
        }
        Ok(n)
    }
}
