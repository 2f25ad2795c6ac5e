//! [`KvStore`]: the token store in JetStream key-value buckets, shared by every instance.
//!
//! # Layout (values are JSON; `<p>` is `store.bucket_prefix`)
//! - `<p>_sessions`: session id → [`SessionRecord`], the one record a change is decided on.
//!   A rotation or a revocation is a compare-and-set on its revision: of two instances
//!   rotating one token at once exactly one succeeds, and the other decides again on what it
//!   then finds (the identical successor inside the grace window, a reuse after it).
//! - `<p>_tokens`: token hash (hex) → [`TokenRecord`], written once when the token is
//!   issued (before the session points at it), then marked used after its rotation. The
//!   session stays the truth: a token behind its session's generation is used even if the
//!   mark was never written.
//! - `<p>_index`: `u.<user>.<session>`, `d.<device>.<session>` → empty, written before the
//!   session, so no session is ever out of reach of a revocation by user or device.
//! - `<p>_revocations`: `<kind>.<value>` → [`Revocation`], merged by compare-and-set;
//!   every instance watches this bucket.
//!
//! Records expire with the buckets' `max_age` (sessions, tokens and index: the absolute
//! session lifetime plus the tombstone, counted from the last write, so never before the
//! embedded store would purge them; revocations: the longest token lifetime), so the janitor
//! only removes expired revocation entries here. Changes are retried a bounded number of
//! times on conflicts ([`StoreError::Contended`] after that); JetStream out of reach is
//! [`StoreError::Unavailable`]. No change is written half: each step leaves records that
//! are either unreachable (a successor whose rotation lost) or complete.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use super::{
    PurgeReport, RotateStep, RotateView, SessionInfo, SessionRecord, SessionSelector, StoreError, TokenHash,
    TokenRecord, TokenStore, check_new_session, check_rotation, decode, encode, revoked, rotated, selects,
};
use crate::kv::{BucketError, BucketSpec, Latest, key_part};
use crate::tokens::revocation::Revocation;

/// Attempts of one change against concurrent writers of the same record.
const ATTEMPTS: usize = 16;
/// How long used login-challenge nonces are remembered (a challenge lives 60 s).
const USED_ONCE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Where and how the buckets live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvSettings {
    /// Bucket names start with this and `_`.
    pub prefix: String,
    /// JetStream replicas of every bucket (1 on a single server, 3 on a cluster).
    pub replicas: usize,
    /// How long sessions, tokens and index entries are kept after their last write.
    pub records_max_age: Duration,
    /// How long revocation entries are kept after their last write.
    pub revocations_max_age: Duration,
}

impl KvSettings {
    /// The full name of the bucket `name`.
    #[must_use]
    pub fn bucket(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }

    fn spec(&self, name: &str, description: &'static str, max_age: Duration) -> BucketSpec {
        BucketSpec {
            name: self.bucket(name),
            description,
            history: 1,
            max_age,
            replicas: self.replicas,
        }
    }

    /// The five buckets of the token store.
    fn specs(&self) -> [BucketSpec; 5] {
        let records = self.records_max_age;
        [
            self.spec("sessions", "nats-callout sessions", records),
            self.spec("tokens", "nats-callout refresh tokens (hashes)", records),
            self.spec("index", "nats-callout sessions by user and device", records),
            self.spec(
                "revocations",
                "nats-callout revocations",
                self.revocations_max_age,
            ),
            // Login challenges live 60 s; their nonces are remembered well past that.
            self.spec("nonces", "nats-callout used login challenges", USED_ONCE_MAX_AGE),
        ]
    }
}

/// The opened buckets.
struct Buckets {
    sessions: kv::Store,
    tokens: kv::Store,
    index: kv::Store,
    revocations: kv::Store,
    used_once: kv::Store,
}

/// A [`TokenStore`] in JetStream KV. Buckets are created (or checked) on first use, so the
/// service starts while NATS is still out of reach.
pub struct KvStore {
    js: async_nats::jetstream::Context,
    settings: KvSettings,
    buckets: OnceCell<Buckets>,
}

