//! Storage of sessions, hashed refresh tokens and revocation entries behind [`TokenStore`],
//! with two backends: [`embedded::RedbStore`] (one redb file, one process: the default) and
//! [`jetstream::KvStore`] (JetStream key-value buckets shared by every instance).
//!
//! Refresh tokens are stored only as their SHA-256 ([`TokenHash`]); nothing here can
//! reproduce a token. The rules every backend enforces on a rotation are here
//! (`check_rotation`), so both refuse the same changes.

use std::fmt;

use super::revocation::Revocation;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

pub mod embedded;
pub mod jetstream;

pub use embedded::RedbStore;
pub use jetstream::{KvSettings, KvStore};

/// The SHA-256 of a refresh token: the only form in which a token is stored.
///
/// `Debug` never shows the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a token (of its whole string, prefix included).
    #[must_use]
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The raw digest.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lowercase hex digits (keys of the JetStream store).
    #[must_use]
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

impl Serialize for TokenHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        data_encoding::HEXLOWER
            .decode(text.as_bytes())
            .ok()
            .and_then(|bytes| Self::from_slice(&bytes))
            .ok_or_else(|| serde::de::Error::custom("a token hash is 64 lowercase hex digits"))
    }
}

/// One login: the family of refresh tokens it issues, and who it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    pub user: String,
    pub device: Option<String>,
    pub client_id: Option<String>,
    pub created_at: i64,
    /// Absolute end of the session (unix seconds): no refresh token outlives it.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    /// What an identity provider asserted at login (groups, roles), for a provider login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asserted: Option<crate::permissions::Asserted>,
    /// The client's address at login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// No idle or absolute expiry (a guest under `tokens.guest_refresh = "never"`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub never_expires: bool,
}

/// A stored refresh token (keyed by its [`TokenHash`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The session (family) it belongs to.
    pub session: String,
    /// 1 for the token a login issues, +1 for each rotation.
    pub generation: u64,
    pub issued_at: i64,
    /// The token is refused from this instant on.
    pub expires_at: i64,
    /// When it was rotated, if it was.
    pub used_at: Option<i64>,
    /// The hash of the token its rotation issued.
    pub successor: Option<TokenHash>,
}

/// A stored session: its public [`SessionInfo`] and the head of its token family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub info: SessionInfo,
    /// Hash of the one token of the family that has not been used.
    pub current: TokenHash,
    /// Generation of that token.
    pub generation: u64,
    /// Issue time of that token.
    pub current_issued_at: i64,
    /// Expiry of that token: the session is unusable from then on unless it rotates first.
    pub current_expires_at: i64,
}

impl SessionRecord {
    /// The last instant the session mattered: the later of its current token's expiry (no token
    /// of the family expires later) and its revocation. The janitor keeps the record until
    /// `end + tombstone`.
    #[must_use]
    pub fn end(&self) -> i64 {
        self.current_expires_at
            .max(self.info.revoked_at.unwrap_or(i64::MIN))
    }
}

/// What [`TokenStore::rotate`] found, read inside its write transaction.
#[derive(Debug)]
pub struct RotateView<'a> {
    /// The presented token's record.
    pub token: &'a TokenRecord,
    /// Its session, unless that was already purged.
    pub session: Option<&'a SessionRecord>,
}

/// What [`TokenStore::rotate`] is to do, decided from a [`RotateView`].
#[derive(Debug)]
pub enum RotateStep {
    /// Change nothing.
    Keep,
    /// Mark the presented token used at `at` with `successor` as its successor, store `record`
    /// under `successor`, and make it the session's current token. The store refuses (with
    /// [`StoreError::Conflict`]) unless the presented token is the session's unused current one
    /// and `record` is its next generation in the same session.
    Rotate {
        at: i64,
        successor: TokenHash,
        record: TokenRecord,
    },
    /// Revoke the token's session, the whole family (unless it already is).
    RevokeFamily { at: i64, reason: String },
}

/// Which sessions [`TokenStore::revoke_sessions`] revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionSelector<'a> {
    Id(&'a str),
    User(&'a str),
    Device(&'a str),
    /// One user's sessions on one device (device ids are chosen by clients).
    UserDevice(&'a str, &'a str),
    /// One user's sessions of one application (`clientId`).
    UserApplication(&'a str, &'a str),
    /// Every session created at or before this time.
    CreatedAtOrBefore(i64),
}

/// What one janitor step removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub refresh_tokens: usize,
    pub sessions: usize,
    pub revocations: usize,
}

impl PurgeReport {
    /// Records removed in all.
    #[must_use]
    pub fn total(&self) -> usize {
        self.refresh_tokens + self.sessions + self.revocations
    }
}

/// Why the store failed. Messages never contain a token or a token hash.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(Box<redb::Error>),
    #[error("corrupt record in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("refused change: {0}")]
    Conflict(&'static str),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store exists with other settings than configured (a bucket's replicas, say).
    #[error("store misconfigured: {0}")]
    Misconfigured(String),
    /// Other instances kept changing the same record: given up after bounded retries.
    #[error("too many concurrent changes to one record")]
    Contended,
}

