//! The authorization request nats-server sends on `$SYS.REQ.USER.AUTH`, decoded tolerantly and verified.

use std::fmt;

use serde::Deserialize;

use super::{ClaimsError, decode_unverified};

/// `aud` of every authorization request.
pub const REQUEST_AUDIENCE: &str = "nats-authorization-request";
/// `nats.type` of every authorization request.
pub const REQUEST_TYPE: &str = "authorization_request";
/// Clock skew tolerated on the request's short (`timeout`-long) expiry.
pub const EXPIRY_SKEW_SECS: i64 = 1;

/// The outer claims of a request JWT. The server omits many fields, so every
/// field has a default and unknown fields are ignored.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RequestClaims {
    pub aud: String,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub iss: String,
    pub sub: String,
    pub nats: AuthRequest,
}

/// `nats` of a request: who connects, from where, with which CONNECT options.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct AuthRequest {
    /// The callout issuer the server expects the answer from (the request's `sub`): one
    /// of ours (two during a key rotation).
    #[serde(skip)]
    pub callout_issuer: String,
    pub server_id: ServerId,
    pub user_nkey: String,
    pub client_info: ClientInfo,
    pub connect_opts: ConnectOpts,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: i64,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct ServerId {
    pub name: String,
    pub host: String,
    pub id: String,
    pub version: String,
    pub xkey: String,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct ClientInfo {
    pub host: String,
    /// The server-local client id (`cid`), used later for LDM and KICK.
    pub id: u64,
    /// `Client`, `Leafnode`, ...
    pub kind: String,
    /// `nats`, `websocket`, `mqtt`.
    #[serde(rename = "type")]
    pub client_type: String,
    pub name: String,
}

/// The client's CONNECT options. `auth_token` and `pass` are secrets: `Debug` redacts them.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct ConnectOpts {
    pub auth_token: Option<String>,
    /// Our clients put the requested room list here.
    pub user: Option<String>,
    pub pass: Option<String>,
    pub name: Option<String>,
    pub lang: Option<String>,
    pub version: Option<String>,
}

impl fmt::Debug for ConnectOpts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOpts")
            .field("auth_token", &self.auth_token.as_ref().map(|_| "[redacted]"))
            .field("user", &self.user)
            .field("pass", &self.pass.as_ref().map(|_| "[redacted]"))
            .field("name", &self.name)
            .field("lang", &self.lang)
            .field("version", &self.version)
            .finish()
    }
}

/// Where a connection's access token came from (logged with each decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    AuthToken,
    /// `pass`, for clients that send a token only without a user (nats-py, the `nats` CLI).
    Pass,
    None,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::AuthToken => "auth_token",
            TokenSource::Pass => "pass",
            TokenSource::None => "none",
        }
    }
}

impl ConnectOpts {
    /// The access token: `auth_token`, or `pass` when the client sent no `auth_token`
    /// (some clients send a token only without a user, or a user only with a password; user
    /// = rooms with password = token works with every client). A connection that sends
    /// both is decided on `auth_token`. nats-server leaves empty fields out, so an empty
    /// one counts as absent.
    pub fn access_token(&self) -> (&str, TokenSource) {
        fn present(f: &Option<String>) -> Option<&str> {
            f.as_deref().filter(|t| !t.is_empty())
        }
        match (present(&self.auth_token), present(&self.pass)) {
            (Some(t), _) => (t, TokenSource::AuthToken),
            (None, Some(p)) => (p, TokenSource::Pass),
            (None, None) => ("", TokenSource::None),
        }
    }
}

/// Why a request JWT was refused. These never reach the client; they are logged.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RequestError {
    #[error("request is not valid UTF-8")]
    NotUtf8,
    #[error("request JWT: {0}")]
    Claims(#[from] ClaimsError),
    #[error("request issuer {iss} is not the server id {server_id}")]
    IssuerNotServer { iss: String, server_id: String },
    #[error("request issuer is not a server key")]
    IssuerNotServerKey,
    #[error("request audience {0:?} is not {REQUEST_AUDIENCE}")]
    Audience(String),
    #[error("request type {0:?} is not {REQUEST_TYPE}")]
    Type(String),
    #[error("request expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("request is for callout issuer {got}, we are {expected}")]
    WrongCalloutIssuer { got: String, expected: String },
    #[error("request has no user nkey")]
    NoUserNkey,
    #[error("sealed with server xkey {header} but the signed server xkey is {signed:?}")]
    XkeyMismatch { header: String, signed: String },
}

