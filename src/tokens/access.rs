//! Access tokens: EdDSA JWTs with `iss`, `aud`, `typ`, `kid`, session, device and token id.
//!
//! Roles are deliberately absent: the permission store decides at every use.
//!
//! Minting goes through `jsonwebtoken`. Verification, which sits on every connection's
//! path, checks the same things with the parsed Ed25519 keys kept per `kid`, and remembers
//! tokens that passed the signature and claim checks (bounded, by token text), so that a
//! reconnect does not pay for the signature again. Expiry is checked against `now` at
//! every use; revocation is checked by the caller (see `callout::decision`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::permissions::{Asserted, Snapshot, User};
use crate::verified::VerifiedCache;
use sha2::{Digest, Sha256};

/// The explicit `typ` of an access token (RFC 9068), so no other JWT of ours passes as one.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 4096;
/// The default of `tokens.max_token_ttl`.
pub use crate::config::DEFAULT_MAX_TOKEN_TTL as DEFAULT_MAX_LIFETIME;

/// The claims of an access token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id: one login and its refresh-token family.
    pub sid: String,
    /// Device id, if the client named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did: Option<String>,
    /// Token id, for token reset by id.
    pub tid: String,
    pub iat: i64,
    pub exp: i64,
    /// Absolute end of the session (unix seconds); NATS user JWTs never outlive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sexp: Option<i64>,
    /// What an identity provider asserts about the user: set on a provider's own token, and
    /// on ours after a login through a provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<Asserted>,
    /// The application (`clientId`) the session was opened with (RFC 9068 `client_id`):
    /// its rooms scope every grant. Tokens without it (older ones, provider tokens) are
    /// unscoped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl AccessClaims {
    /// The user this token speaks for, as `snapshot` sees them with what a provider
    /// asserted (see [`crate::permissions::Snapshot::effective`]); `None` = unknown user.
    #[must_use]
    pub fn user<'a>(&self, snapshot: &'a Snapshot) -> Option<Cow<'a, User>> {
        snapshot.effective(&self.sub, self.ext.as_ref())
    }
}

/// Why an access token was refused. The variant name is the logged reason.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("no access token")]
    Missing,
    #[error("access token is not a JWT")]
    Malformed,
    #[error("access token algorithm is not EdDSA")]
    Algorithm,
    #[error("access token typ is not {ACCESS_TOKEN_TYPE}")]
    Type,
    #[error("access token has no kid")]
    MissingKid,
    #[error("access token kid {0:?} is unknown")]
    UnknownKid(String),
    #[error("access token signature does not verify")]
    Signature,
    #[error("access token issuer is wrong")]
    Issuer,
    #[error("access token audience is wrong")]
    Audience,
    #[error("access token claims are invalid: {0}")]
    Claims(String),
    #[error("the token names a guest (guest- names are reserved for guests)")]
    ReservedName,
    #[error("access token expired")]
    Expired,
    #[error("access token issued in the future")]
    NotYetValid,
    #[error("access token lives {lifetime} s, longer than the longest allowed ({max} s)")]
    Lifetime { lifetime: i64, max: i64 },
    #[error("no signing key configured")]
    NoSigningKey,
    #[error("key: {0}")]
    Key(String),
}

impl TokenError {
    /// A short stable code for logs, metrics and HTTP `x-error-code`.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Missing => "no-token",
            TokenError::Malformed => "token-malformed",
            TokenError::Algorithm => "token-bad-algorithm",
            TokenError::Type => "token-bad-type",
            TokenError::MissingKid | TokenError::UnknownKid(_) => "token-unknown-key",
            TokenError::Signature => "token-bad-signature",
            TokenError::Issuer => "token-bad-issuer",
            TokenError::Audience => "token-bad-audience",
            TokenError::Claims(_) => "token-bad-claims",
            TokenError::ReservedName => "reserved-user-name",
            TokenError::Expired => "access-token-expired",
            TokenError::NotYetValid => "token-not-yet-valid",
            TokenError::Lifetime { .. } => "token-lifetime-too-long",
            TokenError::NoSigningKey | TokenError::Key(_) => "token-key-error",
        }
    }
}

