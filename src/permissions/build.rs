//! Validating parsed permission files and building a [`Snapshot`] from them.
//!
//! Three passes: each file's entries are checked on their own (names, roles, access,
//! password hashes), then references across files (members, groups, duplicates), and only
//! when no problem was found is the snapshot built: per-user maps of exact room grants and
//! per-user pattern lists, so an access check never scans all rooms. Room names are
//! interned (`Arc<str>`), so a million grants to a few thousand rooms share the names.

use foldhash::{HashMap, HashMapExt, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::application::Application;
use super::limits::Limits;
use super::locate::{Path, Seg, keys};
use super::model::{Access, Pattern, Role, RoleSet, User};
use super::snapshot::Snapshot;
use super::source::{Pending, RawApplication, RawFile, RawLimits, Text};
use crate::names::validate_name;
use crate::password::is_valid_hash;

mod provenance;
pub(crate) use provenance::Found;

/// A room name or pattern from a file.
#[derive(Debug, Clone)]
enum Target {
    Exact(Arc<str>),
    Pattern(Pattern),
}

struct UserDef<'a> {
    file: usize,
    name: Text<'a>,
    roles: RoleSet,
    password: Option<Text<'a>>,
    groups: Vec<Text<'a>>,
    grants: Vec<(Target, Access)>,
    nkeys: Vec<Text<'a>>,
    account: Option<Text<'a>>,
    limits: Limits,
}

struct GroupDef<'a> {
    file: usize,
    name: Text<'a>,
    members: Vec<Text<'a>>,
    limits: Limits,
}

struct RoomDef<'a> {
    file: usize,
    name: Text<'a>,
    target: Option<Target>,
    access: Access,
    description: Option<Text<'a>>,
    members: Vec<Text<'a>>,
}

struct ApplicationDef<'a> {
    file: usize,
    name: Text<'a>,
    targets: Vec<Target>,
    description: Option<Text<'a>>,
}

/// Definitions from all files, checked one by one.
#[derive(Default)]
pub(crate) struct Defs<'a> {
    users: Vec<UserDef<'a>>,
    groups: Vec<GroupDef<'a>>,
    rooms: Vec<RoomDef<'a>>,
    applications: Vec<ApplicationDef<'a>>,
    /// Every exact room name seen (room tables and direct grants).
    room_names: HashSet<Arc<str>>,
    /// Pass 2 results: users of each group (by index into `users`).
    group_users: Vec<Vec<usize>>,
    /// Pass 2 results: members of each room.
    room_members: Vec<Members>,
}

/// The members of one room, resolved to indices.
#[derive(Default)]
struct Members {
    users: Vec<usize>,
    groups: Vec<usize>,
}

/// Check a user's or group's `limits` (`section` is `users` or `groups`); problems at its line.
fn limits(file: usize, section: &str, name: &str, raw: Option<&RawLimits>, out: &mut Vec<Pending>) -> Limits {
    let Some(raw) = raw else {
        return Limits::default();
    };
    Limits::parse(raw.connections, raw.subscriptions).unwrap_or_else(|errors| {
        let kind = if section == "users" { "user" } else { "group" };
        for e in errors {
            let at = keys(&[section, name, "limits", e.field]);
            out.push(Pending::at(file, at, format!("{kind} {name:?}: {e}")));
        }
        Limits::default()
    })
}

fn path(parts: &[&str], tail: Seg) -> Path {
    let mut p = keys(parts);
    p.push(tail);
    p
}

/// A room name or pattern, checked but not interned; `Err` carries the reason.
fn parse_target(name: &str) -> Result<Target, String> {
    if name.contains('*') {
        return Pattern::parse(name)
            .map(Target::Pattern)
            .map_err(|e| format!("invalid room pattern {name:?}: {e}"));
    }
    validate_name(name).map_err(|e| format!("invalid room name {name:?}: {e}"))?;
    Ok(Target::Exact(Arc::from(name)))
}

impl<'a> Defs<'a> {
    /// Checks a room name or pattern and interns exact names; `Err` carries the reason.
    fn target(&mut self, name: &str) -> Result<Target, String> {
        if let Some(interned) = self.room_names.get(name) {
            return Ok(Target::Exact(interned.clone()));
        }
        let target = parse_target(name)?;
        if let Target::Exact(room) = &target {
            self.room_names.insert(room.clone());
        }
        Ok(target)
    }