/// Storage for [`crate::tokens::refresh`]. Each method is atomic.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new session and its first token, `first` being the token's hash. Refuses with
    /// [`StoreError::Conflict`] if the session id or the hash is already taken.
    async fn create_session(
        &self,
        session: &SessionRecord,
        first: &TokenHash,
        token: &TokenRecord,
    ) -> Result<(), StoreError>;

    /// The record of a token, by hash.
    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError>;

    /// A session, by id.
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Every session of `user` still on record (revoked and expired ones included, until
    /// the janitor purges them).
    async fn sessions_of(&self, user: &str) -> Result<Vec<SessionRecord>, StoreError>;

    /// Marks `key` (a login challenge's nonce) used until `expires_at`: `true` the first
    /// time, `false` ever after (on every instance sharing the store).
    async fn use_once(&self, key: &str, expires_at: i64) -> Result<bool, StoreError>;

    /// In one write transaction: reads the token `hash` and its session, asks `decide`, applies
    /// the [`RotateStep`]. Returns `false` (without calling `decide`) when the token is unknown.
    /// `decide` may be called more than once by a store that retries on conflicts; its last
    /// answer is the one applied.
    async fn rotate(
        &self,
        hash: &TokenHash,
        decide: &mut (dyn for<'v> FnMut(RotateView<'v>) -> RotateStep + Send),
    ) -> Result<bool, StoreError>;

    /// Marks the selected sessions revoked at `at` (sessions already revoked keep their time
    /// and reason) and returns those it revoked, in one transaction.
    async fn revoke_sessions(
        &self,
        which: SessionSelector<'_>,
        at: i64,
        reason: &str,
    ) -> Result<Vec<SessionInfo>, StoreError>;

    /// Adds a revocation entry; an entry for the same kind and value is merged (the later
    /// cutoff and the later expiry win, so an entry never weakens).
    async fn record_revocation(&self, revocation: &Revocation) -> Result<(), StoreError>;

    /// Every stored revocation entry, expired or not.
    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError>;

    /// Removes at most `batch` records, in one transaction: tokens with
    /// `expires_at + tombstone < now`, then sessions with `end + tombstone < now` (see
    /// [`SessionRecord::end`]) with their index entries, then revocation entries with
    /// `expires_at < now`.
    async fn purge(&self, now: i64, tombstone: i64, batch: usize) -> Result<PurgeReport, StoreError>;

    /// Whether the store answers a read now (readiness).
    async fn check(&self) -> Result<(), StoreError>;
}

/// Decodes a stored JSON record; the error names where, never what (a record may hold a hash).
fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    // The serde_json message may quote the record; report only where and what kind of error.
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        reason: format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

fn encode<T: Serialize>(table: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        table,
        reason: format!("cannot encode: {:?}", e.classify()),
    })
}

/// Refuses a new session whose first token is not its own.
fn check_new_session(
    session: &SessionRecord,
    first: &TokenHash,
    token: &TokenRecord,
) -> Result<(), StoreError> {
    if token.session != session.info.id || session.current != *first {
        return Err(StoreError::Conflict(
            "the first token does not belong to the session",
        ));
    }
    Ok(())
}

/// The rules of a [`RotateStep::Rotate`] every backend enforces: the presented token
/// (`hash`, `token`) is its session's unused current one, the session is not revoked, and
/// `record` is the next generation of the same session under a new hash. Returns the session.
fn check_rotation<'s>(
    hash: &TokenHash,
    token: &TokenRecord,
    session: Option<&'s SessionRecord>,
    successor: &TokenHash,
    record: &TokenRecord,
) -> Result<&'s SessionRecord, StoreError> {
    let Some(session) = session else {
        return Err(StoreError::Conflict("rotation of a token without a session"));
    };
    if token.used_at.is_some() || session.current != *hash || session.info.revoked_at.is_some() {
        return Err(StoreError::Conflict("rotation of a token that is not current"));
    }
    if record.session != token.session
        || Some(record.generation) != token.generation.checked_add(1)
        || record.used_at.is_some()
        || record.successor.is_some()
        || successor == hash
    {
        return Err(StoreError::Conflict("rotation to an invalid successor"));
    }
    Ok(session)
}

/// The session after a rotation to `successor` (`record`).
fn rotated(session: &SessionRecord, successor: TokenHash, record: &TokenRecord) -> SessionRecord {
    let mut new = session.clone();
    new.current = successor;
    new.generation = record.generation;
    new.current_issued_at = record.issued_at;
    new.current_expires_at = record.expires_at;
    new
}

/// The session marked revoked at `at` for `reason`.
fn revoked(session: &SessionRecord, at: i64, reason: &str) -> SessionRecord {
    let mut new = session.clone();
    new.info.revoked_at = Some(at);
    new.info.revoke_reason = Some(reason.to_owned());
    new
}

/// Whether a session is one [`SessionSelector`] picks (the index found its candidates).
fn selects(which: SessionSelector<'_>, s: &SessionInfo) -> bool {
    match which {
        SessionSelector::Id(id) => s.id == id,
        SessionSelector::User(user) => s.user == user,
        SessionSelector::Device(device) => s.device.as_deref() == Some(device),
        SessionSelector::UserDevice(user, device) => s.user == user && s.device.as_deref() == Some(device),
        SessionSelector::UserApplication(user, client) => {
            s.user == user && s.client_id.as_deref() == Some(client)
        }
        SessionSelector::CreatedAtOrBefore(cutoff) => s.created_at <= cutoff,
    }
}
