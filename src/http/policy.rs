//! Who may revoke what: a pure function of the caller and the target asked for.

use crate::permissions::Role;
use crate::tokens::revocation::RevokeTarget;

/// The caller as revocation rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Revoker<'a> {
    pub user: &'a str,
    pub roles: &'a [Role],
}

impl Revoker<'_> {
    fn admin(&self) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r, Role::Admin | Role::Sysadmin))
    }
}

/// Decide a revocation: the target to carry out, or why it is forbidden.
///
/// - a user: oneself, or anyone for admins;
/// - a bare device id: the caller's own sessions on that device, whoever asks (device ids
///   are chosen by clients, so a bare id would otherwise reach every user's `laptop`);
/// - a user's device (`userId` + `deviceId`): one's own, or anyone's for admins;
/// - a session: one's own (`owner` = the session's user), or anyone's for admins;
/// - everything before a time: sysadmins only.
pub fn authorize_revoke(
    caller: &Revoker<'_>,
    asked: RevokeTarget,
    owner: Option<&str>,
) -> Result<RevokeTarget, &'static str> {
    let admin = caller.admin();
    match asked {
        RevokeTarget::User(u) if admin || u == caller.user => Ok(RevokeTarget::User(u)),
        RevokeTarget::User(_) => Err("only admins revoke other users"),
        RevokeTarget::Device(device) => Ok(RevokeTarget::UserDevice {
            user: caller.user.to_string(),
            device,
        }),
        RevokeTarget::UserDevice { user, device } if admin || user == caller.user => {
            Ok(RevokeTarget::UserDevice { user, device })
        }
        RevokeTarget::UserDevice { .. } => Err("only admins revoke other users' devices"),
        RevokeTarget::Application { user, client_id } if admin || user == caller.user => {
            Ok(RevokeTarget::Application { user, client_id })
        }
        RevokeTarget::Application { .. } => Err("only admins revoke other users' applications"),
        RevokeTarget::Session(s) if admin || owner == Some(caller.user) => Ok(RevokeTarget::Session(s)),
        RevokeTarget::Session(_) => Err("only admins revoke other users' sessions"),
        RevokeTarget::Before(t) if caller.roles.contains(&Role::Sysadmin) => Ok(RevokeTarget::Before(t)),
        RevokeTarget::Before(_) => Err("only sysadmins revoke everything before a time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RevokeTarget::*;

    #[test]
    fn who_may_revoke_what_table() {
        let user: &[Role] = &[Role::User];
        let admin: &[Role] = &[Role::Admin];
        let sysadmin: &[Role] = &[Role::Sysadmin];
        let bob = |roles| Revoker { user: "bob", roles };
        let s = |v: &str| v.to_string();
        let ud = |u: &str, d: &str| UserDevice {
            user: s(u),
            device: s(d),
        };
        // (caller roles, asked, session owner, expected)
        type Case<'a> = (
            &'a [Role],
            RevokeTarget,
            Option<&'a str>,
            Result<RevokeTarget, ()>,
        );
        let cases: Vec<Case> = vec![
            (user, User(s("bob")), None, Ok(User(s("bob")))),
            (user, User(s("alice")), None, Err(())),
            (admin, User(s("alice")), None, Ok(User(s("alice")))),
            (user, Device(s("phone")), None, Ok(ud("bob", "phone"))),
            (user, Device(s("laptop")), None, Ok(ud("bob", "laptop"))),
            // A bare device id never reaches other users' devices, even for admins.
            (admin, Device(s("laptop")), None, Ok(ud("bob", "laptop"))),
            (sysadmin, Device(s("phone")), None, Ok(ud("bob", "phone"))),
            (user, ud("bob", "laptop"), None, Ok(ud("bob", "laptop"))),
            (user, ud("alice", "phone"), None, Err(())),
            (admin, ud("alice", "laptop"), None, Ok(ud("alice", "laptop"))),
            (user, Session(s("s1")), Some("bob"), Ok(Session(s("s1")))),
            (user, Session(s("s1")), Some("alice"), Err(())),
            (user, Session(s("s1")), None, Err(())),
            (admin, Session(s("s1")), Some("alice"), Ok(Session(s("s1")))),
            (admin, Session(s("unknown")), None, Ok(Session(s("unknown")))),
            (user, Before(10), None, Err(())),
            (admin, Before(10), None, Err(())),
            (sysadmin, Before(10), None, Ok(Before(10))),
        ];
        for (roles, asked, owner, want) in cases {
            let got = authorize_revoke(&bob(roles), asked.clone(), owner).map_err(|_| ());
            assert_eq!(got, want, "{roles:?} asking {asked:?} (owner {owner:?})");
        }
    }
}
