//! Validating parsed permission files and building a [`Snapshot`] from them.
//!
//! Three passes: each file's entries are checked on their own (names, roles, access,
//! password hashes), then references across files (members, groups, duplicates), and only
//! when no problem was found is the snapshot built: per-user maps of exact room grants and
//! per-user pattern lists, so an access check never scans all rooms.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use super::locate::{Path, Seg, keys};
use super::model::{Access, Pattern, Role, RoleSet, User};
use super::snapshot::Snapshot;
use super::source::{Pending, RawFile};
use crate::names::validate_name;
use crate::password::is_valid_hash;

/// A room name or pattern from a file.
#[derive(Debug, Clone)]
enum Target {
    Exact(String),
    Pattern(Pattern),
}

/// Checks a room name or pattern; `Err` carries the reason.
fn target(name: &str) -> Result<Target, String> {
    if name.contains('*') {
        Pattern::parse(name)
            .map(Target::Pattern)
            .map_err(|e| format!("invalid room pattern {name:?}: {e}"))
    } else {
        validate_name(name)
            .map(|()| Target::Exact(name.to_owned()))
            .map_err(|e| format!("invalid room name {name:?}: {e}"))
    }
}

struct UserDef {
    file: usize,
    name: String,
    roles: RoleSet,
    password: Option<String>,
    groups: Vec<String>,
    grants: Vec<(Target, Access)>,
}

struct GroupDef {
    file: usize,
    name: String,
    members: Vec<String>,
}

struct RoomDef {
    file: usize,
    name: String,
    target: Option<Target>,
    access: Access,
    description: Option<String>,
    members: Vec<String>,
}

/// Definitions from all files, checked one by one.
#[derive(Default)]
pub(crate) struct Defs {
    users: Vec<UserDef>,
    groups: Vec<GroupDef>,
    rooms: Vec<RoomDef>,
}

fn path(parts: &[&str], tail: Seg) -> Path {
    let mut p = keys(parts);
    p.push(tail);
    p
}

