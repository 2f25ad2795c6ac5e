//! Password hashing (argon2id).
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), produced with the
//! argon2 crate's default (OWASP-recommended) parameters. Verification never panics on
//! malformed input: a hash that does not parse, is not argon2id, or asks for absurd
//! parameters simply does not verify. [`verify_dummy`] lets a login handler spend the
//! same time on unknown users as on known ones.

use std::sync::LazyLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::{ARGON2ID_IDENT, Argon2, Params, PasswordHasher, PasswordVerifier};

/// Largest accepted memory cost in KiB (256 MiB): a hash from a permission file must not be
/// able to make every login allocate gigabytes.
pub const MAX_M_COST_KIB: u32 = 256 * 1024;
/// Largest accepted number of passes.
pub const MAX_T_COST: u32 = 32;
/// Largest accepted degree of parallelism.
pub const MAX_P_COST: u32 = 16;

/// Why a password could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Empty passwords are refused.
    #[error("empty password")]
    Empty,
    /// The argon2 implementation failed (e.g. no random salt available).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes `password` with argon2id, default parameters and a random salt; returns the PHC string.
///
/// # Errors
/// [`PasswordError::Empty`] for an empty password, [`PasswordError::Hash`] if hashing fails.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Parses `hash` and checks that it is an argon2id PHC string with a salt, an output and
/// bounded parameters.
fn parse_hash(hash: &str) -> Option<PasswordHash> {
    let parsed = PasswordHash::new(hash).ok()?;
    if parsed.algorithm.as_str() != ARGON2ID_IDENT.as_str() {
        return None;
    }
    parsed.salt.as_ref()?;
    parsed.hash.as_ref()?;
    let params = Params::try_from(&parsed).ok()?;
    if params.m_cost() > MAX_M_COST_KIB || params.t_cost() > MAX_T_COST || params.p_cost() > MAX_P_COST {
        return None;
    }
    if let Some(version) = parsed.version {
        argon2::Version::try_from(version).ok()?;
    }
    Some(parsed)
}

/// Whether `hash` is a well-formed argon2id PHC string this module would verify against.
#[must_use]
pub fn is_valid_hash(hash: &str) -> bool {
    parse_hash(hash).is_some()
}

/// Checks `password` against the PHC string `hash`. Returns false for a wrong password and
/// for a malformed or unsupported hash; never panics.
#[must_use]
pub fn verify_password(hash: &str, password: &str) -> bool {
    parse_hash(hash).is_some_and(|h| verify_parsed(&h, password))
}

fn verify_parsed(hash: &PasswordHash, password: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// A hash with the default parameters, computed once, used for users that do not exist.
static DUMMY_HASH: LazyLock<Option<PasswordHash>> = LazyLock::new(|| {
    Argon2::default()
        .hash_password_with_salt(b"nats-callout dummy password", b"nats-callout-dummy-salt")
        .ok()
});

/// Verifies `password` against a fixed dummy hash and discards the result, so that a login
/// for an unknown user costs as much as one for a known user.
pub fn verify_dummy(password: &str) {
    if let Some(hash) = DUMMY_HASH.as_ref() {
        let _ = std::hint::black_box(verify_parsed(hash, password));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify_round_trip() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(is_valid_hash(&h));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsE"));
        assert!(!verify_password(&h, ""));
    }

    #[test]
    fn salts_differ() {
        let a = hash_password("pw").expect("hash");
        let b = hash_password("pw").expect("hash");
        assert_ne!(a, b);
        assert!(verify_password(&a, "pw") && verify_password(&b, "pw"));
    }

    #[test]
    fn empty_password_is_refused() {
        assert_eq!(hash_password(""), Err(PasswordError::Empty));
    }

    #[test]
    fn malformed_hashes_do_not_verify() {
        let good = hash_password("pw").expect("hash");
        let argon2i = good.replacen("$argon2id$", "$argon2i$", 1);
        let huge_m = good.replacen("m=19456", "m=4000000", 1);
        let huge_t = good.replacen("t=2", "t=1000", 1);
        let no_hash = good
            .rsplit_once('$')
            .map(|(a, _)| a.to_owned())
            .unwrap_or_default();
        let cases = [
            "",
            "bob",
            "$",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
            "$argon2id$v=99$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$KIXQJHqzGZxHHYw3M9tq3eL1C5GyH7Z1zrBa6WqQRjv7V6QXW9p9e",
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            &argon2i,
            &huge_m,
            &huge_t,
            &no_hash,
        ];
        for h in cases {
            assert!(!is_valid_hash(h), "{h:?}");
            assert!(!verify_password(h, "pw"), "{h:?}");
        }
    }

    #[test]
    fn dummy_verification_runs() {
        assert!(DUMMY_HASH.is_some());
        verify_dummy("anything");
        verify_dummy("");
    }
}
