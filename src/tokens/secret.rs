//! The refresh secret (`tokens.refresh_secret_file`): it derives refresh-token successors
//! and keys for other uses (the signed cookie of a provider login in progress). The same on
//! every instance that shares the file; never printed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// 32 secret bytes. `Debug` hides them.
#[derive(Clone)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub fn new(bytes: [u8; 32]) -> Self {
        Secret(bytes)
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length; 32 bytes never fails.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(label);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// The successor of a refresh token: the same on every call, unknowable without the
    /// secret (the bytes of the successor token).
    #[must_use]
    pub fn successor(&self, presented: &str) -> [u8; 32] {
        self.mac(b"rt-successor", presented.as_bytes())
    }

    /// A key for `label`, useless for anything else.
    #[must_use]
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        self.mac(b"derived key\0", label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_label_and_secret_and_stay_put() {
        let a = Secret::new([1; 32]);
        assert_eq!(a.derive(b"x"), a.derive(b"x"));
        assert_ne!(a.derive(b"x"), a.derive(b"y"));
        assert_ne!(a.derive(b"x"), Secret::new([2; 32]).derive(b"x"));
        assert_ne!(a.derive(b"x"), a.successor("x"));
        assert!(!format!("{a:?}").contains('1'));
    }
}
