//! Refresh tokens: sessions, rotation with reuse detection and a grace replay, revocation, clean-up.
//!
//! A refresh token is `rt1_` + 256 random bits in base64url; only its SHA-256 is stored. Each
//! login starts a session (a token family) with an idle lifetime per token and an absolute cap.
//! Rotating a token marks it used and issues exactly one successor, in one store transaction.
//! A successor is derived from its predecessor with an HMAC (`rt-successor`), so a client that
//! lost the answer may present the predecessor again within the grace window and receive the
//! very same successor. Any other reuse revokes the whole family.
//!
//! Time is always passed in (`now`, unix seconds); nothing here reads the clock. The rules of
//! a rotation are a pure function (`rules`); this module runs them in the store.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod rules;

use super::access::new_id;
use super::revocation::Revocation;
use super::secret::Secret;
pub use super::store::{PurgeReport, SessionInfo, SessionSelector};
use super::store::{SessionRecord, StoreError, TokenHash, TokenRecord, TokenStore};
use crate::permissions::Asserted;
#[cfg(test)]
use rules::TOKEN_LEN;
pub use rules::{NEVER, REFRESH_TOKEN_PREFIX, REUSE_REASON};
use rules::{Next, Outcome, TOKEN_BYTES, decide, encode_token, parse, secs};

/// What a new session is opened with.
#[derive(Debug, Clone, Default)]
pub struct Opening<'a> {
    pub user: &'a str,
    pub device: Option<&'a str>,
    /// The application (`clientId`).
    pub client_id: Option<&'a str>,
    /// What an identity provider (or the guest login) asserted about the user.
    pub asserted: Option<&'a Asserted>,
    /// The client's address, shown in the list of sessions.
    pub address: Option<String>,
    /// Neither idle nor absolute expiry (guests under `tokens.guest_refresh = "never"`); the
    /// tokens still rotate and the session can be revoked.
    pub never_expires: bool,
}

impl<'a> Opening<'a> {
    /// A plain login: a user, perhaps a device and an application, nothing else.
    #[must_use]
    pub fn plain(user: &'a str, device: Option<&'a str>, client_id: Option<&'a str>) -> Self {
        Opening {
            user,
            device,
            client_id,
            ..Opening::default()
        }
    }
}

/// Lifetimes of refresh tokens and sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshSettings {
    /// Each token expires this long after it was issued (the session's idle lifetime).
    pub idle: Duration,
    /// A session, and so every token of it, ends this long after the login.
    pub absolute: Duration,
    /// How long after a rotation the same predecessor may be presented again and yields the
    /// same successor (a lost response, two tabs refreshing at once).
    pub grace: Duration,
    /// How long used, expired and revoked records are kept after their end, so a late
    /// presentation is answered as expired, reused or revoked rather than invalid.
    pub tombstone: Duration,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        const DAY: u64 = 24 * 60 * 60;
        Self {
            idle: Duration::from_secs(30 * DAY),
            absolute: Duration::from_secs(90 * DAY),
            grace: Duration::from_secs(20),
            tombstone: Duration::from_secs(30 * DAY),
        }
    }
}

/// A refresh token just issued (by a login or a rotation). `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub session: SessionInfo,
    pub refresh_token: String,
    /// The token is refused from this instant on.
    pub refresh_expires_at: i64,
    pub issued_at: i64,
    /// 1 for a login's token, +1 per rotation.
    pub generation: u64,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("session", &self.session)
            .field("refresh_token", &"<redacted>")
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("issued_at", &self.issued_at)
            .field("generation", &self.generation)
            .finish()
    }
}

/// Why a refresh token was refused, or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown or malformed.
    #[error("refresh token is invalid")]
    Invalid,
    #[error("refresh token expired")]
    Expired,
    /// Presented again outside the grace rule: its session is now revoked.
    #[error("refresh token was already used; its session is revoked")]
    Reused,
    #[error("refresh token's session is revoked")]
    Revoked,
    #[error("token store: {0}")]
    Store(#[from] StoreError),
}

impl RefreshError {
    /// A short stable code for logs, metrics and HTTP `x-error-code`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            RefreshError::Invalid => "refresh-token-invalid",
            RefreshError::Expired => "refresh-token-expired",
            RefreshError::Reused => "refresh-token-reused",
            RefreshError::Revoked => "refresh-token-revoked",
            RefreshError::Store(_) => "store-error",
        }
    }
}

