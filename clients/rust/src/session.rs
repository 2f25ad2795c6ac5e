//! The session: the access token, refreshed before it expires (at four fifths of its life) and
//! again after nats-server said "Authorization Violation" or "User Authentication Expired";
//! one refresh at a time, since the refresh token rotates and a reuse ends the session.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::api::{Api, Tokens};
use crate::error::{Error, Result};

/// The claims the kit reads from its own access token (it never verifies them: the service
/// does).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Claims {
    pub(crate) sub: String,
    pub(crate) exp: i64,
    #[serde(default)]
    pub(crate) iat: Option<i64>,
}

impl Claims {
    /// The payload of a JWT, undecoded signature and all.
    pub(crate) fn of(token: &str) -> Result<Claims> {
        let bad = || Error::Api {
            status: 0,
            code: "bad-token".into(),
            message: "the access token is not a JWT".into(),
            retry_after: None,
        };
        let payload = token.split('.').nth(1).ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }

    /// When to refresh: at four fifths of the token's life (without `iat`: 30 s before).
    fn refresh_at(&self) -> i64 {
        match self.iat {
            Some(iat) if iat < self.exp => self.exp - (self.exp - iat) / 5,
            _ => self.exp - 30,
        }
    }
}

struct State {
    access: String,
    claims: Claims,
    refresh: Option<String>,
    /// nats-server refused the token: refresh before the next use, whatever its expiry.
    stale: bool,
}

/// The tokens of one login, shared by every connection of the client.
pub(crate) struct Session {
    api: Api,
    state: Mutex<State>,
    user: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Session {
    /// The session of `tokens`; `user` is the id the service gave (else the token's `sub`).
    pub(crate) fn new(api: Api, tokens: Tokens, user: Option<String>) -> Result<Session> {
        let claims = Claims::of(&tokens.access_token)?;
        Ok(Session {
            api,
            user: user.unwrap_or_else(|| claims.sub.clone()),
            state: Mutex::new(State {
                access: tokens.access_token,
                claims,
                refresh: tokens.refresh_token,
                stale: false,
            }),
        })
    }

    /// The user id the tokens name.
    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    /// A token good for a while: refreshed first when due or refused.
    pub(crate) async fn token(&self) -> Result<String> {
        let mut s = self.state.lock().await;
        let now = now();
        if s.stale || now >= s.claims.refresh_at() {
            match self.refresh_locked(&mut s).await {
                Ok(()) => {}
                // No refresh token: the token is good until it expires.
                Err(Error::AuthExpired) if s.refresh.is_none() && now < s.claims.exp && !s.stale => {}
                Err(e) => return Err(e),
            }
        }
        Ok(s.access.clone())
    }

    /// nats-server refused the token: the next use refreshes it.
    pub(crate) async fn mark_stale(&self) {
        self.state.lock().await.stale = true;
    }

    /// How long until the token is due for a refresh.
    pub(crate) async fn due_in(&self) -> Duration {
        let s = self.state.lock().await;
        Duration::from_secs(u64::try_from(s.claims.refresh_at() - now()).unwrap_or(0))
    }

    async fn refresh_locked(&self, s: &mut State) -> Result<()> {
        let Some(refresh) = s.refresh.clone() else {
            return Err(Error::AuthExpired);
        };
        let tokens = match self.api.refresh(&refresh).await {
            Ok(t) => t,
            Err(e) if e.is_auth_expired() => return Err(Error::AuthExpired),
            Err(e) => return Err(e),
        };
        let claims = Claims::of(&tokens.access_token)?;
        tracing::debug!(user = %self.user, exp = claims.exp, "access token refreshed");
        s.access = tokens.access_token;
        s.claims = claims;
        if let Some(r) = tokens.refresh_token {
            s.refresh = Some(r);
        }
        s.stale = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", b.encode("{}"), b.encode(payload))
    }

    #[test]
    fn claims_come_from_the_payload() {
        let c = Claims::of(&jwt(r#"{"sub":"bob","exp":1000,"iat":500}"#)).unwrap();
        assert_eq!((c.sub.as_str(), c.exp, c.refresh_at()), ("bob", 1000, 900));
        let c = Claims::of(&jwt(r#"{"sub":"bob","exp":1000}"#)).unwrap();
        assert_eq!(c.refresh_at(), 970);
    }

    #[test]
    fn what_is_not_a_jwt_is_refused() {
        for bad in ["", "abc", "a.!!!.c", &jwt("[1]"), &jwt(r#"{"sub":"bob"}"#)] {
            assert_eq!(Claims::of(bad).unwrap_err().code(), "bad-token", "{bad:?}");
        }
    }
}