/// What a caller asks to be minted.
#[derive(Debug, Clone)]
pub struct MintRequest<'a> {
    pub user: &'a str,
    pub session: &'a str,
    pub device: Option<&'a str>,
    pub ttl: Duration,
    pub session_expires_at: Option<i64>,
    /// What an identity provider said of the user at login (groups, roles), if one did.
    pub asserted: Option<&'a Asserted>,
    /// The application (`clientId`) of the session, if the login named one.
    pub client_id: Option<&'a str>,
}

struct Signer {
    kid: String,
    key: EncodingKey,
}

/// Signing key (one) and verification keys (several, by `kid`) for access tokens.
pub struct TokenKeys {
    issuer: String,
    audience: String,
    /// The longest lifetime (`exp - iat`) minted or accepted; revocation entries are kept
    /// this long, so no token outlives the entries that refuse it.
    max_lifetime: i64,
    signer: Option<Signer>,
    verifiers: HashMap<String, VerifyingKey>,
    verified: VerifiedCache<AccessClaims>,
    /// Other issuers whose tokens are accepted too (OpenID providers).
    trusted: Option<Arc<dyn TrustedIssuers>>,
}

/// Issuers besides us whose access tokens are accepted (see `crate::oidc`). A token whose
/// `iss` is not ours goes to them; none of them knowing it is a wrong issuer.
pub trait TrustedIssuers: Send + Sync {
    /// Verify `token` (every check, the clock included) if `iss` is one of these issuers;
    /// `None` if it is not.
    fn verify(&self, iss: &str, token: &str, now: i64) -> Option<Result<AccessClaims, TokenError>>;
}