/// Sessions and their refresh tokens over a [`TokenStore`].
pub struct RefreshService {
    store: Arc<dyn TokenStore>,
    secret: Secret,
    settings: RefreshSettings,
}

impl fmt::Debug for RefreshService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RefreshService {
    /// `secret` keys the HMAC that derives successors; the caller loads it from a key file.
    #[must_use]
    pub fn new(store: Arc<dyn TokenStore>, secret: [u8; 32], settings: RefreshSettings) -> Self {
        Self {
            store,
            secret: Secret::new(secret),
            settings,
        }
    }

    /// The refresh secret (keys derived from it: [`super::service::TokenService::derived_key`]).
    pub(super) fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The settings in force.
    #[must_use]
    pub fn settings(&self) -> &RefreshSettings {
        &self.settings
    }

    /// Opens a session as `opening` says and issues its first refresh token.
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub async fn open(&self, opening: &Opening<'_>, now: i64) -> Result<Issued, RefreshError> {
        let Opening {
            user,
            device,
            client_id,
            asserted,
            ref address,
            never_expires,
        } = *opening;
        let random: [u8; TOKEN_BYTES] = rand::random();
        let token = encode_token(&random);
        let hash = TokenHash::of(&token);
        let id = new_id();
        let (session_end, expires_at) = if never_expires {
            (NEVER, NEVER)
        } else {
            let end = now.saturating_add(secs(self.settings.absolute));
            (end, now.saturating_add(secs(self.settings.idle)).min(end))
        };
        let info = SessionInfo {
            id: id.clone(),
            user: user.to_owned(),
            device: device.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            created_at: now,
            expires_at: session_end,
            revoked_at: None,
            revoke_reason: None,
            asserted: asserted.cloned(),
            address: address.clone(),
            never_expires,
        };
        let record = SessionRecord {
            info: info.clone(),
            current: hash,
            generation: 1,
            current_issued_at: now,
            current_expires_at: expires_at,
        };
        let first = TokenRecord {
            session: id,
            generation: 1,
            issued_at: now,
            expires_at,
            used_at: None,
            successor: None,
        };
        self.store.create_session(&record, &hash, &first).await?;
        Ok(Issued {
            session: info,
            refresh_token: token,
            refresh_expires_at: expires_at,
            issued_at: now,
            generation: 1,
        })
    }

    /// Exchanges a refresh token for its successor.
    ///
    /// # Errors
    /// - [`RefreshError::Invalid`]: malformed or unknown token.
    /// - [`RefreshError::Revoked`]: its session is revoked.
    /// - [`RefreshError::Expired`]: the token (idle) or its session (absolute) expired.
    /// - [`RefreshError::Reused`]: the token was already used, and this is not a replay of the
    ///   current token's immediate predecessor within the grace window; the session is now
    ///   revoked.
    pub async fn rotate(&self, presented: &str, now: i64) -> Result<Issued, RefreshError> {
        let hash = parse(presented).ok_or(RefreshError::Invalid)?;
        let successor = encode_token(&self.secret.successor(presented));
        let successor_hash = TokenHash::of(&successor);
        let mut outcome = Outcome::Refused(RefreshError::Invalid);
        let next = Next {
            token: &successor,
            hash: &successor_hash,
        };
        let found = self
            .store
            .rotate(&hash, &mut |view| {
                let (step, decided) = decide(&self.settings, &view, &hash, &next, now);
                outcome = decided;
                step
            })
            .await?;
        if !found {
            return Err(RefreshError::Invalid);
        }
        match outcome {
            Outcome::Issued(issued, replay) => {
                if replay {
                    tracing::info!(
                        security_event = "refresh-token-grace-replay",
                        session = %issued.session.id,
                        user = %issued.session.user,
                        generation = issued.generation,
                        "refresh token replayed within the grace window; same successor returned"
                    );
                }
                Ok(*issued)
            }
            Outcome::Refused(e) => Err(e),
            Outcome::Reused(r) => {
                tracing::warn!(
                    security_event = "refresh-token-reuse",
                    session = %r.session,
                    user = %r.user,
                    device = r.device.as_deref().unwrap_or(""),
                    generation = r.generation,
                    current_generation = r.current_generation,
                    used_at = r.used_at,
                    "used refresh token presented again; session revoked"
                );
                Err(RefreshError::Reused)
            }
        }
    }

