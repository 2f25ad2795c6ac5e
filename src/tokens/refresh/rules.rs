//! The rotation rules, pure: a refresh token's shape, and what presenting one does to its
//! session given the stored records and the time (a successor, a grace replay, a refusal,
//! or a reuse that revokes the family). [`super::RefreshService`] runs them inside the
//! store's write transaction.

use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;

use super::{Issued, RefreshError, RefreshSettings};
use crate::tokens::store::{RotateStep, RotateView, SessionRecord, TokenHash, TokenRecord};

/// The prefix of every refresh token (version 1), so one is recognisable in a leak scan.
pub const REFRESH_TOKEN_PREFIX: &str = "rt1_";
/// The revocation reason recorded when a reused refresh token revokes its session.
pub const REUSE_REASON: &str = "refresh-token-reuse";
/// The end of a session that never expires (9999-12-31T23:59:59Z): still a time every
/// format writes.
pub const NEVER: i64 = 253_402_300_799;

pub(super) const TOKEN_BYTES: usize = 32;
/// Length of a token: the prefix and 43 base64url characters.
pub(super) const TOKEN_LEN: usize = REFRESH_TOKEN_PREFIX.len() + (TOKEN_BYTES * 4).div_ceil(3);

/// Whole seconds of `d`, saturating.
pub(super) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A refresh token of these random (or derived) bytes.
pub(super) fn encode_token(bytes: &[u8]) -> String {
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(REFRESH_TOKEN_PREFIX);
    token.push_str(&BASE64URL_NOPAD.encode(bytes));
    token
}

/// The hash of a well-formed token; `None` for anything else.
pub(super) fn parse(presented: &str) -> Option<TokenHash> {
    let body = presented.strip_prefix(REFRESH_TOKEN_PREFIX)?;
    if presented.len() != TOKEN_LEN {
        return None;
    }
    let bytes = BASE64URL_NOPAD.decode(body.as_bytes()).ok()?;
    (bytes.len() == TOKEN_BYTES).then(|| TokenHash::of(presented))
}

/// What a reuse looked like, logged after the family was revoked.
pub(super) struct Reuse {
    pub session: String,
    pub user: String,
    pub device: Option<String>,
    pub generation: u64,
    pub current_generation: u64,
    pub used_at: i64,
}

/// The answer of one rotation decision.
pub(super) enum Outcome {
    /// A pair to hand out; `true` for a grace replay (the same successor again).
    Issued(Box<Issued>, bool),
    Refused(RefreshError),
    Reused(Reuse),
}

/// The successor a presented token would get: derived, so a replay gets the same one.
pub(super) struct Next<'a> {
    pub token: &'a str,
    pub hash: &'a TokenHash,
}

/// The rotation rules for the token hashed `hash`, as the store holds it (`view`).
pub(super) fn decide(
    settings: &RefreshSettings,
    view: &RotateView<'_>,
    hash: &TokenHash,
    next: &Next<'_>,
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
    match token.used_at {
        None => rotate(settings, session, token, hash, next, now),
        Some(used_at) => replay_or_reuse(settings, session, token, used_at, next, now),
    }
}

/// An unused token, the session's current one: marked used, its successor issued.
fn rotate(
    settings: &RefreshSettings,
    session: &SessionRecord,
    token: &TokenRecord,
    hash: &TokenHash,
    next: &Next<'_>,
    now: i64,
) -> (RotateStep, Outcome) {
    let refuse = |e| (RotateStep::Keep, Outcome::Refused(e));
    if session.current != *hash {
        tracing::error!(session = %session.info.id, "unused refresh token is not its session's current one");
        return refuse(RefreshError::Invalid);
    }
    let Some(generation) = token.generation.checked_add(1) else {
        return refuse(RefreshError::Invalid);
    };
    let expires_at = if session.info.never_expires {
        NEVER
    } else {
        now.saturating_add(secs(settings.idle))
            .min(session.info.expires_at)
    };
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
        refresh_token: next.token.to_owned(),
        refresh_expires_at: expires_at,
        issued_at: now,
        generation,
    };
    let step = RotateStep::Rotate {
        at: now,
        successor: *next.hash,
        record,
    };
    (step, Outcome::Issued(Box::new(issued), false))
}

/// A used token: the immediate predecessor within the grace window gets the same
/// successor again; anything else is a reuse, and the family is revoked.
fn replay_or_reuse(
    settings: &RefreshSettings,
    session: &SessionRecord,
    token: &TokenRecord,
    used_at: i64,
    next: &Next<'_>,
    now: i64,
) -> (RotateStep, Outcome) {
    let immediate = token.successor == Some(session.current)
        && token.generation.checked_add(1) == Some(session.generation);
    let in_grace = now <= used_at.saturating_add(secs(settings.grace));
    // The stored successor must be the one derived now (it is not if the secret changed).
    if immediate && in_grace && session.current == *next.hash {
        let issued = Issued {
            session: session.info.clone(),
            refresh_token: next.token.to_owned(),
            refresh_expires_at: session.current_expires_at,
            issued_at: session.current_issued_at,
            generation: session.generation,
        };
        return (RotateStep::Keep, Outcome::Issued(Box::new(issued), true));
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
