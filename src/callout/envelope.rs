//! The xkey envelope: open sealed requests and seal replies, strictly by mode.
//!
//! The format is nkeys' `xkv1`: `"xkv1" || nonce (24) || NaCl box (XSalsa20-Poly1305)`.
//! The box key (X25519 + HSalsa20 of our secret and the server's public key) is the same
//! for every request from one server, so it is computed once per (our key, server key)
//! pair and kept in a small process-wide cache, instead of once per open and per seal.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use crypto_box::aead::{AeadCore, AeadInPlace};
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use nkeys::XKey;

/// The header nats-server sets on a sealed request: its own public curve key.
pub const SERVER_XKEY_HEADER: &str = "Nats-Server-Xkey";

/// The server's curve key a request message carries (borrowed: nothing copied per request).
pub fn server_xkey(msg: &async_nats::Message) -> Option<&str> {
    msg.headers.as_ref()?.get(SERVER_XKEY_HEADER).map(|v| v.as_str())
}

const XKEY_V1: &[u8] = b"xkv1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Distinct (our key, server key) pairs kept; a cluster has one entry per server.
const MAX_BOXES: usize = 256;

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
        (None, None) if !looks_plain && payload.starts_with(XKEY_V1) => Err(EnvelopeError::SealedWithoutKey),
        (None, None) => Ok(Opened {
            jwt: payload.to_vec(),
            server_xkey: None,
        }),
        (Some(ours), Some(header)) => {
            if looks_plain {
                return Err(EnvelopeError::Unsealed);
            }
            let server = XKey::from_public_key(header).map_err(|_| EnvelopeError::BadServerKey)?;
            let jwt = open_sealed(payload, ours, &server)?;
            Ok(Opened {
                jwt,
                server_xkey: Some((header.to_string(), server)),
            })
        }
    }
}

/// [`open`] with any of `ours` (two during a key rotation; none: plain requests only).
/// Returns which key opened it, to seal the reply with.
pub fn open_with<'k>(
    payload: &[u8],
    header: Option<&str>,
    ours: &'k [XKey],
) -> Result<(Opened, Option<&'k XKey>), EnvelopeError> {
    let Some((first, rest)) = ours.split_first() else {
        return open(payload, header, None).map(|o| (o, None));
    };
    match open(payload, header, Some(first)) {
        Err(EnvelopeError::Open) => {
            for k in rest {
                if let Ok(o) = open(payload, header, Some(k)) {
                    return Ok((o, Some(k)));
                }
            }
            Err(EnvelopeError::Open)
        }
        r => r.map(|o| (o, Some(first))),
    }
}

/// Seal `reply` to the server's key when the request was sealed.
pub fn seal(reply: String, ours: Option<&XKey>, server: Option<&XKey>) -> Vec<u8> {
    match (ours, server) {
        (Some(ours), Some(server)) => seal_to(reply.as_bytes(), ours, server).unwrap_or_default(),
        _ => reply.into_bytes(),
    }
}

fn open_sealed(payload: &[u8], ours: &XKey, server: &XKey) -> Result<Vec<u8>, EnvelopeError> {
    let rest = payload.strip_prefix(XKEY_V1).ok_or(EnvelopeError::Open)?;
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::Open);
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let (key, cached) = BoxKey::of(ours, server).ok_or(EnvelopeError::Open)?;
    let b = match cached.clone() {
        Some(b) => b,
        None => Arc::new(derive(ours, &key).ok_or(EnvelopeError::Open)?),
    };
    let (tag, ciphertext) = sealed.split_at(TAG_LEN);
    let mut jwt = ciphertext.to_vec();
    b.decrypt_in_place_detached(nonce.into(), b"", &mut jwt, tag.into())
        .map_err(|_| EnvelopeError::Open)?;
    if cached.is_none() {
        // Only a key that actually opened a request is kept.
        remember(key, b);
    }
    Ok(jwt)
}

fn seal_to(plain: &[u8], ours: &XKey, server: &XKey) -> Option<Vec<u8>> {
    let (key, cached) = BoxKey::of(ours, server)?;
    let b = match cached {
        Some(b) => b,
        None => {
            let b = Arc::new(derive(ours, &key)?);
            remember(key, b.clone());
            b
        }
    };
    let nonce = SalsaBox::generate_nonce(&mut rand::thread_rng());
    // "xkv1" || nonce || tag || ciphertext, encrypted in place (NaCl puts the tag first).
    let head = XKEY_V1.len() + NONCE_LEN;
    let mut out = Vec::with_capacity(head + TAG_LEN + plain.len());
    out.extend_from_slice(XKEY_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&[0; TAG_LEN]);
    out.extend_from_slice(plain);
    let tag = b
        .encrypt_in_place_detached(&nonce, b"", &mut out[head + TAG_LEN..])
        .ok()?;
    out[head..head + TAG_LEN].copy_from_slice(&tag);
    Some(out)
}

