//! A provider's access token → our identity: signature with a cached key, `iss`, `aud`,
//! `exp`, `nbf` and `iat` with a small skew, then the user, groups and roles the claims
//! name, mapped onto the permission files. No I/O.

use std::collections::BTreeMap;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::keys::{KeySet, Miss};
use crate::config::identity::{OidcSettings, UnknownUsers};
use crate::names::is_valid_name;
use crate::permissions::{Asserted, Role};
use crate::tokens::TokenError;
use crate::tokens::access::{AccessClaims, header_and_payload_len};

/// The most provider groups looked at in one token.
pub const MAX_GROUPS: usize = 256;

/// `typ` values an access token of a provider may carry (none at all is common too).
const ACCESS_TYPES: [&str; 4] = ["at+jwt", "application/at+jwt", "jwt", "JWT"];

/// Where a claim is: a top-level name, or a JSON pointer (`/realm_access/roles`).
#[derive(Debug, Clone)]
enum Claim {
    Name(String),
    Pointer(String),
}

impl Claim {
    fn new(s: &str) -> Self {
        if s.starts_with('/') {
            Claim::Pointer(s.to_string())
        } else {
            Claim::Name(s.to_string())
        }
    }

    fn get<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        match self {
            Claim::Name(n) => claims.get(n),
            Claim::Pointer(p) => {
                let (first, rest) = p[1..].split_once('/').unwrap_or((&p[1..], ""));
                let top = claims.get(&unescape(first))?;
                if rest.is_empty() {
                    Some(top)
                } else {
                    top.pointer(&format!("/{rest}"))
                }
            }
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

/// What decides about a provider's tokens, from its settings.
#[derive(Debug, Clone)]
pub struct Rules {
    pub name: String,
    pub issuer: String,
    audience: String,
    user: Claim,
    groups_claim: Option<Claim>,
    groups: BTreeMap<String, String>,
    roles: BTreeMap<String, Role>,
    unknown: UnknownUsers,
    /// `file_users`: whether its users may be the files' users.
    file_users: bool,
    pub accepted: Vec<Algorithm>,
    skew: i64,
    /// The longest lifetime accepted (`tokens.max_token_ttl`): revocations live this long.
    max_lifetime: i64,
}

impl Rules {
    pub fn new(s: &OidcSettings, max_lifetime: std::time::Duration) -> Rules {
        Rules {
            name: s.name.clone(),
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
            user: Claim::new(&s.user_claim),
            groups_claim: s.groups_claim.as_deref().map(Claim::new),
            groups: s.groups.clone(),
            roles: s.roles.clone(),
            unknown: s.unknown_users,
            file_users: s.asserts_file_users(),
            accepted: s
                .algorithms
                .iter()
                .filter_map(|a| Algorithm::from_str(a).ok())
                .collect(),
            skew: s.clock_skew.as_secs() as i64,
            max_lifetime: i64::try_from(max_lifetime.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Signature and every claim of an access token, against `now`.
    /// [`Refusal::UnknownKey`] for a `kid` not among `keys`: the caller asks for fresh keys.
    pub fn check_signed(&self, keys: &KeySet, token: &str, now: i64) -> Result<AccessClaims, Refusal> {
        let claims = self.signed_claims(keys, token)?;
        self.identity(&claims, now).map_err(Refusal::from)
    }

    /// An ID token from our login (`aud` = our client id, our `nonce`): the user it names
    /// and what the provider asserts about them.
    pub fn check_id_token(
        &self,
        keys: &KeySet,
        token: &str,
        client_id: &str,
        nonce: &str,
        now: i64,
    ) -> Result<(String, Asserted), Refusal> {
        let c = self.signed_claims(keys, token)?;
        self.check_times(&c, client_id, now)?;
        let sent = c.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !bool::from(sent.as_bytes().ct_eq(nonce.as_bytes())) || nonce.is_empty() {
            return Err(TokenError::Claims("nonce does not match the login".into()).into());
        }
        Ok((self.user_of(&c)?.to_string(), self.asserted(&c)))
    }

    /// The claims of a JWT signed by one of `keys` with an accepted algorithm.
    fn signed_claims(&self, keys: &KeySet, token: &str) -> Result<Map<String, Value>, Refusal> {
        if token.len() > crate::tokens::access::MAX_FOREIGN_TOKEN_LEN {
            return Err(TokenError::Malformed.into());
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed.into());
        };
        let header: Header = decode_json(header)?;
        if header.crit.is_some() {
            return Err(TokenError::Claims("critical header extensions are not supported".into()).into());
        }
        let alg = Algorithm::from_str(&header.alg).map_err(|_| TokenError::Algorithm)?;
        if !self.accepted.contains(&alg) {
            return Err(TokenError::Algorithm.into());
        }
        if let Some(t) = &header.typ
            && !ACCESS_TYPES.contains(&t.as_str())
        {
            return Err(TokenError::Type.into());
        }
        let key = match keys.find(header.kid.as_deref(), alg) {
            Ok(k) => k,
            Err(Miss::UnknownKid) => {
                return Err(Refusal::UnknownKey(TokenError::UnknownKid(
                    header.kid.unwrap_or_default(),
                )));
            }
            Err(Miss::WrongAlgorithm) => return Err(TokenError::Algorithm.into()),
        };
        let signed = &token[..header_and_payload_len(token)];
        match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), key, alg) {
            Ok(true) => {}
            _ => return Err(TokenError::Signature.into()),
        }
        Ok(decode_json(payload)?)
    }

    /// `exp` against the clock, with the skew: all a token verified before needs again.
    pub fn check_clock(&self, claims: AccessClaims, now: i64) -> Result<AccessClaims, TokenError> {
        if claims.exp.saturating_add(self.skew) <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn identity(&self, c: &Map<String, Value>, now: i64) -> Result<AccessClaims, TokenError> {
        let (start, exp) = self.check_times(c, &self.audience, now)?;
        let user = self.user_of(c)?;
        let text = |name: &str| c.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
        let jti = text("jti");
        // Sessions and token ids of a provider are scoped by its name: revoking one never
        // reaches another provider's (or our own) session of the same id.
        let sid = text("sid")
            .or(jti)
            .map(|s| format!("{}:{s}", self.name))
            .unwrap_or_default();
        Ok(AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.to_string(),
            sid,
            did: None,
            tid: jti.map(|j| format!("{}:{j}", self.name)).unwrap_or_default(),
            iat: start,
            exp,
            sexp: None,
            ext: Some(self.asserted(c)),
            client_id: None,
        })
    }

    /// `iss`, `aud` (one of them = `audience`), `exp`, `nbf`, `iat` with the skew, and the
    /// lifetime. Returns (start, exp).
    fn check_times(
        &self,
        c: &Map<String, Value>,
        audience: &str,
        now: i64,
    ) -> Result<(i64, i64), TokenError> {
        if c.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(TokenError::Issuer);
        }
        let aud_ok = match c.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(TokenError::Audience);
        }
        let time = |name: &str| -> Result<Option<i64>, TokenError> {
            match c.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or_else(|| TokenError::Claims(format!("{name} is not a number"))),
            }
        };
        let exp = time("exp")?.ok_or_else(|| TokenError::Claims("no exp".into()))?;
        let nbf = time("nbf")?;
        let iat = time("iat")?;
        if exp.saturating_add(self.skew) <= now {
            return Err(TokenError::Expired);
        }
        if nbf
            .into_iter()
            .chain(iat)
            .any(|t| t.saturating_sub(self.skew) > now)
        {
            return Err(TokenError::NotYetValid);
        }
        let start = iat.or(nbf).unwrap_or(now);
        let lifetime = exp.saturating_sub(start);
        if lifetime > self.max_lifetime {
            return Err(TokenError::Lifetime {
                lifetime,
                max: self.max_lifetime,
            });
        }
        Ok((start, exp))
    }

    /// The user the claims name (`user_claim`).
    fn user_of<'c>(&self, c: &'c Map<String, Value>) -> Result<&'c str, TokenError> {
        let user = self
            .user
            .get(c)
            .and_then(Value::as_str)
            .ok_or_else(|| TokenError::Claims("no user claim (a string)".into()))?;
        if crate::names::is_guest_name(user) {
            return Err(TokenError::ReservedName);
        }
        Ok(user)
    }

    /// The provider's groups mapped onto file groups and roles.
    pub fn asserted(&self, c: &Map<String, Value>) -> Asserted {
        let listed: Vec<&str> = match self.groups_claim.as_ref().and_then(|g| g.get(c)) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).take(MAX_GROUPS).collect(),
            Some(Value::String(s)) => vec![s.as_str()],
            _ => Vec::new(),
        };
        let mut groups: Vec<String> = listed
            .iter()
            .filter_map(|g| match self.groups.get(*g) {
                Some(mapped) => Some(mapped.clone()),
                None => is_valid_name(g).then(|| g.to_string()),
            })
            .collect();
        groups.sort_unstable();
        groups.dedup();
        let mut roles: Vec<Role> = listed
            .iter()
            .filter_map(|g| self.roles.get(*g).copied())
            .collect();
        roles.sort_unstable();
        roles.dedup();
        Asserted {
            idp: self.name.clone(),
            groups,
            roles,
            groups_only: self.unknown == UnknownUsers::GroupsOnly,
            file_users: self.file_users,
        }
    }
}

