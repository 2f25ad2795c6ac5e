//! What we send back: the user JWT (the connection's permissions) inside an authorization response.

use nkeys::KeyPair;
use serde::Serialize;

use super::{ClaimsError, encode, new_jti};
use crate::wire::DecisionRecord;

/// `nats.type` of our reply.
pub const RESPONSE_TYPE: &str = "authorization_response";

/// Publish or subscribe permissions. Both lists are always written. An empty `allow`
/// means allow-all to nats-server, so [`Permission::only`] turns "nothing" into a deny of
/// every subject instead.
#[derive(Debug, Serialize, Clone, PartialEq, Eq, Default)]
pub struct Permission {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl Permission {
    /// Exactly these subjects; none at all when `allow` is empty (`deny: [">"]`).
    pub fn only(allow: Vec<String>) -> Permission {
        let deny = if allow.is_empty() {
            vec![">".to_string()]
        } else {
            Vec::new()
        };
        Permission { allow, deny }
    }
}

/// The permissions of one connection. There is deliberately no `resp` (response
/// permission): nats-server turns every reply subject a client receives into a publish
/// permission, and a client that may publish to a subject it also subscribes to would
/// reach any subject by replying to itself (docs/src/concepts/security-model.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPermissions {
    pub publish: Permission,
    pub subscribe: Permission,
}

#[derive(Serialize)]
struct UserNats<'a> {
    #[serde(rename = "pub")]
    publish: &'a Permission,
    #[serde(rename = "sub")]
    subscribe: &'a Permission,
    subs: i64,
    data: i64,
    payload: i64,
    /// Operator mode: the target account, when a signing key of it signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer_account: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    allowed_connection_types: &'a [&'a str],
    #[serde(rename = "type")]
    kind: &'static str,
    version: u8,
}

#[derive(Serialize)]
struct UserClaims<'a> {
    jti: String,
    iat: i64,
    iss: &'a str,
    sub: &'a str,
    name: &'a str,
    aud: &'a str,
    exp: i64,
    nats: UserNats<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nats_callout: Option<&'a DecisionRecord>,
}

#[derive(Serialize)]
struct ResponseNats<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// Operator mode: the AUTH account, when a signing key of it signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer_account: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    version: u8,
}

#[derive(Serialize)]
struct ResponseClaims<'a> {
    jti: String,
    iat: i64,
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    nats: ResponseNats<'a>,
}

/// Everything needed to write a user JWT.
pub struct UserJwt<'a> {
    /// The per-connection user nkey from the request (`nats.user_nkey`).
    pub user_nkey: &'a str,
    /// Stable user id; becomes the connection's user in CONNZ and events.
    pub name: &'a str,
    /// Target account name (config mode; nats-server ignores it in operator mode).
    pub account: &'a str,
    /// Operator mode: the target account's public key, when `issuer` is a signing key of it.
    pub issuer_account: Option<&'a str>,
    pub expires_at: i64,
    pub permissions: &'a UserPermissions,
    /// The most subscriptions (`nats.subs`; `None`: -1, no limit). nats-server enforces it
    /// for a client connecting with the JWT itself, not for callout users.
    pub subscriptions: Option<u32>,
    /// Minted credentials: the decision behind the JWT, read back by live enforcement
    /// ([`crate::wire::MintedClaims`]).
    pub record: Option<&'a DecisionRecord>,
    /// Minted credentials: the connection types the JWT may connect over (`STANDARD`,
    /// `WEBSOCKET`, ...; empty: not written, any).
    pub connection_types: &'a [&'a str],
}

/// Sign a user JWT with the issuer account key. `data`/`payload` are -1 (no such limits);
/// `subs` is the subscription cap, if any.
pub fn user_jwt(
    issuer: &KeyPair,
    issuer_public: &str,
    u: &UserJwt<'_>,
    now: i64,
) -> Result<String, ClaimsError> {
    let claims = UserClaims {
        jti: new_jti(),
        iat: now,
        iss: issuer_public,
        sub: u.user_nkey,
        name: u.name,
        aud: u.account,
        exp: u.expires_at,
        nats: UserNats {
            publish: &u.permissions.publish,
            subscribe: &u.permissions.subscribe,
            subs: u.subscriptions.map_or(-1, i64::from),
            data: -1,
            payload: -1,
            issuer_account: u.issuer_account,
            allowed_connection_types: u.connection_types,
            kind: "user",
            version: 2,
        },
        nats_callout: u.record,
    };
    encode(&claims, issuer)
}

