//! NATS JWTs (`ed25519-nkey`): encode, decode and verify on nkeys directly.
//!
//! `jsonwebtoken` cannot handle the NATS algorithm, so this module does the
//! small part of the format we need: a fixed header, base64url segments and an
//! ed25519 signature by the nkey named in `iss`.

pub mod request;
pub mod response;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use nkeys::KeyPair;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The header nats-server writes and expects on every NATS JWT.
const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// Why a NATS JWT could not be decoded or verified.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ClaimsError {
    #[error("not a JWT (expected three base64url segments)")]
    Malformed,
    #[error("unsupported JWT header")]
    BadHeader,
    #[error("claims are not valid JSON: {0}")]
    BadClaims(String),
    #[error("issuer is not a valid public nkey")]
    BadIssuer,
    #[error("signature does not verify")]
    BadSignature,
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("the request names an issuer we hold no key for")]
    UnknownIssuer,
}

/// Serialise `claims` and sign them with `signer` (an account key for our replies).
///
/// The JSON goes through a per-thread buffer and the token is written into one string of
/// the right size: one allocation besides the signature.
pub fn encode<T: Serialize>(claims: &T, signer: &KeyPair) -> Result<String, ClaimsError> {
    thread_local! {
        static JSON: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
    }
    JSON.with_borrow_mut(|json| {
        json.clear();
        serde_json::to_writer(&mut *json, claims).map_err(|e| ClaimsError::BadClaims(e.to_string()))?;
        let header = encoded_header();
        let b64 = |n: usize| n.div_ceil(3) * 4;
        let mut out = String::with_capacity(header.len() + 1 + b64(json.len()) + 1 + b64(64));
        out.push_str(header);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&json[..], &mut out);
        if json.capacity() > 64 * 1024 {
            *json = Vec::with_capacity(4096);
        }
        let sig = signer
            .sign(out.as_bytes())
            .map_err(|e| ClaimsError::Sign(e.to_string()))?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        Ok(out)
    })
}

/// The issuer a NATS JWT claims, read before verification so the caller can
/// check that it is the key it expects.
#[derive(serde::Deserialize)]
struct Issuer<'a> {
    #[serde(borrow, default)]
    iss: Cow<'a, str>,
}

/// The `alg` of a header other than the one nats-server writes.
#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow, default)]
    alg: Cow<'a, str>,
}

/// Decode a NATS JWT and verify its signature by the key in its `iss` claim.
///
/// Returns the issuer and the claims. The caller decides whether that issuer
/// is acceptable (for requests: the server's own id).
pub fn decode_verified<T: DeserializeOwned>(token: &str) -> Result<(String, T), ClaimsError> {
    decode_unverified(token)?.verify()
}

/// A NATS JWT whose claims are decoded but whose signature is not checked yet: a caller
/// may refuse it early for something cheap to see (an expired request) and must call
/// [`Unverified::verify`] before trusting anything in it.
pub struct Unverified<'t, T> {
    pub claims: T,
    issuer: String,
    signed: &'t [u8],
    signature: Signature,
}

impl<T> Unverified<'_, T> {
    /// The key the token says signed it (not checked yet).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Check the signature by the key in `iss`; returns the issuer and the claims.
    pub fn verify(self) -> Result<(String, T), ClaimsError> {
        verify_by(&self.issuer, self.signed, &self.signature)?;
        Ok((self.issuer, self.claims))
    }
}

/// Decode a NATS JWT's header, claims and signature without checking the signature.
pub fn decode_unverified<T: DeserializeOwned>(token: &str) -> Result<Unverified<'_, T>, ClaimsError> {
    let mut parts = token.split('.');
    let (Some(header), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ClaimsError::Malformed);
    };
    if header != encoded_header() {
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| ClaimsError::Malformed)?;
        let header: Header<'_> = serde_json::from_slice(&header).map_err(|_| ClaimsError::BadHeader)?;
        if !header.alg.eq_ignore_ascii_case("ed25519-nkey") && !header.alg.eq_ignore_ascii_case("ed25519") {
            return Err(ClaimsError::BadHeader);
        }
    }
    let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| ClaimsError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| ClaimsError::Malformed)?;
    let signature = Signature::from_slice(&sig).map_err(|_| ClaimsError::BadSignature)?;
    let iss: Issuer<'_> = serde_json::from_slice(&body).map_err(|e| ClaimsError::BadClaims(e.to_string()))?;
    let issuer = iss.iss.into_owned();
    let claims = serde_json::from_slice(&body).map_err(|e| ClaimsError::BadClaims(e.to_string()))?;
    let signed_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
    Ok(Unverified {
        claims,
        issuer,
        signed: &token.as_bytes()[..signed_len],
        signature,
    })
}

/// The header segment nats-server writes (and we write), base64url.
fn encoded_header() -> &'static str {
    static ENCODED: LazyLock<String> = LazyLock::new(|| URL_SAFE_NO_PAD.encode(HEADER));
    &ENCODED
}

/// Issuer keys seen so far (a server signs every request with the same key), parsed.
/// Bounded: emptied when full.
static ISSUER_KEYS: LazyLock<ArcSwap<HashMap<String, VerifyingKey>>> = LazyLock::new(Default::default);
const MAX_ISSUER_KEYS: usize = 1024;

