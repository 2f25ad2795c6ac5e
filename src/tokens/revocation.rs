//! Revocations: what may be revoked ([`RevokeTarget`]), the entries that refuse access
//! tokens ([`Revocation`]) and the in-memory index the request path consults
//! ([`Revocations`]): sessions, devices, users and "everything before T", each with a
//! cutoff on the access token's `iat`.
//!
//! Entries come from this instance's own revocations and, with the JetStream store, from
//! the revocations bucket every instance writes and watches ([`super::feed`]); each lives
//! as long as the longest access token it can refuse.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use serde::{Deserialize, Serialize};

use super::AccessClaims;

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RevokeTarget {
    Session(String),
    /// A device id, whoever uses it (admins).
    Device(String),
    /// One user's sessions on one device.
    UserDevice {
        user: String,
        device: String,
    },
    User(String),
    /// One user's sessions of one application (`clientId`); an empty user means the caller.
    Application {
        user: String,
        client_id: String,
    },
    /// Everything issued at or before this unix time.
    Before(i64),
}

/// A revoke request as people write it (HTTP `POST /api/auth/revoke`, the admin subject
/// behind `nats-callout revoke`): exactly one of `userId`, `deviceId`, `sessionId`, `before`
/// (unix seconds or an RFC 3339 time, as a number or a string), or `clientId` (an
/// application) with at most `userId` beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// Why a revoke request names no single target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRevokeRequest {
    #[error(
        "give exactly one target: userId, deviceId, sessionId or before; or userId with deviceId or clientId"
    )]
    NotOneTarget,
    #[error("before: {0}")]
    Time(String),
}

impl RevokeRequest {
    /// The one target named, as asked (who may revoke it is decided by the caller's side).
    pub fn target(&self) -> Result<RevokeTarget, BadRevokeRequest> {
        if let Some(client_id) = &self.client_id {
            if self.device_id.is_some() || self.session_id.is_some() || self.before.is_some() {
                return Err(BadRevokeRequest::NotOneTarget);
            }
            return Ok(RevokeTarget::Application {
                user: self.user_id.clone().unwrap_or_default(),
                client_id: client_id.clone(),
            });
        }
        if let (Some(user), Some(device)) = (&self.user_id, &self.device_id) {
            if self.session_id.is_some() || self.before.is_some() {
                return Err(BadRevokeRequest::NotOneTarget);
            }
            return Ok(RevokeTarget::UserDevice {
                user: user.clone(),
                device: device.clone(),
            });
        }
        let named = [
            self.user_id.is_some(),
            self.device_id.is_some(),
            self.session_id.is_some(),
            self.before.is_some(),
        ];
        if named.iter().filter(|n| **n).count() != 1 {
            return Err(BadRevokeRequest::NotOneTarget);
        }
        let cloned = |v: &Option<String>| v.clone().unwrap_or_default();
        Ok(if self.user_id.is_some() {
            RevokeTarget::User(cloned(&self.user_id))
        } else if self.device_id.is_some() {
            RevokeTarget::Device(cloned(&self.device_id))
        } else if self.session_id.is_some() {
            RevokeTarget::Session(cloned(&self.session_id))
        } else {
            let t = match self.before.as_ref() {
                Some(serde_json::Value::Number(n)) => n
                    .as_i64()
                    .ok_or_else(|| BadRevokeRequest::Time("not a unix time".into()))?,
                Some(serde_json::Value::String(s)) => {
                    crate::clock::parse_time(s).map_err(|e| BadRevokeRequest::Time(e.to_string()))?
                }
                _ => {
                    return Err(BadRevokeRequest::Time(
                        "expected unix seconds or an RFC 3339 time".into(),
                    ));
                }
            };
            RevokeTarget::Before(t)
        })
    }
}

/// What a [`Revocation`] entry refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationKind {
    Session,
    Device,
    User,
    All,
}

impl RevocationKind {
    /// The lowercase name used in keys and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Session => "session",
            RevocationKind::Device => "device",
            RevocationKind::User => "user",
            RevocationKind::All => "all",
        }
    }
}

/// A deny entry for access tokens: those of `kind`/`value` issued at or before `cutoff` are
/// refused until `expires_at`, after which none of them can still be valid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub kind: RevocationKind,
    /// Session id, device id, user id, or `""` for [`RevocationKind::All`].
    pub value: String,
    /// Access tokens with `iat <= cutoff` are refused.
    pub cutoff: i64,
    /// The entry is kept while `now <= expires_at`: as long as the longest access token it
    /// may cover can live (`tokens.max_token_ttl`).
    pub expires_at: i64,
}