/// Our public key and the server's, raw: what a box key is derived from.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct BoxKey {
    ours: [u8; 32],
    server: [u8; 32],
}

type Boxes = HashMap<BoxKey, Arc<SalsaBox>>;

static BOXES: LazyLock<ArcSwap<Boxes>> = LazyLock::new(Default::default);

impl BoxKey {
    /// The pair's key and, when known, its cached box.
    fn of(ours: &XKey, server: &XKey) -> Option<(BoxKey, Option<Arc<SalsaBox>>)> {
        let raw = |k: &XKey| nkeys::from_public_key(&k.public_key()).ok().map(|(_, raw)| raw);
        let key = BoxKey {
            ours: raw(ours)?,
            server: raw(server)?,
        };
        let cached = BOXES.load().get(&key).cloned();
        Some((key, cached))
    }
}

/// X25519 of our secret and the server's public key (the expensive part, done once).
fn derive(ours: &XKey, key: &BoxKey) -> Option<SalsaBox> {
    let seed = ours.seed().ok()?;
    let (_, secret) = nkeys::decode_seed(&seed).ok()?;
    let secret = SecretKey::from_bytes(secret);
    Some(SalsaBox::new(&PublicKey::from(key.server), &secret))
}

fn remember(key: BoxKey, b: Arc<SalsaBox>) {
    BOXES.rcu(|boxes| {
        let mut boxes = if boxes.len() >= MAX_BOXES {
            Boxes::new()
        } else {
            Boxes::clone(boxes)
        };
        boxes.insert(key, b.clone());
        boxes
    });
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

    #[test]
    fn cached_box_keeps_working_and_is_per_key_pair() {
        let (ours, other_ours) = (XKey::new(), XKey::new());
        let server = XKey::new();
        let sp = server.public_key();
        let to = |k: &XKey| XKey::from_public_key(&k.public_key()).unwrap();
        for _ in 0..3 {
            let sealed = server.seal(b"eyJmany", &to(&ours)).unwrap();
            assert_eq!(open(&sealed, Some(&sp), Some(&ours)).unwrap().jwt, b"eyJmany");
            // the same server, another callout key: its own box, not ours
            assert_eq!(
                open(&sealed, Some(&sp), Some(&other_ours)).err(),
                Some(EnvelopeError::Open)
            );
            let reply = seal("eyJback".into(), Some(&ours), Some(&to(&server)));
            assert_eq!(server.open(&reply, &to(&ours)).unwrap(), b"eyJback");
            assert!(server.open(&reply, &to(&other_ours)).is_err());
        }
    }

    #[test]
    fn tampered_or_short_payloads_do_not_open() {
        let ours = XKey::new();
        let server = XKey::new();
        let sp = server.public_key();
        let mut sealed = server
            .seal(b"eyJx", &XKey::from_public_key(&ours.public_key()).unwrap())
            .unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(
            open(&sealed, Some(&sp), Some(&ours)).err(),
            Some(EnvelopeError::Open)
        );
        for short in [&b"xkv1"[..], b"xkv1short", &sealed[..4 + 24 + 15]] {
            assert_eq!(
                open(short, Some(&sp), Some(&ours)).err(),
                Some(EnvelopeError::Open)
            );
        }
        // same length and prefix as a real box, but another version tag
        let mut v2 = sealed.clone();
        v2[3] = b'2';
        assert_eq!(open(&v2, Some(&sp), Some(&ours)).err(), Some(EnvelopeError::Open));
    }

    #[test]
    fn empty_reply_seals_like_nkeys() {
        let ours = XKey::new();
        let server = XKey::new();
        let to = |k: &XKey| XKey::from_public_key(&k.public_key()).unwrap();
        let reply = seal(String::new(), Some(&ours), Some(&to(&server)));
        assert_eq!(reply.len(), 4 + 24 + 16);
        assert_eq!(server.open(&reply, &to(&ours)).unwrap(), b"");
    }
}