/// Why a provider token was refused.
#[derive(Debug)]
pub enum Refusal {
    /// Its `kid` is not among the cached keys: refused now, fresh keys wanted.
    UnknownKey(TokenError),
    Invalid(TokenError),
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        Refusal::Invalid(e)
    }
}

impl Refusal {
    pub fn into_error(self) -> TokenError {
        match self {
            Refusal::UnknownKey(e) | Refusal::Invalid(e) => e,
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use std::time::Duration;

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://idp.example.com/realms/chat";

    struct Signer {
        kid: &'static str,
        alg: Algorithm,
        key: EncodingKey,
        jwk: Value,
    }

    fn rsa(kid: &'static str, alg: Algorithm, bits: usize) -> (Signer, String) {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits).unwrap();
        let pem = key.to_pkcs1_pem(Default::default()).unwrap().to_string();
        let public_pem = {
            use rsa::pkcs8::EncodePublicKey;
            key.to_public_key().to_public_key_pem(Default::default()).unwrap()
        };
        let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig",
            "n": B64.encode(key.n().to_bytes_be()), "e": B64.encode(key.e().to_bytes_be())});
        let s = Signer {
            kid,
            alg,
            key: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            jwk,
        };
        (s, public_pem)
    }

    fn es256(kid: &'static str) -> Signer {
        use p256::pkcs8::EncodePrivateKey;
        let secret = p256::SecretKey::random(&mut rand::thread_rng());
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
        let pem = secret.to_pkcs8_pem(Default::default()).unwrap();
        Signer {
            kid,
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid,
                "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap())}),
        }
    }