impl fmt::Debug for KvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl From<BucketError> for StoreError {
    fn from(e: BucketError) -> Self {
        match e {
            BucketError::Unavailable(m) => StoreError::Unavailable(m),
            m @ BucketError::Mismatch { .. } => StoreError::Misconfigured(m.to_string()),
        }
    }
}

fn unavailable(what: &str, e: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

/// The current value of `key` with its revision (as the stream's leader has it); `None`
/// when absent or deleted.
async fn read<T: DeserializeOwned>(
    bucket: &kv::Store,
    table: &'static str,
    key: &str,
) -> Result<Option<(T, u64)>, StoreError> {
    match crate::kv::latest(bucket, key)
        .await
        .map_err(|e| unavailable(table, e))?
    {
        Latest::Value(bytes, revision) => Ok(Some((decode(table, &bytes)?, revision))),
        Latest::Absent | Latest::Deleted(_) => Ok(None),
    }
}

/// What a compare-and-set came to.
enum Cas {
    Done,
    /// Another writer came first: read again.
    Lost,
}

async fn update(
    bucket: &kv::Store,
    table: &'static str,
    key: &str,
    value: Vec<u8>,
    revision: u64,
) -> Result<Cas, StoreError> {
    match bucket.update(key, value.into(), revision).await {
        Ok(_) => Ok(Cas::Done),
        Err(e) if crate::kv::lost_race(&e) => Ok(Cas::Lost),
        Err(e) => Err(unavailable(table, e)),
    }
}

/// Creates `key`; "already there" is `Ok(false)`.
async fn create(
    bucket: &kv::Store,
    table: &'static str,
    key: &str,
    value: Vec<u8>,
) -> Result<bool, StoreError> {
    crate::kv::create(bucket, key, value.into())
        .await
        .map(|rev| rev.is_some())
        .map_err(|e| unavailable(table, e))
}

/// A stored token as its session says it stands: the session's current token takes its
/// times from the session; one behind the session's generation is used (by the session's
/// record when it is the immediate predecessor, else at the latest when the session's
/// current token was issued, if its mark was lost).
fn as_of(hash: &TokenHash, mut token: TokenRecord, session: Option<&SessionRecord>) -> TokenRecord {
    let Some(s) = session else { return token };
    if s.current == *hash {
        token.used_at = None;
        token.successor = None;
        token.issued_at = s.current_issued_at;
        token.expires_at = s.current_expires_at;
    } else if token.used_at.is_none() && token.generation < s.generation {
        token.used_at = Some(s.current_issued_at);
        if token.generation.checked_add(1) == Some(s.generation) {
            token.successor = Some(s.current);
        }
    }
    token
}

fn index_key(kind: char, name: &str, session: &str) -> String {
    format!("{kind}.{}.{session}", key_part(name))
}

fn revocation_key(r: &Revocation) -> String {
    format!("{}.{}", r.kind.as_str(), key_part(&r.value))
}

impl KvStore {
    /// A store over the JetStream of `client` (nothing is asked of the server yet).
    #[must_use]
    pub fn new(client: async_nats::Client, settings: KvSettings) -> Self {
        KvStore {
            js: crate::kv::context(client),
            settings,
            buckets: OnceCell::new(),
        }
    }

    /// The settings in force.
    #[must_use]
    pub fn settings(&self) -> &KvSettings {
        &self.settings
    }

    async fn open(&self) -> Result<&Buckets, StoreError> {
        self.buckets
            .get_or_try_init(|| async {
                let [s, t, i, r, u] = self.settings.specs();
                let ensure = |spec| async move { crate::kv::ensure(&self.js, &spec).await };
                Ok::<_, StoreError>(Buckets {
                    sessions: ensure(s).await?,
                    tokens: ensure(t).await?,
                    index: ensure(i).await?,
                    revocations: ensure(r).await?,
                    used_once: ensure(u).await?,
                })
            })
            .await
    }

    /// The revocations bucket (every instance watches it).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Misconfigured`].
    pub async fn revocation_bucket(&self) -> Result<kv::Store, StoreError> {
        Ok(self.open().await?.revocations.clone())
    }

    /// Session ids under an index prefix (`u` or `d`) for `name`.
    async fn indexed(&self, b: &Buckets, kind: char, name: &str) -> Result<Vec<String>, StoreError> {
        let filter = format!("{}{kind}.{}.*", b.index.prefix, key_part(name));
        let subjects = b
            .index
            .stream
            .info_with_subjects(&filter)
            .await
            .map_err(|e| unavailable("index", e))?;
        let subjects: Vec<(String, usize)> = subjects
            .try_collect()
            .await
            .map_err(|e| unavailable("index", e))?;
        Ok(subjects
            .into_iter()
            .filter_map(|(s, _)| s.rsplit('.').next().map(str::to_owned))
            .collect())
    }

    /// Revokes one session unless it is already revoked or not selected.
    async fn revoke_one(
        &self,
        b: &Buckets,
        id: &str,
        which: SessionSelector<'_>,
        at: i64,
        reason: &str,
    ) -> Result<Option<SessionInfo>, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some((s, rev)) = read::<SessionRecord>(&b.sessions, "sessions", id).await? else {
                return Ok(None);
            };
            if s.info.revoked_at.is_some() || !selects(which, &s.info) {
                return Ok(None);
            }
            let new = revoked(&s, at, reason);
            if let Cas::Done = update(&b.sessions, "sessions", id, encode("sessions", &new)?, rev).await? {
                return Ok(Some(new.info));
            }
        }
        Err(StoreError::Contended)
    }

    /// Writes the record of a successor unless a concurrent rotation of the same token
    /// already did (successors are derived, so it is the same token).
    async fn put_successor(
        &self,
        b: &Buckets,
        successor: &TokenHash,
        record: &TokenRecord,
    ) -> Result<(), StoreError> {
        let key = successor.to_hex();
        if create(
            &b.tokens,
            "refresh_tokens",
            &key,
            encode("refresh_tokens", record)?,
        )
        .await?
        {
            return Ok(());
        }
        match read::<TokenRecord>(&b.tokens, "refresh_tokens", &key).await? {
            Some((t, _)) if t.session == record.session && t.generation == record.generation => Ok(()),
            _ => Err(StoreError::Conflict("rotation to an invalid successor")),
        }
    }
}

