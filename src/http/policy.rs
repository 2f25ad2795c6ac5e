//! Who may revoke what: a pure function of the caller and the target asked for.

use crate::permissions::Role;
use crate::tokens::revocation::RevokeTarget;

/// The caller as revocation rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Revoker<'a> {
    pub user: &'a str,
    /// The device of the caller's own access token.
    pub device: Option<&'a str>,
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
/// - a device: any for admins; otherwise only the caller's own device, and then only the
///   caller's own sessions on it (device ids are chosen by clients, so a bare device id
///   would touch other users' sessions);
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
        RevokeTarget::Device(d) if admin => Ok(RevokeTarget::Device(d)),
        RevokeTarget::Device(d) if caller.device == Some(d.as_str()) => Ok(RevokeTarget::UserDevice {
            user: caller.user.to_string(),
            device: d,
        }),
        RevokeTarget::Device(_) => Err("only admins revoke other devices"),
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
        let bob = |roles| Revoker {
            user: "bob",
            device: Some("phone"),
            roles,
        };
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
            (user, Device(s("laptop")), None, Err(())),
            (admin, Device(s("laptop")), None, Ok(Device(s("laptop")))),
            (sysadmin, Device(s("phone")), None, Ok(Device(s("phone")))),
            (user, ud("bob", "laptop"), None, Ok(ud("bob", "laptop"))),
            (user, ud("alice", "phone"), None, Err(())),
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
        // A caller whose token names no device may not revoke a device by id.
        let no_device = Revoker {
            user: "bob",
            device: None,
            roles: user,
        };
        assert!(authorize_revoke(&no_device, Device(s("phone")), None).is_err());
    }
}