/// Verify `signature` over `signed` by the public nkey `issuer`.
fn verify_by(issuer: &str, signed: &[u8], signature: &Signature) -> Result<(), ClaimsError> {
    let cached = ISSUER_KEYS.load().get(issuer).copied();
    let key = match cached {
        Some(k) => k,
        None => {
            let (_, raw) = nkeys::from_public_key(issuer).map_err(|_| ClaimsError::BadIssuer)?;
            VerifyingKey::from_bytes(&raw).map_err(|_| ClaimsError::BadIssuer)?
        }
    };
    key.verify(signed, signature)
        .map_err(|_| ClaimsError::BadSignature)?;
    if cached.is_none() {
        // Only keys that verified a signature are kept.
        ISSUER_KEYS.rcu(|keys| {
            let mut keys = if keys.len() >= MAX_ISSUER_KEYS {
                HashMap::new()
            } else {
                HashMap::clone(keys)
            };
            keys.insert(issuer.to_string(), key);
            keys
        });
    }
    Ok(())
}

/// A fresh unique JWT id. nats-server never checks `jti`; it only has to be unique.
pub fn new_jti() -> String {
    nuid::next().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        iss: String,
        sub: String,
        n: u32,
    }

    fn sample(kp: &KeyPair) -> Sample {
        Sample {
            iss: kp.public_key(),
            sub: "someone".into(),
            n: 7,
        }
    }

    #[test]
    fn round_trip_verifies_and_returns_issuer() {
        let kp = KeyPair::new_account();
        let token = encode(&sample(&kp), &kp).unwrap();
        let (iss, back): (String, Sample) = decode_verified(&token).unwrap();
        assert_eq!(iss, kp.public_key());
        assert_eq!(back, sample(&kp));
    }

    #[test]
    fn tampered_claims_fail_signature() {
        let kp = KeyPair::new_account();
        let token = encode(&sample(&kp), &kp).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut evil = sample(&kp);
        evil.n = 8;
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).unwrap());
        let forged = format!("{}.{}.{}", parts[0], body, parts[2]);
        assert_eq!(
            decode_verified::<Sample>(&forged).unwrap_err(),
            ClaimsError::BadSignature
        );
    }

    #[test]
    fn signature_by_another_key_fails() {
        let kp = KeyPair::new_account();
        let other = KeyPair::new_account();
        // Claims name `kp` as issuer but `other` signs.
        let token = encode(&sample(&kp), &other).unwrap();
        assert_eq!(
            decode_verified::<Sample>(&token).unwrap_err(),
            ClaimsError::BadSignature
        );
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        for bad in ["", "a", "a.b", "a.b.c.d", "!!.??.**", "null", "eyJ.eyJ.x"] {
            assert!(decode_verified::<Sample>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wrong_algorithm_header_is_rejected() {
        let kp = KeyPair::new_account();
        let token = encode(&sample(&kp), &kp).unwrap();
        let rest = token.split_once('.').unwrap().1;
        let hs = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"HS256"}"#);
        assert_eq!(
            decode_verified::<Sample>(&format!("{hs}.{rest}")).unwrap_err(),
            ClaimsError::BadHeader
        );
    }

    #[test]
    fn issuer_that_is_not_an_nkey_is_rejected() {
        let kp = KeyPair::new_account();
        let mut s = sample(&kp);
        s.iss = "not-a-key".into();
        let token = encode(&s, &kp).unwrap();
        assert_eq!(
            decode_verified::<Sample>(&token).unwrap_err(),
            ClaimsError::BadIssuer
        );
    }

    #[test]
    fn a_known_issuer_still_needs_a_valid_signature() {
        let kp = KeyPair::new_account();
        let token = encode(&sample(&kp), &kp).unwrap();
        for _ in 0..2 {
            assert!(decode_verified::<Sample>(&token).is_ok());
            let (signed, sig) = token.rsplit_once('.').unwrap();
            let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
            raw[0] ^= 1;
            let bad = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&raw));
            assert_eq!(
                decode_verified::<Sample>(&bad).unwrap_err(),
                ClaimsError::BadSignature
            );
            let short = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&raw[..63]));
            assert_eq!(
                decode_verified::<Sample>(&short).unwrap_err(),
                ClaimsError::BadSignature
            );
        }
    }

    #[test]
    fn other_headers_are_read_and_checked() {
        let kp = KeyPair::new_account();
        let token = encode(&sample(&kp), &kp).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        // A header with another field order is still an ed25519-nkey header, but the
        // signature covers the original header, so it fails there.
        let reordered = URL_SAFE_NO_PAD.encode(r#"{"alg":"ed25519-nkey","typ":"JWT"}"#);
        assert_eq!(
            decode_verified::<Sample>(&format!("{reordered}.{rest}")).unwrap_err(),
            ClaimsError::BadSignature
        );
        for bad in [r#"{"typ":"JWT"}"#, "not json", r#"{"alg":"none"}"#] {
            let h = URL_SAFE_NO_PAD.encode(bad);
            assert_eq!(
                decode_verified::<Sample>(&format!("{h}.{rest}")).unwrap_err(),
                ClaimsError::BadHeader,
                "{bad}"
            );
        }
    }
}