    /// The session a refresh token belongs to, whatever its state (for logout by cookie).
    ///
    /// # Errors
    /// [`RefreshError::Invalid`] for a malformed or unknown token (or one whose session was
    /// purged); [`RefreshError::Store`].
    pub async fn session_for_token(&self, presented: &str) -> Result<SessionInfo, RefreshError> {
        let hash = parse(presented).ok_or(RefreshError::Invalid)?;
        let token = self.store.token(&hash).await?.ok_or(RefreshError::Invalid)?;
        let session = self
            .store
            .session(&token.session)
            .await?
            .ok_or(RefreshError::Invalid)?;
        Ok(session.info)
    }

    /// The store underneath (tests look at its records).
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    /// Whether the token store answers now (readiness).
    ///
    /// # Errors
    /// [`RefreshError::Store`] when it does not.
    pub async fn check_store(&self) -> Result<(), RefreshError> {
        Ok(self.store.check().await?)
    }

    /// A session by id, if it is stored (revoked and expired ones included, until purged).
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub async fn session(&self, id: &str) -> Result<Option<SessionInfo>, RefreshError> {
        Ok(self.store.session(id).await?.map(|s| s.info))
    }

    /// Revokes the sessions `which` names; returns those it revoked (not those already
    /// revoked).
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub async fn revoke(
        &self,
        which: SessionSelector<'_>,
        reason: &str,
        now: i64,
    ) -> Result<Vec<SessionInfo>, RefreshError> {
        let revoked = self.store.revoke_sessions(which, now, reason).await?;
        if !revoked.is_empty() {
            let (by, value) = match which {
                SessionSelector::Id(id) => ("session", id.to_owned()),
                SessionSelector::User(user) => ("user", user.to_owned()),
                SessionSelector::Device(device) => ("device", device.to_owned()),
                SessionSelector::UserDevice(user, device) => ("user-device", format!("{user}/{device}")),
                SessionSelector::UserApplication(user, client) => {
                    ("user-application", format!("{user}/{client}"))
                }
                SessionSelector::CreatedAtOrBefore(t) => ("before", t.to_string()),
            };
            tracing::info!(
                security_event = "sessions-revoked",
                by,
                value = %value,
                reason,
                count = revoked.len(),
                "sessions revoked"
            );
        }
        Ok(revoked)
    }

    /// The sessions of `user` still in force at `now` (not revoked, not expired), the most
    /// recently used first.
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub async fn sessions_of(&self, user: &str, now: i64) -> Result<Vec<SessionRecord>, RefreshError> {
        let mut all = self.store.sessions_of(user).await?;
        all.retain(|s| s.info.revoked_at.is_none() && now < s.info.expires_at && now < s.current_expires_at);
        all.sort_by(|a, b| {
            b.current_issued_at
                .cmp(&a.current_issued_at)
                .then_with(|| a.info.id.cmp(&b.info.id))
        });
        Ok(all)
    }

    /// Whether a refresh token is the live one of its session, without rotating it: its
    /// session and `Ok(expiry)`, or why not (a used token reports `Reused`, even inside
    /// the grace window where a replay still returns its successor).
    ///
    /// # Errors
    /// [`RefreshError::Store`].
    pub async fn status(
        &self,
        presented: &str,
        now: i64,
    ) -> Result<(SessionInfo, Result<i64, RefreshError>), RefreshError> {
        let hash = parse(presented).ok_or(RefreshError::Invalid)?;
        let token = self.store.token(&hash).await?.ok_or(RefreshError::Invalid)?;
        let session = self
            .store
            .session(&token.session)
            .await?
            .ok_or(RefreshError::Invalid)?;
        let verdict = if session.info.revoked_at.is_some() {
            Err(RefreshError::Revoked)
        } else if now >= token.expires_at {
            Err(RefreshError::Expired)
        } else {
            match token.used_at {
                Some(_) => Err(RefreshError::Reused),
                None => Ok(token.expires_at),
            }
        };
        Ok((session.info, verdict))
    }

    /// Stores an access-token revocation entry (merged with one for the same target: the later
    /// cutoff and expiry win).
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub async fn record_revocation(&self, r: &Revocation) -> Result<(), RefreshError> {
        Ok(self.store.record_revocation(r).await?)
    }

