//! Refresh tokens: sessions, rotation with reuse detection and a grace replay, revocation, clean-up.
//!
//! A refresh token is `rt1_` + 256 random bits in base64url; only its SHA-256 is stored. Each
//! login starts a session (a token family) with an idle lifetime per token and an absolute cap.
//! Rotating a token marks it used and issues exactly one successor, in one store transaction.
//! A successor is derived from its predecessor with an HMAC (`rt-successor`), so a client that
//! lost the answer may present the predecessor again within the grace window and receive the
//! very same successor. Any other reuse revokes the whole family.
//!
//! Time is always passed in (`now`, unix seconds); nothing here reads the clock.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::access::new_id;
use super::revocation::Revocation;
pub use super::store::{PurgeReport, SessionInfo};
use super::store::{
    RotateStep, RotateView, SessionRecord, SessionSelector, StoreError, TokenHash, TokenRecord, TokenStore,
};

/// The prefix of every refresh token (version 1), so one is recognisable in a leak scan.
pub const REFRESH_TOKEN_PREFIX: &str = "rt1_";
/// The revocation reason recorded when a reused refresh token revokes its session.
pub const REUSE_REASON: &str = "refresh-token-reuse";

const TOKEN_BYTES: usize = 32;
/// Length of a token: the prefix and 43 base64url characters.
const TOKEN_LEN: usize = REFRESH_TOKEN_PREFIX.len() + (TOKEN_BYTES * 4).div_ceil(3);
const SUCCESSOR_LABEL: &[u8] = b"rt-successor";

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
    secret: [u8; 32],
    settings: RefreshSettings,
}

impl fmt::Debug for RefreshService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Whole seconds of `d`, saturating.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn encode_token(bytes: &[u8]) -> String {
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(REFRESH_TOKEN_PREFIX);
    token.push_str(&BASE64URL_NOPAD.encode(bytes));
    token
}

/// The hash of a well-formed token; `None` for anything else.
fn parse(presented: &str) -> Option<TokenHash> {
    let body = presented.strip_prefix(REFRESH_TOKEN_PREFIX)?;
    if presented.len() != TOKEN_LEN {
        return None;
    }
    let bytes = BASE64URL_NOPAD.decode(body.as_bytes()).ok()?;
    (bytes.len() == TOKEN_BYTES).then(|| TokenHash::of(presented))
}

/// What a reuse looked like, logged after the family was revoked.
struct Reuse {
    session: String,
    user: String,
    device: Option<String>,
    generation: u64,
    current_generation: u64,
    used_at: i64,
}

/// The answer of one rotation decision.
enum Outcome {
    Issued(Issued, bool),
    Refused(RefreshError),
    Reused(Reuse),
}

impl RefreshService {
    /// `secret` keys the HMAC that derives successors; the caller loads it from a key file.
    #[must_use]
    pub fn new(store: Arc<dyn TokenStore>, secret: [u8; 32], settings: RefreshSettings) -> Self {
        Self {
            store,
            secret,
            settings,
        }
    }

    /// The settings in force.
    #[must_use]
    pub fn settings(&self) -> &RefreshSettings {
        &self.settings
    }

    /// The successor of `presented`: the same on every call, unknowable without the secret.
    fn successor_of(&self, presented: &str) -> String {
        // HMAC accepts keys of any length; 32 bytes never fails.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        mac.update(SUCCESSOR_LABEL);
        mac.update(presented.as_bytes());
        encode_token(&mac.finalize().into_bytes())
    }

