//! Storage of sessions, hashed refresh tokens and revocation entries behind [`TokenStore`].
//!
//! [`RedbStore`] keeps them in one redb file. Every change that touches more than one record (a
//! session with its first token, a rotation, a family revocation, a janitor step) is one redb
//! write transaction: a process killed at any moment leaves either the old state or the new one,
//! never a lost token and never two valid successors. Refresh tokens are stored only as their
//! SHA-256 ([`TokenHash`]); nothing here can reproduce a token.
//!
//! # Layout (redb tables; values are JSON)
//! - `refresh_tokens`: SHA-256 (32 bytes) → [`TokenRecord`].
//! - `refresh_token_expiry`: (expires_at, SHA-256) → `()`, the janitor's index.
//! - `sessions`: session id → [`SessionRecord`].
//! - `sessions_by_user`, `sessions_by_device` (multimap): user / device id → session ids.
//! - `session_end`: ([`SessionRecord::end`], session id) → `()`, the janitor's index.
//! - `revocations`: `"<kind>:<value>"` → [`Revocation`].

use std::fmt;
use std::path::{Path, PathBuf};

use super::revocation::Revocation;
use redb::{
    Database, MultimapTable, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    Table, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("refresh_tokens");
const TOKEN_EXPIRY: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("refresh_token_expiry");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const SESSIONS_BY_USER: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("sessions_by_user");
const SESSIONS_BY_DEVICE: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("sessions_by_device");
const SESSION_END: TableDefinition<(i64, &str), ()> = TableDefinition::new("session_end");
const REVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revocations");

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
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

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

/// A [`TokenStore`] in a redb file.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the store at `path`, creating the file and its tables if needed.
    ///
    /// # Errors
    /// The file cannot be created or opened (e.g. another process holds it).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        let store = Self {
            db,
            path: path.to_path_buf(),
        };
        let w = store.db.begin_write()?;
        Tables::open(&w)?;
        w.commit()?;
        Ok(store)
    }

    /// The file the store lives in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction; commits if `f` succeeded and changed something,
    /// aborts otherwise.
    fn write<T>(&self, f: impl FnOnce(&mut Tables<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let w = self.db.begin_write()?;
        let (out, changed) = {
            let mut tables = Tables::open(&w)?;
            let out = f(&mut tables)?;
            (out, tables.changed)
        };
        if changed {
            w.commit()?;
        } else {
            w.abort()?;
        }
        Ok(out)
    }
}

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

/// The tables of one write transaction.
struct Tables<'t> {
    tokens: Table<'t, &'static [u8], &'static [u8]>,
    token_expiry: Table<'t, (i64, &'static [u8]), ()>,
    sessions: Table<'t, &'static str, &'static [u8]>,
    by_user: MultimapTable<'t, &'static str, &'static str>,
    by_device: MultimapTable<'t, &'static str, &'static str>,
    session_end: Table<'t, (i64, &'static str), ()>,
    revocations: Table<'t, &'static str, &'static [u8]>,
    changed: bool,
}