/// The JOSE header fields an access token must carry.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("signing_kid", &self.signer.as_ref().map(|s| &s.kid))
            .field("verify_kids", &self.verifiers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The key id of an Ed25519 public key: base32 of the first 10 bytes of its SHA-256.
pub fn kid_for(public: &[u8; 32]) -> String {
    let digest = Sha256::digest(public);
    data_encoding::BASE32_NOPAD.encode(&digest[..10]).to_lowercase()
}

impl TokenKeys {
    /// Keys for tokens with this issuer and audience, with no key yet.
    pub fn new(issuer: &str, audience: &str) -> Self {
        TokenKeys {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            max_lifetime: DEFAULT_MAX_LIFETIME.as_secs() as i64,
            signer: None,
            verifiers: HashMap::new(),
            verified: VerifiedCache::default(),
            trusted: None,
        }
    }

    /// Also accept the access tokens of these issuers.
    pub fn with_trusted(mut self, trusted: Arc<dyn TrustedIssuers>) -> Self {
        self.trusted = Some(trusted);
        self
    }

    /// Mint and accept tokens living at most `max` (`tokens.max_token_ttl`).
    pub fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// The longest lifetime a token may have: how long revocation entries must live.
    pub fn max_lifetime(&self) -> Duration {
        Duration::from_secs(self.max_lifetime.max(0) as u64)
    }

    /// Use this PKCS#8 PEM private key to sign; it also verifies.
    pub fn with_signing_pem(mut self, pem: &str) -> Result<Self, TokenError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| TokenError::Key(format!("signing key: {e}")))?;
        let public = key.verifying_key();
        let kid = kid_for(&public.to_bytes());
        let der = key.to_pkcs8_der().map_err(|e| TokenError::Key(e.to_string()))?;
        self.verifiers.insert(kid.clone(), public);
        self.signer = Some(Signer {
            kid,
            key: EncodingKey::from_ed_der(der.as_bytes()),
        });
        Ok(self)
    }

    /// Also accept tokens signed by this key (SPKI public PEM or PKCS#8 private PEM),
    /// e.g. the previous signing key during a rotation.
    pub fn with_verifying_pem(mut self, pem: &str) -> Result<Self, TokenError> {
        let public = match VerifyingKey::from_public_key_pem(pem) {
            Ok(k) => k,
            Err(_) => ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                .map_err(|e| TokenError::Key(format!("verification key: {e}")))?
                .verifying_key(),
        };
        self.verifiers.insert(kid_for(&public.to_bytes()), public);
        Ok(self)
    }

    /// Load the signing key and the extra verification keys named in the settings.
    pub fn from_settings(s: &crate::config::TokenSettings) -> Result<Self, TokenError> {
        let read =
            |p: &std::path::Path| crate::keys::read_secret(p).map_err(|e| TokenError::Key(e.to_string()));
        let mut keys = TokenKeys::new(&s.issuer, &s.audience)
            .with_max_lifetime(s.max_token_ttl)
            .with_signing_pem(&read(&s.signing_key_file)?)?;
        for p in &s.verify_key_files {
            keys = keys.with_verifying_pem(&read(p)?)?;
        }
        Ok(keys)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Mint an access token with a fresh random token id. Returns the token and its claims.
    pub fn mint(&self, req: &MintRequest<'_>, now: i64) -> Result<(String, AccessClaims), TokenError> {
        self.mint_with_id(req, &new_id(), now)
    }

    /// Mint with a given token id (deterministic: same inputs, same token).
    pub fn mint_with_id(
        &self,
        req: &MintRequest<'_>,
        tid: &str,
        now: i64,
    ) -> Result<(String, AccessClaims), TokenError> {
        if self.signer.is_none() {
            return Err(TokenError::NoSigningKey);
        }
        let lifetime = i64::try_from(req.ttl.as_secs()).unwrap_or(i64::MAX);
        if lifetime > self.max_lifetime {
            return Err(TokenError::Lifetime {
                lifetime,
                max: self.max_lifetime,
            });
        }
        let mut exp = now + lifetime;
        if let Some(end) = req.session_expires_at {
            exp = exp.min(end);
        }
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: req.user.to_string(),
            sid: req.session.to_string(),
            did: req.device.map(str::to_string),
            tid: tid.to_string(),
            iat: now,
            exp,
            sexp: req.session_expires_at,
            ext: req.asserted.cloned(),
            client_id: req.client_id.map(str::to_string),
        };
        let token = self.sign_typed(ACCESS_TOKEN_TYPE, &claims)?;
        // Our own fresh token passes every check but the clock: its first use (the
        // connection right after a login on this instance) skips the signature check.
        self.verified.insert(&token, &claims);
        Ok((token, claims))
    }

    /// Verify an access token: size, algorithm allow-list, `typ`, `kid`, signature,
    /// `iss`, `aud`, then expiry against `now`. A token that passed everything but the
    /// clock before is not verified again (see [`TokenKeys::verify_uncached`]).
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let claims = match self.verified.get(token) {
            Some(c) => c,
            None => {
                if let Some(result) = self.verify_trusted(token, now) {
                    return result;
                }
                let c = self.check_signed(token)?;
                self.verified.insert(token, &c);
                c
            }
        };
        check_clock(claims, now)
    }

    /// [`TokenKeys::verify`] without the cache: every check, every time.
    pub fn verify_uncached(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        if let Some(result) = self.verify_trusted(token, now) {
            return result;
        }
        check_clock(self.check_signed(token)?, now)
    }

    /// A token of another trusted issuer, verified by it; `None` when it claims to be ours
    /// (or no other issuer is trusted, or it is not a JWT: our checks say why).
    fn verify_trusted(&self, token: &str, now: i64) -> Option<Result<AccessClaims, TokenError>> {
        let trusted = self.trusted.as_ref()?;
        if token.len() > MAX_FOREIGN_TOKEN_LEN {
            return Some(Err(TokenError::Malformed));
        }
        let iss = unverified_issuer(token)?;
        if iss == self.issuer {
            return None;
        }
        Some(
            trusted
                .verify(&iss, token, now)
                .unwrap_or(Err(TokenError::Issuer)),
        )
    }

    /// How many verified tokens are remembered.
    pub fn cached_tokens(&self) -> usize {
        self.verified.len()
    }

    /// Sign `claims` as one of our JWTs of type `typ` (access tokens, login challenges).
    pub fn sign_typed(&self, typ: &str, claims: &impl Serialize) -> Result<String, TokenError> {
        let signer = self.signer.as_ref().ok_or(TokenError::NoSigningKey)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(typ.to_string());
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, claims, &signer.key).map_err(|e| TokenError::Key(e.to_string()))
    }

    /// The payload of one of our JWTs of type `typ`: size, EdDSA only, `typ`, a known `kid`,
    /// the signature. The claims are the caller's to check.
    pub fn verify_typed(&self, token: &str, typ: &str) -> Result<Vec<u8>, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        let header: JoseHeader<'_> = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
        if header.alg != "EdDSA" {
            return Err(TokenError::Algorithm);
        }
        if header.typ.as_deref() != Some(typ) {
            return Err(TokenError::Type);
        }
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        let key = self
            .verifiers
            .get(kid.as_ref())
            .ok_or_else(|| TokenError::UnknownKid(kid.to_string()))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let signature = Signature::from_slice(&signature).map_err(|_| TokenError::Signature)?;
        let signed = &token[..header_and_payload_len(token)];
        key.verify(signed.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature)?;
        URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)
    }

    /// Everything but the clock.
    fn check_signed(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let payload = self.verify_typed(token, ACCESS_TOKEN_TYPE)?;
        let claims: AccessClaims =
            serde_json::from_slice(&payload).map_err(|e| TokenError::Claims(e.to_string()))?;
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer);
        }
        if claims.aud != self.audience {
            return Err(TokenError::Audience);
        }
        // A token minted under a longer limit would outlive the revocation entries.
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if lifetime > self.max_lifetime {
            return Err(TokenError::Lifetime {
                lifetime,
                max: self.max_lifetime,
            });
        }
        Ok(claims)
    }
}

