//! Login by proving a key (NATS nkeys: `U…` user keys, ed25519): we sign a short challenge
//! naming the key (a random nonce, 60 s); the client answers with the key's signature of the
//! challenge's text; the challenge is accepted once, on any instance sharing the store. A
//! challenge may bind the application and the device (`clientId`, `deviceId`): the answer
//! must then name the same ones ([`Challenge::check_binding`]).

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use super::access::{TokenError, TokenKeys};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL: i64 = 60;
/// The `typ` of a challenge: no other JWT of ours passes as one, nor it as another.
pub const CHALLENGE_TYPE: &str = "login-challenge+jwt";
/// The `aud` of a challenge.
const CHALLENGE_AUDIENCE: &str = "nats-callout/login";

/// What a challenge says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub iss: String,
    pub aud: String,
    /// The public key that must sign it.
    pub sub: String,
    pub nonce: String,
    pub iat: i64,
    pub exp: i64,
    /// The application the answer must name, when the challenge was asked with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// The device the answer must name, when the challenge was asked with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did: Option<String>,
}

/// What a challenge binds: the answer must name the same application and device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Binding<'a> {
    pub client_id: Option<&'a str>,
    pub device_id: Option<&'a str>,
}

impl Challenge {
    /// The answer names what the challenge binds (nothing bound: anything goes).
    ///
    /// # Errors
    /// [`ChallengeError::Binding`] naming the first field that differs.
    pub fn check_binding(&self, answer: Binding<'_>) -> Result<(), ChallengeError> {
        if self.cid.is_some() && self.cid.as_deref() != answer.client_id {
            return Err(ChallengeError::Binding("clientId"));
        }
        if self.did.is_some() && self.did.as_deref() != answer.device_id {
            return Err(ChallengeError::Binding("deviceId"));
        }
        Ok(())
    }
}

/// Why a key login was refused. [`ChallengeError::code`] is the `x-error-code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("publicKey is not a public user nkey (U...)")]
    BadPublicKey,
    #[error("the challenge is not one of ours")]
    Invalid,
    #[error("the challenge expired")]
    Expired,
    #[error("the challenge names another key")]
    ForeignKey,
    #[error("the signature does not verify with the key")]
    BadSignature,
    #[error("the challenge was already used")]
    Replayed,
    #[error("no user logs in with this key")]
    UnknownKey,
    #[error("the answer's {0} is not the one the challenge was asked with")]
    Binding(&'static str),
}

impl ChallengeError {
    pub fn code(&self) -> &'static str {
        match self {
            ChallengeError::BadPublicKey => "bad-public-key",
            ChallengeError::Invalid => "challenge-invalid",
            ChallengeError::Expired => "challenge-expired",
            ChallengeError::ForeignKey => "challenge-foreign-key",
            ChallengeError::BadSignature => "challenge-bad-signature",
            ChallengeError::Replayed => "challenge-replayed",
            ChallengeError::UnknownKey => "unknown-key",
            ChallengeError::Binding(_) => "challenge-binding-mismatch",
        }
    }
}

/// A public user nkey: `U…` with a valid checksum.
fn user_key(public_key: &str) -> Result<nkeys::KeyPair, ChallengeError> {
    if !public_key.starts_with('U') {
        return Err(ChallengeError::BadPublicKey);
    }
    nkeys::KeyPair::from_public_key(public_key).map_err(|_| ChallengeError::BadPublicKey)
}

impl TokenKeys {
    /// A challenge for `public_key` binding what `binding` names, signed with the
    /// access-token key; and when it expires.
    pub fn issue_challenge(
        &self,
        public_key: &str,
        binding: Binding<'_>,
        now: i64,
    ) -> Result<(String, i64), IssueError> {
        user_key(public_key).map_err(IssueError::Challenge)?;
        let c = Challenge {
            iss: self.issuer().to_string(),
            aud: CHALLENGE_AUDIENCE.into(),
            sub: public_key.into(),
            nonce: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>()),
            iat: now,
            exp: now + CHALLENGE_TTL,
            cid: binding.client_id.map(str::to_owned),
            did: binding.device_id.map(str::to_owned),
        };
        let token = self.sign_typed(CHALLENGE_TYPE, &c).map_err(IssueError::Key)?;
        Ok((token, c.exp))
    }

    /// A challenge answered for `public_key` with `signature` (base64url of the ed25519
    /// signature of the challenge's bytes): ours, unexpired, naming that key, signed by it.
    /// Whether it was used before is the caller's (the store's) to say.
    pub fn check_answer(
        &self,
        challenge: &str,
        public_key: &str,
        signature: &str,
        now: i64,
    ) -> Result<Challenge, ChallengeError> {
        let key = user_key(public_key)?;
        let payload = self
            .verify_typed(challenge, CHALLENGE_TYPE)
            .map_err(|_| ChallengeError::Invalid)?;
        let c: Challenge = serde_json::from_slice(&payload).map_err(|_| ChallengeError::Invalid)?;
        if c.iss != self.issuer() || c.aud != CHALLENGE_AUDIENCE || c.nonce.is_empty() {
            return Err(ChallengeError::Invalid);
        }
        if c.exp <= now {
            return Err(ChallengeError::Expired);
        }
        if c.sub != public_key {
            return Err(ChallengeError::ForeignKey);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(signature.trim_end_matches('='))
            .or_else(|_| URL_SAFE.decode(signature))
            .map_err(|_| ChallengeError::BadSignature)?;
        key.verify(challenge.as_bytes(), &sig)
            .map_err(|_| ChallengeError::BadSignature)?;
        Ok(c)
    }
}

