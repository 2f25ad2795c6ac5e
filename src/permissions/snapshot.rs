//! The immutable permission snapshot and its queries.

use foldhash::HashMap;
use std::fmt;
use std::sync::Arc;

use super::application::{Application, ApplicationError, Scope};
use super::limits::Limits;
use super::model::{Access, User};
use crate::names::is_valid_name;

/// All permission files merged and validated: immutable, `Send + Sync`, shared via `Arc`.
pub struct Snapshot {
    id: u64,
    users: HashMap<String, User>,
    /// Each group's own grants (through rooms that list `@group`), by group name.
    groups: HashMap<String, User>,
    /// Public nkey → the user who logs in with it.
    nkeys: HashMap<String, String>,
    /// Every exact room named in the files (room tables and direct grants), sorted.
    rooms: Vec<Arc<str>>,
    /// Room (or pattern) name → description, where one is given.
    descriptions: HashMap<String, String>,
    /// `[applications.NAME]` by name; none in the demo (then `clientId` is free-form).
    applications: HashMap<String, Application>,
    /// The smallest limits any user or group has (none: nothing is limited).
    smallest: Limits,
}

impl Snapshot {
    pub(crate) fn new(
        id: u64,
        users: HashMap<String, User>,
        groups: HashMap<String, User>,
        nkeys: HashMap<String, String>,
        rooms: Vec<Arc<str>>,
        descriptions: HashMap<String, String>,
    ) -> Self {
        let smallest = users
            .values()
            .map(User::limits)
            .chain(groups.values().map(|g| g.own_limits))
            .fold(Limits::default(), Limits::smallest);
        Self {
            id,
            users,
            groups,
            nkeys,
            rooms,
            descriptions,
            applications: HashMap::default(),
            smallest,
        }
    }

    /// The smallest limits any user or group has: whether (and from where) anything is limited.
    #[must_use]
    pub fn smallest_limits(&self) -> Limits {
        self.smallest
    }

    /// The same snapshot with these applications.
    pub(crate) fn with_applications(self, applications: HashMap<String, Application>) -> Self {
        Self { applications, ..self }
    }

    /// The application of this name, if the files define it.
    #[must_use]
    pub fn application(&self, name: &str) -> Option<&Application> {
        self.applications.get(name)
    }

    /// Whether the files define any application (then a login's `clientId` must name one).
    #[must_use]
    pub fn has_applications(&self) -> bool {
        !self.applications.is_empty()
    }

    /// Whether a login may name `client_id`: always when it names none or the files define
    /// no application (the demo: `clientId` is free-form), else only a defined application.
    ///
    /// # Errors
    /// [`ApplicationError::Unknown`] when applications are defined and none has that name.
    pub fn check_application(&self, client_id: Option<&str>) -> Result<(), ApplicationError> {
        match client_id {
            Some(name) if self.has_applications() && !self.applications.contains_key(name) => {
                Err(ApplicationError::Unknown(name.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// What a token of application `client_id` may reach: every room when it names none or
    /// the files define no application; an application's rooms; nothing for an application
    /// the files do not define (removed since the login).
    #[must_use]
    pub fn scope(&self, client_id: Option<&str>) -> Scope<'_> {
        match client_id {
            Some(name) if self.has_applications() => {
                self.applications.get(name).map_or(Scope::Nothing, Scope::Within)
            }
            _ => Scope::Unscoped,
        }
    }

    /// The user with this id.
    #[must_use]
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.get(id)
    }

    /// The user who logs in with this public nkey (`nkeys = [...]` in the files).
    #[must_use]
    pub fn user_by_nkey(&self, key: &str) -> Option<&User> {
        self.users.get(self.nkeys.get(key)?)
    }

    /// Whether the files name `room` or match it by a pattern (of any user or group): such
    /// a room is the files', and cannot be created as data.
    #[must_use]
    pub fn claims_room(&self, room: &str) -> bool {
        self.rooms.binary_search_by(|r| (**r).cmp(room)).is_ok()
            || self
                .users
                .values()
                .chain(self.groups.values())
                .flat_map(|u| u.patterns.iter())
                .any(|(p, _)| p.matches(room))
    }

    /// The grants a group gives its members, as a user named after the group.
    pub(crate) fn group(&self, name: &str) -> Option<&User> {
        self.groups.get(name)
    }

    /// This snapshot's id (users built for it carry it).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Every user, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// The users the files place in an account outside `placements` (whose connections
    /// the callout will deny), with that account, sorted by user.
    pub fn placed_outside(&self, placements: &std::collections::HashSet<String>) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .users()
            .filter_map(|u| u.account().map(|a| (u.id(), a)))
            .filter(|(_, a)| !placements.contains(*a))
            .collect();
        out.sort_unstable();
        out
    }

    /// This snapshot's record of `user`: `user` itself if it came from this snapshot,
    /// otherwise the user with the same id here (a `User` kept from an older snapshot
    /// never carries its old grants into a newer one).
    fn current<'a>(&'a self, user: &'a User) -> Option<&'a User> {
        if user.snapshot == self.id {
            Some(user)
        } else {
            self.users.get(&user.id)
        }
    }

    /// What `user` may do in `room`; `None` means no grant. A room that is not a valid
    /// name (see [`crate::names::validate_name`]) never gets a grant, not even for admins.
    ///
    /// Cost: one hash lookup plus the user's own pattern list; no scan over rooms.
    #[must_use]
    pub fn access(&self, user: &User, room: &str) -> Option<Access> {
        if !is_valid_name(room) {
            return None;
        }
        let user = self.current(user)?;
        if user.is_admin() {
            return Some(Access::ReadWrite);
        }
        let mut access = user.grants.get(room).copied();
        for (pattern, a) in &user.patterns {
            if access == Some(Access::ReadWrite) {
                break;
            }
            if pattern.matches(room) {
                access = Some(access.map_or(*a, |have| have.union(*a)));
            }
        }
        access
    }

    /// The exact (non-pattern) rooms `user` may join, with their access, sorted by name.
    /// Admins get every room named in the files. Rooms reachable only through a pattern
    /// are listed when they are named somewhere in the files.
    #[must_use]
    pub fn rooms_for(&self, user: &User) -> Vec<(String, Access)> {
        let Some(user) = self.current(user) else {
            return Vec::new();
        };
        if user.is_admin() {
            return self
                .rooms
                .iter()
                .map(|r| (r.to_string(), Access::ReadWrite))
                .collect();
        }
        let mut out: Vec<(String, Access)> = if user.patterns.is_empty() {
            user.grants.iter().map(|(r, a)| (r.to_string(), *a)).collect()
        } else {
            self.rooms
                .iter()
                .filter_map(|r| self.access(user, r).map(|a| (r.to_string(), a)))
                .collect()
        };
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The description of a room (or pattern, by its text), if the files give one.
    #[must_use]
    pub fn room_description(&self, room: &str) -> Option<&str> {
        self.descriptions.get(room).map(String::as_str)
    }

    /// Every exact room named in the files, sorted.
    #[must_use]
    pub fn rooms(&self) -> impl ExactSizeIterator<Item = &str> {
        self.rooms.iter().map(|r| &**r)
    }

    /// Number of users.
    #[must_use]
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of exact rooms named in the files.
    #[must_use]
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("users", &self.users.len())
            .field("rooms", &self.rooms.len())
            .finish_non_exhaustive()
    }
}
