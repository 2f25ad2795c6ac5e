//! Short-lived NATS credentials (operator mode, contract 15): a user JWT for the client's own
//! user nkey with exactly the grant the callout would give for those rooms, so that a client
//! can reconnect without a callout until it expires.
//!
//! The mint is a decision: the same request the callout would see (the access token, the
//! rooms in `user`) goes through the callout's own decision (delegated rooms answered from
//! the cache or by asking their delegate within its budget, then the limits), and the user
//! JWT is signed as the callout's is, by the target account's (unscoped) signing key with
//! `issuer_account`. Only its subject differs: the client's key, whose seed never leaves the
//! client, so the JWT alone is useless without a signature of the server's nonce.
//!
//! The JWT carries its decision record ([`crate::wire::MintedClaims`]): a connection made with
//! it joins live enforcement like a decided one (revocations, grant changes and limits reach
//! it, and it is judged again at every connect), and its subscription cap is the JWT's
//! `subs`, which nats-server enforces for such a connection.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tracing::info;

use super::decision::{Denied, Grant};
use super::{Callout, Delegation, Epochs, decision_record};
use crate::claims::ClaimsError;
use crate::claims::request::{AuthRequest, ClientInfo, ConnectOpts};
use crate::claims::response::{UserJwt, user_jwt};

/// A user JWT minted for a client's key.
#[derive(Debug)]
pub struct Minted {
    pub jwt: String,
    /// Unix seconds: no later than the session, `credentials_ttl` and the callout's cap.
    pub expires_at: i64,
    /// The decision behind it (the user, session and rooms, for logs and audit).
    pub grant: Grant,
}

/// Why no credentials were minted. [`CredentialsError::code`] is the answer's `error_code`.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("credentials are minted in operator mode only (callout.mode = \"operator\")")]
    OperatorModeOnly,
    #[error("minting credentials is off (tokens.credentials_ttl = \"0s\")")]
    Off,
    #[error("publicKey is not a user public key (U...)")]
    BadPublicKey,
    #[error("{0}")]
    Denied(Denied),
    #[error("account {0:?} is not one users are placed in")]
    NoTarget(String),
    #[error("signing the user JWT failed: {0}")]
    Sign(#[from] ClaimsError),
}

impl CredentialsError {
    pub fn code(&self) -> &'static str {
        match self {
            CredentialsError::OperatorModeOnly => "operator-mode-only",
            CredentialsError::Off => "credentials-off",
            CredentialsError::BadPublicKey => "bad-public-key",
            CredentialsError::Denied(d) => d.deny.code(),
            CredentialsError::NoTarget(_) => "account-not-served",
            CredentialsError::Sign(_) => "sign-failed",
        }
    }
}

/// What a client asks for: credentials for its key, holding what the callout would grant
/// for these rooms.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsRequest {
    pub public_key: String,
    #[serde(default)]
    pub rooms: Vec<String>,
}

/// What mints NATS credentials for `POST /api/auth/nats-credentials` and
/// `auth.v1.credentials`: the callout and `tokens.credentials_ttl` (`None`: none minted).
#[derive(Clone)]
pub struct Minter {
    pub callout: Arc<Callout>,
    pub ttl: Option<Duration>,
}

impl Minter {
    /// The user a valid access token names (to tell them why a request was refused).
    pub fn user_of(&self, token: &str, now: i64) -> Option<String> {
        self.callout.tokens.verify(token, now).ok().map(|c| c.sub)
    }

