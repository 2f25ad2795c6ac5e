//! Logging in through an OpenID provider: the authorization code flow with PKCE (S256),
//! `state` and `nonce`, with nats-callout as a confidential client; it ends in our own
//! session, so the provider's tokens never reach the page.
//!
//! What the callback must match travels in a short-lived, HMAC-signed, HttpOnly cookie
//! (`nats_oidc`, `SameSite=Lax` so the provider's redirect back carries it): any instance
//! sharing the refresh secret can finish a login another one began.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::fetch::{self, FetchError};
use super::verify::Refusal;
use super::{Endpoints, Provider};
use crate::permissions::Asserted;
use crate::tokens::TokenError;

/// The cookie that carries a login in progress.
pub const PENDING_COOKIE: &str = "nats_oidc";
/// Where it is sent.
pub const PENDING_PATH: &str = "/api/auth/oidc";
/// How long a login may take at the provider.
pub const PENDING_TTL: i64 = 600;

/// A login in progress: what the callback must see again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub provider: String,
    pub state: String,
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The application (`clientId`) the session is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub exp: i64,
}

/// Why a login through a provider failed. [`LoginError::code`] is what the page is told.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("no such provider, or it offers no login")]
    UnknownProvider,
    #[error("the provider's endpoints are not known yet (it has not been reached)")]
    NotDiscovered,
    #[error("the login is missing, expired or was tampered with")]
    BadPending,
    #[error("the provider answered with an error: {0}")]
    Provider(String),
    #[error("state does not match the login")]
    State,
    #[error("code exchange failed: {0}")]
    Exchange(String),
    #[error("id token refused: {0}")]
    IdToken(TokenError),
    #[error("client secret: {0}")]
    Secret(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The login's `clientId` is no longer an application of the permission files.
    #[error(transparent)]
    Application(crate::permissions::ApplicationError),
}

impl LoginError {
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::UnknownProvider => "unknown-provider",
            LoginError::NotDiscovered | LoginError::Fetch(_) => "provider-unreachable",
            LoginError::BadPending | LoginError::State => "login-expired",
            LoginError::Provider(_) => "provider-refused",
            LoginError::Exchange(_) => "code-exchange-failed",
            LoginError::IdToken(_) => "id-token-refused",
            LoginError::Secret(_) => "provider-misconfigured",
            LoginError::Application(e) => e.code(),
        }
    }
}

fn random_text() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl Pending {
    /// A new login for `provider`, valid for [`PENDING_TTL`].
    pub fn new(provider: &str, device: Option<String>, now: i64) -> Pending {
        Pending {
            provider: provider.to_string(),
            state: random_text(),
            nonce: random_text(),
            verifier: random_text(),
            device,
            client_id: None,
            exp: now + PENDING_TTL,
        }
    }

    /// The PKCE S256 challenge of the verifier.
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }

    /// The cookie value: the JSON and its HMAC, both base64url.
    pub fn seal(&self, key: &[u8; 32]) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac(key, &body)))
    }

    /// A cookie value back: signature, then expiry.
    pub fn open(value: &str, key: &[u8; 32], now: i64) -> Result<Pending, LoginError> {
        let (body, tag) = value.split_once('.').ok_or(LoginError::BadPending)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| LoginError::BadPending)?;
        if !bool::from(mac(key, body).as_slice().ct_eq(&tag)) {
            return Err(LoginError::BadPending);
        }
        let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| LoginError::BadPending)?;
        let p: Pending = serde_json::from_slice(&json).map_err(|_| LoginError::BadPending)?;
        if p.exp <= now {
            return Err(LoginError::BadPending);
        }
        Ok(p)
    }

    /// The callback's `state` is this login's.
    pub fn check_state(&self, state: &str) -> Result<(), LoginError> {
        if bool::from(self.state.as_bytes().ct_eq(state.as_bytes())) {
            Ok(())
        } else {
            Err(LoginError::State)
        }
    }
}