#[async_trait::async_trait]
impl TokenStore for KvStore {
    async fn create_session(
        &self,
        session: &SessionRecord,
        first: &TokenHash,
        token: &TokenRecord,
    ) -> Result<(), StoreError> {
        check_new_session(session, first, token)?;
        let b = self.open().await?;
        let info = &session.info;
        let mut index = vec![index_key('u', &info.user, &info.id)];
        index.extend(info.device.as_deref().map(|d| index_key('d', d, &info.id)));
        for key in index {
            b.index
                .put(key, bytes::Bytes::new())
                .await
                .map_err(|e| unavailable("index", e))?;
        }
        if !create(
            &b.tokens,
            "refresh_tokens",
            &first.to_hex(),
            encode("refresh_tokens", token)?,
        )
        .await?
        {
            return Err(StoreError::Conflict("token already exists"));
        }
        if !create(&b.sessions, "sessions", &info.id, encode("sessions", session)?).await? {
            return Err(StoreError::Conflict("session id already exists"));
        }
        Ok(())
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let b = self.open().await?;
        let Some((token, _)) = read::<TokenRecord>(&b.tokens, "refresh_tokens", &hash.to_hex()).await? else {
            return Ok(None);
        };
        let session = read::<SessionRecord>(&b.sessions, "sessions", &token.session).await?;
        Ok(Some(as_of(hash, token, session.map(|(s, _)| s).as_ref())))
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let b = self.open().await?;
        Ok(read(&b.sessions, "sessions", id).await?.map(|(s, _)| s))
    }

    async fn sessions_of(&self, user: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let b = self.open().await?;
        let mut out = Vec::new();
        for id in self.indexed(b, 'u', user).await? {
            out.extend(read(&b.sessions, "sessions", &id).await?.map(|(s, _)| s));
        }
        Ok(out)
    }

    async fn use_once(&self, key: &str, _expires_at: i64) -> Result<bool, StoreError> {
        let b = self.open().await?;
        // The bucket's max age forgets it; a create that finds the key is a second use.
        create(&b.used_once, "nonces", &key_part(key), Vec::new()).await
    }