/// Verify a (decrypted) request JWT: signature by `iss`, `iss` a server key equal to
/// `server_id.id`, `aud`, `type`, `exp` (with [`EXPIRY_SKEW_SECS`]), and `sub` equal to
/// our issuer account (`auth_callout.issuer`).
pub fn verify(jwt: &[u8], our_issuer: &str, now: i64) -> Result<AuthRequest, RequestError> {
    verify_for(jwt, &[our_issuer], now)
}

/// [`verify`], accepting any of `our_issuers` as the request's `sub` (a key rotation:
/// servers still on the old issuer and servers already on the new one).
pub fn verify_for(jwt: &[u8], our_issuers: &[&str], now: i64) -> Result<AuthRequest, RequestError> {
    let jwt = std::str::from_utf8(jwt).map_err(|_| RequestError::NotUtf8)?;
    let unverified = decode_unverified::<RequestClaims>(jwt)?;
    // A request nats-server has already given up on is refused before the signature
    // check: under a backlog (a reconnect storm) stale requests cost little.
    if let Some(exp) = unverified.claims.exp.filter(|&e| e > 0)
        && exp.saturating_add(EXPIRY_SKEW_SECS) < now
    {
        return Err(RequestError::Expired { exp, now });
    }
    let (iss, claims) = unverified.verify()?;
    if !iss.starts_with('N') {
        return Err(RequestError::IssuerNotServerKey);
    }
    if iss != claims.nats.server_id.id {
        return Err(RequestError::IssuerNotServer {
            iss,
            server_id: claims.nats.server_id.id,
        });
    }
    if claims.aud != REQUEST_AUDIENCE {
        return Err(RequestError::Audience(claims.aud));
    }
    if claims.nats.kind != REQUEST_TYPE {
        return Err(RequestError::Type(claims.nats.kind));
    }
    if !our_issuers.contains(&claims.sub.as_str()) {
        return Err(RequestError::WrongCalloutIssuer {
            got: claims.sub,
            expected: our_issuers.join(" or "),
        });
    }
    if claims.nats.user_nkey.is_empty() {
        return Err(RequestError::NoUserNkey);
    }
    let mut req = claims.nats;
    req.callout_issuer = claims.sub;
    Ok(req)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::claims::encode;
    use nkeys::KeyPair;
    use serde_json::json;

    /// A request JWT as nats-server 2.15.1 writes it, signed by `server`.
    pub(crate) fn request_json(server: &KeyPair, issuer: &str, now: i64) -> serde_json::Value {
        json!({
            "aud": REQUEST_AUDIENCE, "exp": now + 2, "iat": now, "iss": server.public_key(),
            "jti": "X", "sub": issuer,
            "nats": {
                "server_id": {"name": "n1", "host": "127.0.0.1", "id": server.public_key(), "version": "2.15.1"},
                "user_nkey": KeyPair::new_user().public_key(),
                "client_info": {"host": "127.0.0.1", "id": 29, "user": "all1;bob1", "kind": "Client", "type": "nats"},
                "connect_opts": {"auth_token": "t", "user": "all1;bob1", "lang": "rust", "version": "0.51.0", "protocol": 1},
                "type": REQUEST_TYPE, "version": 2
            }
        })
    }

    fn check(mutate: impl FnOnce(&mut serde_json::Value), now: i64) -> Result<AuthRequest, RequestError> {
        let server = KeyPair::new_server();
        let issuer = KeyPair::new_account().public_key();
        let mut v = request_json(&server, &issuer, 1000);
        mutate(&mut v);
        let jwt = encode(&v, &server).unwrap();
        verify(jwt.as_bytes(), &issuer, now)
    }

    #[test]
    fn real_shaped_request_verifies() {
        let req = check(|_| {}, 1000).unwrap();
        assert_eq!(req.client_info.id, 29);
        assert_eq!(req.connect_opts.user.as_deref(), Some("all1;bob1"));
    }

    #[test]
    fn request_checks_table() {
        type Mutation = fn(&mut serde_json::Value);
        type Case = (&'static str, Mutation, i64, fn(&RequestError) -> bool);
        let cases: &[Case] = &[
            (
                "wrong aud",
                |v| v["aud"] = json!("other"),
                1000,
                |e| matches!(e, RequestError::Audience(_)),
            ),
            (
                "wrong type",
                |v| v["nats"]["type"] = json!("authorization_response"),
                1000,
                |e| matches!(e, RequestError::Type(_)),
            ),
            (
                "expired",
                |_| {},
                1004,
                |e| matches!(e, RequestError::Expired { .. }),
            ),
            (
                "iss not server id",
                |v| v["nats"]["server_id"]["id"] = json!(KeyPair::new_server().public_key()),
                1000,
                |e| matches!(e, RequestError::IssuerNotServer { .. }),
            ),
            (
                "sub not our issuer",
                |v| v["sub"] = json!(KeyPair::new_account().public_key()),
                1000,
                |e| matches!(e, RequestError::WrongCalloutIssuer { .. }),
            ),
            (
                "no user nkey",
                |v| v["nats"]["user_nkey"] = json!(""),
                1000,
                |e| matches!(e, RequestError::NoUserNkey),
            ),
        ];
        for (name, mutate, now, expect) in cases {
            let err = check(mutate, *now).expect_err(name);
            assert!(expect(&err), "{name}: got {err:?}");
        }
    }

    #[test]
    fn stale_requests_are_refused_before_the_signature_check() {
        let server = KeyPair::new_server();
        let issuer = KeyPair::new_account().public_key();
        let jwt = encode(&request_json(&server, &issuer, 1000), &KeyPair::new_server()).unwrap();
        // signed by another key: a signature failure when fresh, expired when stale
        assert_eq!(
            verify(jwt.as_bytes(), &issuer, 1000).unwrap_err(),
            RequestError::Claims(ClaimsError::BadSignature)
        );
        assert!(matches!(
            verify(jwt.as_bytes(), &issuer, 1004).unwrap_err(),
            RequestError::Expired { exp: 1002, now: 1004 }
        ));
    }

    #[test]
    fn skew_of_one_second_is_tolerated() {
        assert!(check(|_| {}, 1003).is_ok());
    }

    #[test]
    fn request_signed_by_account_key_is_not_from_a_server() {
        let acct = KeyPair::new_account();
        let issuer = KeyPair::new_account().public_key();
        let mut v = request_json(&acct, &issuer, 1000);
        v["nats"]["server_id"]["id"] = json!(acct.public_key());
        let jwt = encode(&v, &acct).unwrap();
        assert_eq!(
            verify(jwt.as_bytes(), &issuer, 1000).unwrap_err(),
            RequestError::IssuerNotServerKey
        );
    }

    #[test]
    fn the_token_is_auth_token_else_pass() {
        let opts = |token: Option<&str>, pass: Option<&str>| ConnectOpts {
            auth_token: token.map(str::to_string),
            pass: pass.map(str::to_string),
            user: Some("all1".into()),
            ..Default::default()
        };
        let cases = [
            (Some("t"), Some("p"), ("t", TokenSource::AuthToken)),
            (Some("t"), None, ("t", TokenSource::AuthToken)),
            (Some("t"), Some(""), ("t", TokenSource::AuthToken)),
            (None, Some("p"), ("p", TokenSource::Pass)),
            (Some(""), Some("p"), ("p", TokenSource::Pass)),
            (None, Some(""), ("", TokenSource::None)),
            (None, None, ("", TokenSource::None)),
        ];
        for (token, pass, want) in cases {
            assert_eq!(opts(token, pass).access_token(), want, "{token:?} {pass:?}");
        }
    }

    #[test]
    fn debug_redacts_credentials() {
        let opts = ConnectOpts {
            auth_token: Some("s3cr3t".into()),
            pass: Some("p4ssw0rd".into()),
            user: Some("all1".into()),
            ..Default::default()
        };
        // Every struct that holds the CONNECT options, down to them.
        let req = AuthRequest {
            connect_opts: opts.clone(),
            ..Default::default()
        };
        let claims = RequestClaims {
            nats: req.clone(),
            ..Default::default()
        };
        for dbg in [format!("{opts:?}"), format!("{req:?}"), format!("{claims:#?}")] {
            assert!(!dbg.contains("s3cr3t") && !dbg.contains("p4ssw0rd"), "{dbg}");
            assert!(dbg.contains("all1") && dbg.contains("[redacted]"), "{dbg}");
        }
    }
}
