//! What an identity provider asserts about a user (groups and roles, already mapped onto the
//! permission files' names) and the user the snapshot makes of it.
//!
//! The files stay the authority: an asserted group gives only the rooms the files give that
//! group, a group the files do not define gives nothing, and a role comes only from the
//! provider-group → role table an operator wrote. Whether a user absent from the files may
//! connect on asserted groups alone is the provider's `unknown_users` setting.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::build::{grant_room, merge_patterns};
use super::model::{Role, User};
use super::snapshot::Snapshot;

/// A provider's statement about a user, carried in the identity (and in our own tokens
/// after a provider login, so that every later connection is decided the same way).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asserted {
    /// The provider's `name`.
    pub idp: String,
    /// Permission-file groups the provider places the user in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Roles from the provider's group → role table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// Whether a user absent from the files is known by these groups alone
    /// (`unknown_users = "groups-only"`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub groups_only: bool,
    /// Whether the provider may assert users of the files (`file_users`): when not, a name
    /// the files use is refused, never taken.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub file_users: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Snapshot {
    /// The user `id` as this snapshot sees them with what a provider asserts (`None`: just
    /// the files). A file user asserted by a provider without `file_users` is unknown. A
    /// user in the files gains the asserted groups' rooms and roles; a user
    /// absent from them exists only under `groups_only` and only when an asserted group or
    /// role is known here. `None` = unknown user.
    #[must_use]
    pub fn effective<'a>(&'a self, id: &str, asserted: Option<&Asserted>) -> Option<Cow<'a, User>> {
        let file = self.user(id);
        if file.is_some() && asserted.is_some_and(|a| !a.file_users) {
            // A provider not trusted with the files' users names one of them: refused, so
            // that it can neither take that user's grants nor speak under that name.
            return None;
        }
        let Some(a) = asserted.filter(|a| !a.groups.is_empty() || !a.roles.is_empty()) else {
            return file.map(Cow::Borrowed);
        };
        let groups: Vec<&User> = a.groups.iter().filter_map(|g| self.group(g)).collect();
        let mut user = match file {
            Some(u) => u.clone(),
            None if a.groups_only && (!groups.is_empty() || !a.roles.is_empty()) => {
                User::empty(id.to_string(), self.id())
            }
            None => return None,
        };
        for role in &a.roles {
            user.roles.insert(*role);
        }
        let mut inherited = crate::permissions::Limits::default();
        for g in groups {
            inherited = inherited.smallest(g.own_limits);
            user.groups.push(g.id.clone());
            for (room, access) in &g.grants {
                grant_room(&mut user, room, *access);
            }
            user.patterns.extend(g.patterns.iter().cloned());
        }
        user.groups.sort_unstable();
        user.groups.dedup();
        merge_patterns(&mut user.patterns);
        user.limits = user.own_limits.over(user.limits.smallest(inherited));
        Some(Cow::Owned(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::Access;

    const FILES: &str = r#"
[users.bob]
[users.admin]
roles = ["admin"]
[groups.staff]
members = []
[groups.everyone]
members = ["bob"]
[rooms.all1]
members = ["@everyone"]
[rooms.staff-room]
members = ["@staff"]
access = "read"
[rooms."team-*"]
members = ["@staff"]
"#;

    fn snap() -> Snapshot {
        Snapshot::from_sources(&[("p.toml".into(), FILES.into())]).unwrap()
    }

    fn says(groups: &[&str], roles: &[Role], groups_only: bool) -> Asserted {
        Asserted {
            idp: "corp".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            roles: roles.to_vec(),
            groups_only,
            file_users: true,
        }
    }

    #[test]
    fn a_file_user_gains_the_asserted_groups_rooms_and_keeps_its_own() {
        let s = snap();
        let bob = s.effective("bob", Some(&says(&["staff"], &[], false))).unwrap();
        assert_eq!(s.access(&bob, "all1"), Some(Access::ReadWrite));
        assert_eq!(s.access(&bob, "staff-room"), Some(Access::Read));
        assert_eq!(s.access(&bob, "team-blue"), Some(Access::ReadWrite));
        assert_eq!(bob.groups(), ["everyone", "staff"]);
        let plain = s.effective("bob", None).unwrap();
        assert_eq!(s.access(&plain, "staff-room"), None, "no assertion, no group");
    }

    #[test]
    fn unknown_users_exist_only_under_groups_only_and_only_with_a_known_group_or_role() {
        let s = snap();
        assert!(
            s.effective("carol", Some(&says(&["staff"], &[], false)))
                .is_none()
        );
        let carol = s.effective("carol", Some(&says(&["staff"], &[], true))).unwrap();
        assert_eq!(s.access(&carol, "staff-room"), Some(Access::Read));
        assert_eq!(s.access(&carol, "all1"), None);
        assert!(!carol.is_admin());
        assert!(
            s.effective("carol", Some(&says(&["nosuchgroup"], &[], true)))
                .is_none(),
            "a group the files do not define gives nothing"
        );
        assert!(s.effective("carol", Some(&says(&[], &[], true))).is_none());
        assert!(s.effective("carol", None).is_none());
    }

    #[test]
    fn a_mapped_role_is_a_role() {
        let s = snap();
        let dave = s
            .effective("dave", Some(&says(&[], &[Role::Admin], true)))
            .unwrap();
        assert!(dave.is_admin());
        assert_eq!(s.access(&dave, "anything"), Some(Access::ReadWrite));
    }

    #[test]
    fn a_user_made_for_an_older_snapshot_gets_nothing_from_a_newer_one() {
        let old = snap();
        let carol = old
            .effective("carol", Some(&says(&["staff"], &[], true)))
            .unwrap()
            .into_owned();
        let new = snap();
        assert_eq!(new.access(&carol, "staff-room"), None);
    }
}
