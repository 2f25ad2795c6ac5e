//! What a permission change or a revocation means for one live connection (pure).

use crate::permissions::Privileges;
use crate::permissions::{Role, Snapshot};
use crate::rooms::RoomIndex;
use crate::tokens::revocation::RevocationIndex;

use super::registry::Entry;

/// What to do with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing was taken away (gains need nothing).
    Keep,
    /// Access was taken away: lame-duck notice, then a kick after the grace.
    Reauthorize(&'static str),
    /// Revoked: kick at once.
    Kick(&'static str),
}

/// What live connections are judged against.
#[derive(Clone, Copy)]
pub struct Current<'a> {
    /// The permissions now.
    pub snapshot: &'a Snapshot,
    /// Rooms as data now.
    pub rooms: &'a RoomIndex,
    /// The permissions before a reload (for connections whose decision is unknown).
    pub old: Option<&'a Snapshot>,
    pub revoked: &'a RevocationIndex,
    /// The roles that give `auth.v1.tokenReset`.
    pub token_reset_roles: &'a [Role],
    /// The rooms app services decide: their answers, not the files, take them back
    /// (see `Enforcement::on_delegates_invalidated`).
    pub delegates: &'a crate::access::Routes,
}

/// Compare a connection's grant with the current permissions and revocations.
pub fn assess(entry: &Entry, current: &Current<'_>) -> Action {
    let Current {
        snapshot: new,
        rooms,
        old,
        revoked,
        token_reset_roles,
        delegates,
    } = *current;
    let Some(d) = &entry.decision else {
        // Decision lost (made before this instance started): judge the user as a whole.
        if revoked.check_parts(&entry.user, "", None, i64::MIN).is_some() {
            return Action::Kick("revoked");
        }
        let Some(user) = new.user(&entry.user) else {
            return Action::Reauthorize("user-removed");
        };
        if let Some(old_user) = old.and_then(|o| o.user(&entry.user)) {
            let old = old.expect("old user implies old snapshot");
            let roles_changed = old_user.roles().ne(user.roles());
            if roles_changed || old.rooms_for(old_user) != new.rooms_for(user) {
                return Action::Reauthorize("user-changed");
            }
        }
        return Action::Keep;
    };
    if let Some(why) = revoked.check_parts(&d.user, &d.session, d.device.as_deref(), d.iat) {
        return Action::Kick(why);
    }
    let Some(user) = new.effective(&d.user, d.asserted.as_ref()) else {
        return Action::Reauthorize("user-removed");
    };
    let scope = new.scope(d.client_id.as_deref());
    for (room, granted) in d.rooms.iter().filter(|(r, _)| delegates.route(r).is_none()) {
        // The user's access (the files and data), within what the token's application may
        // reach.
        let lost = match crate::rooms::access(new, rooms, &user, room).filter(|_| scope.reaches(room)) {
            None => true,
            Some(now) => (granted.can_read() && !now.can_read()) || (granted.can_write() && !now.can_write()),
        };
        if lost {
            return Action::Reauthorize("room-lost");
        }
    }
    if d.privileges.lost_in(Privileges::of(&user, token_reset_roles)) {
        return Action::Reauthorize("role-lost");
    }
    Action::Keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::Access;
    use crate::tokens::revocation::Revocations;
    use crate::tokens::revocation::{Revocation, RevocationKind};
    use crate::wire::{ConnKey, DecisionRecord};

    fn snap(toml: &str) -> Snapshot {
        Snapshot::from_sources(&[("p.toml".into(), toml.into())]).unwrap()
    }

    const BEFORE: &str = "[users.bob]\n[users.bob.rooms]\nall1 = \"readwrite\"\nbob1 = \"readwrite\"\n";

    fn entry(rooms: &[(&str, Access)]) -> Entry {
        Entry {
            user: "bob".into(),
            decision: Some(DecisionRecord {
                conn: ConnKey {
                    server: "S".into(),
                    cid: 1,
                },
                user: "bob".into(),
                session: "s1".into(),
                device: Some("phone".into()),
                tid: "t1".into(),
                iat: 100,
                rooms: rooms.iter().map(|(r, a)| (r.to_string(), *a)).collect(),
                privileges: Default::default(),
                leafnode: false,
                expires_at: 1000,
                snapshot_epoch: 1,
                revocation_epoch: 0,
                rooms_epoch: 0,
                asserted: None,
                client_id: None,
                at: 0,
            }),
        }
    }

    /// Judge `e` against `after` (and `old`, before a reload), with the default token-reset roles.
    fn judge(e: &Entry, old: Option<&Snapshot>, after: &Snapshot, revoked: &RevocationIndex) -> Action {
        let rooms = RoomIndex::default();
        let current = Current {
            snapshot: after,
            rooms: &rooms,
            old,
            revoked,
            token_reset_roles: &[Role::Sysadmin, Role::Service],
            delegates: &crate::access::Routes::default(),
        };
        assess(e, &current)
    }

    #[test]
    fn losses_reauthorize_gains_keep() {
        let none = RevocationIndex::default();
        let e = entry(&[("all1", Access::ReadWrite), ("bob1", Access::ReadWrite)]);
        let cases = [
            (BEFORE, Action::Keep),
            (
                "[users.bob]\n[users.bob.rooms]\nall1 = \"readwrite\"\nbob1 = \"readwrite\"\nnew = \"read\"\n",
                Action::Keep,
            ),
            (
                "[users.bob]\n[users.bob.rooms]\nbob1 = \"readwrite\"\n",
                Action::Reauthorize("room-lost"),
            ),
            (
                "[users.bob]\n[users.bob.rooms]\nall1 = \"read\"\nbob1 = \"readwrite\"\n",
                Action::Reauthorize("room-lost"),
            ),
            ("[users.alice]\n", Action::Reauthorize("user-removed")),
            ("[users.bob]\nroles = [\"admin\"]\n", Action::Keep),
        ];
        for (after, want) in cases {
            assert_eq!(judge(&e, None, &snap(after), &none), want, "{after}");
        }
    }

    #[test]
    fn a_file_edit_never_takes_back_a_delegated_room() {
        let none = RevocationIndex::default();
        let e = entry(&[("team-a", Access::ReadWrite), ("all1", Access::ReadWrite)]);
        let routes = crate::access::Routes::from_settings(&[crate::access::DelegateSettings {
            rooms: "team-*".into(),
            subject: "apps.access".into(),
            timeout: std::time::Duration::from_millis(250),
            cache: std::time::Duration::from_secs(30),
        }])
        .unwrap();
        let (rooms, no_delegates) = (RoomIndex::default(), crate::access::Routes::EMPTY);
        let judge_with = |after: &str, delegates: &crate::access::Routes| {
            let after = snap(after);
            assess(
                &e,
                &Current {
                    snapshot: &after,
                    rooms: &rooms,
                    old: None,
                    revoked: &none,
                    token_reset_roles: &[],
                    delegates,
                },
            )
        };
        // The files never granted team-a: its delegate did.
        assert_eq!(judge_with(BEFORE, &routes), Action::Keep);
        assert_eq!(
            judge_with(BEFORE, &no_delegates),
            Action::Reauthorize("room-lost")
        );
        // A file room lost is still taken back.
        assert_eq!(
            judge_with("[users.bob]\n", &routes),
            Action::Reauthorize("room-lost")
        );
    }

    #[test]
    fn losing_a_role_derived_right_reauthorizes_keeping_it_does_not() {
        let none = RevocationIndex::default();
        let rooms = "[users.bob.rooms]\nall1 = \"readwrite\"\n";
        let with = |roles: &str| snap(&format!("[users.bob]\nroles = [{roles}]\n{rooms}"));
        // (granted privileges, roles after the edit, expected)
        let service = Privileges {
            service: true,
            token_reset: true,
        };
        let reset_only = Privileges {
            service: false,
            token_reset: true,
        };
        let cases = [
            (service, "\"service\"", Action::Keep),
            (service, "", Action::Reauthorize("role-lost")),
            (service, "\"sysadmin\"", Action::Reauthorize("role-lost")),
            (reset_only, "\"sysadmin\"", Action::Keep),
            (reset_only, "\"admin\"", Action::Reauthorize("role-lost")),
            (reset_only, "", Action::Reauthorize("role-lost")),
            (Privileges::default(), "", Action::Keep),
        ];
        for (granted, roles, want) in cases {
            let mut e = entry(&[("all1", Access::ReadWrite)]);
            e.decision.as_mut().unwrap().privileges = granted;
            assert_eq!(
                judge(&e, None, &with(roles), &none),
                want,
                "{granted:?} -> [{roles}]"
            );
        }
    }

    #[test]
    fn a_connection_loses_the_rooms_its_application_no_longer_reaches() {
        let none = RevocationIndex::default();
        let with_apps = |rooms: &str| {
            snap(&format!(
                "{BEFORE}[applications.mobile]\nrooms = [{rooms}]\n[applications.web]\nrooms = [\"*\"]\n"
            ))
        };
        let mut e = entry(&[("all1", Access::ReadWrite), ("bob1", Access::ReadWrite)]);
        e.decision.as_mut().unwrap().client_id = Some("mobile".into());
        // (files after the edit, expected)
        let cases = [
            (with_apps("\"all1\", \"bob1\""), Action::Keep),
            (with_apps("\"all1\", \"bob*\""), Action::Keep),
            (with_apps("\"all1\""), Action::Reauthorize("room-lost")),
            (with_apps(""), Action::Reauthorize("room-lost")),
            // The application removed while others remain: it reaches nothing.
            (
                snap(&format!("{BEFORE}[applications.web]\nrooms = [\"*\"]\n")),
                Action::Reauthorize("room-lost"),
            ),
            // No application left at all: clientId is free-form again, nothing is lost.
            (snap(BEFORE), Action::Keep),
        ];
        for (after, want) in cases {
            assert_eq!(judge(&e, None, &after, &none), want, "{after:?}");
        }
        // A connection without an application keeps its rooms whatever the applications.
        let plain = entry(&[("all1", Access::ReadWrite), ("bob1", Access::ReadWrite)]);
        assert_eq!(judge(&plain, None, &with_apps(""), &none), Action::Keep);
    }

    #[test]
    fn revocations_kick() {
        let e = entry(&[("all1", Access::ReadWrite)]);
        let r = Revocations::new([Revocation {
            kind: RevocationKind::Device,
            value: "phone".into(),
            cutoff: 100,
            expires_at: 500,
        }]);
        assert_eq!(
            judge(&e, None, &snap(BEFORE), &r.load()),
            Action::Kick("device-revoked")
        );
        let later = Revocations::new([Revocation {
            kind: RevocationKind::Device,
            value: "phone".into(),
            cutoff: 99,
            expires_at: 500,
        }]);
        assert_eq!(
            judge(&e, None, &snap(BEFORE), &later.load()),
            Action::Keep,
            "token issued after the cutoff"
        );
    }

    #[test]
    fn unknown_decisions_are_judged_per_user() {
        let none = RevocationIndex::default();
        let e = Entry {
            user: "bob".into(),
            decision: None,
        };
        let old = snap(BEFORE);
        assert_eq!(judge(&e, Some(&old), &snap(BEFORE), &none), Action::Keep);
        let fewer = snap("[users.bob]\n[users.bob.rooms]\nall1 = \"readwrite\"\n");
        assert_eq!(
            judge(&e, Some(&old), &fewer, &none),
            Action::Reauthorize("user-changed")
        );
        assert_eq!(
            judge(&e, Some(&old), &snap("[users.x]\n"), &none),
            Action::Reauthorize("user-removed")
        );
    }
}
