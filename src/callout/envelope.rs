//! The xkey envelope: open sealed requests and seal replies, strictly by mode.

use nkeys::XKey;

/// The header nats-server sets on a sealed request: its own public curve key.
pub const SERVER_XKEY_HEADER: &str = "Nats-Server-Xkey";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("xkey is configured but the request is not sealed")]
    Unsealed,
    #[error("request is sealed but no xkey is configured")]
    SealedWithoutKey,
    #[error("server xkey header is not a curve key")]
    BadServerKey,
    #[error("sealed request does not open")]
    Open,
}

impl EnvelopeError {
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::Unsealed => "request-unsealed",
            EnvelopeError::SealedWithoutKey => "request-sealed-without-key",
            EnvelopeError::BadServerKey => "request-bad-server-xkey",
            EnvelopeError::Open => "request-does-not-open",
        }
    }
}

/// An opened request and, when it was sealed, the key to seal the reply to.
pub struct Opened {
    pub jwt: Vec<u8>,
    pub server_xkey: Option<(String, XKey)>,
}

/// Open a request. With `ours` set, only sealed requests (with the server's xkey
/// header) are accepted; without it, only plain ones.
pub fn open(payload: &[u8], header: Option<&str>, ours: Option<&XKey>) -> Result<Opened, EnvelopeError> {
    let looks_plain = payload.starts_with(b"eyJ");
    match (ours, header) {
        (Some(_), None) => Err(EnvelopeError::Unsealed),
        (None, Some(_)) => Err(EnvelopeError::SealedWithoutKey),
        (None, None) if !looks_plain && payload.starts_with(b"xkv1") => Err(EnvelopeError::SealedWithoutKey),
        (None, None) => Ok(Opened {
            jwt: payload.to_vec(),
            server_xkey: None,
        }),
        (Some(ours), Some(header)) => {
            if looks_plain {
                return Err(EnvelopeError::Unsealed);
            }
            let server = XKey::from_public_key(header).map_err(|_| EnvelopeError::BadServerKey)?;
            let jwt = ours.open(payload, &server).map_err(|_| EnvelopeError::Open)?;
            Ok(Opened {
                jwt,
                server_xkey: Some((header.to_string(), server)),
            })
        }
    }
}

/// Seal `reply` to the server's key when the request was sealed.
pub fn seal(reply: String, ours: Option<&XKey>, server: Option<&XKey>) -> Vec<u8> {
    match (ours, server) {
        (Some(ours), Some(server)) => ours.seal(reply.as_bytes(), server).unwrap_or_default(),
        _ => reply.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_round_trip() {
        let ours = XKey::new();
        let server = XKey::new();
        let sealed = server
            .seal(b"eyJhello", &XKey::from_public_key(&ours.public_key()).unwrap())
            .unwrap();
        let opened = open(&sealed, Some(&server.public_key()), Some(&ours)).unwrap();
        assert_eq!(opened.jwt, b"eyJhello");
        let (_, sk) = opened.server_xkey.unwrap();
        let reply = seal("eyJreply".into(), Some(&ours), Some(&sk));
        assert_eq!(
            server
                .open(&reply, &XKey::from_public_key(&ours.public_key()).unwrap())
                .unwrap(),
            b"eyJreply"
        );
    }

    #[test]
    fn mode_mismatches_and_garbage_are_refused() {
        let ours = XKey::new();
        let server = XKey::new();
        let sealed = server
            .seal(b"eyJx", &XKey::from_public_key(&ours.public_key()).unwrap())
            .unwrap();
        let sp = server.public_key();
        assert_eq!(
            open(b"eyJx", None, Some(&ours)).err(),
            Some(EnvelopeError::Unsealed)
        );
        assert_eq!(
            open(b"eyJx", Some(&sp), Some(&ours)).err(),
            Some(EnvelopeError::Unsealed)
        );
        assert_eq!(
            open(&sealed, Some(&sp), None).err(),
            Some(EnvelopeError::SealedWithoutKey)
        );
        assert_eq!(
            open(&sealed, None, None).err(),
            Some(EnvelopeError::SealedWithoutKey)
        );
        assert_eq!(
            open(b"xkv1garbage", Some(&sp), Some(&ours)).err(),
            Some(EnvelopeError::Open)
        );
        assert_eq!(
            open(&sealed, Some("not-a-key"), Some(&ours)).err(),
            Some(EnvelopeError::BadServerKey)
        );
        // sealed by a server key other than the one in the header
        let other = XKey::new().public_key();
        assert_eq!(
            open(&sealed, Some(&other), Some(&ours)).err(),
            Some(EnvelopeError::Open)
        );
    }
}
