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
    /// roles, direct grants, and room tables listing the user or one of their groups, the
    /// groups a provider asserts (`asserted`: the provider's name and groups) among them.
    /// Run on definitions whose references were checked.
    pub(crate) fn grants_of(
        &self,
        user: &str,
        room: &str,
        asserted: Option<(&str, &[String])>,
    ) -> Vec<Found> {
        let me = self.users.iter().enumerate().find(|(_, u)| &*u.name == user);
        let mut found = Vec::new();
        if let Some((_, u)) = me {
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
        }
        // Each group of the user's, with how they are in it.
        let mut groups: Vec<(&str, String)> = Vec::new();
        if let Some((ui, _)) = me {
            for (g, users) in self.groups.iter().zip(&self.group_users) {
                if users.contains(&ui) {
                    groups.push((&g.name, format!(" (user {user} is in group {})", &*g.name)));
                }
            }
        }
        for (idp, names) in asserted.into_iter().map(|(idp, names)| (idp, names.iter())) {
            for g in names {
                if !groups.iter().any(|(have, _)| have == g) {
                    groups.push((g, format!(" (provider {idp} places user {user} in group {g})")));
                }
            }
        }
        for r in &self.rooms {
            if !r.target.as_ref().is_some_and(|t| t.covers(room)) {
                continue;
            }
            for (i, m) in r.members.iter().enumerate() {
                let via = match m.strip_prefix('@') {
                    Some(g) => match groups.iter().find(|(name, _)| *name == g) {
                        Some((_, via)) => via.clone(),
                        None => continue,
                    },
                    None if &**m == user && me.is_some() => String::new(),
                    None => continue,
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