    fn eddsa(kid: &'static str) -> Signer {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let key = ed25519_dalek::SigningKey::generate(&mut rand::thread_rng());
        let der = key.to_pkcs8_der().unwrap();
        Signer {
            kid,
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(der.as_bytes()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
                "x": B64.encode(key.verifying_key().to_bytes())}),
        }
    }

    fn sign(s: &Signer, claims: &Value) -> String {
        let mut h = Header::new(s.alg);
        h.kid = Some(s.kid.into());
        h.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&h, claims, &s.key).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": ["account", "nats"], "sub": "f81d4fae", "preferred_username": "carol",
            "groups": ["/staff", "chat-admins", "not a name!"], "iat": NOW - 10, "exp": NOW + 290,
            "jti": "j1", "sid": "s1"})
    }

    fn rules() -> Rules {
        let mut s = OidcSettings::new("corp", ISS, "nats");
        s.user_claim = "preferred_username".into();
        s.groups_claim = Some("groups".into());
        s.groups = [("/staff".to_string(), "staff".to_string())].into();
        s.roles = [("chat-admins".to_string(), Role::Admin)].into();
        s.unknown_users = UnknownUsers::GroupsOnly;
        Rules::new(&s, Duration::from_secs(24 * 3600))
    }

    fn set(signers: &[&Signer]) -> KeySet {
        let doc = json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()});
        KeySet::parse(doc.to_string().as_bytes(), &rules().accepted)
            .unwrap()
            .0
    }

    fn check(keys: &KeySet, token: &str) -> Result<AccessClaims, TokenError> {
        rules()
            .check_signed(keys, token, NOW)
            .map_err(Refusal::into_error)
    }

    #[test]
    fn each_accepted_algorithm_verifies_and_maps_user_groups_and_roles() {
        let (rs, _) = rsa("r1", Algorithm::RS256, 2048);
        let (ps, _) = rsa("p1", Algorithm::PS256, 2048);
        let (es, ed) = (es256("e1"), eddsa("d1"));
        let keys = set(&[&rs, &ps, &es, &ed]);
        for s in [&rs, &ps, &es, &ed] {
            let c = check(&keys, &sign(s, &claims())).unwrap_or_else(|e| panic!("{:?}: {e}", s.alg));
            assert_eq!(
                (c.sub.as_str(), c.sid.as_str(), c.tid.as_str()),
                ("carol", "corp:s1", "corp:j1")
            );
            let a = c.ext.unwrap();
            assert_eq!(
                a.groups,
                ["chat-admins", "staff"],
                "mapped, same-named kept, invalid dropped"
            );
            assert_eq!(a.roles, [Role::Admin]);
            assert!(a.groups_only);
        }
    }

    #[test]
    fn forged_and_misused_tokens_are_refused_with_their_reason() {
        let (rs, public_pem) = rsa("r1", Algorithm::RS256, 2048);
        let es = es256("e1");
        let keys = set(&[&rs, &es]);
        let good = sign(&rs, &claims());
        let (header, payload) = good
            .split_once('.')
            .map(|(h, rest)| (h, rest.split('.').next().unwrap()))
            .unwrap();
        let with_header = |h: Value| format!("{}.{payload}", B64.encode(h.to_string()));
        // alg none, with and without a signature
        let none = with_header(json!({"alg": "none", "kid": "r1"}));
        assert_eq!(
            check(&keys, &format!("{none}.")).unwrap_err(),
            TokenError::Algorithm
        );
        // HS256 keyed with the public key (alg confusion)
        let hs = jsonwebtoken::encode(
            &Header {
                kid: Some("r1".into()),
                ..Header::new(Algorithm::HS256)
            },
            &claims(),
            &EncodingKey::from_secret(public_pem.as_bytes()),
        )
        .unwrap();
        assert_eq!(check(&keys, &hs).unwrap_err(), TokenError::Algorithm);
        // an alg that does not fit the key: ES256 header on the RSA key's kid, PS256 on RS-only key
        let es_on_rsa = sign(
            &Signer {
                kid: "r1",
                ..es256("x")
            },
            &claims(),
        );
        assert_eq!(check(&keys, &es_on_rsa).unwrap_err(), TokenError::Algorithm);
        // a key not in the set
        let (other, _) = rsa("r2", Algorithm::RS256, 2048);
        assert!(matches!(
            rules().check_signed(&keys, &sign(&other, &claims()), NOW),
            Err(Refusal::UnknownKey(TokenError::UnknownKid(k))) if k == "r2"
        ));
        // a known kid, another key's signature
        let forged = sign(&Signer { kid: "r1", ..other }, &claims());
        assert_eq!(check(&keys, &forged).unwrap_err(), TokenError::Signature);
        // a tampered payload
        let mut c = claims();
        c["preferred_username"] = "admin".into();
        let tampered = format!(
            "{header}.{}.{}",
            B64.encode(c.to_string()),
            good.rsplit('.').next().unwrap()
        );
        assert_eq!(check(&keys, &tampered).unwrap_err(), TokenError::Signature);
        // critical extensions, unexpected typ
        let crit = sign(&rs, &claims()).replacen(
            header,
            &B64.encode(json!({"alg":"RS256","kid":"r1","crit":["x"]}).to_string()),
            1,
        );
        assert!(matches!(check(&keys, &crit).unwrap_err(), TokenError::Claims(_)));
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("r1".into());
        h.typ = Some("logout+jwt".into());
        let logout = jsonwebtoken::encode(&h, &claims(), &rs.key).unwrap();
        assert_eq!(check(&keys, &logout).unwrap_err(), TokenError::Type);
        // claims
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Change, TokenError)> = vec![
            (
                Box::new(|c| c["iss"] = "https://other.example.com".into()),
                TokenError::Issuer,
            ),
            (Box::new(|c| c["aud"] = "account".into()), TokenError::Audience),
            (Box::new(|c| c["aud"] = json!(["account"])), TokenError::Audience),
            (
                Box::new(|c| drop(c.as_object_mut().unwrap().remove("aud"))),
                TokenError::Audience,
            ),
            (Box::new(|c| c["exp"] = (NOW - 61).into()), TokenError::Expired),
            (
                Box::new(|c| c["nbf"] = (NOW + 61).into()),
                TokenError::NotYetValid,
            ),
            (
                Box::new(|c| c["iat"] = (NOW + 61).into()),
                TokenError::NotYetValid,
            ),
            (
                Box::new(|c| c["exp"] = (NOW + 2 * 24 * 3600).into()),
                TokenError::Lifetime {
                    lifetime: 2 * 24 * 3600 + 10,
                    max: 24 * 3600,
                },
            ),
            (
                Box::new(|c| c["exp"] = "soon".into()),
                TokenError::Claims("exp is not a number".into()),
            ),
            (
                Box::new(|c| drop(c.as_object_mut().unwrap().remove("exp"))),
                TokenError::Claims("no exp".into()),
            ),
            (
                Box::new(|c| c["preferred_username"] = json!(["carol"])),
                TokenError::Claims("no user claim (a string)".into()),
            ),
        ];
        for (change, want) in cases {
            let mut c = claims();
            change(&mut c);
            assert_eq!(check(&keys, &sign(&rs, &c)).unwrap_err(), want, "{c}");
        }
        // within the skew
        let mut c = claims();
        c["exp"] = (NOW - 30).into();
        c["iat"] = (NOW - 300).into();
        assert!(check(&keys, &sign(&rs, &c)).is_ok());
        assert_eq!(
            rules()
                .check_clock(check(&keys, &sign(&rs, &c)).unwrap(), NOW + 31)
                .unwrap_err(),
            TokenError::Expired
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.??.##"] {
            assert_eq!(check(&keys, junk).unwrap_err(), TokenError::Malformed, "{junk:?}");
        }
    }

    #[test]
    fn unusable_keys_are_left_out_with_a_reason_and_never_hide_the_others() {
        let (good, _) = rsa("ok", Algorithm::RS256, 2048);
        let (short, _) = rsa("short", Algorithm::RS256, 1024);
        let mut named_hs = good.jwk.clone();
        named_hs["alg"] = "HS256".into();
        named_hs["kid"] = "hs".into();
        let mut enc = good.jwk.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "enc".into();
        let doc = json!({"keys": [good.jwk, short.jwk, named_hs, enc,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "nonsense"}]});
        let (keys, skipped) = KeySet::parse(doc.to_string().as_bytes(), &rules().accepted).unwrap();
        assert_eq!(keys.kids(), ["ok"]);
        assert_eq!(skipped.len(), 6, "{skipped:?}");
        assert!(skipped.iter().any(|s| s.contains("1024 bits")), "{skipped:?}");
        assert!(skipped.iter().any(|s| s.contains("symmetric")), "{skipped:?}");
        assert_eq!(
            KeySet::parse(b"[]", &rules().accepted).unwrap_err(),
            super::super::keys::KeysError::NotAJwks
        );
        assert!(matches!(
            KeySet::parse(br#"{"keys":[{"kty":"oct","k":"AA"}]}"#, &rules().accepted),
            Err(super::super::keys::KeysError::NoUsableKey(_))
        ));
    }

    #[test]
    fn a_json_pointer_reaches_nested_claims() {
        let mut s = OidcSettings::new("kc", ISS, "nats");
        s.groups_claim = Some("/realm_access/roles".into());
        let r = Rules::new(&s, Duration::from_secs(3600));
        let c = json!({"realm_access": {"roles": ["staff", "offline_access"]}});
        assert_eq!(
            r.asserted(c.as_object().unwrap()).groups,
            ["offline_access", "staff"]
        );
        let mut s = OidcSettings::new("auth0", ISS, "nats");
        s.groups_claim = Some("/https:~1~1chat.example.com~1groups".into());
        let r = Rules::new(&s, Duration::from_secs(3600));
        let c = json!({"https://chat.example.com/groups": "staff"});
        assert_eq!(r.asserted(c.as_object().unwrap()).groups, ["staff"]);
    }
}
