//! A provider's signing keys (its JWKS), parsed once per fetch into verification keys with
//! the algorithms each may be used with.
//!
//! A key serves only the algorithms its type allows (RSA: RS256/PS256; P-256: ES256;
//! Ed25519: EdDSA), narrowed to its own `alg` when it names one and to the provider's
//! accepted list. Symmetric keys, encryption keys, other curves and RSA keys under 2048 bits
//! are left out with a reason; one bad key never hides the others.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// The most keys kept from one JWKS (providers publish a handful).
pub const MAX_KEYS: usize = 64;
/// The shortest RSA modulus accepted, in bytes.
const MIN_RSA_BYTES: usize = 256;

/// One verification key.
pub struct ProviderKey {
    pub kid: Option<String>,
    pub algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// The keys of one provider, as last fetched.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<ProviderKey>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.kid, &k.algorithms)))
            .finish()
    }
}

/// Why a JWKS document was not used at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeysError {
    #[error("the JWKS is not a JSON object with a \"keys\" array")]
    NotAJwks,
    #[error("the JWKS holds no usable signing key ({0})")]
    NoUsableKey(String),
}

/// Why a token found no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No key with this `kid` (or, without a `kid`, not exactly one candidate).
    UnknownKid,
    /// The key exists but does not serve this `alg`.
    WrongAlgorithm,
}

impl KeySet {
    /// Parse a JWKS, keeping the keys usable with `accepted` algorithms. Returns the set
    /// and the reasons keys were left out (for the log).
    pub fn parse(json: &[u8], accepted: &[Algorithm]) -> Result<(KeySet, Vec<String>), KeysError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(json).map_err(|_| KeysError::NotAJwks)?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, raw) in doc.keys.into_iter().enumerate() {
            if keys.len() == MAX_KEYS {
                skipped.push(format!("keys after the first {MAX_KEYS} ignored"));
                break;
            }
            match usable(raw, accepted) {
                Ok(k) => keys.push(k),
                Err(why) => skipped.push(format!("key {i}: {why}")),
            }
        }
        if keys.is_empty() {
            return Err(KeysError::NoUsableKey(skipped.join("; ")));
        }
        Ok((KeySet { keys }, skipped))
    }

    /// The key for a token's `kid` and `alg`. Without a `kid`, the one key serving `alg`.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&DecodingKey, Miss> {
        let key = match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(Miss::UnknownKid)?,
            None => {
                let mut serving = self.keys.iter().filter(|k| k.algorithms.contains(&alg));
                match (serving.next(), serving.next()) {
                    (Some(k), None) => k,
                    _ => return Err(Miss::UnknownKid),
                }
            }
        };
        if key.algorithms.contains(&alg) {
            Ok(&key.key)
        } else {
            Err(Miss::WrongAlgorithm)
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s, for status pages.
    pub fn kids(&self) -> Vec<String> {
        self.keys.iter().filter_map(|k| k.kid.clone()).collect()
    }
}

fn usable(raw: serde_json::Value, accepted: &[Algorithm]) -> Result<ProviderKey, String> {
    let jwk: Jwk = serde_json::from_value(raw).map_err(|e| format!("not a JWK we read: {e}"))?;
    let kid = jwk.common.key_id.clone();
    if let Some(u) = &jwk.common.public_key_use
        && *u != PublicKeyUse::Signature
    {
        return Err("not a signing key (use is not \"sig\")".into());
    }
    let (by_type, key): (&[Algorithm], DecodingKey) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .map_err(|_| "RSA modulus is not base64url".to_string())?;
            let bits = n.iter().skip_while(|b| **b == 0).count();
            if bits < MIN_RSA_BYTES {
                return Err(format!("RSA key of {} bits is too short", bits * 8));
            }
            let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e).map_err(|e| e.to_string())?;
            (&[Algorithm::RS256, Algorithm::PS256], key)
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            let key = DecodingKey::from_ec_components(&ec.x, &ec.y).map_err(|e| e.to_string())?;
            (&[Algorithm::ES256], key)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            let key = DecodingKey::from_ed_components(&okp.x).map_err(|e| e.to_string())?;
            (&[Algorithm::EdDSA], key)
        }
        AlgorithmParameters::OctetKey(_) => return Err("a symmetric key is never trusted".into()),
        _ => return Err("key type or curve not accepted".into()),
    };
    let named = match &jwk.common.key_algorithm {
        Some(a) => Some(Algorithm::from_str(&a.to_string()).map_err(|_| format!("alg {a} is not accepted"))?),
        None => None,
    };
    let algorithms: Vec<Algorithm> = by_type
        .iter()
        .copied()
        .filter(|a| accepted.contains(a) && named.is_none_or(|n| n == *a))
        .collect();
    if algorithms.is_empty() {
        return Err(match named {
            Some(n) => format!("alg {n:?} does not fit the key or is not accepted"),
            None => "no accepted algorithm fits the key".into(),
        });
    }
    Ok(ProviderKey { kid, algorithms, key })
}