    async fn rotate(
        &self,
        hash: &TokenHash,
        decide: &mut (dyn for<'v> FnMut(RotateView<'v>) -> RotateStep + Send),
    ) -> Result<bool, StoreError> {
        let b = self.open().await?;
        let key = hash.to_hex();
        for _ in 0..ATTEMPTS {
            let Some((stored, _)) = read::<TokenRecord>(&b.tokens, "refresh_tokens", &key).await? else {
                return Ok(false);
            };
            let found = read::<SessionRecord>(&b.sessions, "sessions", &stored.session).await?;
            let (session, revision) = match found {
                Some((s, r)) => (Some(s), r),
                None => (None, 0),
            };
            let token = as_of(hash, stored, session.as_ref());
            let step = decide(RotateView {
                token: &token,
                session: session.as_ref(),
            });
            match step {
                RotateStep::Keep => return Ok(true),
                RotateStep::Rotate {
                    at,
                    successor,
                    record,
                } => {
                    let old = check_rotation(hash, &token, session.as_ref(), &successor, &record)?;
                    // The successor first: if the session moves to it, it is complete.
                    self.put_successor(b, &successor, &record).await?;
                    let new = rotated(old, successor, &record);
                    let id = old.info.id.as_str();
                    if let Cas::Lost =
                        update(&b.sessions, "sessions", id, encode("sessions", &new)?, revision).await?
                    {
                        continue;
                    }
                    let mut used = token;
                    used.used_at = Some(at);
                    used.successor = Some(successor);
                    // The session already says so; the mark keeps the exact time for later.
                    if let Err(e) = b.tokens.put(&key, encode("refresh_tokens", &used)?.into()).await {
                        tracing::warn!(session = id, error = %e, "could not mark a rotated refresh token used");
                    }
                    return Ok(true);
                }
                RotateStep::RevokeFamily { at, reason } => {
                    let Some(old) = session.filter(|s| s.info.revoked_at.is_none()) else {
                        return Ok(true);
                    };
                    let new = revoked(&old, at, &reason);
                    let id = old.info.id.as_str();
                    if let Cas::Done =
                        update(&b.sessions, "sessions", id, encode("sessions", &new)?, revision).await?
                    {
                        return Ok(true);
                    }
                }
            }
        }
        Err(StoreError::Contended)
    }

    async fn revoke_sessions(
        &self,
        which: SessionSelector<'_>,
        at: i64,
        reason: &str,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let b = self.open().await?;
        let ids = match which {
            SessionSelector::Id(id) => vec![id.to_owned()],
            SessionSelector::User(user) | SessionSelector::UserApplication(user, _) => {
                self.indexed(b, 'u', user).await?
            }
            SessionSelector::Device(device) | SessionSelector::UserDevice(_, device) => {
                self.indexed(b, 'd', device).await?
            }
            SessionSelector::CreatedAtOrBefore(_) => {
                let keys = b.sessions.keys().await.map_err(|e| unavailable("sessions", e))?;
                keys.try_collect().await.map_err(|e| unavailable("sessions", e))?
            }
        };
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.revoke_one(b, &id, which, at, reason).await?);
        }
        Ok(out)
    }

    async fn record_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let b = self.open().await?;
        let key = revocation_key(revocation);
        for _ in 0..ATTEMPTS {
            match read::<Revocation>(&b.revocations, "revocations", &key).await? {
                None => {
                    let value = encode("revocations", revocation)?;
                    if create(&b.revocations, "revocations", &key, value).await? {
                        return Ok(());
                    }
                }
                Some((stored, rev)) => {
                    let merged = revocation.merged(&stored);
                    if merged == stored {
                        return Ok(());
                    }
                    let value = encode("revocations", &merged)?;
                    if let Cas::Done = update(&b.revocations, "revocations", &key, value, rev).await? {
                        return Ok(());
                    }
                }
            }
        }
        Err(StoreError::Contended)
    }

    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let b = self.open().await?;
        let keys = b
            .revocations
            .keys()
            .await
            .map_err(|e| unavailable("revocations", e))?;
        let keys: Vec<String> = keys
            .try_collect()
            .await
            .map_err(|e| unavailable("revocations", e))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.extend(read(&b.revocations, "revocations", &key).await?.map(|(r, _)| r));
        }
        Ok(out)
    }

    async fn purge(&self, now: i64, _tombstone: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        // Sessions, tokens and index entries expire by the buckets' max_age.
        let b = self.open().await?;
        let mut report = PurgeReport::default();
        let keys = b
            .revocations
            .keys()
            .await
            .map_err(|e| unavailable("revocations", e))?;
        let mut keys = std::pin::pin!(keys);
        while report.revocations < batch {
            let Some(key) = keys.next().await else { break };
            let key = key.map_err(|e| unavailable("revocations", e))?;
            let Some((r, rev)) = read::<Revocation>(&b.revocations, "revocations", &key).await? else {
                continue;
            };
            // Only if unchanged since read: a fresh merge must not be lost.
            if r.expires_at < now && b.revocations.purge_expect_revision(&key, Some(rev)).await.is_ok() {
                report.revocations += 1;
            }
        }
        Ok(report)
    }

    /// Asks each bucket's stream leader whether it can take writes (replicas answer reads
    /// without a quorum; a change needs one).
    async fn check(&self) -> Result<(), StoreError> {
        let b = self.open().await?;
        for (name, bucket) in [
            ("sessions", &b.sessions),
            ("refresh_tokens", &b.tokens),
            ("index", &b.index),
            ("revocations", &b.revocations),
        ] {
            let mut stream = bucket.stream.clone();
            let info = stream.info().await.map_err(|e| unavailable(name, e))?;
            crate::kv::writable(info.cluster.as_ref()).map_err(|e| unavailable(name, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(generation: u64, current: TokenHash) -> SessionRecord {
        SessionRecord {
            info: SessionInfo {
                id: "s".into(),
                user: "u".into(),
                device: None,
                client_id: None,
                created_at: 0,
                expires_at: 1000,
                revoked_at: None,
                revoke_reason: None,
                asserted: None,
                address: None,
                never_expires: false,
            },
            current,
            generation,
            current_issued_at: 50,
            current_expires_at: 150,
        }
    }

    fn token(generation: u64) -> TokenRecord {
        TokenRecord {
            session: "s".into(),
            generation,
            issued_at: 7,
            expires_at: 107,
            used_at: None,
            successor: None,
        }
    }

    #[test]
    fn the_session_says_how_a_token_stands() {
        let (a, b, c) = (TokenHash::of("a"), TokenHash::of("b"), TokenHash::of("c"));
        // The current token takes its times from the session.
        let cur = as_of(&b, token(2), Some(&session(2, b)));
        assert_eq!((cur.used_at, cur.issued_at, cur.expires_at), (None, 50, 150));
        // The immediate predecessor: used when its successor was issued, successor known.
        let prev = as_of(&a, token(1), Some(&session(2, b)));
        assert_eq!((prev.used_at, prev.successor), (Some(50), Some(b)));
        // Older: used; its successor is not the session's current one.
        let old = as_of(&a, token(1), Some(&session(3, c)));
        assert_eq!((old.used_at, old.successor), (Some(50), None));
        // A written mark wins.
        let marked = TokenRecord {
            used_at: Some(9),
            successor: Some(b),
            ..token(1)
        };
        assert_eq!(as_of(&a, marked.clone(), Some(&session(3, c))), marked);
        // No session: as stored. A record ahead of its session (a lost rotation): unused.
        assert_eq!(as_of(&a, token(1), None), token(1));
        assert_eq!(as_of(&c, token(3), Some(&session(2, b))).used_at, None);
    }

    #[test]
    fn keys_are_valid_and_distinct() {
        let r = |kind, value: &str| Revocation {
            kind,
            value: value.into(),
            cutoff: 0,
            expires_at: 0,
        };
        use crate::tokens::revocation::RevocationKind::*;
        let keys = [
            revocation_key(&r(All, "")),
            revocation_key(&r(User, "bob")),
            revocation_key(&r(Device, "bob/phone")),
            revocation_key(&r(Session, "bob")),
        ];
        for k in &keys {
            assert!(!k.ends_with('.') && !k.contains(".."), "{k}");
        }
        assert_eq!(keys.iter().collect::<std::collections::HashSet<_>>().len(), 4);
        assert_eq!(index_key('u', "a.b", "s1").split('.').count(), 3);
    }
}