    /// Pass 1 for `[applications.NAME]`: the name, each room or pattern. The rooms are not
    /// interned: an application names rooms it may reach, it does not make them exist.
    fn add_applications(
        &mut self,
        file: usize,
        apps: Vec<(Text<'a>, RawApplication<'a>)>,
        out: &mut Vec<Pending>,
    ) {
        for (name, a) in apps {
            if let Err(e) = validate_name(&name) {
                let reason = format!("invalid application name {:?}: {e}", &*name);
                out.push(Pending::at(file, keys(&["applications", &name]), reason));
            }
            let mut targets = Vec::with_capacity(a.rooms.len());
            for (i, room) in a.rooms.iter().enumerate() {
                match parse_target(room) {
                    Ok(t) => targets.push(t),
                    Err(e) => out.push(Pending::at(
                        file,
                        path(&["applications", &name, "rooms"], Seg::Index(i)),
                        format!("application {:?}: {e}", &*name),
                    )),
                }
            }
            self.applications.push(ApplicationDef {
                file,
                name,
                targets,
                description: a.description,
            });
        }
    }

    /// Pass 1: checks the entries of one file on their own and keeps them (the checks of
    /// [`check_users`] are left to the parser threads).
    pub(crate) fn add_file(&mut self, file: usize, raw: RawFile<'a>, out: &mut Vec<Pending>) {
        for (name, u) in raw.users {
            let mut roles = RoleSet::default();
            match u.roles {
                None => roles.insert(Role::User),
                Some(list) => {
                    for (i, r) in list.iter().enumerate() {
                        match r.parse() {
                            Ok(role) => roles.insert(role),
                            Err(e) => out.push(Pending::at(
                                file,
                                path(&["users", &name, "roles"], Seg::Index(i)),
                                format!("user {:?}: {e}", &*name),
                            )),
                        }
                    }
                }
            }
            let mut grants = Vec::with_capacity(u.rooms.len());
            for (room, access) in u.rooms {
                let at = || keys(&["users", &name, "rooms", &room]);
                let t = self
                    .target(&room)
                    .map_err(|e| Pending::at(file, at(), format!("user {:?}: {e}", &*name)));
                let a = access.parse::<Access>().map_err(|e| {
                    let reason = format!("user {:?}: room {:?}: {e}", &*name, &*room);
                    Pending::at(file, at(), reason)
                });
                match (t, a) {
                    (Ok(t), Ok(a)) => grants.push((t, a)),
                    (t, a) => out.extend(t.err().into_iter().chain(a.err())),
                }
            }
            let limits = limits(file, "users", &name, u.limits.as_ref(), out);
            self.users.push(UserDef {
                file,
                limits,
                name,
                roles,
                password: u.password,
                groups: u.groups,
                grants,
                nkeys: u.nkeys,
                account: u.account,
            });
        }
        for (name, g) in raw.groups {
            if let Err(e) = validate_name(&name) {
                let reason = format!("invalid group name {:?}: {e}", &*name);
                out.push(Pending::at(file, keys(&["groups", &name]), reason));
            }
            let limits = limits(file, "groups", &name, g.limits.as_ref(), out);
            self.groups.push(GroupDef {
                file,
                limits,
                name,
                members: g.members,
            });
        }
        for (name, r) in raw.rooms {
            let target = self
                .target(&name)
                .map_err(|e| out.push(Pending::at(file, keys(&["rooms", &name]), e)))
                .ok();
            let access = match r.access.as_deref().map(str::parse::<Access>) {
                None => Access::ReadWrite,
                Some(Ok(a)) => a,
                Some(Err(e)) => {
                    let at = keys(&["rooms", &name, "access"]);
                    out.push(Pending::at(file, at, format!("room {:?}: {e}", &*name)));
                    Access::ReadWrite
                }
            };
            self.rooms.push(RoomDef {
                file,
                name,
                target,
                access,
                description: r.description,
                members: r.members,
            });
        }
        self.add_applications(file, raw.applications, out);
    }