/// Why no challenge could be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Challenge(ChallengeError),
    #[error(transparent)]
    Key(TokenError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::World;

    fn keys() -> TokenKeys {
        TokenKeys::new("nats-callout", "nats")
            .with_signing_pem(&World::random().token_pem)
            .unwrap()
    }

    fn sign(kp: &nkeys::KeyPair, text: &str) -> String {
        URL_SAFE_NO_PAD.encode(kp.sign(text.as_bytes()).unwrap())
    }

    #[test]
    fn an_answered_challenge_passes_and_every_misuse_has_its_own_reason() {
        let k = keys();
        let user = nkeys::KeyPair::new_user();
        let pk = user.public_key();
        let (c, exp) = k.issue_challenge(&pk, Binding::default(), 1000).unwrap();
        assert_eq!(exp, 1060);
        let good = sign(&user, &c);
        let ok = k.check_answer(&c, &pk, &good, 1001).unwrap();
        assert_eq!(ok.sub, pk);
        // Padded base64url is fine too.
        let padded = URL_SAFE.encode(user.sign(c.as_bytes()).unwrap());
        assert!(k.check_answer(&c, &pk, &padded, 1001).is_ok());

        let other = nkeys::KeyPair::new_user();
        let cases = [
            (k.check_answer(&c, &pk, &good, 1060), ChallengeError::Expired),
            (
                k.check_answer(&c, &other.public_key(), &sign(&other, &c), 1001),
                ChallengeError::ForeignKey,
            ),
            (
                k.check_answer(&c, &pk, &sign(&other, &c), 1001),
                ChallengeError::BadSignature,
            ),
            (
                k.check_answer(&c, &pk, "not base64!", 1001),
                ChallengeError::BadSignature,
            ),
            (
                k.check_answer(&c, &pk, &sign(&user, "another text"), 1001),
                ChallengeError::BadSignature,
            ),
            (k.check_answer("x.y.z", &pk, &good, 1001), ChallengeError::Invalid),
            (
                k.check_answer(&c, "SUAKEY", &good, 1001),
                ChallengeError::BadPublicKey,
            ),
            (
                k.check_answer(&c, &nkeys::KeyPair::new_account().public_key(), &good, 1001),
                ChallengeError::BadPublicKey,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got.unwrap_err(), want);
        }
        // A challenge of another service (another signing key) is not ours.
        let (theirs, _) = keys().issue_challenge(&pk, Binding::default(), 1000).unwrap();
        assert_eq!(
            k.check_answer(&theirs, &pk, &sign(&user, &theirs), 1001)
                .unwrap_err(),
            ChallengeError::Invalid
        );
        // Our access token is no challenge, nor a challenge an access token.
        let req = crate::tokens::MintRequest {
            user: "bob",
            session: "s",
            device: None,
            ttl: std::time::Duration::from_secs(60),
            session_expires_at: None,
            asserted: None,
            client_id: None,
        };
        let access = k.mint(&req, 1000).unwrap().0;
        assert_eq!(
            k.check_answer(&access, &pk, &sign(&user, &access), 1001)
                .unwrap_err(),
            ChallengeError::Invalid
        );
        assert_eq!(k.verify(&c, 1001).unwrap_err(), TokenError::Type);
    }

    #[test]
    fn a_bound_challenge_wants_the_same_application_and_device() {
        let k = keys();
        let user = nkeys::KeyPair::new_user();
        let pk = user.public_key();
        let bound = Binding {
            client_id: Some("mobile"),
            device_id: Some("phone"),
        };
        let (c, _) = k.issue_challenge(&pk, bound, 1000).unwrap();
        let checked = k.check_answer(&c, &pk, &sign(&user, &c), 1001).unwrap();
        assert_eq!(
            (checked.cid.as_deref(), checked.did.as_deref()),
            (Some("mobile"), Some("phone"))
        );
        let answer = |client_id, device_id| Binding { client_id, device_id };
        let err = |field| Err(ChallengeError::Binding(field));
        let cases = [
            (answer(Some("mobile"), Some("phone")), Ok(())),
            (answer(Some("web"), Some("phone")), err("clientId")),
            (answer(None, Some("phone")), err("clientId")),
            (answer(Some("mobile"), Some("laptop")), err("deviceId")),
            (answer(Some("mobile"), None), err("deviceId")),
        ];
        for (given, want) in cases {
            assert_eq!(checked.check_binding(given), want, "{given:?}");
        }
        assert_eq!(err("clientId").unwrap_err().code(), "challenge-binding-mismatch");
        // One bound field only: the other is free.
        let (c, _) = k.issue_challenge(&pk, answer(None, Some("phone")), 1000).unwrap();
        let one = k.check_answer(&c, &pk, &sign(&user, &c), 1001).unwrap();
        assert_eq!(one.check_binding(answer(Some("any"), Some("phone"))), Ok(()));
        assert_eq!(one.check_binding(answer(None, Some("tablet"))), err("deviceId"));
        // Nothing bound (a challenge asked with the key alone): anything goes, as before.
        let (c, _) = k.issue_challenge(&pk, Binding::default(), 1000).unwrap();
        let free = k.check_answer(&c, &pk, &sign(&user, &c), 1001).unwrap();
        assert_eq!(free.check_binding(answer(Some("web"), Some("laptop"))), Ok(()));
        assert_eq!(free.check_binding(Binding::default()), Ok(()));
    }
}