impl Revocation {
    /// The entry's key in the token store: one entry per kind and value.
    pub(crate) fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.value)
    }

    /// This entry merged with `stored` (same kind and value): the later cutoff and the
    /// later expiry win, so an entry never weakens.
    #[must_use]
    pub fn merged(&self, stored: &Revocation) -> Revocation {
        Revocation {
            cutoff: self.cutoff.max(stored.cutoff),
            expires_at: self.expires_at.max(stored.expires_at),
            ..self.clone()
        }
    }
}

/// The value of a device revocation scoped to one user.
pub fn user_device(user: &str, device: &str) -> String {
    format!("{user}/{device}")
}

/// The user and device of a value made by [`user_device`]; `None` for a bare device id
/// (names never contain `/`).
pub fn split_user_device(value: &str) -> Option<(&str, &str)> {
    value.split_once('/')
}

/// One immutable view of the revocations (swapped whole on change; read lock-free).
#[derive(Debug, Default, Clone)]
pub struct RevocationIndex {
    sessions: HashMap<String, Revocation>,
    devices: HashMap<String, Revocation>,
    users: HashMap<String, Revocation>,
    all: Option<Revocation>,
}

impl RevocationIndex {
    /// Why this token is revoked, if it is (a stable code).
    pub fn check(&self, c: &AccessClaims) -> Option<&'static str> {
        self.check_parts(&c.sub, &c.sid, c.did.as_deref(), c.iat)
    }

    /// The same check from the parts a live connection's record carries.
    pub fn check_parts(
        &self,
        user: &str,
        session: &str,
        device: Option<&str>,
        iat: i64,
    ) -> Option<&'static str> {
        let hit = |r: Option<&Revocation>| r.is_some_and(|r| iat <= r.cutoff);
        if hit(self.sessions.get(session)) {
            return Some("session-revoked");
        }
        if let Some(d) = device.filter(|_| !self.devices.is_empty())
            && (hit(self.devices.get(d)) || hit(self.devices.get(&user_device(user, d))))
        {
            return Some("device-revoked");
        }
        if hit(self.users.get(user)) {
            return Some("user-revoked");
        }
        if hit(self.all.as_ref()) {
            return Some("all-revoked");
        }
        None
    }

    /// The entries refusing every token of `user` up to a time (the user's own, and one for
    /// everyone), the latest cutoff first: what `explain` tells of a user.
    pub fn of_user(&self, user: &str) -> Vec<&Revocation> {
        let mut found: Vec<&Revocation> = self
            .users
            .get(user)
            .into_iter()
            .chain(self.all.as_ref())
            .collect();
        found.sort_by_key(|r| std::cmp::Reverse(r.cutoff));
        found
    }

    fn slot(&mut self, kind: RevocationKind, value: &str) -> Option<&mut Revocation> {
        match kind {
            RevocationKind::All => self.all.as_mut(),
            RevocationKind::Session => self.sessions.get_mut(value),
            RevocationKind::Device => self.devices.get_mut(value),
            RevocationKind::User => self.users.get_mut(value),
        }
    }

    /// Whether an entry here already refuses everything `r` refuses, as long.
    pub fn covers(&self, r: &Revocation) -> bool {
        let held = match r.kind {
            RevocationKind::All => self.all.as_ref(),
            RevocationKind::Session => self.sessions.get(&r.value),
            RevocationKind::Device => self.devices.get(&r.value),
            RevocationKind::User => self.users.get(&r.value),
        };
        held.is_some_and(|h| h.cutoff >= r.cutoff && h.expires_at >= r.expires_at)
    }

    /// Adds `r`, merged with the entry of the same kind and value (see [`Revocation::merged`]).
    fn insert(&mut self, r: Revocation) {
        if let Some(held) = self.slot(r.kind, &r.value) {
            *held = r.merged(held);
            return;
        }
        match r.kind {
            RevocationKind::All => self.all = Some(r),
            RevocationKind::Session => drop(self.sessions.insert(r.value.clone(), r)),
            RevocationKind::Device => drop(self.devices.insert(r.value.clone(), r)),
            RevocationKind::User => drop(self.users.insert(r.value.clone(), r)),
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len() + self.devices.len() + self.users.len() + usize::from(self.all.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shared, swappable index. Every change bumps an epoch and is announced to
/// subscribers (live enforcement kicks the matching connections).
#[derive(Debug, Clone)]
pub struct Revocations {
    current: Arc<ArcSwap<RevocationIndex>>,
    epoch: Arc<std::sync::atomic::AtomicU64>,
    changes: tokio::sync::broadcast::Sender<Vec<Revocation>>,
    /// Serializes changes, so an entry applied twice at once is announced once.
    writer: Arc<std::sync::Mutex<()>>,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations::new([])
    }
}

impl Revocations {
    pub fn new(initial: impl IntoIterator<Item = Revocation>) -> Self {
        let mut idx = RevocationIndex::default();
        initial.into_iter().for_each(|r| idx.insert(r));
        Revocations {
            current: Arc::new(ArcSwap::from_pointee(idx)),
            epoch: Default::default(),
            changes: tokio::sync::broadcast::channel(1024).0,
            writer: Arc::default(),
        }
    }

    /// Incremented after every change (read it before [`Revocations::load`]).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Revocations as they are applied.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Vec<Revocation>> {
        self.changes.subscribe()
    }

    /// The current view (cheap; for the request path).
    pub fn load(&self) -> Arc<RevocationIndex> {
        self.current.load_full()
    }

    /// Add revocations (rare: copy, insert, swap). Those already in force change nothing
    /// and are not announced (the same entry arrives from this instance and from the
    /// store's watch: one enforcement, not two).
    pub fn apply(&self, revs: impl IntoIterator<Item = Revocation>) {
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let held = self.load();
        let revs: Vec<Revocation> = revs.into_iter().filter(|r| !held.covers(r)).collect();
        if revs.is_empty() {
            return;
        }
        self.current.rcu(|cur| {
            let mut next = RevocationIndex::clone(cur);
            for r in &revs {
                next.insert(r.clone());
            }
            next
        });
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let _ = self.changes.send(revs);
    }

    /// Forget entries that can no longer match a live access token.
    pub fn prune(&self, now: i64) {
        self.current.rcu(|cur| {
            let mut next = RevocationIndex::clone(cur);
            next.sessions.retain(|_, r| r.expires_at > now);
            next.devices.retain(|_, r| r.expires_at > now);
            next.users.retain(|_, r| r.expires_at > now);
            if next.all.as_ref().is_some_and(|r| r.expires_at <= now) {
                next.all = None;
            }
            next
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, sid: &str, did: Option<&str>, iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: sub.into(),
            sid: sid.into(),
            did: did.map(str::to_string),
            tid: "t".into(),
            iat,
            exp: iat + 300,
            sexp: None,
            ext: None,
            client_id: None,
        }
    }

    fn rev(kind: RevocationKind, value: &str, cutoff: i64) -> Revocation {
        Revocation {
            kind,
            value: value.into(),
            cutoff,
            expires_at: cutoff + 300,
        }
    }

    #[test]
    fn each_kind_refuses_only_what_it_names_and_only_up_to_its_cutoff() {
        let r = Revocations::default();
        r.apply([
            rev(RevocationKind::Session, "s1", 100),
            rev(RevocationKind::Device, "phone", 100),
            rev(RevocationKind::User, "carol", 100),
        ]);
        let idx = r.load();
        assert_eq!(
            idx.check(&claims("bob", "s1", None, 100)),
            Some("session-revoked")
        );
        assert_eq!(
            idx.check(&claims("bob", "s1", None, 101)),
            None,
            "issued after the cutoff"
        );
        assert_eq!(
            idx.check(&claims("bob", "s2", Some("phone"), 50)),
            Some("device-revoked")
        );
        assert_eq!(idx.check(&claims("bob", "s2", Some("laptop"), 50)), None);
        assert_eq!(idx.check(&claims("carol", "s9", None, 99)), Some("user-revoked"));
        assert_eq!(idx.check(&claims("dave", "s9", None, 99)), None);
        r.apply([rev(RevocationKind::All, "", 120)]);
        assert_eq!(
            r.load().check(&claims("dave", "s9", None, 99)),
            Some("all-revoked")
        );
    }

    #[test]
    fn entries_are_forgotten_when_no_live_token_can_match() {
        let r = Revocations::new([rev(RevocationKind::Session, "s1", 100)]);
        r.prune(399);
        assert_eq!(r.load().len(), 1);
        r.prune(400);
        assert!(r.load().is_empty());
    }

    #[test]
    fn a_revoke_request_names_exactly_one_target() {
        let req = |v: serde_json::Value| serde_json::from_value::<RevokeRequest>(v).map(|r| r.target());
        use serde_json::json;
        let ok = [
            (json!({"userId": "bob"}), RevokeTarget::User("bob".into())),
            (json!({"deviceId": "phone"}), RevokeTarget::Device("phone".into())),
            (
                json!({"userId": "bob", "deviceId": "phone"}),
                RevokeTarget::UserDevice {
                    user: "bob".into(),
                    device: "phone".into(),
                },
            ),
            (json!({"sessionId": "s1"}), RevokeTarget::Session("s1".into())),
            (json!({"before": 100}), RevokeTarget::Before(100)),
            (json!({"before": "100"}), RevokeTarget::Before(100)),
            (
                json!({"before": "1970-01-01T00:01:40Z"}),
                RevokeTarget::Before(100),
            ),
        ];
        for (body, want) in ok {
            assert_eq!(req(body.clone()).unwrap(), Ok(want), "{body}");
        }
        for body in [
            json!({}),
            json!({"userId": "a", "sessionId": "b"}),
            json!({"userId": "a", "deviceId": "b", "sessionId": "c"}),
            json!({"deviceId": "b", "sessionId": "c"}),
        ] {
            assert_eq!(
                req(body.clone()).unwrap(),
                Err(BadRevokeRequest::NotOneTarget),
                "{body}"
            );
        }
        for body in [
            json!({"before": "soon"}),
            json!({"before": 1.5}),
            json!({"before": true}),
        ] {
            assert!(
                matches!(req(body.clone()).unwrap(), Err(BadRevokeRequest::Time(_))),
                "{body}"
            );
        }
        assert!(
            req(json!({"userid": "bob"})).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn a_later_cutoff_wins() {
        let r = Revocations::new([rev(RevocationKind::User, "bob", 100)]);
        r.apply([
            rev(RevocationKind::User, "bob", 200),
            rev(RevocationKind::User, "bob", 150),
        ]);
        assert_eq!(
            r.load().check(&claims("bob", "s", None, 180)),
            Some("user-revoked")
        );
    }

    /// The value each kind is checked against, for a token of bob on session s1, device phone.
    fn value(kind: RevocationKind) -> &'static str {
        match kind {
            RevocationKind::Session => "s1",
            RevocationKind::Device => "bob/phone",
            RevocationKind::User => "bob",
            RevocationKind::All => "",
        }
    }

    #[test]
    fn a_weaker_revocation_never_undoes_a_stronger_one_of_any_kind() {
        use RevocationKind::*;
        for kind in [Session, Device, User, All] {
            let strong = Revocation {
                kind,
                value: value(kind).into(),
                cutoff: 200,
                expires_at: 500,
            };
            // Earlier cutoff, later expiry: it adds time, it must not take back the cutoff.
            let weaker_cutoff = Revocation {
                cutoff: 100,
                expires_at: 900,
                ..strong.clone()
            };
            // Later cutoff, earlier expiry: it adds a cutoff, it must not shorten the life.
            let shorter_life = Revocation {
                cutoff: 300,
                expires_at: 400,
                ..strong.clone()
            };
            let token = |iat| claims("bob", "s1", Some("phone"), iat);
            let r = Revocations::new([strong.clone()]);
            r.apply([weaker_cutoff]);
            assert!(r.load().check(&token(150)).is_some(), "{kind:?}: cutoff 200 kept");
            assert!(r.load().check(&token(200)).is_some(), "{kind:?}: cutoff 200 kept");
            r.prune(600);
            assert!(r.load().check(&token(150)).is_some(), "{kind:?}: expiry 900 kept");
            let r = Revocations::new([strong]);
            r.apply([shorter_life]);
            assert!(
                r.load().check(&token(250)).is_some(),
                "{kind:?}: cutoff 300 taken"
            );
            r.prune(450);
            assert!(r.load().check(&token(250)).is_some(), "{kind:?}: expiry 500 kept");
            r.prune(500);
            assert!(r.load().is_empty(), "{kind:?}: gone after its expiry");
        }
    }
}