    /// Pass 2: duplicates and references between entries. Also resolves every reference
    /// to an index, so that pass 3 needs no name lookups.
    pub(crate) fn check_references(&mut self, out: &mut Vec<Pending>) {
        let users = index(
            "user",
            "users",
            self.users.iter().map(|u| (u.file, &*u.name)),
            out,
        );
        let groups = index(
            "group",
            "groups",
            self.groups.iter().map(|g| (g.file, &*g.name)),
            out,
        );
        index(
            "room",
            "rooms",
            self.rooms.iter().map(|r| (r.file, &*r.name)),
            out,
        );
        index(
            "application",
            "applications",
            self.applications.iter().map(|a| (a.file, &*a.name)),
            out,
        );
        self.check_keys(out);

        let mut group_users: Vec<Vec<usize>> = vec![Vec::new(); self.groups.len()];
        for (ui, u) in self.users.iter().enumerate() {
            for (i, g) in u.groups.iter().enumerate() {
                match groups.get(&**g) {
                    Some(&(_, gi)) => group_users[gi].push(ui),
                    None => out.push(Pending::at(
                        u.file,
                        path(&["users", &u.name, "groups"], Seg::Index(i)),
                        format!("user {:?}: unknown group {:?}", &*u.name, &**g),
                    )),
                }
            }
        }
        for (gi, g) in self.groups.iter().enumerate() {
            for (i, m) in g.members.iter().enumerate() {
                let reason = if m.starts_with('@') {
                    format!("group {:?}: a group cannot contain groups ({:?})", &*g.name, &**m)
                } else if let Some(&(_, ui)) = users.get(&**m) {
                    group_users[gi].push(ui);
                    continue;
                } else {
                    format!("group {:?}: unknown user {:?}", &*g.name, &**m)
                };
                let at = path(&["groups", &g.name, "members"], Seg::Index(i));
                out.push(Pending::at(g.file, at, reason));
            }
        }
        let room_members = self.room_members(&users, &groups, out);
        self.group_users = group_users;
        self.room_members = room_members;
    }

    /// A key names one user: the same key twice would let one signature be either.
    fn check_keys(&self, out: &mut Vec<Pending>) {
        let mut key_owner: HashMap<&str, &str> = HashMap::default();
        for u in &self.users {
            for (i, k) in u.nkeys.iter().enumerate() {
                if let Some(first) = key_owner.insert(k, &u.name)
                    && first != &*u.name
                {
                    out.push(Pending::at(
                        u.file,
                        path(&["users", &u.name, "nkeys"], Seg::Index(i)),
                        format!("user {:?}: nkey {:?} is also user {first:?}'s", &*u.name, &**k),
                    ));
                }
            }
        }
    }

    /// Every room's members, resolved to indices; unknown ones are problems.
    fn room_members(&self, users: &Index<'_>, groups: &Index<'_>, out: &mut Vec<Pending>) -> Vec<Members> {
        let mut room_members = Vec::with_capacity(self.rooms.len());
        for r in &self.rooms {
            let mut members = Members::default();
            for (i, m) in r.members.iter().enumerate() {
                let (found, what) = match m.strip_prefix('@') {
                    Some(g) => (groups.get(g).map(|&(_, gi)| members.groups.push(gi)), "group"),
                    None => (users.get(&**m).map(|&(_, ui)| members.users.push(ui)), "user"),
                };
                if found.is_none() {
                    out.push(Pending::at(
                        r.file,
                        path(&["rooms", &r.name, "members"], Seg::Index(i)),
                        format!("room {:?}: unknown {what} {:?}", &*r.name, &**m),
                    ));
                }
            }
            room_members.push(members);
        }
        room_members
    }

    /// How many exact rooms each user will be granted, so that no grant map grows while it
    /// is filled.
    fn grant_sizes(&self) -> Vec<usize> {
        let no_members = Members::default();
        let mut sizes: Vec<usize> = self.users.iter().map(|u| u.grants.len()).collect();
        let mut bump = |ui: usize| {
            if let Some(n) = sizes.get_mut(ui) {
                *n += 1;
            }
        };
        for (ri, r) in self.rooms.iter().enumerate() {
            if matches!(r.target, Some(Target::Exact(_))) {
                let m = self.room_members.get(ri).unwrap_or(&no_members);
                m.users.iter().copied().for_each(&mut bump);
                for &gi in &m.groups {
                    self.group_users
                        .get(gi)
                        .map_or(&[][..], Vec::as_slice)
                        .iter()
                        .copied()
                        .for_each(&mut bump);
                }
            }
        }
        sizes
    }