    /// Mint for `token`'s holder and record it (a metric, a log line naming `via`, an audit
    /// event `credentials`): the user, and the answer `{jwt, expiresAt, rooms, refused}`, the
    /// rooms granted and those left out.
    pub async fn mint(
        &self,
        token: &str,
        req: &CredentialsRequest,
        via: &'static str,
        now: i64,
    ) -> Result<(String, serde_json::Value), CredentialsError> {
        let minted = self
            .callout
            .credentials(token, &req.public_key, &req.rooms, self.ttl, now)
            .await
            .inspect_err(|e| {
                metrics::counter!("nats_callout_credentials_total", "result" => e.code()).increment(1);
                info!(result = "deny", reason = e.code(), via, "nats credentials");
            })?;
        let g = &minted.grant;
        let rooms: Vec<&str> = g.rooms.iter().map(|r| r.name.as_str()).collect();
        metrics::counter!("nats_callout_credentials_total", "result" => "minted").increment(1);
        info!(
            result = "allow",
            via,
            user = %g.identity.sub,
            session = %g.identity.sid,
            nkey = %req.public_key,
            rooms = %rooms.join(";"),
            expires_at = minted.expires_at,
            "nats credentials"
        );
        self.callout.audit.action(
            "credentials",
            &g.identity.sub,
            now,
            json!({
                "user": g.identity.sub,
                "session": g.identity.sid,
                "nkey": req.public_key,
                "rooms": rooms,
                "refused": g.refused,
                "expiresAt": minted.expires_at,
            }),
        );
        let answer = json!({
            "jwt": minted.jwt,
            "expiresAt": minted.expires_at,
            "rooms": rooms,
            "refused": g.refused,
        });
        Ok((g.identity.sub.clone(), answer))
    }
}

/// A user public key as nats-server takes it: an nkey of the user type.
pub fn user_public_key(key: &str) -> bool {
    key.len() == 56 && key.starts_with('U') && nkeys::KeyPair::from_public_key(key).is_ok()
}

impl Callout {
    /// Mint a user JWT for `public_key` holding what the callout would grant `token` for
    /// `rooms`, valid for at most `ttl` (`None`: minting is off). Delegated rooms are
    /// resolved as the callout resolves them: from the cache, else by asking the delegate.
    pub async fn credentials(
        &self,
        token: &str,
        public_key: &str,
        rooms: &[String],
        ttl: Option<Duration>,
        now: i64,
    ) -> Result<Minted, CredentialsError> {
        let op = self.operator.as_ref().ok_or(CredentialsError::OperatorModeOnly)?;
        let ttl = ttl.ok_or(CredentialsError::Off)?;
        if !user_public_key(public_key) {
            return Err(CredentialsError::BadPublicKey);
        }
        let req = AuthRequest {
            user_nkey: public_key.to_string(),
            client_info: ClientInfo {
                kind: "Client".into(),
                client_type: "nats".into(),
                ..ClientInfo::default()
            },
            connect_opts: ConnectOpts {
                auth_token: Some(token.to_string()),
                user: Some(rooms.join(";")),
                ..ConnectOpts::default()
            },
            ..AuthRequest::default()
        };
        let grant = self
            .decide_now(&req, now, Delegation::Asked)
            .await
            .map_err(CredentialsError::Denied)?;
        let target = op
            .target(&grant.account)
            .ok_or_else(|| CredentialsError::NoTarget(grant.account.clone()))?;
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let expires_at = grant.expires_at.min(now.saturating_add(ttl));
        // The record a connection made with the JWT joins the registry with. Its epochs are
        // none: such a connection is judged again at every connect, however old the JWT.
        let mut record = decision_record(&req, &grant, Epochs::NONE, now);
        record.expires_at = expires_at;
        let jwt = user_jwt(
            &target.signer,
            &target.signer_public,
            &UserJwt {
                user_nkey: public_key,
                name: &grant.identity.sub,
                account: &grant.account,
                expires_at,
                permissions: &grant.permissions,
                issuer_account: target.issuer_account(),
                subscriptions: grant.limits.subscriptions,
                record: Some(&record),
                connection_types: &self.policy.types.jwt_names(),
            },
            now,
        )?;
        Ok(Minted {
            jwt,
            expires_at,
            grant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_user_keys_are_taken() {
        let user = nkeys::KeyPair::new_user().public_key();
        assert!(user_public_key(&user));
        for bad in [
            String::new(),
            nkeys::KeyPair::new_account().public_key(),
            nkeys::KeyPair::new_server().public_key(),
            // The last character changed (to one it is not): the checksum fails.
            format!("{}{}", &user[..55], if user.ends_with('X') { 'Y' } else { 'X' }),
            user.to_lowercase(),
            format!("{user} "),
            "U".repeat(56),
        ] {
            assert!(!user_public_key(&bad), "{bad:?}");
        }
    }
}
