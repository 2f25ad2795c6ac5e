//! Where the files grant a user a room: every definition that contributes, found by walking
//! the checked definitions again (only `explain` asks; decisions never come here).

use super::{Defs, Target};
use crate::permissions::locate::{Path, Seg, keys};
use crate::permissions::model::{Access, Role};

/// One definition that grants (part of) a user's access to a room, before its line is known.
pub(crate) struct Found {
    pub(crate) file: usize,
    pub(crate) path: Path,
    pub(crate) access: Access,
    /// What it is, in the files' words: `[rooms.all1] members "@everyone"`.
    pub(crate) what: String,
}

impl Target {
    fn covers(&self, room: &str) -> bool {
        match self {
            Target::Exact(name) => &**name == room,
            Target::Pattern(p) => p.matches(room),
        }
    }
}

impl Defs<'_> {
    /// Every definition granting `user` something in `room` (a valid room name): the admin
    /// roles, direct grants, and room tables listing the user or one of their groups.
    /// Run on definitions whose references were checked.
    pub(crate) fn grants_of(&self, user: &str, room: &str) -> Vec<Found> {
        let Some((ui, u)) = self.users.iter().enumerate().find(|(_, u)| &*u.name == user) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for role in [Role::Admin, Role::Sysadmin] {
            if u.roles.contains(role) {
                found.push(Found {
                    file: u.file,
                    path: keys(&["users", user, "roles"]),
                    access: Access::ReadWrite,
                    what: format!("[users.{user}] roles \"{}\" (every room)", role.as_str()),
                });
            }
        }
        for (target, access) in &u.grants {
            if target.covers(room) {
                let key = target.to_string();
                found.push(Found {
                    file: u.file,
                    path: keys(&["users", user, "rooms", &key]),
                    access: *access,
                    what: format!("[users.{user}.rooms] \"{key}\" = \"{access}\""),
                });
            }
        }
        let groups: Vec<&str> = self
            .groups
            .iter()
            .zip(&self.group_users)
            .filter(|(_, users)| users.contains(&ui))
            .map(|(g, _)| &*g.name)
            .collect();
        for r in &self.rooms {
            if !r.target.as_ref().is_some_and(|t| t.covers(room)) {
                continue;
            }
            for (i, m) in r.members.iter().enumerate() {
                let via = match m.strip_prefix('@') {
                    Some(g) if groups.contains(&g) => format!(" (user {user} is in group {g})"),
                    None if &**m == user => String::new(),
                    _ => continue,
                };
                let mut path = keys(&["rooms", &r.name, "members"]);
                path.push(Seg::Index(i));
                found.push(Found {
                    file: r.file,
                    path,
                    access: r.access,
                    what: format!("[rooms.{}] members \"{}\"{via}", &*r.name, &**m),
                });
            }
        }
        found
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Exact(name) => f.write_str(name),
            Target::Pattern(p) => p.fmt(f),
        }
    }
}