    /// Every room's grant to its members (users, groups and the groups' users); the rooms'
    /// descriptions.
    fn grant_rooms(&self, users: &mut [User], groups: &mut [User]) -> HashMap<String, String> {
        let no_members = Members::default();
        let group_users = |gi: usize| self.group_users.get(gi).map_or(&[][..], Vec::as_slice);
        let mut descriptions = HashMap::new();
        for (ri, r) in self.rooms.iter().enumerate() {
            if let Some(d) = &r.description {
                descriptions.insert(r.name.to_string(), d.to_string());
            }
            let Some(target) = &r.target else { continue };
            let m = self.room_members.get(ri).unwrap_or(&no_members);
            for &gi in &m.groups {
                if let Some(group) = groups.get_mut(gi) {
                    grant(group, target, r.access);
                }
            }
            let via_groups = m.groups.iter().flat_map(|&gi| group_users(gi));
            for &ui in m.users.iter().chain(via_groups) {
                if let Some(user) = users.get_mut(ui) {
                    grant(user, target, r.access);
                }
            }
        }
        descriptions
    }

    /// Pass 3: builds the snapshot. Only meaningful when passes 1 and 2 found nothing.
    pub(crate) fn build(self) -> Snapshot {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let group_users = |gi: usize| self.group_users.get(gi).map_or(&[][..], Vec::as_slice);
        let sizes = self.grant_sizes();

        let mut users: Vec<User> = self
            .users
            .iter()
            .zip(sizes)
            .map(|(u, size)| {
                let mut user = User {
                    own_limits: u.limits,
                    limits: u.limits,
                    account: u.account.as_deref().map(str::to_owned),
                    roles: u.roles,
                    password_hash: u.password.as_deref().map(str::to_owned),
                    grants: HashMap::with_capacity(size),
                    ..User::empty(u.name.to_string(), id)
                };
                for (target, access) in &u.grants {
                    grant(&mut user, target, *access);
                }
                user
            })
            .collect();
        let mut inherited = vec![Limits::default(); users.len()];
        for (gi, g) in self.groups.iter().enumerate() {
            for &ui in group_users(gi) {
                if let Some(user) = users.get_mut(ui) {
                    user.groups.push(g.name.to_string());
                    inherited[ui] = inherited[ui].smallest(g.limits);
                }
            }
        }
        for (user, inherited) in users.iter_mut().zip(inherited) {
            user.limits = user.own_limits.over(inherited);
        }

        // Each group's own grants (and limits), for users an identity provider places in a group.
        let mut groups: Vec<User> = self
            .groups
            .iter()
            .map(|g| User {
                own_limits: g.limits,
                limits: g.limits,
                ..User::empty(g.name.to_string(), id)
            })
            .collect();
        let descriptions = self.grant_rooms(&mut users, &mut groups);

        let mut by_id = HashMap::with_capacity(users.len());
        for mut user in users {
            user.groups.sort_unstable();
            user.groups.dedup();
            merge_patterns(&mut user.patterns);
            by_id.insert(user.id.clone(), user);
        }
        let groups = groups
            .into_iter()
            .map(|mut g| {
                merge_patterns(&mut g.patterns);
                (g.id.clone(), g)
            })
            .collect();
        let nkeys = self
            .users
            .iter()
            .flat_map(|u| u.nkeys.iter().map(move |k| (k.to_string(), u.name.to_string())))
            .collect();
        let applications = self.applications.into_iter().map(application).collect();
        let mut rooms: Vec<Arc<str>> = self.room_names.into_iter().collect();
        rooms.sort_unstable();
        Snapshot::new(id, by_id, groups, nkeys, rooms, descriptions).with_applications(applications)
    }
}

/// An application as the snapshot keeps it: exact rooms in a set, patterns sorted.
fn application(a: ApplicationDef<'_>) -> (String, Application) {
    let mut app = Application {
        name: a.name.to_string(),
        rooms: HashSet::default(),
        patterns: Vec::new(),
        description: a.description.as_deref().map(str::to_owned),
    };
    for t in a.targets {
        match t {
            Target::Exact(room) => {
                app.rooms.insert(room);
            }
            Target::Pattern(p) => app.patterns.push(p),
        }
    }
    app.patterns.sort_unstable();
    app.patterns.dedup();
    (app.name.clone(), app)
}

