//! The token life cycle in one place: issue a pair at login, rotate on refresh, revoke
//! (store + local index; other instances follow the store, see [`super::feed`]), verify
//! access tokens.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::info;

use super::access::{AccessClaims, MintRequest, TokenError, TokenKeys};
use super::refresh::{Issued, Opening, RefreshError, RefreshService, SessionInfo, SessionSelector};
use super::revocation::{Revocation, RevocationKind, Revocations, RevokeTarget};

/// An access token and the refresh token it came with.
pub struct Pair {
    pub access_token: String,
    pub access: AccessClaims,
    pub refresh: Issued,
}

/// Why an access token was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AccessError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("access token revoked ({0})")]
    Revoked(&'static str),
}

impl AccessError {
    pub fn code(&self) -> &'static str {
        match self {
            AccessError::Token(e) => e.code(),
            AccessError::Revoked(_) => "access-token-revoked",
        }
    }
}

/// Issues, rotates, revokes and verifies.
pub struct TokenService {
    keys: Arc<TokenKeys>,
    refresh: RefreshService,
    revocations: Revocations,
    access_ttl: Duration,
}

/// The access token's id is derived from its refresh token, so a grace-window replay
/// mints byte-for-byte the same access token (EdDSA is deterministic).
fn tid_for(refresh_token: &str) -> String {
    let d = Sha256::digest([b"tid:".as_slice(), refresh_token.as_bytes()].concat());
    data_encoding::BASE32_NOPAD.encode(&d[..16]).to_lowercase()
}

impl TokenService {
    pub fn new(
        keys: Arc<TokenKeys>,
        refresh: RefreshService,
        revocations: Revocations,
        access_ttl: Duration,
    ) -> Self {
        TokenService {
            keys,
            refresh,
            revocations,
            access_ttl,
        }
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }
    pub fn refresh(&self) -> &RefreshService {
        &self.refresh
    }
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    fn pair(&self, refresh: Issued) -> Result<Pair, TokenError> {
        let tid = tid_for(&refresh.refresh_token);
        let s = &refresh.session;
        // Cutoffs are whole seconds (`iat <= cutoff`): a token minted in the same second as,
        // but after, a revocation of its user or device would be refused with the ones it
        // ended. Date it one second later then (never more, so no real cutoff is skipped).
        let revocations = self.revocations.load();
        let revoked = |iat| {
            revocations
                .check_parts(&s.user, &s.id, s.device.as_deref(), iat)
                .is_some()
        };
        let issued_at = match refresh.issued_at {
            t if revoked(t) && !revoked(t + 1) => t + 1,
            t => t,
        };
        let (access_token, access) = self.keys.mint_with_id(
            &MintRequest {
                user: &refresh.session.user,
                session: &refresh.session.id,
                device: refresh.session.device.as_deref(),
                ttl: self.access_ttl,
                session_expires_at: Some(refresh.session.expires_at),
                asserted: refresh.session.asserted.as_ref(),
                client_id: refresh.session.client_id.as_deref(),
            },
            &tid,
            issued_at,
        )?;
        Ok(Pair {
            access_token,
            access,
            refresh,
        })
    }

    /// Open a session for an authenticated user as `opening` says (a device, an
    /// application, a provider's assertion, a guest, an address to show) and issue its first
    /// pair. The caller logs it: it knows how the user proved who they are.
    pub async fn open(&self, opening: &Opening<'_>, now: i64) -> Result<Pair, LifecycleError> {
        let issued = self.refresh.open(opening, now).await?;
        Ok(self.pair(issued)?)
    }

    /// A key for `label` derived from the refresh secret: the same on every instance
    /// sharing it (the signed cookie of a provider login in progress).
    #[must_use]
    pub fn derived_key(&self, label: &[u8]) -> [u8; 32] {
        self.refresh.secret().derive(label)
    }

    /// Mark `key` used until `expires_at`: `true` the first time only, on every instance
    /// sharing the store (a key login's challenge is accepted once).
    pub async fn use_once(&self, key: &str, expires_at: i64) -> Result<bool, LifecycleError> {
        Ok(self
            .refresh
            .store()
            .use_once(key, expires_at)
            .await
            .map_err(RefreshError::from)?)
    }

