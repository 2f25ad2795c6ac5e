//! Access tokens: EdDSA JWTs with `iss`, `aud`, `typ`, `kid`, session, device and token id.
//!
//! Roles are deliberately absent: the permission store decides at every use.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The explicit `typ` of an access token (RFC 9068), so no other JWT of ours passes as one.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
    #[error("access token expired")]
    Expired,
    #[error("access token issued in the future")]
    NotYetValid,
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
            TokenError::Expired => "access-token-expired",
            TokenError::NotYetValid => "token-not-yet-valid",
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
}

struct Signer {
    kid: String,
    key: EncodingKey,
}

/// Signing key (one) and verification keys (several, by `kid`) for access tokens.
pub struct TokenKeys {
    issuer: String,
    audience: String,
    signer: Option<Signer>,
    verifiers: HashMap<String, DecodingKey>,
    validation: Validation,
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

/// A fresh Ed25519 signing key as PKCS#8 PEM (what `nats-callout keys` writes).
pub fn generate_signing_pem() -> String {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    key.to_pkcs8_pem(LineEnding::LF)
        .expect("an ed25519 key always encodes")
        .to_string()
}

/// The public half of a signing key as SPKI PEM (to hand to other verifiers).
pub fn public_pem_of(private_pem: &str) -> Result<String, TokenError> {
    let key =
        ed25519_dalek::SigningKey::from_pkcs8_pem(private_pem).map_err(|e| TokenError::Key(e.to_string()))?;
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| TokenError::Key(e.to_string()))
}

impl TokenKeys {
    /// Keys for tokens with this issuer and audience, with no key yet.
    pub fn new(issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against the caller's clock (tests inject one).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        TokenKeys {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            signer: None,
            verifiers: HashMap::new(),
            validation,
        }
    }

    /// Use this PKCS#8 PEM private key to sign; it also verifies.
    pub fn with_signing_pem(mut self, pem: &str) -> Result<Self, TokenError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| TokenError::Key(format!("signing key: {e}")))?;
        let public = key.verifying_key().to_bytes();
        let kid = kid_for(&public);
        let der = key.to_pkcs8_der().map_err(|e| TokenError::Key(e.to_string()))?;
        self.verifiers
            .insert(kid.clone(), DecodingKey::from_ed_der(&public));
        self.signer = Some(Signer {
            kid,
            key: EncodingKey::from_ed_der(der.as_bytes()),
        });
        Ok(self)
    }

    /// Also accept tokens signed by this key (SPKI public PEM or PKCS#8 private PEM),
    /// e.g. the previous signing key during a rotation.
    pub fn with_verifying_pem(mut self, pem: &str) -> Result<Self, TokenError> {
        let public = match ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            Ok(k) => k.to_bytes(),
            Err(_) => ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                .map_err(|e| TokenError::Key(format!("verification key: {e}")))?
                .verifying_key()
                .to_bytes(),
        };
        self.verifiers
            .insert(kid_for(&public), DecodingKey::from_ed_der(&public));
        Ok(self)
    }

    /// Load the signing key and the extra verification keys named in the settings.
    pub fn from_settings(s: &crate::config::TokenSettings) -> Result<Self, TokenError> {
        let read =
            |p: &std::path::Path| crate::keys::read_secret(p).map_err(|e| TokenError::Key(e.to_string()));
        let mut keys =
            TokenKeys::new(&s.issuer, &s.audience).with_signing_pem(&read(&s.signing_key_file)?)?;
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
        let signer = self.signer.as_ref().ok_or(TokenError::NoSigningKey)?;
        let mut exp = now + req.ttl.as_secs() as i64;
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
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_string());
        header.kid = Some(signer.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &signer.key)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verify an access token: size, algorithm allow-list, `typ`, `kid`, signature,
    /// `iss`, `aud`, then expiry against `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN || token.bytes().filter(|&b| b == b'.').count() != 2 {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(TokenError::Type);
        }
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        let key = self
            .verifiers
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKid(kid.clone()))?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => TokenError::Signature,
                K::InvalidIssuer => TokenError::Issuer,
                K::InvalidAudience => TokenError::Audience,
                K::InvalidAlgorithm => TokenError::Algorithm,
                K::InvalidToken | K::Base64(_) | K::Utf8(_) => TokenError::Malformed,
                other => TokenError::Claims(format!("{other:?}")),
            }
        })?;
        let claims = data.claims;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.iat > now + 60 {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// A random 128-bit id, base32 (session ids, token ids).
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
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
                },
                1000,
            )
            .unwrap();
        assert_eq!(c.exp, 1100);
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
}