/// The outcome carried by a response: a user JWT, or an error text for the server log.
pub enum Outcome<'a> {
    Allow(&'a str),
    Deny(&'a str),
}

/// Sign an authorization response for `user_nkey` on server `server_id`.
pub fn response_jwt(
    issuer: &KeyPair,
    issuer_public: &str,
    user_nkey: &str,
    server_id: &str,
    outcome: Outcome<'_>,
    now: i64,
) -> Result<String, ClaimsError> {
    response_jwt_as(issuer, issuer_public, None, user_nkey, server_id, outcome, now)
}

/// [`response_jwt`] signed by a signing key of `issuer_account` (operator mode).
pub fn response_jwt_as(
    issuer: &KeyPair,
    issuer_public: &str,
    issuer_account: Option<&str>,
    user_nkey: &str,
    server_id: &str,
    outcome: Outcome<'_>,
    now: i64,
) -> Result<String, ClaimsError> {
    let (jwt, error) = match outcome {
        Outcome::Allow(j) => (Some(j), None),
        Outcome::Deny(e) => (None, Some(e)),
    };
    let claims = ResponseClaims {
        jti: new_jti(),
        iat: now,
        iss: issuer_public,
        sub: user_nkey,
        aud: server_id,
        nats: ResponseNats {
            jwt,
            error,
            issuer_account,
            kind: RESPONSE_TYPE,
            version: 2,
        },
    };
    encode(&claims, issuer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::decode_verified;
    use serde_json::Value;

    fn perms() -> UserPermissions {
        UserPermissions {
            publish: Permission {
                allow: vec!["chat.all1.bob".into()],
                deny: vec![],
            },
            subscribe: Permission {
                allow: vec!["chat.all1.>".into()],
                deny: vec![],
            },
        }
    }

    #[test]
    fn user_jwt_has_explicit_lists_name_aud_and_exp() {
        let issuer = KeyPair::new_account();
        let p = perms();
        let u = UserJwt {
            user_nkey: "UABC",
            name: "bob",
            account: "APP",
            expires_at: 4600,
            permissions: &p,
            issuer_account: None,
            subscriptions: None,
            record: None,
            connection_types: &[],
        };
        let jwt = user_jwt(&issuer, &issuer.public_key(), &u, 1000).unwrap();
        let (iss, v): (String, Value) = decode_verified(&jwt).unwrap();
        assert_eq!(iss, issuer.public_key());
        assert_eq!(v["sub"], "UABC");
        assert_eq!(v["name"], "bob");
        assert_eq!(v["aud"], "APP");
        assert_eq!(v["exp"], 4600);
        assert_eq!(v["nats"]["pub"]["allow"][0], "chat.all1.bob");
        assert_eq!(v["nats"]["sub"]["allow"][0], "chat.all1.>");
        assert!(v["nats"].get("resp").is_none(), "no response permission");
        assert_eq!(v["nats"]["subs"], -1);
        assert_eq!(v["nats"]["type"], "user");
    }

    #[test]
    fn nothing_allowed_is_written_as_deny_all_never_as_an_empty_allow() {
        assert_eq!(
            Permission::only(vec![]),
            Permission {
                allow: vec![],
                deny: vec![">".into()]
            }
        );
        let p = Permission::only(vec!["chat.a.>".into()]);
        assert_eq!((p.allow.len(), p.deny.len()), (1, 0));
    }

    #[test]
    fn response_carries_exactly_one_of_jwt_or_error() {
        let issuer = KeyPair::new_account();
        let pk = issuer.public_key();
        let deny = response_jwt(&issuer, &pk, "UABC", "NSRV", Outcome::Deny("no-token"), 1).unwrap();
        let (_, v): (String, Value) = decode_verified(&deny).unwrap();
        assert_eq!(v["nats"]["error"], "no-token");
        assert!(v["nats"].get("jwt").is_none());
        assert_eq!(v["aud"], "NSRV");
        assert_eq!(v["sub"], "UABC");
        let allow = response_jwt(&issuer, &pk, "UABC", "NSRV", Outcome::Allow("x.y.z"), 1).unwrap();
        let (_, v): (String, Value) = decode_verified(&allow).unwrap();
        assert_eq!(v["nats"]["jwt"], "x.y.z");
        assert!(v["nats"].get("error").is_none());
        assert_eq!(v["nats"]["type"], RESPONSE_TYPE);
    }

    /// A minted JWT for 50 rooms of the longest names (the default room limit), with its
    /// decision record, fits the 32 KiB control line the operator-mode set-up writes, beside
    /// the nonce signature and CONNECT's other fields.
    #[test]
    fn a_minted_jwt_for_the_most_rooms_fits_the_control_line() {
        let issuer = KeyPair::new_account();
        let user = "u".repeat(crate::names::MAX_NAME_LEN);
        let rooms: Vec<String> = (0..50)
            .map(|i| format!("{i:02}{}", "r".repeat(crate::names::MAX_NAME_LEN - 2)))
            .collect();
        let p = UserPermissions {
            publish: Permission::only(rooms.iter().map(|r| format!("chat.{r}.{user}")).collect()),
            subscribe: Permission::only(rooms.iter().map(|r| format!("chat.{r}.>")).collect()),
        };
        let record: DecisionRecord = serde_json::from_value(serde_json::json!({
            "conn": {"server": "", "cid": 0}, "user": user, "session": "s".repeat(43),
            "device": "d".repeat(64), "tid": "t".repeat(43), "iat": 1000,
            "rooms": rooms.iter().map(|r| (r, "readwrite")).collect::<Vec<_>>(),
            "leafnode": false, "expires_at": 4600, "snapshot_epoch": 0, "revocation_epoch": 0,
        }))
        .unwrap();
        let key = KeyPair::new_user().public_key();
        let u = UserJwt {
            user_nkey: &key,
            name: &user,
            account: "APP",
            expires_at: 4600,
            permissions: &p,
            issuer_account: Some("AAPP"),
            subscriptions: Some(500),
            record: Some(&record),
            connection_types: &["STANDARD", "WEBSOCKET"],
        };
        let jwt = user_jwt(&issuer, &issuer.public_key(), &u, 1000).unwrap();
        assert!(jwt.len() + 1024 < 32 * 1024, "{} bytes", jwt.len());
    }
}