fn mac(key: &[u8; 32], body: &str) -> Vec<u8> {
    // HMAC takes keys of any length; 32 bytes never fails.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(b"nats-callout oidc login\0");
    m.update(body.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// Where the browser goes to log in at the provider.
pub fn authorization_url(
    provider: &Provider,
    endpoints: &Endpoints,
    pending: &Pending,
    redirect_uri: &str,
) -> Result<String, LoginError> {
    let client_id = provider
        .settings
        .client_id
        .as_deref()
        .ok_or(LoginError::UnknownProvider)?;
    let base = endpoints
        .authorization_endpoint
        .as_deref()
        .ok_or(LoginError::NotDiscovered)?;
    let mut scopes = vec!["openid".to_string()];
    scopes.extend(
        provider
            .settings
            .scopes
            .iter()
            .filter(|s| *s != "openid")
            .cloned(),
    );
    let mut url = reqwest::Url::parse(base).map_err(|e| LoginError::Provider(e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &pending.challenge())
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// Where the browser goes after our logout to end the provider's session too, if it
/// offers that.
pub fn end_session_url(provider: &Provider, post_logout: &str) -> Option<String> {
    let e = provider.endpoints()?;
    let mut url = reqwest::Url::parse(e.end_session_endpoint.as_deref()?).ok()?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(c) = &provider.settings.client_id {
            q.append_pair("client_id", c);
        }
        q.append_pair("post_logout_redirect_uri", post_logout);
    }
    Some(url.into())
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

/// Exchange the code (client authentication: HTTP Basic with the client secret) and verify
/// the ID token: the user and what the provider asserts about them.
pub async fn finish(
    http: &reqwest::Client,
    provider: &Provider,
    pending: &Pending,
    code: &str,
    redirect_uri: &str,
    now: i64,
) -> Result<(String, Asserted), LoginError> {
    let s = &provider.settings;
    let (Some(client_id), Some(secret_file)) = (&s.client_id, &s.client_secret_file) else {
        return Err(LoginError::UnknownProvider);
    };
    let secret = crate::keys::read_secret(secret_file).map_err(|e| LoginError::Secret(e.to_string()))?;
    let endpoints = provider.endpoints().ok_or(LoginError::NotDiscovered)?;
    let token_url = endpoints
        .token_endpoint
        .as_deref()
        .ok_or(LoginError::NotDiscovered)?;
    let mut resp = http
        .post(token_url)
        .basic_auth(form_encode(client_id), Some(form_encode(&secret)))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &pending.verifier),
        ])
        .send()
        .await
        .map_err(|e| LoginError::Exchange(e.without_url().to_string()))?;
    let status = resp.status();
    let body = fetch::read_limited(&mut resp, token_url).await?;
    if !status.is_success() {
        let error = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default();
        return Err(LoginError::Exchange(format!("{status} {error}")));
    }
    let answer: TokenAnswer =
        serde_json::from_slice(&body).map_err(|e| LoginError::Exchange(e.to_string()))?;
    let id_token = answer
        .id_token
        .ok_or_else(|| LoginError::Exchange("no id_token in the answer".into()))?;
    let check = |keys: &super::keys::KeySet| {
        provider
            .rules
            .check_id_token(keys, &id_token, client_id, &pending.nonce, now)
    };
    match check(&provider.keys()) {
        Ok(found) => Ok(found),
        // A key newer than ours: this path may wait for the provider, the callout never does.
        Err(Refusal::UnknownKey(_)) => {
            fetch::refresh(http, provider).await?;
            check(&provider.keys()).map_err(|r| LoginError::IdToken(r.into_error()))
        }
        Err(r) => Err(LoginError::IdToken(r.into_error())),
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-encoded before HTTP Basic.
fn form_encode(s: &str) -> String {
    reqwest::Url::parse_with_params("x:", [("", s)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches('=').to_string()))
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_login_opens_only_unchanged_unexpired_and_with_our_key() {
        let key = [7u8; 32];
        let p = Pending::new("corp", Some("laptop".into()), 1000);
        let sealed = p.seal(&key);
        assert_eq!(Pending::open(&sealed, &key, 1001).unwrap(), p);
        assert!(matches!(
            Pending::open(&sealed, &key, 1000 + PENDING_TTL),
            Err(LoginError::BadPending)
        ));
        assert!(matches!(
            Pending::open(&sealed, &[8u8; 32], 1001),
            Err(LoginError::BadPending)
        ));
        let (body, tag) = sealed.split_once('.').unwrap();
        let mut forged: Pending = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        forged.provider = "other".into();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap())
        );
        assert!(matches!(
            Pending::open(&forged, &key, 1001),
            Err(LoginError::BadPending)
        ));
        for junk in ["", ".", "a.b", "no-dot"] {
            assert!(matches!(
                Pending::open(junk, &key, 1001),
                Err(LoginError::BadPending)
            ));
        }
        p.check_state(&p.state.clone()).unwrap();
        assert!(matches!(p.check_state("other"), Err(LoginError::State)));
        assert!(matches!(p.check_state(""), Err(LoginError::State)));
    }

    #[test]
    fn the_pkce_challenge_is_s256_of_the_verifier() {
        // RFC 7636 appendix B.
        let p = Pending {
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            ..Pending::new("corp", None, 0)
        };
        assert_eq!(p.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn client_credentials_are_form_encoded_for_basic_auth() {
        assert_eq!(form_encode("chat"), "chat");
        assert_eq!(form_encode("a b:c/d"), "a+b%3Ac%2Fd");
    }
}