/// A public user nkey: `U…`, 56 base32 characters with a valid checksum.
pub(crate) fn is_user_nkey(k: &str) -> bool {
    k.starts_with('U') && nkeys::KeyPair::from_public_key(k).is_ok()
}

/// Adds one grant to a user, as a union with what the user already has.
fn grant(user: &mut User, target: &Target, access: Access) {
    match target {
        Target::Exact(room) => grant_room(user, room, access),
        Target::Pattern(p) => user.patterns.push((p.clone(), access)),
    }
}

/// Adds one exact room grant, as a union with what the user already has.
pub(super) fn grant_room(user: &mut User, room: &Arc<str>, access: Access) {
    match user.grants.get_mut(room) {
        Some(a) => *a = a.union(access),
        None => {
            user.grants.insert(room.clone(), access);
        }
    }
}

/// Sorts patterns and merges duplicates into one entry with the union of their access.
pub(super) fn merge_patterns(patterns: &mut Vec<(Pattern, Access)>) {
    patterns.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    patterns.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 = kept.1.union(later.1);
            true
        } else {
            false
        }
    });
}

/// Indexes names (name -> file and position of the first definition) and reports those
/// defined more than once (in any files).
/// Names to where they are defined: (file, position).
type Index<'a> = HashMap<&'a str, (usize, usize)>;

fn index<'a>(
    kind: &str,
    section: &str,
    names: impl Iterator<Item = (usize, &'a str)>,
    out: &mut Vec<Pending>,
) -> HashMap<&'a str, (usize, usize)> {
    let mut first: HashMap<&'a str, (usize, usize)> = HashMap::with_capacity(names.size_hint().0);
    for (i, (file, name)) in names.enumerate() {
        if let Some(&(first_file, _)) = first.get(name) {
            let mut p = Pending::at(
                file,
                keys(&[section, name]),
                format!("{kind} {name:?} is defined more than once"),
            );
            p.first = Some((first_file, keys(&[section, name])));
            out.push(p);
        } else {
            first.insert(name, (file, i));
        }
    }
    first
}

/// The checks of pass 1 that need nothing but the user entry itself (name and password
/// hash, the costly one): run for each file right after it is parsed, several files at once.
pub(crate) fn check_users(file: usize, raw: &RawFile<'_>, out: &mut Vec<Pending>) {
    for (name, u) in &raw.users {
        if let Err(e) = validate_name(name) {
            let reason = format!("invalid user name {:?}: {e}", &**name);
            out.push(Pending::at(file, keys(&["users", name]), reason));
        }
        if crate::names::is_guest_name(name) {
            let reason = format!(
                "user name {:?} is reserved: {:?} names are the guests'",
                &**name,
                crate::names::GUEST_PREFIX
            );
            out.push(Pending::at(file, keys(&["users", name]), reason));
        }
        if let Some(a) = &u.account
            && let Err(e) = validate_name(a)
        {
            out.push(Pending::at(
                file,
                keys(&["users", name, "account"]),
                format!("user {:?}: account {:?}: {e}", &**name, &**a),
            ));
        }
        for (i, k) in u.nkeys.iter().enumerate() {
            if !is_user_nkey(k) {
                out.push(Pending::at(
                    file,
                    path(&["users", name, "nkeys"], Seg::Index(i)),
                    format!("user {:?}: {:?} is not a public user nkey (U...)", &**name, &**k),
                ));
            }
        }
        if let Some(hash) = &u.password
            && !is_valid_hash(hash)
        {
            // Never echo the value: it may be a plain-text password put there by mistake.
            out.push(Pending::at(
                file,
                keys(&["users", name, "password"]),
                format!(
                    "user {:?}: password is not an argon2id PHC hash \
                     (make one with `nats-callout hash-password`)",
                    &**name
                ),
            ));
        }
    }
}

impl Snapshot {
    /// A snapshot without users or rooms (denies everything).
    #[must_use]
    pub fn empty() -> Self {
        Defs::default().build()
    }
}