impl Defs {
    /// Pass 1: checks the entries of one file on their own and keeps them.
    pub(crate) fn add_file(&mut self, file: usize, raw: RawFile, out: &mut Vec<Pending>) {
        for (name, u) in raw.users {
            if let Err(e) = validate_name(&name) {
                let reason = format!("invalid user name {name:?}: {e}");
                out.push(Pending::at(file, keys(&["users", &name]), reason));
            }
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
                                format!("user {name:?}: {e}"),
                            )),
                        }
                    }
                }
            }
            if let Some(hash) = &u.password
                && !is_valid_hash(hash)
            {
                // Never echo the value: it may be a plain-text password put there by mistake.
                out.push(Pending::at(
                    file,
                    keys(&["users", &name, "password"]),
                    format!(
                        "user {name:?}: password is not an argon2id PHC hash \
                         (make one with `nats-callout hash-password`)"
                    ),
                ));
            }
            let mut grants = Vec::with_capacity(u.rooms.len());
            for (room, access) in u.rooms {
                let at = || keys(&["users", &name, "rooms", &room]);
                let t = target(&room).map_err(|e| Pending::at(file, at(), format!("user {name:?}: {e}")));
                let a = access
                    .parse::<Access>()
                    .map_err(|e| Pending::at(file, at(), format!("user {name:?}: room {room:?}: {e}")));
                match (t, a) {
                    (Ok(t), Ok(a)) => grants.push((t, a)),
                    (t, a) => out.extend(t.err().into_iter().chain(a.err())),
                }
            }
            self.users.push(UserDef {
                file,
                name,
                roles,
                password: u.password,
                groups: u.groups,
                grants,
            });
        }
        for (name, g) in raw.groups {
            if let Err(e) = validate_name(&name) {
                let reason = format!("invalid group name {name:?}: {e}");
                out.push(Pending::at(file, keys(&["groups", &name]), reason));
            }
            self.groups.push(GroupDef {
                file,
                name,
                members: g.members,
            });
        }
        for (name, r) in raw.rooms {
            let target = target(&name)
                .map_err(|e| out.push(Pending::at(file, keys(&["rooms", &name]), e)))
                .ok();
            let access = match r.access.as_deref().map(str::parse::<Access>) {
                None => Access::ReadWrite,
                Some(Ok(a)) => a,
                Some(Err(e)) => {
                    let at = keys(&["rooms", &name, "access"]);
                    out.push(Pending::at(file, at, format!("room {name:?}: {e}")));
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
    }

    /// Pass 2: duplicates and references between entries.
    pub(crate) fn check_references(&self, out: &mut Vec<Pending>) {
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

        for u in &self.users {
            for (i, g) in u.groups.iter().enumerate() {
                if !groups.contains(g.as_str()) {
                    out.push(Pending::at(
                        u.file,
                        path(&["users", &u.name, "groups"], Seg::Index(i)),
                        format!("user {:?}: unknown group {g:?}", u.name),
                    ));
                }
            }
        }
        for g in &self.groups {
            for (i, m) in g.members.iter().enumerate() {
                let reason = if m.starts_with('@') {
                    format!("group {:?}: a group cannot contain groups ({m:?})", g.name)
                } else if !users.contains(m.as_str()) {
                    format!("group {:?}: unknown user {m:?}", g.name)
                } else {
                    continue;
                };
                let at = path(&["groups", &g.name, "members"], Seg::Index(i));
                out.push(Pending::at(g.file, at, reason));
            }
        }
        for r in &self.rooms {
            for (i, m) in r.members.iter().enumerate() {
                let known = match m.strip_prefix('@') {
                    Some(g) => groups.contains(g),
                    None => users.contains(m.as_str()),
                };
                if !known {
                    let what = if m.starts_with('@') { "group" } else { "user" };
                    out.push(Pending::at(
                        r.file,
                        path(&["rooms", &r.name, "members"], Seg::Index(i)),
                        format!("room {:?}: unknown {what} {m:?}", r.name),
                    ));
                }
            }
        }
    }

    /// Pass 3: builds the snapshot. Only meaningful when passes 1 and 2 found nothing.
    pub(crate) fn build(self) -> Snapshot {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);

        let t0 = std::time::Instant::now();
        let mut users: HashMap<String, User> = HashMap::with_capacity(self.users.len());
        let mut group_members: HashMap<String, Vec<String>> = HashMap::new();
        for g in self.groups {
            group_members.entry(g.name).or_default().extend(g.members);
        }
        for u in self.users {
            for g in &u.groups {
                group_members.entry(g.clone()).or_default().push(u.name.clone());
            }
            let mut user = User {
                id: u.name.clone(),
                roles: u.roles,
                password_hash: u.password,
                groups: Vec::new(),
                grants: HashMap::with_capacity(u.grants.len()),
                patterns: Vec::new(),
                snapshot: id,
            };
            for (target, access) in u.grants {
                grant(&mut user, target, access);
            }
            users.insert(u.name, user);
        }
        eprintln!("users {:?}", t0.elapsed());
        for (group, members) in &group_members {
            for m in members {
                if let Some(user) = users.get_mut(m) {
                    user.groups.push(group.clone());
                }
            }
        }

        let mut descriptions = HashMap::new();
        let mut defined = Vec::new();
        for r in self.rooms {
            let Some(target) = r.target else { continue };
            for m in &r.members {
                let ids = match m.strip_prefix('@') {
                    Some(g) => group_members.get(g).map_or(&[][..], Vec::as_slice),
                    None => std::slice::from_ref(m),
                };
                for m in ids {
                    if let Some(user) = users.get_mut(m) {
                        grant(user, target.clone(), r.access);
                    }
                }
            }
            if let Some(d) = r.description {
                descriptions.insert(r.name.clone(), d);
            }
            if let Target::Exact(name) = target {
                defined.push(name);
            }
        }

        eprintln!("rooms {:?}", t0.elapsed());
        let mut rooms: HashSet<&str> = defined.iter().map(String::as_str).collect();
        for user in users.values() {
            rooms.extend(user.grants.keys().map(String::as_str));
        }
        let mut rooms: Vec<String> = rooms.into_iter().map(str::to_owned).collect();
        rooms.sort_unstable();

        eprintln!("known {:?}", t0.elapsed());
        for user in users.values_mut() {
            user.groups.sort_unstable();
            user.groups.dedup();
            merge_patterns(&mut user.patterns);
        }
        eprintln!("done {:?}", t0.elapsed());
        Snapshot::new(id, users, rooms, descriptions)
    }
}

/// Adds one grant to a user, as a union with what the user already has.
fn grant(user: &mut User, target: Target, access: Access) {
    match target {
        Target::Exact(room) => match user.grants.get_mut(&room) {
            Some(a) => *a = a.union(access),
            None => {
                user.grants.insert(room, access);
            }
        },
        Target::Pattern(p) => user.patterns.push((p, access)),
    }
}

/// Sorts patterns and merges duplicates into one entry with the union of their access.
fn merge_patterns(patterns: &mut Vec<(Pattern, Access)>) {
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

/// Indexes names and reports those defined more than once (in any files).
fn index<'a>(
    kind: &str,
    section: &str,
    names: impl Iterator<Item = (usize, &'a str)>,
    out: &mut Vec<Pending>,
) -> HashSet<&'a str> {
    let mut first: HashMap<&'a str, usize> = HashMap::new();
    for (file, name) in names {
        if let Some(&first_file) = first.get(name) {
            let mut p = Pending::at(
                file,
                keys(&[section, name]),
                format!("{kind} {name:?} is defined more than once"),
            );
            p.first = Some((first_file, keys(&[section, name])));
            out.push(p);
        } else {
            first.insert(name, file);
        }
    }
    first.into_keys().collect()
}
