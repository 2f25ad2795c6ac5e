//! `[rooms]`: rooms as data: who may create them, and how many one user may own.

use serde::Deserialize;

use super::{ConfigError, Section, invalid};
use crate::permissions::{Role, User};

/// Rooms created, shared and taken back by users and apps.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct RoomSettings {
    /// Who may create rooms: role names (`user`, `admin`, ...) and groups (`@staff`). Unset:
    /// every user of the permission files and of the identity providers. Guests never.
    pub creators: Option<Vec<String>>,
    /// The most rooms one user may own.
    pub max_owned: usize,
}

impl Default for RoomSettings {
    fn default() -> Self {
        RoomSettings {
            creators: None,
            max_owned: 100,
        }
    }
}

impl RoomSettings {
    /// Whether `user` may create rooms (`guest`: the user is a guest, who never may).
    #[must_use]
    pub fn may_create(&self, user: &User, guest: bool) -> bool {
        if guest {
            return false;
        }
        let Some(creators) = &self.creators else {
            return true;
        };
        creators.iter().any(|c| match c.strip_prefix('@') {
            Some(group) => user.groups().iter().any(|g| g == group),
            None => c.parse::<Role>().is_ok_and(|r| user.has_role(r)),
        })
    }
}

impl Section for RoomSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for c in self.creators.iter().flatten() {
            let ok = match c.strip_prefix('@') {
                Some(group) => crate::names::is_valid_name(group),
                None => c.parse::<Role>().is_ok(),
            };
            if !ok {
                return invalid(
                    "rooms.creators",
                    format!("{c:?} is neither a role (user, admin, sysadmin, service) nor a group (@name)"),
                );
            }
        }
        if self.max_owned == 0 {
            return invalid("rooms.max_owned", "must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::Snapshot;

    #[test]
    fn creators_are_roles_and_groups_and_never_guests() {
        let s = Snapshot::from_sources(&[(
            "p.toml".into(),
            "[users.bob]\n[users.admin]\nroles = [\"admin\"]\n[users.carol]\ngroups = [\"staff\"]\n[groups.staff]\nmembers = []\n".into(),
        )])
        .unwrap();
        let (bob, admin, carol) = (
            s.user("bob").unwrap(),
            s.user("admin").unwrap(),
            s.user("carol").unwrap(),
        );
        let all = RoomSettings::default();
        assert!(all.may_create(bob, false) && !all.may_create(bob, true));
        let some = RoomSettings {
            creators: Some(vec!["admin".into(), "@staff".into()]),
            ..RoomSettings::default()
        };
        assert!(!some.may_create(bob, false));
        assert!(some.may_create(admin, false) && some.may_create(carol, false));
        assert!(!some.may_create(admin, true));
        for bad in ["wizard", "@a.b", "@"] {
            let r = RoomSettings {
                creators: Some(vec![bad.into()]),
                ..RoomSettings::default()
            };
            assert!(r.validate().is_err(), "{bad}");
        }
    }
}
