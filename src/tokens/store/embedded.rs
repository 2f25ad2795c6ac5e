//! [`RedbStore`]: the token store in one redb file, for one process.
//!
//! Every change that touches more than one record (a session with its first token, a
//! rotation, a family revocation, a janitor step) is one redb write transaction: a process
//! killed at any moment leaves either the old state or the new one, never a lost token and
//! never two valid successors.
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

use redb::{
    Database, MultimapTable, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    Table, TableDefinition, WriteTransaction,
};

use super::{
    PurgeReport, RotateStep, RotateView, SessionInfo, SessionRecord, SessionSelector, StoreError, TokenHash,
    TokenRecord, TokenStore, check_new_session, check_rotation, decode, encode, revoked, rotated,
};
use crate::tokens::revocation::Revocation;

const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("refresh_tokens");
const TOKEN_EXPIRY: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("refresh_token_expiry");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const SESSIONS_BY_USER: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("sessions_by_user");
const SESSIONS_BY_DEVICE: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("sessions_by_device");
const SESSION_END: TableDefinition<(i64, &str), ()> = TableDefinition::new("session_end");
const REVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revocations");
/// Keys used once (login challenges) → until when they are remembered.
const USED_ONCE: TableDefinition<&str, i64> = TableDefinition::new("used_once");

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

/// A [`TokenStore`] in a redb file.
pub struct RedbStore {
    db: std::sync::Arc<Database>,
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
        let db = std::sync::Arc::new(Database::create(path)?);
        let store = Self {
            db,
            path: path.to_path_buf(),
        };
        let w = store.db.begin_write()?;
        Tables::open(&w)?;
        w.commit()?;
        Ok(store)
    }

    /// The database, for the other tables kept in the same file (rooms).
    #[must_use]
    pub fn database(&self) -> std::sync::Arc<Database> {
        self.db.clone()
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

/// The tables of one write transaction.
struct Tables<'t> {
    tokens: Table<'t, &'static [u8], &'static [u8]>,
    token_expiry: Table<'t, (i64, &'static [u8]), ()>,
    sessions: Table<'t, &'static str, &'static [u8]>,
    by_user: MultimapTable<'t, &'static str, &'static str>,
    by_device: MultimapTable<'t, &'static str, &'static str>,
    session_end: Table<'t, (i64, &'static str), ()>,
    revocations: Table<'t, &'static str, &'static [u8]>,
    used_once: Table<'t, &'static str, i64>,
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
            used_once: w.open_table(USED_ONCE)?,
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
        let new = revoked(old, at, reason);
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
        check_new_session(session, first, token)?;
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

    async fn sessions_of(&self, user: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let r = self.db.begin_read()?;
        let by_user = r.open_multimap_table(SESSIONS_BY_USER)?;
        let sessions = r.open_table(SESSIONS)?;
        let mut out = Vec::new();
        for id in by_user.get(user)? {
            if let Some(v) = sessions.get(id?.value())? {
                out.push(decode("sessions", v.value())?);
            }
        }
        Ok(out)
    }

    async fn use_once(&self, key: &str, expires_at: i64) -> Result<bool, StoreError> {
        self.write(|t| {
            if t.used_once.get(key)?.is_some() {
                return Ok(false);
            }
            t.used_once.insert(key, expires_at)?;
            t.changed = true;
            Ok(true)
        })
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
                    let old = check_rotation(hash, &token, session.as_ref(), &successor, &record)?.clone();
                    if t.token(&successor)?.is_some() {
                        return Err(StoreError::Conflict("rotation to an invalid successor"));
                    }
                    let mut used = token;
                    used.used_at = Some(at);
                    used.successor = Some(successor);
                    t.put_token(hash, &used)?;
                    t.put_token(&successor, &record)?;
                    t.put_session(Some(&old), &rotated(&old, successor, &record))?;
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
                SessionSelector::UserApplication(user, client) => {
                    for id in multimap_values(&t.by_user, user)? {
                        targets.extend(
                            t.session(&id)?
                                .filter(|s| s.info.client_id.as_deref() == Some(client)),
                        );
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
            let merged = match t.revocations.get(key.as_str())? {
                Some(v) => revocation.merged(&decode("revocations", v.value())?),
                None => revocation.clone(),
            };
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
            let room = room - revocations.len();
            let mut used: Vec<String> = Vec::new();
            for entry in t.used_once.iter()? {
                if used.len() >= room {
                    break;
                }
                let (k, v) = entry?;
                if v.value() < now {
                    used.push(k.value().to_owned());
                }
            }
            for key in &used {
                t.used_once.remove(key.as_str())?;
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
                asserted: None,
                address: None,
                never_expires: false,
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