    /// The revocation entries still in force (`now <= expires_at`).
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub async fn revocations(&self, now: i64) -> Result<Vec<Revocation>, RefreshError> {
        let mut all = self.store.revocations().await?;
        all.retain(|r| now <= r.expires_at);
        Ok(all)
    }

    /// One janitor step: removes at most `batch` records past their end plus the tombstone
    /// time (revocation entries: past their `expires_at`). Call again while it returns a full
    /// batch.
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub async fn purge(&self, now: i64, batch: usize) -> Result<PurgeReport, RefreshError> {
        let report = self
            .store
            .purge(now, secs(self.settings.tombstone), batch)
            .await?;
        if report.total() > 0 {
            tracing::info!(
                refresh_tokens = report.refresh_tokens,
                sessions = report.sessions,
                revocations = report.revocations,
                "purged expired token records"
            );
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::tokens::store::RedbStore;

    const SECRET: [u8; 32] = [7; 32];

    /// idle 100 s, absolute 250 s, grace 20 s, tombstone 50 s.
    fn settings() -> RefreshSettings {
        RefreshSettings {
            idle: Duration::from_secs(100),
            absolute: Duration::from_secs(250),
            grace: Duration::from_secs(20),
            tombstone: Duration::from_secs(50),
        }
    }

    fn open(path: &Path) -> RefreshService {
        RefreshService::new(Arc::new(RedbStore::open(path).unwrap()), SECRET, settings())
    }

    fn service() -> (tempfile::TempDir, RefreshService) {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(&dir.path().join("tokens.redb"));
        (dir, svc)
    }

    fn code<T: fmt::Debug>(r: Result<T, RefreshError>) -> &'static str {
        r.expect_err("expected an error").code()
    }

    #[tokio::test]
    async fn defaults() {
        let s = RefreshSettings::default();
        assert_eq!(s.idle, Duration::from_secs(30 * 86400));
        assert_eq!(s.absolute, Duration::from_secs(90 * 86400));
        assert_eq!(s.grace, Duration::from_secs(20));
        assert_eq!(s.tombstone, s.idle);
    }

    #[tokio::test]
    async fn token_shape_and_malformed_input() {
        let (_dir, svc) = service();
        let a = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
        assert!(a.refresh_token.starts_with(REFRESH_TOKEN_PREFIX));
        assert_eq!(a.refresh_token.len(), TOKEN_LEN);
        assert!(parse(&a.refresh_token).is_some());
        let unknown = encode_token(&[1; 32]);
        for bad in [
            "",
            "rt1_",
            "rt1_!!!!",
            &a.refresh_token[4..],
            &format!("rt2_{}", &a.refresh_token[4..]),
            &format!("{}A", a.refresh_token),
            &a.refresh_token[..a.refresh_token.len() - 1],
            "rt1_ééééééééééééééééééééééééééééééééééééééééééé",
            &unknown,
        ] {
            assert_eq!(code(svc.rotate(bad, 1).await), "refresh-token-invalid", "{bad:?}");
            assert_eq!(code(svc.session_for_token(bad).await), "refresh-token-invalid");
        }
        // A fresh session's first token is not disturbed by all that.
        assert_eq!(svc.rotate(&a.refresh_token, 1).await.unwrap().generation, 2);
    }

    #[tokio::test]
    async fn purge_keeps_tombstones_until_their_time() {
        let (_dir, svc) = service();
        let a = svc
            .open(&Opening::plain("bob", Some("phone"), None), 0)
            .await
            .unwrap();
        let b = svc.rotate(&a.refresh_token, 10).await.unwrap(); // a ends 100, b ends 110
        let live = svc.open(&Opening::plain("alice", None, None), 140).await.unwrap();

        // Before the tombstone time nothing goes, and late presentations keep their meaning.
        assert_eq!(svc.purge(150, 100).await.unwrap(), PurgeReport::default());
        assert_eq!(
            code(svc.rotate(&a.refresh_token, 150).await),
            "refresh-token-expired"
        );
        assert_eq!(
            code(svc.rotate(&b.refresh_token, 150).await),
            "refresh-token-expired"
        );

        // a: 100 + 50 < 151.
        let r = svc.purge(151, 100).await.unwrap();
        assert_eq!((r.refresh_tokens, r.sessions), (1, 0));
        assert_eq!(
            code(svc.rotate(&a.refresh_token, 152).await),
            "refresh-token-invalid"
        );
        assert_eq!(
            code(svc.rotate(&b.refresh_token, 152).await),
            "refresh-token-expired"
        );

        // b and the session (end 110) go after 160.
        let r = svc.purge(161, 100).await.unwrap();
        assert_eq!((r.refresh_tokens, r.sessions), (1, 1));
        assert!(svc.session(&a.session.id).await.unwrap().is_none());
        assert_eq!(
            code(svc.rotate(&b.refresh_token, 162).await),
            "refresh-token-invalid"
        );
        assert!(
            svc.revoke(SessionSelector::Device("phone"), "x", 162)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            svc.revoke(SessionSelector::User("bob"), "x", 162)
                .await
                .unwrap()
                .is_empty()
        );
        // The live session is untouched.
        assert!(svc.rotate(&live.refresh_token, 162).await.is_ok());
    }

    #[tokio::test]
    async fn purge_keeps_a_revoked_session_as_long_as_its_tokens() {
        let (_dir, svc) = service();
        let a = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap(); // token ends 100
        assert_eq!(
            svc.revoke(SessionSelector::Id(&a.session.id), "logout", 120)
                .await
                .unwrap()
                .len(),
            1
        );
        // Ends at max(100, 120) = 120: kept until 170.
        assert_eq!(
            svc.purge(170, 10).await.unwrap(),
            PurgeReport {
                refresh_tokens: 1,
                sessions: 0,
                revocations: 0
            }
        );
        assert!(svc.session(&a.session.id).await.unwrap().is_some());
        assert_eq!(svc.purge(171, 10).await.unwrap().sessions, 1);
    }

    #[tokio::test]
    async fn purge_works_in_batches() {
        let (_dir, svc) = service();
        for i in 0..5 {
            svc.open(&Opening::plain(&format!("u{i}"), None, None), 0)
                .await
                .unwrap();
        }
        let mut removed = Vec::new();
        loop {
            let r = svc.purge(1000, 3).await.unwrap();
            assert!(r.total() <= 3);
            if r.total() == 0 {
                break;
            }
            removed.push(r);
        }
        assert_eq!(removed.iter().map(|r| r.refresh_tokens).sum::<usize>(), 5);
        assert_eq!(removed.iter().map(|r| r.sessions).sum::<usize>(), 5);
        assert_eq!(removed.len(), 4);
        assert_eq!(svc.purge(1000, 0).await.unwrap().total(), 0);
    }

    #[tokio::test]
    async fn debug_output_holds_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("t.redb")).unwrap());
        let store_debug = format!("{store:?}");
        let svc = RefreshService::new(store, SECRET, settings());
        let a = svc
            .open(&Opening::plain("bob", Some("phone"), None), 0)
            .await
            .unwrap();
        let b = svc.rotate(&a.refresh_token, 1).await.unwrap();
        let record = svc.store.session(&a.session.id).await.unwrap().unwrap();
        let token_record = svc
            .store
            .token(&TokenHash::of(&a.refresh_token))
            .await
            .unwrap()
            .unwrap();
        let texts = [
            format!("{a:?}"),
            format!("{b:#?}"),
            format!("{:?}", a.session),
            format!("{svc:?}"),
            format!("{record:?}"),
            format!("{token_record:?}"),
            store_debug,
        ];
        let secrets: Vec<String> = [&a.refresh_token, &b.refresh_token]
            .into_iter()
            .flat_map(|t| {
                [
                    t[REFRESH_TOKEN_PREFIX.len()..].to_owned(),
                    data_encoding::HEXLOWER.encode(TokenHash::of(t).as_bytes()),
                ]
            })
            .chain([data_encoding::HEXLOWER.encode(&SECRET), format!("{:?}", SECRET)])
            .collect();
        for text in &texts {
            assert!(!text.contains(REFRESH_TOKEN_PREFIX), "{text}");
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "{text}");
            }
        }
        assert!(format!("{a:?}").contains("<redacted>"));
    }

    /// The store behaviour suite (shared with the JetStream backend) on redb.
    mod redb_behaviour {
        crate::testing::store_suite::run_suite!(crate::testing::store_suite::RedbBackend::new());
    }
}