    /// Rotate a refresh token into a new pair. A reuse revokes the whole family here
    /// and, through the shared store, on every instance: its access tokens stop working.
    pub async fn rotate(&self, presented: &str, now: i64) -> Result<Pair, LifecycleError> {
        let result = self.refresh.rotate(presented, now).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        metrics::counter!("nats_callout_refreshes_total", "result" => label).increment(1);
        match result {
            Ok(issued) => Ok(self.pair(issued)?),
            Err(RefreshError::Reused) => {
                if let Ok(session) = self.refresh.session_for_token(presented).await {
                    self.revoke(
                        &RevokeTarget::Session(session.id),
                        super::refresh::REUSE_REASON,
                        now,
                    )
                    .await?;
                }
                Err(RefreshError::Reused.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Verify an access token and check the revocation index.
    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, AccessError> {
        let claims = self.keys.verify(token, now)?;
        if let Some(why) = self.revocations.load().check(&claims) {
            return Err(AccessError::Revoked(why));
        }
        Ok(claims)
    }

    /// Revoke in the store, record the revocation there and apply it here (instances sharing
    /// a JetStream store apply it from the store's watch). Returns how many sessions ended.
    pub async fn revoke(
        &self,
        target: &RevokeTarget,
        reason: &str,
        now: i64,
    ) -> Result<usize, LifecycleError> {
        if let RevokeTarget::Before(t) = target
            && *t > now
        {
            // It would refuse every login until then: surely a mistake, and one that locks everyone out.
            return Err(LifecycleError::CutoffInFuture);
        }
        // Kept as long as the longest token it may cover can live (`tokens.max_token_ttl`,
        // minted by `nats-callout token --ttl`), not just a login's access token.
        let keep = self.access_ttl.max(self.keys.max_lifetime());
        let expires_at = now.saturating_add(keep.as_secs() as i64).saturating_add(1);
        let (sessions, revs) = self.end_sessions(target, reason, now, expires_at).await?;
        for r in &revs {
            self.refresh.record_revocation(r).await?;
        }
        self.revocations.apply(revs.iter().cloned());
        let kind = match target {
            RevokeTarget::Session(_) => "session",
            RevokeTarget::Device(_) | RevokeTarget::UserDevice { .. } => "device",
            RevokeTarget::User(_) => "user",
            RevokeTarget::Application { .. } => "application",
            RevokeTarget::Before(_) => "before",
        };
        metrics::counter!("nats_callout_revocations_total", "target" => kind).increment(1);
        info!(?target, reason, sessions, "revoked");
        Ok(sessions)
    }

    /// End the sessions `target` names: how many, and the entries that refuse their access
    /// tokens until `expires_at`.
    async fn end_sessions(
        &self,
        target: &RevokeTarget,
        reason: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(usize, Vec<Revocation>), LifecycleError> {
        let rev = |kind, value: &str| Revocation {
            kind,
            value: value.to_string(),
            cutoff: now,
            expires_at,
        };
        let ended = |sessions: Vec<SessionInfo>| sessions.len();
        Ok(match target {
            RevokeTarget::Session(id) => {
                let n = ended(self.refresh.revoke(SessionSelector::Id(id), reason, now).await?);
                (n, vec![rev(RevocationKind::Session, id)])
            }
            RevokeTarget::Device(d) => {
                let n = ended(
                    self.refresh
                        .revoke(SessionSelector::Device(d), reason, now)
                        .await?,
                );
                (n, vec![rev(RevocationKind::Device, d)])
            }
            RevokeTarget::UserDevice { user, device } => {
                let which = SessionSelector::UserDevice(user, device);
                let n = ended(self.refresh.revoke(which, reason, now).await?);
                let value = super::revocation::user_device(user, device);
                (n, vec![rev(RevocationKind::Device, &value)])
            }
            RevokeTarget::User(u) => {
                let n = ended(self.refresh.revoke(SessionSelector::User(u), reason, now).await?);
                (n, vec![rev(RevocationKind::User, u)])
            }
            RevokeTarget::Application { user, client_id } => {
                if user.is_empty() {
                    return Err(LifecycleError::NoUser);
                }
                // The application's sessions, each as a session revocation: their access
                // tokens stop working and their live connections close.
                let which = SessionSelector::UserApplication(user, client_id);
                let s = self.refresh.revoke(which, reason, now).await?;
                let revs = s.iter().map(|s| rev(RevocationKind::Session, &s.id)).collect();
                (s.len(), revs)
            }
            RevokeTarget::Before(t) => {
                let which = SessionSelector::CreatedAtOrBefore(*t);
                let n = ended(self.refresh.revoke(which, reason, now).await?);
                let r = Revocation {
                    kind: RevocationKind::All,
                    value: String::new(),
                    cutoff: *t,
                    expires_at,
                };
                (n, vec![r])
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("before: the time is in the future")]
    CutoffInFuture,
    #[error("clientId: name the user whose application it is (userId)")]
    NoUser,
}

impl LifecycleError {
    pub fn code(&self) -> &'static str {
        match self {
            LifecycleError::Refresh(e) => e.code(),
            LifecycleError::Token(e) => e.code(),
            LifecycleError::CutoffInFuture => "cutoff-in-future",
            LifecycleError::NoUser => "bad-request",
        }
    }
}