    /// Starts a session for `user` (a login) and issues its first refresh token.
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub fn start_session(
        &self,
        user: &str,
        device: Option<&str>,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<Issued, RefreshError> {
        let random: [u8; TOKEN_BYTES] = rand::random();
        let token = encode_token(&random);
        let hash = TokenHash::of(&token);
        let id = new_id();
        let session_end = now.saturating_add(secs(self.settings.absolute));
        let expires_at = now.saturating_add(secs(self.settings.idle)).min(session_end);
        let info = SessionInfo {
            id: id.clone(),
            user: user.to_owned(),
            device: device.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            created_at: now,
            expires_at: session_end,
            revoked_at: None,
            revoke_reason: None,
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
        self.store.create_session(&record, &hash, &first)?;
        tracing::info!(
            security_event = "session-created",
            session = %info.id,
            user = %info.user,
            device = info.device.as_deref().unwrap_or(""),
            "session started"
        );
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
    pub fn rotate(&self, presented: &str, now: i64) -> Result<Issued, RefreshError> {
        let hash = parse(presented).ok_or(RefreshError::Invalid)?;
        let successor = self.successor_of(presented);
        let successor_hash = TokenHash::of(&successor);
        let mut outcome = Outcome::Refused(RefreshError::Invalid);
        let found = self.store.rotate(&hash, &mut |view| {
            let (step, decided) = self.decide(&view, &hash, &successor, &successor_hash, now);
            outcome = decided;
            step
        })?;
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
                Ok(issued)
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

    /// The rotation rules, applied inside the store's write transaction.
    fn decide(
        &self,
        view: &RotateView<'_>,
        hash: &TokenHash,
        successor: &str,
        successor_hash: &TokenHash,
        now: i64,
    ) -> (RotateStep, Outcome) {
        let token = view.token;
        let refuse = |e| (RotateStep::Keep, Outcome::Refused(e));
        let expired = now >= token.expires_at;
        let Some(session) = view.session else {
            // The session was purged; its tokens are past their end, or the store is damaged.
            return refuse(if expired {
                RefreshError::Expired
            } else {
                RefreshError::Invalid
            });
        };
        if session.info.revoked_at.is_some() {
            return refuse(RefreshError::Revoked);
        }
        if expired || now >= session.info.expires_at {
            return refuse(RefreshError::Expired);
        }
        let Some(used_at) = token.used_at else {
            if session.current != *hash {
                tracing::error!(session = %session.info.id, "unused refresh token is not its session's current one");
                return refuse(RefreshError::Invalid);
            }
            let Some(generation) = token.generation.checked_add(1) else {
                return refuse(RefreshError::Invalid);
            };
            let expires_at = now
                .saturating_add(secs(self.settings.idle))
                .min(session.info.expires_at);
            let record = TokenRecord {
                session: session.info.id.clone(),
                generation,
                issued_at: now,
                expires_at,
                used_at: None,
                successor: None,
            };
            let issued = Issued {
                session: session.info.clone(),
                refresh_token: successor.to_owned(),
                refresh_expires_at: expires_at,
                issued_at: now,
                generation,
            };
            let step = RotateStep::Rotate {
                at: now,
                successor: *successor_hash,
                record,
            };
            return (step, Outcome::Issued(issued, false));
        };
        let immediate = token.successor == Some(session.current)
            && token.generation.checked_add(1) == Some(session.generation);
        let in_grace = now <= used_at.saturating_add(secs(self.settings.grace));
        // The stored successor must be the one derived now (it is not if the secret changed).
        if immediate && in_grace && session.current == *successor_hash {
            let issued = Issued {
                session: session.info.clone(),
                refresh_token: successor.to_owned(),
                refresh_expires_at: session.current_expires_at,
                issued_at: session.current_issued_at,
                generation: session.generation,
            };
            return (RotateStep::Keep, Outcome::Issued(issued, true));
        }
        let reuse = Reuse {
            session: session.info.id.clone(),
            user: session.info.user.clone(),
            device: session.info.device.clone(),
            generation: token.generation,
            current_generation: session.generation,
            used_at,
        };
        let step = RotateStep::RevokeFamily {
            at: now,
            reason: REUSE_REASON.to_owned(),
        };
        (step, Outcome::Reused(reuse))
    }

    /// The session a refresh token belongs to, whatever its state (for logout by cookie).
    ///
    /// # Errors
    /// [`RefreshError::Invalid`] for a malformed or unknown token (or one whose session was
    /// purged); [`RefreshError::Store`].
    pub fn session_for_token(&self, presented: &str) -> Result<SessionInfo, RefreshError> {
        let hash = parse(presented).ok_or(RefreshError::Invalid)?;
        let token = self.store.token(&hash)?.ok_or(RefreshError::Invalid)?;
        let session = self.store.session(&token.session)?.ok_or(RefreshError::Invalid)?;
        Ok(session.info)
    }

    /// Whether the token store answers now (readiness).
    ///
    /// # Errors
    /// [`RefreshError::Store`] when it does not.
    pub fn check_store(&self) -> Result<(), RefreshError> {
        Ok(self.store.check()?)
    }

    /// A session by id, if it is stored (revoked and expired ones included, until purged).
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub fn session(&self, id: &str) -> Result<Option<SessionInfo>, RefreshError> {
        Ok(self.store.session(id)?.map(|s| s.info))
    }

    fn revoke(
        &self,
        which: SessionSelector<'_>,
        reason: &str,
        now: i64,
    ) -> Result<Vec<SessionInfo>, RefreshError> {
        let revoked = self.store.revoke_sessions(which, now, reason)?;
        if !revoked.is_empty() {
            let (by, value) = match which {
                SessionSelector::Id(id) => ("session", id.to_owned()),
                SessionSelector::User(user) => ("user", user.to_owned()),
                SessionSelector::Device(device) => ("device", device.to_owned()),
                SessionSelector::UserDevice(user, device) => ("user-device", format!("{user}/{device}")),
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

    /// Revokes one session; `false` if it is unknown or already revoked.
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub fn revoke_session(&self, id: &str, reason: &str, now: i64) -> Result<bool, RefreshError> {
        Ok(!self.revoke(SessionSelector::Id(id), reason, now)?.is_empty())
    }

    /// Revokes every session of `user`; returns those it revoked (not those already revoked).
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub fn revoke_user(&self, user: &str, reason: &str, now: i64) -> Result<Vec<SessionInfo>, RefreshError> {
        self.revoke(SessionSelector::User(user), reason, now)
    }

    /// Revokes every session of `device`; returns those it revoked.
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub fn revoke_device(
        &self,
        device: &str,
        reason: &str,
        now: i64,
    ) -> Result<Vec<SessionInfo>, RefreshError> {
        self.revoke(SessionSelector::Device(device), reason, now)
    }

    /// Revokes one user's sessions on one device; returns the sessions it revoked.
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub fn revoke_user_device(
        &self,
        user: &str,
        device: &str,
        reason: &str,
        now: i64,
    ) -> Result<Vec<SessionInfo>, RefreshError> {
        self.revoke(SessionSelector::UserDevice(user, device), reason, now)
    }

    /// Whether a refresh token is the live one of its session, without rotating it: its
    /// session and `Ok(expiry)`, or why not (a used token reports `Reused`, even inside
    /// the grace window where a replay still returns its successor).
    ///
    /// # Errors
    /// [`RefreshError::Store`].
    pub fn status(
        &self,
        presented: &str,
        now: i64,
    ) -> Result<(SessionInfo, Result<i64, RefreshError>), RefreshError> {
        let hash = parse(presented).ok_or(RefreshError::Invalid)?;
        let token = self.store.token(&hash)?.ok_or(RefreshError::Invalid)?;
        let session = self.store.session(&token.session)?.ok_or(RefreshError::Invalid)?;
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

    /// Revokes every session created at or before `t`; returns how many it revoked.
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub fn revoke_before(&self, t: i64, reason: &str, now: i64) -> Result<usize, RefreshError> {
        Ok(self
            .revoke(SessionSelector::CreatedAtOrBefore(t), reason, now)?
            .len())
    }

    /// Stores an access-token revocation entry (merged with one for the same target: the later
    /// cutoff and expiry win).
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub fn record_revocation(&self, r: &Revocation) -> Result<(), RefreshError> {
        Ok(self.store.record_revocation(r)?)
    }

    /// The revocation entries still in force (`now <= expires_at`).
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub fn revocations(&self, now: i64) -> Result<Vec<Revocation>, RefreshError> {
        let mut all = self.store.revocations()?;
        all.retain(|r| now <= r.expires_at);
        Ok(all)
    }

    /// One janitor step: removes at most `batch` records past their end plus the tombstone
    /// time (revocation entries: past their `expires_at`). Call again while it returns a full
    /// batch.
    ///
    /// # Errors
    /// [`RefreshError::Store`] only.
    pub fn purge(&self, now: i64, batch: usize) -> Result<PurgeReport, RefreshError> {
        let report = self.store.purge(now, secs(self.settings.tombstone), batch)?;
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
    use std::sync::Barrier;

    use super::*;
    use crate::tokens::revocation::RevocationKind;
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

    #[test]
    fn defaults() {
        let s = RefreshSettings::default();
        assert_eq!(s.idle, Duration::from_secs(30 * 86400));
        assert_eq!(s.absolute, Duration::from_secs(90 * 86400));
        assert_eq!(s.grace, Duration::from_secs(20));
        assert_eq!(s.tombstone, s.idle);
    }

    #[test]
    fn token_shape_and_malformed_input() {
        let (_dir, svc) = service();
        let a = svc.start_session("bob", None, None, 0).unwrap();
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
            assert_eq!(code(svc.rotate(bad, 1)), "refresh-token-invalid", "{bad:?}");
            assert_eq!(code(svc.session_for_token(bad)), "refresh-token-invalid");
        }
        // A fresh session's first token is not disturbed by all that.
        assert_eq!(svc.rotate(&a.refresh_token, 1).unwrap().generation, 2);
    }

    #[test]
    fn start_and_rotate_chain() {
        let (_dir, svc) = service();
        let first = svc
            .start_session("bob", Some("laptop"), Some("web"), 1000)
            .unwrap();
        assert_eq!(first.generation, 1);
        assert_eq!(first.issued_at, 1000);
        assert_eq!(first.refresh_expires_at, 1100);
        assert_eq!(first.session.user, "bob");
        assert_eq!(first.session.device.as_deref(), Some("laptop"));
        assert_eq!(first.session.client_id.as_deref(), Some("web"));
        assert_eq!(first.session.created_at, 1000);
        assert_eq!(first.session.expires_at, 1250);
        let mut token = first.refresh_token.clone();
        for (i, now) in [1010, 1050, 1120].into_iter().enumerate() {
            let next = svc.rotate(&token, now).unwrap();
            assert_ne!(next.refresh_token, token);
            assert_eq!(next.generation, i as u64 + 2);
            assert_eq!(next.issued_at, now);
            assert_eq!(next.refresh_expires_at, now + 100);
            assert_eq!(next.session.id, first.session.id);
            token = next.refresh_token;
        }
        assert_eq!(
            svc.session_for_token(&first.refresh_token).unwrap().id,
            first.session.id
        );
        assert_eq!(svc.session(&first.session.id).unwrap().unwrap(), first.session);
        assert!(svc.session("nope").unwrap().is_none());
    }

    #[test]
    fn exactly_one_successor() {
        let (_dir, svc) = service();
        let a = svc.start_session("bob", None, None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 10).unwrap();
        // The replay within the window gives the same successor, not a second one.
        let b2 = svc.rotate(&a.refresh_token, 11).unwrap();
        assert_eq!(b, b2);
        let c = svc.rotate(&b.refresh_token, 12).unwrap();
        assert_eq!(c.generation, 3);
        // b is used; only c continues the family.
        assert_eq!(code(svc.rotate(&b.refresh_token, 60)), "refresh-token-reused");
    }

    #[test]
    fn reuse_after_grace_revokes_the_family() {
        let (_dir, svc) = service();
        let other = svc.start_session("bob", None, None, 0).unwrap();
        let a = svc.start_session("bob", None, None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 10).unwrap();
        // 10 + 20 is still in the window; 31 is not.
        assert_eq!(svc.rotate(&a.refresh_token, 30).unwrap(), b);
        let e = svc.rotate(&a.refresh_token, 31).unwrap_err();
        assert!(matches!(e, RefreshError::Reused));
        assert_eq!(e.code(), "refresh-token-reused");
        assert_eq!(code(svc.rotate(&b.refresh_token, 32)), "refresh-token-revoked");
        assert_eq!(code(svc.rotate(&a.refresh_token, 33)), "refresh-token-revoked");
        let s = svc.session(&a.session.id).unwrap().unwrap();
        assert_eq!(s.revoked_at, Some(31));
        assert_eq!(s.revoke_reason.as_deref(), Some(REUSE_REASON));
        // Another session of the same user is untouched.
        assert!(svc.rotate(&other.refresh_token, 34).is_ok());
    }

    #[test]
    fn grace_replay_returns_the_identical_successor() {
        let (_dir, svc) = service();
        let a = svc.start_session("bob", None, None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 100 - 90).unwrap();
        let again = svc.rotate(&a.refresh_token, 25).unwrap();
        assert_eq!(again.refresh_token, b.refresh_token);
        assert_eq!(again.issued_at, 10);
        assert_eq!(again.refresh_expires_at, b.refresh_expires_at);
        assert_eq!(again.generation, b.generation);
        assert_eq!(again, b);
        // The successor still works normally afterwards.
        assert_eq!(svc.rotate(&b.refresh_token, 26).unwrap().generation, 3);
    }

    #[test]
    fn replay_of_an_older_generation_is_reuse() {
        let (_dir, svc) = service();
        let a = svc.start_session("bob", None, None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 1).unwrap();
        let c = svc.rotate(&b.refresh_token, 2).unwrap();
        // a is within its grace window but is c's grand-predecessor.
        assert_eq!(code(svc.rotate(&a.refresh_token, 3)), "refresh-token-reused");
        assert_eq!(code(svc.rotate(&c.refresh_token, 4)), "refresh-token-revoked");
    }

    #[test]
    fn replay_whose_successor_was_rotated_is_reuse() {
        let (_dir, svc) = service();
        let a = svc.start_session("bob", None, None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 1).unwrap();
        let c = svc.rotate(&b.refresh_token, 2).unwrap();
        // b is c's immediate predecessor and in its window: forgiven.
        assert_eq!(svc.rotate(&b.refresh_token, 3).unwrap(), c);
        svc.rotate(&c.refresh_token, 4).unwrap();
        // Now b's successor has itself been rotated.
        assert_eq!(code(svc.rotate(&b.refresh_token, 5)), "refresh-token-reused");
    }

    #[test]
    fn a_changed_secret_cannot_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TokenStore> = Arc::new(RedbStore::open(&dir.path().join("t.redb")).unwrap());
        let svc = RefreshService::new(store.clone(), SECRET, settings());
        let a = svc.start_session("bob", None, None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 1).unwrap();
        let other = RefreshService::new(store, [8; 32], settings());
        assert_eq!(code(other.rotate(&a.refresh_token, 2)), "refresh-token-reused");
        assert_eq!(code(svc.rotate(&b.refresh_token, 3)), "refresh-token-revoked");
    }

    #[test]
    fn expiry_by_idle_lifetime() {
        let (_dir, svc) = service();
        let a = svc.start_session("bob", None, None, 0).unwrap();
        assert_eq!(code(svc.rotate(&a.refresh_token, 100)), "refresh-token-expired");
        let b = svc.start_session("bob", None, None, 0).unwrap();
        let c = svc.rotate(&b.refresh_token, 99).unwrap();
        assert_eq!(c.refresh_expires_at, 199);
        assert_eq!(code(svc.rotate(&c.refresh_token, 199)), "refresh-token-expired");
        // An expired used token is expired, not reused: the family stays as it was.
        assert_eq!(code(svc.rotate(&b.refresh_token, 200)), "refresh-token-expired");
        assert!(svc.session(&b.session.id).unwrap().unwrap().revoked_at.is_none());
    }

    #[test]
    fn expiry_by_absolute_cap() {
        let (_dir, svc) = service();
        let a = svc.start_session("bob", None, None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 90).unwrap();
        let c = svc.rotate(&b.refresh_token, 180).unwrap();
        // 180 + 100 would pass the session's end at 250.
        assert_eq!(c.refresh_expires_at, 250);
        let d = svc.rotate(&c.refresh_token, 249).unwrap();
        assert_eq!(d.refresh_expires_at, 250);
        assert_eq!(code(svc.rotate(&d.refresh_token, 250)), "refresh-token-expired");
    }

    #[test]
    fn revoke_session_touches_only_that_session() {
        let (_dir, svc) = service();
        let a = svc.start_session("bob", Some("laptop"), None, 0).unwrap();
        let b = svc.start_session("bob", Some("laptop"), None, 0).unwrap();
        assert!(svc.revoke_session(&a.session.id, "logout", 5).unwrap());
        assert!(!svc.revoke_session(&a.session.id, "again", 6).unwrap());
        assert!(!svc.revoke_session("unknown", "x", 6).unwrap());
        let s = svc.session(&a.session.id).unwrap().unwrap();
        assert_eq!(
            (s.revoked_at, s.revoke_reason.as_deref()),
            (Some(5), Some("logout"))
        );
        assert_eq!(code(svc.rotate(&a.refresh_token, 7)), "refresh-token-revoked");
        assert!(svc.rotate(&b.refresh_token, 7).is_ok());
        // Logout by refresh cookie still finds a revoked session.
        assert_eq!(svc.session_for_token(&a.refresh_token).unwrap().id, a.session.id);
    }

    #[test]
    fn revoke_user_and_device() {
        let (_dir, svc) = service();
        let bob_phone = svc.start_session("bob", Some("phone"), None, 0).unwrap();
        let bob_laptop = svc.start_session("bob", Some("laptop"), None, 0).unwrap();
        let alice_phone = svc.start_session("alice", Some("phone2"), None, 0).unwrap();
        let alice_bare = svc.start_session("alice", None, None, 0).unwrap();

        let revoked = svc.revoke_device("phone", "lost", 5).unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].id, bob_phone.session.id);
        assert_eq!(revoked[0].revoked_at, Some(5));
        assert_eq!(
            code(svc.rotate(&bob_phone.refresh_token, 6)),
            "refresh-token-revoked"
        );
        let bob_laptop = svc.rotate(&bob_laptop.refresh_token, 6).unwrap();
        let alice_phone = svc.rotate(&alice_phone.refresh_token, 6).unwrap();

        let mut ids: Vec<_> = svc
            .revoke_user("alice", "admin", 7)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        ids.sort();
        let mut want = vec![alice_phone.session.id.clone(), alice_bare.session.id.clone()];
        want.sort();
        assert_eq!(ids, want);
        assert_eq!(
            code(svc.rotate(&alice_phone.refresh_token, 8)),
            "refresh-token-revoked"
        );
        assert_eq!(
            code(svc.rotate(&alice_bare.refresh_token, 8)),
            "refresh-token-revoked"
        );
        assert!(svc.rotate(&bob_laptop.refresh_token, 8).is_ok());
        // Already revoked sessions are not reported again.
        assert!(svc.revoke_user("alice", "admin", 9).unwrap().is_empty());
        assert!(svc.revoke_device("nobody", "x", 9).unwrap().is_empty());
        assert_eq!(svc.revoke_user("bob", "x", 10).unwrap().len(), 1);
    }

    #[test]
    fn revoke_before_is_inclusive() {
        let (_dir, svc) = service();
        let early = svc.start_session("bob", None, None, 10).unwrap();
        let at = svc.start_session("alice", None, None, 20).unwrap();
        let late = svc.start_session("bob", None, None, 21).unwrap();
        assert_eq!(svc.revoke_before(20, "reset", 30).unwrap(), 2);
        assert_eq!(
            code(svc.rotate(&early.refresh_token, 31)),
            "refresh-token-revoked"
        );
        assert_eq!(code(svc.rotate(&at.refresh_token, 31)), "refresh-token-revoked");
        assert!(svc.rotate(&late.refresh_token, 31).is_ok());
        assert_eq!(svc.revoke_before(20, "reset", 32).unwrap(), 0);
    }

    #[test]
    fn revocation_entries() {
        let (_dir, svc) = service();
        let r = |kind, value: &str, cutoff, expires_at| Revocation {
            kind,
            value: value.into(),
            cutoff,
            expires_at,
        };
        svc.record_revocation(&r(RevocationKind::User, "bob", 10, 310))
            .unwrap();
        svc.record_revocation(&r(RevocationKind::All, "", 20, 320))
            .unwrap();
        svc.record_revocation(&r(RevocationKind::Device, "phone", 5, 305))
            .unwrap();
        assert_eq!(svc.revocations(305).unwrap().len(), 3);
        let left = svc.revocations(306).unwrap();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&r(RevocationKind::All, "", 20, 320)));
        assert_eq!(svc.purge(306, 100).unwrap().revocations, 1);
        assert_eq!(svc.purge(400, 100).unwrap().revocations, 2);
        assert!(svc.revocations(0).unwrap().is_empty());
    }

    #[test]
    fn purge_keeps_tombstones_until_their_time() {
        let (_dir, svc) = service();
        let a = svc.start_session("bob", Some("phone"), None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 10).unwrap(); // a ends 100, b ends 110
        let live = svc.start_session("alice", None, None, 140).unwrap();

        // Before the tombstone time nothing goes, and late presentations keep their meaning.
        assert_eq!(svc.purge(150, 100).unwrap(), PurgeReport::default());
        assert_eq!(code(svc.rotate(&a.refresh_token, 150)), "refresh-token-expired");
        assert_eq!(code(svc.rotate(&b.refresh_token, 150)), "refresh-token-expired");

        // a: 100 + 50 < 151.
        let r = svc.purge(151, 100).unwrap();
        assert_eq!((r.refresh_tokens, r.sessions), (1, 0));
        assert_eq!(code(svc.rotate(&a.refresh_token, 152)), "refresh-token-invalid");
        assert_eq!(code(svc.rotate(&b.refresh_token, 152)), "refresh-token-expired");

        // b and the session (end 110) go after 160.
        let r = svc.purge(161, 100).unwrap();
        assert_eq!((r.refresh_tokens, r.sessions), (1, 1));
        assert!(svc.session(&a.session.id).unwrap().is_none());
        assert_eq!(code(svc.rotate(&b.refresh_token, 162)), "refresh-token-invalid");
        assert!(svc.revoke_device("phone", "x", 162).unwrap().is_empty());
        assert!(svc.revoke_user("bob", "x", 162).unwrap().is_empty());
        // The live session is untouched.
        assert!(svc.rotate(&live.refresh_token, 162).is_ok());
    }

    #[test]
    fn purge_keeps_a_revoked_session_as_long_as_its_tokens() {
        let (_dir, svc) = service();
        let a = svc.start_session("bob", None, None, 0).unwrap(); // token ends 100
        svc.revoke_session(&a.session.id, "logout", 120).unwrap();
        // Ends at max(100, 120) = 120: kept until 170.
        assert_eq!(
            svc.purge(170, 10).unwrap(),
            PurgeReport {
                refresh_tokens: 1,
                sessions: 0,
                revocations: 0
            }
        );
        assert!(svc.session(&a.session.id).unwrap().is_some());
        assert_eq!(svc.purge(171, 10).unwrap().sessions, 1);
    }

    #[test]
    fn purge_works_in_batches() {
        let (_dir, svc) = service();
        for i in 0..5 {
            svc.start_session(&format!("u{i}"), None, None, 0).unwrap();
        }
        let mut removed = Vec::new();
        loop {
            let r = svc.purge(1000, 3).unwrap();
            assert!(r.total() <= 3);
            if r.total() == 0 {
                break;
            }
            removed.push(r);
        }
        assert_eq!(removed.iter().map(|r| r.refresh_tokens).sum::<usize>(), 5);
        assert_eq!(removed.iter().map(|r| r.sessions).sum::<usize>(), 5);
        assert_eq!(removed.len(), 4);
        assert_eq!(svc.purge(1000, 0).unwrap().total(), 0);
    }

    #[test]
    fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.redb");
        let svc = open(&path);
        let a = svc.start_session("bob", Some("phone"), None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 10).unwrap();
        let gone = svc.start_session("alice", None, None, 0).unwrap();
        svc.revoke_user("alice", "admin", 11).unwrap();
        let rev = Revocation {
            kind: RevocationKind::User,
            value: "alice".into(),
            cutoff: 11,
            expires_at: 311,
        };
        svc.record_revocation(&rev).unwrap();
        drop(svc);

        let svc = open(&path);
        assert_eq!(svc.revocations(12).unwrap(), [rev]);
        assert_eq!(svc.rotate(&a.refresh_token, 12).unwrap(), b);
        assert_eq!(code(svc.rotate(&gone.refresh_token, 12)), "refresh-token-revoked");
        let c = svc.rotate(&b.refresh_token, 13).unwrap();
        assert_eq!(c.generation, 3);
        drop(svc);

        let svc = open(&path);
        assert_eq!(code(svc.rotate(&a.refresh_token, 50)), "refresh-token-reused");
        assert_eq!(code(svc.rotate(&c.refresh_token, 51)), "refresh-token-revoked");
        assert_eq!(svc.revoke_device("phone", "x", 52).unwrap().len(), 0);
    }

    #[test]
    fn concurrent_rotation_yields_one_successor() {
        let (_dir, svc) = service();
        let svc = Arc::new(svc);
        let a = svc.start_session("bob", None, None, 0).unwrap();
        let threads = 8;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (svc, barrier, token) = (svc.clone(), barrier.clone(), a.refresh_token.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    svc.rotate(&token, 5)
                })
            })
            .collect();
        let results: Vec<Issued> = handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
        assert!(results.iter().all(|r| *r == results[0]));
        assert_eq!(results[0].generation, 2);
        let rec = svc.store.session(&a.session.id).unwrap().unwrap();
        assert_eq!(rec.generation, 2);
        assert_eq!(rec.current, TokenHash::of(&results[0].refresh_token));
    }

    #[test]
    fn concurrent_rotation_after_the_window_detects_reuse() {
        let (_dir, svc) = service();
        let svc = Arc::new(svc);
        let a = svc.start_session("bob", None, None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 1).unwrap();
        let barrier = Arc::new(Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (svc, barrier) = (svc.clone(), barrier.clone());
                let token = if i % 2 == 0 {
                    a.refresh_token.clone()
                } else {
                    b.refresh_token.clone()
                };
                std::thread::spawn(move || {
                    barrier.wait();
                    svc.rotate(&token, 100 - 50).map(|i| i.refresh_token)
                })
            })
            .collect();
        let mut successors = std::collections::HashSet::new();
        for h in handles {
            match h.join().unwrap() {
                Ok(t) => {
                    successors.insert(t);
                }
                Err(e) => assert!(matches!(e, RefreshError::Reused | RefreshError::Revoked), "{e}"),
            }
        }
        assert!(successors.len() <= 1);
        assert!(svc.session(&a.session.id).unwrap().unwrap().revoked_at.is_some());
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("t.redb")).unwrap());
        let store_debug = format!("{store:?}");
        let svc = RefreshService::new(store, SECRET, settings());
        let a = svc.start_session("bob", Some("phone"), None, 0).unwrap();
        let b = svc.rotate(&a.refresh_token, 1).unwrap();
        let record = svc.store.session(&a.session.id).unwrap().unwrap();
        let token_record = svc
            .store
            .token(&TokenHash::of(&a.refresh_token))
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
}