impl<'t> Tables<'t> {
    fn open(w: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            tokens: w.open_table(TOKENS)?,
            token_expiry: w.open_table(TOKEN_EXPIRY)?,
            sessions: w.open_table(SESSIONS)?,
            by_user: w.open_multimap_table(SESSIONS_BY_USER)?,
            by_device: w.open_multimap_table(SESSIONS_BY_DEVICE)?,
            session_end: w.open_table(SESSION_END)?,
            revocations: w.open_table(REVOCATIONS)?,
            changed: false,
        })
    }

    fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        match self.tokens.get(hash.as_bytes().as_slice())? {
            Some(v) => decode("refresh_tokens", v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        match self.sessions.get(id)? {
            Some(v) => decode("sessions", v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn put_token(&mut self, hash: &TokenHash, record: &TokenRecord) -> Result<(), StoreError> {
        let bytes = encode("refresh_tokens", record)?;
        let key = hash.as_bytes().as_slice();
        self.tokens.insert(key, bytes.as_slice())?;
        self.token_expiry.insert((record.expires_at, key), ())?;
        self.changed = true;
        Ok(())
    }

    /// Writes `new`, keeping the indexes in step with `old` (the record it replaces, if any).
    fn put_session(&mut self, old: Option<&SessionRecord>, new: &SessionRecord) -> Result<(), StoreError> {
        let id = new.info.id.as_str();
        let bytes = encode("sessions", new)?;
        self.sessions.insert(id, bytes.as_slice())?;
        if let Some(old) = old {
            if old.end() != new.end() {
                self.session_end.remove((old.end(), id))?;
            }
        } else {
            self.by_user.insert(new.info.user.as_str(), id)?;
            if let Some(device) = &new.info.device {
                self.by_device.insert(device.as_str(), id)?;
            }
        }
        self.session_end.insert((new.end(), id), ())?;
        self.changed = true;
        Ok(())
    }

    fn revoke(&mut self, old: &SessionRecord, at: i64, reason: &str) -> Result<SessionInfo, StoreError> {
        let mut new = old.clone();
        new.info.revoked_at = Some(at);
        new.info.revoke_reason = Some(reason.to_owned());
        self.put_session(Some(old), &new)?;
        Ok(new.info)
    }

    /// Removes the session of the index entry (`end`, `id`) with its index entries; a stale
    /// index entry (no record, or a record with another end) goes alone.
    fn remove_session(&mut self, end: i64, id: &str) -> Result<bool, StoreError> {
        self.session_end.remove((end, id))?;
        self.changed = true;
        let Some(record) = self.session(id)? else {
            return Ok(false);
        };
        if record.end() != end {
            return Ok(false);
        }
        self.sessions.remove(id)?;
        self.by_user.remove(record.info.user.as_str(), id)?;
        if let Some(device) = &record.info.device {
            self.by_device.remove(device.as_str(), id)?;
        }
        Ok(true)
    }
}

fn multimap_values(
    table: &MultimapTable<'_, &'static str, &'static str>,
    key: &str,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for v in table.get(key)? {
        out.push(v?.value().to_owned());
    }
    Ok(out)
}

#[async_trait::async_trait]
impl TokenStore for RedbStore {
    async fn create_session(
        &self,
        session: &SessionRecord,
        first: &TokenHash,
        token: &TokenRecord,
    ) -> Result<(), StoreError> {
        if token.session != session.info.id || session.current != *first {
            return Err(StoreError::Conflict(
                "the first token does not belong to the session",
            ));
        }
        self.write(|t| {
            if t.session(&session.info.id)?.is_some() {
                return Err(StoreError::Conflict("session id already exists"));
            }
            if t.token(first)?.is_some() {
                return Err(StoreError::Conflict("token already exists"));
            }
            t.put_token(first, token)?;
            t.put_session(None, session)
        })
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let r = self.db.begin_read()?;
        let table = r.open_table(TOKENS)?;
        match table.get(hash.as_bytes().as_slice())? {
            Some(v) => decode("refresh_tokens", v.value()).map(Some),
            None => Ok(None),
        }
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let r = self.db.begin_read()?;
        let table = r.open_table(SESSIONS)?;
        match table.get(id)? {
            Some(v) => decode("sessions", v.value()).map(Some),
            None => Ok(None),
        }
    }

    async fn rotate(
        &self,
        hash: &TokenHash,
        decide: &mut (dyn for<'v> FnMut(RotateView<'v>) -> RotateStep + Send),
    ) -> Result<bool, StoreError> {
        self.write(|t| {
            let Some(token) = t.token(hash)? else {
                return Ok(false);
            };
            let session = t.session(&token.session)?;
            let step = decide(RotateView {
                token: &token,
                session: session.as_ref(),
            });
            match step {
                RotateStep::Keep => {}
                RotateStep::Rotate {
                    at,
                    successor,
                    record,
                } => {
                    let Some(old) = session else {
                        return Err(StoreError::Conflict("rotation of a token without a session"));
                    };
                    if token.used_at.is_some() || old.current != *hash || old.info.revoked_at.is_some() {
                        return Err(StoreError::Conflict("rotation of a token that is not current"));
                    }
                    if record.session != token.session
                        || Some(record.generation) != token.generation.checked_add(1)
                        || record.used_at.is_some()
                        || record.successor.is_some()
                        || successor == *hash
                        || t.token(&successor)?.is_some()
                    {
                        return Err(StoreError::Conflict("rotation to an invalid successor"));
                    }
                    let mut used = token;
                    used.used_at = Some(at);
                    used.successor = Some(successor);
                    t.put_token(hash, &used)?;
                    t.put_token(&successor, &record)?;
                    let mut new = old.clone();
                    new.current = successor;
                    new.generation = record.generation;
                    new.current_issued_at = record.issued_at;
                    new.current_expires_at = record.expires_at;
                    t.put_session(Some(&old), &new)?;
                }
                RotateStep::RevokeFamily { at, reason } => {
                    if let Some(old) = session
                        && old.info.revoked_at.is_none()
                    {
                        t.revoke(&old, at, &reason)?;
                    }
                }
            }
            Ok(true)
        })
    }

    async fn revoke_sessions(
        &self,
        which: SessionSelector<'_>,
        at: i64,
        reason: &str,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        self.write(|t| {
            let mut targets: Vec<SessionRecord> = Vec::new();
            match which {
                SessionSelector::Id(id) => targets.extend(t.session(id)?),
                SessionSelector::User(user) => {
                    for id in multimap_values(&t.by_user, user)? {
                        targets.extend(t.session(&id)?);
                    }
                }
                SessionSelector::Device(device) => {
                    for id in multimap_values(&t.by_device, device)? {
                        targets.extend(t.session(&id)?);
                    }
                }
                SessionSelector::UserDevice(user, device) => {
                    for id in multimap_values(&t.by_device, device)? {
                        targets.extend(t.session(&id)?.filter(|s| s.info.user == user));
                    }
                }
                SessionSelector::CreatedAtOrBefore(cutoff) => {
                    for entry in t.sessions.iter()? {
                        let (_, v) = entry?;
                        let record: SessionRecord = decode("sessions", v.value())?;
                        if record.info.created_at <= cutoff {
                            targets.push(record);
                        }
                    }
                }
            }
            let mut revoked = Vec::new();
            for old in targets.iter().filter(|s| s.info.revoked_at.is_none()) {
                revoked.push(t.revoke(old, at, reason)?);
            }
            Ok(revoked)
        })
    }

    async fn record_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let key = revocation.key();
        self.write(|t| {
            let mut merged = revocation.clone();
            if let Some(v) = t.revocations.get(key.as_str())? {
                let old: Revocation = decode("revocations", v.value())?;
                merged.cutoff = merged.cutoff.max(old.cutoff);
                merged.expires_at = merged.expires_at.max(old.expires_at);
            }
            let bytes = encode("revocations", &merged)?;
            t.revocations.insert(key.as_str(), bytes.as_slice())?;
            t.changed = true;
            Ok(())
        })
    }

    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let r = self.db.begin_read()?;
        let table = r.open_table(REVOCATIONS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            out.push(decode("revocations", v.value())?);
        }
        Ok(out)
    }

    async fn check(&self) -> Result<(), StoreError> {
        let r = self.db.begin_read()?;
        r.open_table(SESSIONS)?;
        Ok(())
    }

    async fn purge(&self, now: i64, tombstone: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        // Records whose end is before `limit` have `end + tombstone < now`.
        let limit = now.saturating_sub(tombstone.max(0));
        const NO_BYTES: &[u8] = &[];
        self.write(|t| {
            let mut report = PurgeReport::default();

            let mut tokens: Vec<(i64, Vec<u8>)> = Vec::new();
            for entry in t.token_expiry.range(..(limit, NO_BYTES))?.take(batch) {
                let (k, _) = entry?;
                let (expires_at, hash) = k.value();
                tokens.push((expires_at, hash.to_vec()));
            }
            for (expires_at, hash) in &tokens {
                t.token_expiry.remove((*expires_at, hash.as_slice()))?;
                if t.tokens.remove(hash.as_slice())?.is_some() {
                    report.refresh_tokens += 1;
                }
                t.changed = true;
            }

            let mut sessions: Vec<(i64, String)> = Vec::new();
            let room = batch - tokens.len();
            for entry in t.session_end.range(..(limit, ""))?.take(room) {
                let (k, _) = entry?;
                let (end, id) = k.value();
                sessions.push((end, id.to_owned()));
            }
            for (end, id) in &sessions {
                if t.remove_session(*end, id)? {
                    report.sessions += 1;
                }
            }

            let room = room - sessions.len();
            let mut revocations: Vec<String> = Vec::new();
            if room > 0 {
                for entry in t.revocations.iter()? {
                    let (k, v) = entry?;
                    let r: Revocation = decode("revocations", v.value())?;
                    if r.expires_at < now {
                        revocations.push(k.value().to_owned());
                        if revocations.len() == room {
                            break;
                        }
                    }
                }
            }
            for key in &revocations {
                t.revocations.remove(key.as_str())?;
                report.revocations += 1;
                t.changed = true;
            }
            Ok(report)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::revocation::RevocationKind;

    fn session(id: &str, user: &str, device: Option<&str>, hash: TokenHash, end: i64) -> SessionRecord {
        SessionRecord {
            info: SessionInfo {
                id: id.into(),
                user: user.into(),
                device: device.map(Into::into),
                client_id: None,
                created_at: 0,
                expires_at: 1000,
                revoked_at: None,
                revoke_reason: None,
            },
            current: hash,
            generation: 1,
            current_issued_at: 0,
            current_expires_at: end,
        }
    }

    fn token(session: &str, expires_at: i64) -> TokenRecord {
        TokenRecord {
            session: session.into(),
            generation: 1,
            issued_at: 0,
            expires_at,
            used_at: None,
            successor: None,
        }
    }

    fn store() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("tokens.redb")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn hash_round_trips_and_debug_is_redacted() {
        let h = TokenHash::of("rt1_secret");
        let hex = data_encoding::HEXLOWER.encode(h.as_bytes());
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<TokenHash>(&json).unwrap(), h);
        assert!(serde_json::from_str::<TokenHash>("\"00\"").is_err());
        let rec = TokenRecord {
            successor: Some(h),
            ..token("s", 1)
        };
        for text in [
            format!("{h:?}"),
            format!("{rec:?}"),
            format!("{:?}", session("s", "u", None, h, 1)),
        ] {
            assert!(!text.contains(&hex[..16]), "{text}");
        }
    }

    #[tokio::test]
    async fn create_refuses_duplicates_and_mismatches() {
        let (_dir, s) = store();
        let h = TokenHash::of("a");
        s.create_session(&session("s1", "u", None, h, 10), &h, &token("s1", 10))
            .await
            .unwrap();
        let again = s
            .create_session(
                &session("s1", "u", None, TokenHash::of("b"), 10),
                &TokenHash::of("b"),
                &token("s1", 10),
            )
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))));
        let same_token = s
            .create_session(&session("s2", "u", None, h, 10), &h, &token("s2", 10))
            .await;
        assert!(matches!(same_token, Err(StoreError::Conflict(_))));
        let wrong = s
            .create_session(&session("s3", "u", None, h, 10), &h, &token("s1", 10))
            .await;
        assert!(matches!(wrong, Err(StoreError::Conflict(_))));
        assert!(s.session("s2").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rotate_refuses_a_second_successor() {
        let (_dir, s) = store();
        let h = TokenHash::of("a");
        s.create_session(&session("s1", "u", None, h, 10), &h, &token("s1", 10))
            .await
            .unwrap();
        let step = |name: &str| RotateStep::Rotate {
            at: 1,
            successor: TokenHash::of(name),
            record: TokenRecord {
                generation: 2,
                ..token("s1", 11)
            },
        };
        assert!(s.rotate(&h, &mut |_| step("b")).await.unwrap());
        let second = s.rotate(&h, &mut |_| step("c")).await;
        assert!(matches!(second, Err(StoreError::Conflict(_))));
        assert!(s.token(&TokenHash::of("c")).await.unwrap().is_none());
        let rec = s.session("s1").await.unwrap().unwrap();
        assert_eq!(rec.current, TokenHash::of("b"));
        assert_eq!(rec.end(), 11);
        assert!(
            !s.rotate(&TokenHash::of("zzz"), &mut |_| unreachable!())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn indexes_follow_sessions_and_purge_removes_them() {
        let (_dir, s) = store();
        for (id, user, device, end) in [
            ("s1", "bob", Some("d1"), 10),
            ("s2", "bob", None, 20),
            ("s3", "eve", Some("d1"), 30),
        ] {
            let h = TokenHash::of(id);
            s.create_session(&session(id, user, device, h, end), &h, &token(id, end))
                .await
                .unwrap();
        }
        let ids = |v: Vec<SessionInfo>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s
                .revoke_sessions(SessionSelector::Device("d1"), 5, "x")
                .await
                .unwrap()),
            ["s1", "s3"]
        );
        assert_eq!(
            ids(s
                .revoke_sessions(SessionSelector::User("bob"), 6, "y")
                .await
                .unwrap()),
            ["s2"]
        );
        // Already revoked sessions keep their first revocation.
        assert_eq!(
            s.session("s1")
                .await
                .unwrap()
                .unwrap()
                .info
                .revoke_reason
                .as_deref(),
            Some("x")
        );

        // tombstone 5: s1 (end 10) goes after 15, its token too.
        let r = s.purge(16, 5, 100).await.unwrap();
        assert_eq!(
            r,
            PurgeReport {
                refresh_tokens: 1,
                sessions: 1,
                revocations: 0
            }
        );
        assert!(s.session("s1").await.unwrap().is_none());
        assert!(s.session("s2").await.unwrap().is_some());
        // The device index no longer names s1.
        assert_eq!(
            ids(s
                .revoke_sessions(SessionSelector::Device("d1"), 7, "z")
                .await
                .unwrap()),
            Vec::<String>::new()
        );
        let r = s.purge(100, 5, 3).await.unwrap();
        assert_eq!(r.total(), 3);
        let r = s.purge(100, 5, 3).await.unwrap();
        assert_eq!(r.total(), 1);
        assert_eq!(s.purge(100, 5, 3).await.unwrap().total(), 0);
    }

    #[tokio::test]
    async fn revocations_merge_and_expire() {
        let (_dir, s) = store();
        let r = |cutoff, expires_at| Revocation {
            kind: RevocationKind::User,
            value: "bob".into(),
            cutoff,
            expires_at,
        };
        s.record_revocation(&r(10, 20)).await.unwrap();
        s.record_revocation(&r(5, 30)).await.unwrap();
        assert_eq!(s.revocations().await.unwrap(), [r(10, 30)]);
        assert_eq!(s.purge(30, 0, 10).await.unwrap().revocations, 0);
        assert_eq!(s.purge(31, 0, 10).await.unwrap().revocations, 1);
        assert!(s.revocations().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn debug_shows_the_path_only() {
        let (_dir, s) = store();
        assert!(format!("{s:?}").starts_with("RedbStore { path: "));
    }
}