/// The longest token of another issuer looked at (provider tokens carry group lists).
pub const MAX_FOREIGN_TOKEN_LEN: usize = 16 * 1024;

/// The `iss` of a JWT's payload, unverified: only to choose who verifies it.
pub fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// Length of `header.payload`, the signed part of a JWT with exactly two dots.
pub fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

/// Expiry and issue time against the caller's clock.
fn check_clock(claims: AccessClaims, now: i64) -> Result<AccessClaims, TokenError> {
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.iat > now + 60 {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

/// A random 128-bit id, base32 (session ids, token ids).
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_signing_pem, public_pem_of};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys() -> TokenKeys {
        TokenKeys::new("nats-callout", "nats")
            .with_signing_pem(&generate_signing_pem())
            .unwrap()
    }

    fn mint(keys: &TokenKeys, now: i64) -> (String, AccessClaims) {
        keys.mint(
            &MintRequest {
                user: "bob",
                session: "s1",
                device: Some("laptop"),
                ttl: Duration::from_secs(300),
                session_expires_at: None,
                asserted: None,
                client_id: None,
            },
            now,
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let (tok, claims) = mint(&k, 1000);
        let back = k.verify(&tok, 1001).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.sub, "bob");
        assert_eq!(back.did.as_deref(), Some("laptop"));
        assert_eq!(back.exp, 1300);
    }

    /// The application rides in RFC 9068's `client_id` claim; tokens without it (minted
    /// before applications existed) verify as ever, with none.
    #[test]
    fn the_application_claim_is_optional() {
        let k = keys();
        let payload = |tok: &str| -> serde_json::Value {
            let p = tok.split('.').nth(1).unwrap();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        let (without, _) = mint(&k, 1000);
        assert!(payload(&without).get("client_id").is_none());
        assert_eq!(k.verify_uncached(&without, 1001).unwrap().client_id, None);
        let req = MintRequest {
            user: "bob",
            session: "s1",
            device: None,
            ttl: Duration::from_secs(300),
            session_expires_at: None,
            asserted: None,
            client_id: Some("mobile"),
        };
        let (with, _) = k.mint(&req, 1000).unwrap();
        assert_eq!(payload(&with)["client_id"], "mobile");
        let back = k.verify_uncached(&with, 1001).unwrap();
        assert_eq!(back.client_id.as_deref(), Some("mobile"));
        // The claim is signed like every other: changing it breaks the signature.
        let moved = resign_claims(&with, |v| v["client_id"] = "web".into());
        assert_eq!(
            k.verify_uncached(&moved, 1001).unwrap_err(),
            TokenError::Signature
        );
        let dropped = resign_claims(&with, |v| {
            v.as_object_mut().unwrap().remove("client_id");
        });
        assert_eq!(
            k.verify_uncached(&dropped, 1001).unwrap_err(),
            TokenError::Signature
        );
    }

    #[test]
    fn header_has_typ_and_kid() {
        let k = keys();
        let (tok, _) = mint(&k, 1000);
        let h = jsonwebtoken::decode_header(&tok).unwrap();
        assert_eq!(h.typ.as_deref(), Some(ACCESS_TOKEN_TYPE));
        assert!(h.kid.is_some());
    }

    #[test]
    fn expiry_is_checked_against_the_given_clock() {
        let k = keys();
        let (tok, _) = mint(&k, 1000);
        assert_eq!(k.verify(&tok, 1300).unwrap_err(), TokenError::Expired);
        assert_eq!(k.verify(&tok, 900).unwrap_err(), TokenError::NotYetValid);
    }

    #[test]
    fn session_end_caps_expiry() {
        let k = keys();
        let (_, c) = k
            .mint(
                &MintRequest {
                    user: "bob",
                    session: "s",
                    device: None,
                    ttl: Duration::from_secs(300),
                    session_expires_at: Some(1100),
                    asserted: None,
                    client_id: None,
                },
                1000,
            )
            .unwrap();
        assert_eq!(c.exp, 1100);
    }

    #[test]
    fn no_token_lives_longer_than_the_revocation_entries() {
        let pem = generate_signing_pem();
        let long = TokenKeys::new("nats-callout", "nats")
            .with_max_lifetime(Duration::from_secs(7200))
            .with_signing_pem(&pem)
            .unwrap();
        let short = TokenKeys::new("nats-callout", "nats")
            .with_max_lifetime(Duration::from_secs(3600))
            .with_signing_pem(&pem)
            .unwrap();
        let req = |secs| MintRequest {
            user: "bob",
            session: "s",
            device: None,
            ttl: Duration::from_secs(secs),
            session_expires_at: None,
            asserted: None,
            client_id: None,
        };
        // Minting beyond the limit is refused...
        let err = short.mint(&req(3601), 1000).unwrap_err();
        assert_eq!(err.code(), "token-lifetime-too-long");
        assert!(short.mint(&req(3600), 1000).is_ok());
        // ...and so is a token minted under a longer limit (e.g. before a config change).
        let (tok, _) = long.mint(&req(7200), 1000).unwrap();
        assert_eq!(
            short.verify_uncached(&tok, 1001).unwrap_err(),
            TokenError::Lifetime {
                lifetime: 7200,
                max: 3600
            }
        );
        assert!(long.verify(&tok, 1001).is_ok());
    }

    fn resign_claims(tok: &str, f: impl FnOnce(&mut serde_json::Value)) -> String {
        let parts: Vec<&str> = tok.split('.').collect();
        let mut v: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        f(&mut v);
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(v.to_string()),
            parts[2]
        )
    }

    #[test]
    fn tampering_and_bad_tokens_are_refused_with_reasons() {
        let k = keys();
        let (tok, _) = mint(&k, 1000);
        let other = keys();
        let (foreign, _) = mint(&other, 1000);
        let wrong_iss = TokenKeys::new("someone-else", "nats")
            .with_signing_pem(&generate_signing_pem())
            .unwrap();
        // a token of another issuer whose key we also trust
        let (other_iss_tok, _) = mint(&wrong_iss, 1000);
        let trusting = TokenKeys::new("nats-callout", "nats")
            .with_verifying_pem(&public_pem_of(&generate_signing_pem()).unwrap())
            .unwrap();
        let hdr = |json: &str| {
            let rest = tok.split_once('.').unwrap().1;
            format!("{}.{rest}", URL_SAFE_NO_PAD.encode(json))
        };
        let cases: Vec<(&str, String, TokenError)> = vec![
            ("empty", String::new(), TokenError::Missing),
            ("null", "null".into(), TokenError::Malformed),
            ("not a jwt", "hello".into(), TokenError::Malformed),
            ("four parts", format!("{tok}.x"), TokenError::Malformed),
            (
                "over-long",
                "a.b.".to_string() + &"c".repeat(MAX_TOKEN_LEN),
                TokenError::Malformed,
            ),
            (
                "tampered sub",
                resign_claims(&tok, |v| v["sub"] = "alice".into()),
                TokenError::Signature,
            ),
            (
                "foreign key",
                foreign,
                TokenError::UnknownKid(
                    jsonwebtoken::decode_header(&mint(&other, 1).0)
                        .unwrap()
                        .kid
                        .unwrap(),
                ),
            ),
            (
                "HS256 header",
                hdr(r#"{"alg":"HS256","typ":"at+jwt","kid":"x"}"#),
                TokenError::Algorithm,
            ),
            (
                "typ JWT",
                hdr(&format!(
                    r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
                    k.signer.as_ref().unwrap().kid
                )),
                TokenError::Type,
            ),
            (
                "no kid",
                hdr(r#"{"alg":"EdDSA","typ":"at+jwt"}"#),
                TokenError::MissingKid,
            ),
        ];
        for (name, token, want) in cases {
            assert_eq!(k.verify(&token, 1001).unwrap_err(), want, "{name}");
            assert_eq!(k.verify_uncached(&token, 1001).unwrap_err(), want, "{name}");
        }
        // wrong issuer / audience need a key we trust that signed a token for someone else
        let k2 = TokenKeys::new("nats-callout", "nats");
        let pem = generate_signing_pem();
        let k2 = k2.with_signing_pem(&pem).unwrap();
        let iss_signer = TokenKeys::new("evil", "nats").with_signing_pem(&pem).unwrap();
        let aud_signer = TokenKeys::new("nats-callout", "other")
            .with_signing_pem(&pem)
            .unwrap();
        assert_eq!(
            k2.verify(&mint(&iss_signer, 1000).0, 1001).unwrap_err(),
            TokenError::Issuer
        );
        assert_eq!(
            k2.verify(&mint(&aud_signer, 1000).0, 1001).unwrap_err(),
            TokenError::Audience
        );
        assert!(matches!(
            trusting.verify(&other_iss_tok, 1001),
            Err(TokenError::UnknownKid(_))
        ));
    }

    #[test]
    fn rotated_keys_verify_by_kid() {
        let old_pem = generate_signing_pem();
        let old = TokenKeys::new("i", "a").with_signing_pem(&old_pem).unwrap();
        let (old_tok, _) = mint(&old, 1000);
        let new = TokenKeys::new("i", "a")
            .with_signing_pem(&generate_signing_pem())
            .unwrap()
            .with_verifying_pem(&public_pem_of(&old_pem).unwrap())
            .unwrap();
        assert!(new.verify(&old_tok, 1001).is_ok());
        let (new_tok, _) = mint(&new, 1000);
        assert!(matches!(
            old.verify(&new_tok, 1001),
            Err(TokenError::UnknownKid(_))
        ));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let pem = generate_signing_pem();
        let k = TokenKeys::new("i", "a").with_signing_pem(&pem).unwrap();
        let dbg = format!("{k:?}");
        let body: String = pem.lines().nth(1).unwrap().chars().take(20).collect();
        assert!(!dbg.contains(&body));
    }

    #[test]
    fn cached_tokens_are_still_checked_against_the_clock() {
        let k = keys();
        let (tok, claims) = mint(&k, 1000);
        assert_eq!(k.cached_tokens(), 1, "minting remembers the token");
        let fresh = keys();
        assert_eq!(fresh.cached_tokens(), 0);
        assert_eq!(
            fresh.verify_uncached(&tok, 1001).unwrap_err(),
            TokenError::UnknownKid(jsonwebtoken::decode_header(&tok).unwrap().kid.unwrap())
        );
        for _ in 0..2 {
            assert_eq!(k.verify(&tok, 1001).unwrap(), claims);
            assert_eq!(k.verify(&tok, 1300).unwrap_err(), TokenError::Expired);
            assert_eq!(k.verify(&tok, 900).unwrap_err(), TokenError::NotYetValid);
        }
        assert_eq!(k.cached_tokens(), 1);
        // another string is another token: a tampered copy is checked in full
        let tampered = resign_claims(&tok, |v| v["sub"] = "alice".into());
        assert_eq!(k.verify(&tampered, 1001).unwrap_err(), TokenError::Signature);
        assert_eq!(k.cached_tokens(), 1, "failures are not remembered");
    }
}
