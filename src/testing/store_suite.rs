//! The token store's behaviour as one suite, run against every backend: the unit tests run
//! it on redb, the integration tests on JetStream KV (a real nats-server). The clock is
//! given to every call, so the suite needs no sleeping.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::tokens::refresh::{Issued, REUSE_REASON, RefreshError, RefreshService, RefreshSettings};
use crate::tokens::revocation::{Revocation, RevocationKind};
use crate::tokens::store::{RedbStore, TokenHash};
use crate::tokens::{Opening, SessionSelector};

/// The refresh-token secret of the suite.
pub const SECRET: [u8; 32] = [7; 32];

/// idle 100 s, absolute 250 s, grace 20 s, tombstone 50 s.
pub fn settings() -> RefreshSettings {
    RefreshSettings {
        idle: Duration::from_secs(100),
        absolute: Duration::from_secs(250),
        grace: Duration::from_secs(20),
        tombstone: Duration::from_secs(50),
    }
}

fn code<T: fmt::Debug>(r: Result<T, RefreshError>) -> &'static str {
    r.expect_err("expected an error").code()
}

/// A token store under test.
#[async_trait::async_trait]
pub trait Backend: Sync {
    /// A refresh service over this backend's data: the same data every time it is called
    /// (drop the previous one first: a reopening).
    async fn service(&self) -> RefreshService;
    /// Two services over the same data at once, as two instances see it.
    async fn pair(&self) -> (Arc<RefreshService>, Arc<RefreshService>);
}

/// The embedded redb store, in a temp dir.
pub struct RedbBackend {
    dir: tempfile::TempDir,
}

impl RedbBackend {
    pub fn new() -> Self {
        RedbBackend {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }
}

impl Default for RedbBackend {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Backend for RedbBackend {
    async fn service(&self) -> RefreshService {
        let store = RedbStore::open(&self.dir.path().join("tokens.redb")).expect("the store opens");
        RefreshService::new(Arc::new(store), SECRET, settings())
    }

    /// One process holds the file: both "instances" share it.
    async fn pair(&self) -> (Arc<RefreshService>, Arc<RefreshService>) {
        let one = Arc::new(self.service().await);
        (one.clone(), one)
    }
}

pub async fn start_and_rotate_chain(backend: &dyn Backend) {
    let svc = backend.service().await;
    let first = svc
        .open(&Opening::plain("bob", Some("laptop"), Some("web")), 1000)
        .await
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
        let next = svc.rotate(&token, now).await.unwrap();
        assert_ne!(next.refresh_token, token);
        assert_eq!(next.generation, i as u64 + 2);
        assert_eq!(next.issued_at, now);
        assert_eq!(next.refresh_expires_at, now + 100);
        assert_eq!(next.session.id, first.session.id);
        token = next.refresh_token;
    }
    assert_eq!(
        svc.session_for_token(&first.refresh_token).await.unwrap().id,
        first.session.id
    );
    assert_eq!(
        svc.session(&first.session.id).await.unwrap().unwrap(),
        first.session
    );
    assert!(svc.session("nope").await.unwrap().is_none());
}

pub async fn exactly_one_successor(backend: &dyn Backend) {
    let svc = backend.service().await;
    let a = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let b = svc.rotate(&a.refresh_token, 10).await.unwrap();
    // The replay within the window gives the same successor, not a second one.
    let b2 = svc.rotate(&a.refresh_token, 11).await.unwrap();
    assert_eq!(b, b2);
    let c = svc.rotate(&b.refresh_token, 12).await.unwrap();
    assert_eq!(c.generation, 3);
    // b is used; only c continues the family.
    assert_eq!(
        code(svc.rotate(&b.refresh_token, 60).await),
        "refresh-token-reused"
    );
}

pub async fn reuse_after_grace_revokes_the_family(backend: &dyn Backend) {
    let svc = backend.service().await;
    let other = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let a = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let b = svc.rotate(&a.refresh_token, 10).await.unwrap();
    // 10 + 20 is still in the window; 31 is not.
    assert_eq!(svc.rotate(&a.refresh_token, 30).await.unwrap(), b);
    let e = svc.rotate(&a.refresh_token, 31).await.unwrap_err();
    assert!(matches!(e, RefreshError::Reused));
    assert_eq!(e.code(), "refresh-token-reused");
    assert_eq!(
        code(svc.rotate(&b.refresh_token, 32).await),
        "refresh-token-revoked"
    );
    assert_eq!(
        code(svc.rotate(&a.refresh_token, 33).await),
        "refresh-token-revoked"
    );
    let s = svc.session(&a.session.id).await.unwrap().unwrap();
    assert_eq!(s.revoked_at, Some(31));
    assert_eq!(s.revoke_reason.as_deref(), Some(REUSE_REASON));
    // Another session of the same user is untouched.
    assert!(svc.rotate(&other.refresh_token, 34).await.is_ok());
}

pub async fn grace_replay_returns_the_identical_successor(backend: &dyn Backend) {
    let svc = backend.service().await;
    let a = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let b = svc.rotate(&a.refresh_token, 100 - 90).await.unwrap();
    let again = svc.rotate(&a.refresh_token, 25).await.unwrap();
    assert_eq!(again.refresh_token, b.refresh_token);
    assert_eq!(again.issued_at, 10);
    assert_eq!(again.refresh_expires_at, b.refresh_expires_at);
    assert_eq!(again.generation, b.generation);
    assert_eq!(again, b);
    // The successor still works normally afterwards.
    assert_eq!(svc.rotate(&b.refresh_token, 26).await.unwrap().generation, 3);
}

pub async fn replay_of_an_older_generation_is_reuse(backend: &dyn Backend) {
    let svc = backend.service().await;
    let a = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let b = svc.rotate(&a.refresh_token, 1).await.unwrap();
    let c = svc.rotate(&b.refresh_token, 2).await.unwrap();
    // a is within its grace window but is c's grand-predecessor.
    assert_eq!(
        code(svc.rotate(&a.refresh_token, 3).await),
        "refresh-token-reused"
    );
    assert_eq!(
        code(svc.rotate(&c.refresh_token, 4).await),
        "refresh-token-revoked"
    );
}

pub async fn replay_whose_successor_was_rotated_is_reuse(backend: &dyn Backend) {
    let svc = backend.service().await;
    let a = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let b = svc.rotate(&a.refresh_token, 1).await.unwrap();
    let c = svc.rotate(&b.refresh_token, 2).await.unwrap();
    // b is c's immediate predecessor and in its window: forgiven.
    assert_eq!(svc.rotate(&b.refresh_token, 3).await.unwrap(), c);
    svc.rotate(&c.refresh_token, 4).await.unwrap();
    // Now b's successor has itself been rotated.
    assert_eq!(
        code(svc.rotate(&b.refresh_token, 5).await),
        "refresh-token-reused"
    );
}

pub async fn a_changed_secret_cannot_replay(backend: &dyn Backend) {
    let svc = backend.service().await;
    let store = svc.store().clone();
    let a = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let b = svc.rotate(&a.refresh_token, 1).await.unwrap();
    let other = RefreshService::new(store, [8; 32], settings());
    assert_eq!(
        code(other.rotate(&a.refresh_token, 2).await),
        "refresh-token-reused"
    );
    assert_eq!(
        code(svc.rotate(&b.refresh_token, 3).await),
        "refresh-token-revoked"
    );
}

pub async fn expiry_by_idle_lifetime(backend: &dyn Backend) {
    let svc = backend.service().await;
    let a = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    assert_eq!(
        code(svc.rotate(&a.refresh_token, 100).await),
        "refresh-token-expired"
    );
    let b = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let c = svc.rotate(&b.refresh_token, 99).await.unwrap();
    assert_eq!(c.refresh_expires_at, 199);
    assert_eq!(
        code(svc.rotate(&c.refresh_token, 199).await),
        "refresh-token-expired"
    );
    // An expired used token is expired, not reused: the family stays as it was.
    assert_eq!(
        code(svc.rotate(&b.refresh_token, 200).await),
        "refresh-token-expired"
    );
    assert!(
        svc.session(&b.session.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
}

pub async fn expiry_by_absolute_cap(backend: &dyn Backend) {
    let svc = backend.service().await;
    let a = svc.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let b = svc.rotate(&a.refresh_token, 90).await.unwrap();
    let c = svc.rotate(&b.refresh_token, 180).await.unwrap();
    // 180 + 100 would pass the session's end at 250.
    assert_eq!(c.refresh_expires_at, 250);
    let d = svc.rotate(&c.refresh_token, 249).await.unwrap();
    assert_eq!(d.refresh_expires_at, 250);
    assert_eq!(
        code(svc.rotate(&d.refresh_token, 250).await),
        "refresh-token-expired"
    );
}

pub async fn revoke_session_touches_only_that_session(backend: &dyn Backend) {
    let svc = backend.service().await;
    let a = svc
        .open(&Opening::plain("bob", Some("laptop"), None), 0)
        .await
        .unwrap();
    let b = svc
        .open(&Opening::plain("bob", Some("laptop"), None), 0)
        .await
        .unwrap();
    let revoke = |id, reason, now| svc.revoke(SessionSelector::Id(id), reason, now);
    assert_eq!(revoke(&a.session.id, "logout", 5).await.unwrap().len(), 1);
    assert!(revoke(&a.session.id, "again", 6).await.unwrap().is_empty());
    assert!(revoke("unknown", "x", 6).await.unwrap().is_empty());
    let s = svc.session(&a.session.id).await.unwrap().unwrap();
    assert_eq!(
        (s.revoked_at, s.revoke_reason.as_deref()),
        (Some(5), Some("logout"))
    );
    assert_eq!(
        code(svc.rotate(&a.refresh_token, 7).await),
        "refresh-token-revoked"
    );
    assert!(svc.rotate(&b.refresh_token, 7).await.is_ok());
    // Logout by refresh cookie still finds a revoked session.
    assert_eq!(
        svc.session_for_token(&a.refresh_token).await.unwrap().id,
        a.session.id
    );
}

pub async fn revoke_user_and_device(backend: &dyn Backend) {
    let svc = backend.service().await;
    let bob_phone = svc
        .open(&Opening::plain("bob", Some("phone"), None), 0)
        .await
        .unwrap();
    let bob_laptop = svc
        .open(&Opening::plain("bob", Some("laptop"), None), 0)
        .await
        .unwrap();
    let alice_phone = svc
        .open(&Opening::plain("alice", Some("phone2"), None), 0)
        .await
        .unwrap();
    let alice_bare = svc.open(&Opening::plain("alice", None, None), 0).await.unwrap();

    let revoked = svc
        .revoke(SessionSelector::Device("phone"), "lost", 5)
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].id, bob_phone.session.id);
    assert_eq!(revoked[0].revoked_at, Some(5));
    assert_eq!(
        code(svc.rotate(&bob_phone.refresh_token, 6).await),
        "refresh-token-revoked"
    );
    let bob_laptop = svc.rotate(&bob_laptop.refresh_token, 6).await.unwrap();
    let alice_phone = svc.rotate(&alice_phone.refresh_token, 6).await.unwrap();

    let mut ids: Vec<_> = svc
        .revoke(SessionSelector::User("alice"), "admin", 7)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    ids.sort();
    let mut want = vec![alice_phone.session.id.clone(), alice_bare.session.id.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        code(svc.rotate(&alice_phone.refresh_token, 8).await),
        "refresh-token-revoked"
    );
    assert_eq!(
        code(svc.rotate(&alice_bare.refresh_token, 8).await),
        "refresh-token-revoked"
    );
    assert!(svc.rotate(&bob_laptop.refresh_token, 8).await.is_ok());
    // Already revoked sessions are not reported again.
    assert!(
        svc.revoke(SessionSelector::User("alice"), "admin", 9)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        svc.revoke(SessionSelector::Device("nobody"), "x", 9)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        svc.revoke(SessionSelector::User("bob"), "x", 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn revoke_before_is_inclusive(backend: &dyn Backend) {
    let svc = backend.service().await;
    let early = svc.open(&Opening::plain("bob", None, None), 10).await.unwrap();
    let at = svc.open(&Opening::plain("alice", None, None), 20).await.unwrap();
    let late = svc.open(&Opening::plain("bob", None, None), 21).await.unwrap();
    assert_eq!(
        svc.revoke(SessionSelector::CreatedAtOrBefore(20), "reset", 30)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        code(svc.rotate(&early.refresh_token, 31).await),
        "refresh-token-revoked"
    );
    assert_eq!(
        code(svc.rotate(&at.refresh_token, 31).await),
        "refresh-token-revoked"
    );
    assert!(svc.rotate(&late.refresh_token, 31).await.is_ok());
    assert_eq!(
        svc.revoke(SessionSelector::CreatedAtOrBefore(20), "reset", 32)
            .await
            .unwrap()
            .len(),
        0
    );
}

pub async fn revocation_entries(backend: &dyn Backend) {
    let svc = backend.service().await;
    let r = |kind, value: &str, cutoff, expires_at| Revocation {
        kind,
        value: value.into(),
        cutoff,
        expires_at,
    };
    svc.record_revocation(&r(RevocationKind::User, "bob", 10, 310))
        .await
        .unwrap();
    svc.record_revocation(&r(RevocationKind::All, "", 20, 320))
        .await
        .unwrap();
    svc.record_revocation(&r(RevocationKind::Device, "phone", 5, 305))
        .await
        .unwrap();
    assert_eq!(svc.revocations(305).await.unwrap().len(), 3);
    let left = svc.revocations(306).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&r(RevocationKind::All, "", 20, 320)));
    assert_eq!(svc.purge(306, 100).await.unwrap().revocations, 1);
    assert_eq!(svc.purge(400, 100).await.unwrap().revocations, 2);
    assert!(svc.revocations(0).await.unwrap().is_empty());
}

pub async fn reopening_keeps_everything(backend: &dyn Backend) {
    let svc = backend.service().await;
    let a = svc
        .open(&Opening::plain("bob", Some("phone"), None), 0)
        .await
        .unwrap();
    let b = svc.rotate(&a.refresh_token, 10).await.unwrap();
    let gone = svc.open(&Opening::plain("alice", None, None), 0).await.unwrap();
    svc.revoke(SessionSelector::User("alice"), "admin", 11)
        .await
        .unwrap();
    let rev = Revocation {
        kind: RevocationKind::User,
        value: "alice".into(),
        cutoff: 11,
        expires_at: 311,
    };
    svc.record_revocation(&rev).await.unwrap();
    drop(svc);

    let svc = backend.service().await;
    assert_eq!(svc.revocations(12).await.unwrap(), [rev]);
    assert_eq!(svc.rotate(&a.refresh_token, 12).await.unwrap(), b);
    assert_eq!(
        code(svc.rotate(&gone.refresh_token, 12).await),
        "refresh-token-revoked"
    );
    let c = svc.rotate(&b.refresh_token, 13).await.unwrap();
    assert_eq!(c.generation, 3);
    drop(svc);

    let svc = backend.service().await;
    assert_eq!(
        code(svc.rotate(&a.refresh_token, 50).await),
        "refresh-token-reused"
    );
    assert_eq!(
        code(svc.rotate(&c.refresh_token, 51).await),
        "refresh-token-revoked"
    );
    assert_eq!(
        svc.revoke(SessionSelector::Device("phone"), "x", 52)
            .await
            .unwrap()
            .len(),
        0
    );
}

pub async fn concurrent_rotation_yields_one_successor(backend: &dyn Backend) {
    let (one, two) = backend.pair().await;
    let a = one.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let tasks = 8;
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let svc = if i % 2 == 0 { one.clone() } else { two.clone() };
            let (barrier, token) = (barrier.clone(), a.refresh_token.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                svc.rotate(&token, 5).await
            })
        })
        .collect();
    let mut results: Vec<Issued> = Vec::new();
    for h in handles {
        results.push(h.await.unwrap().unwrap());
    }
    assert!(results.iter().all(|r| *r == results[0]));
    assert_eq!(results[0].generation, 2);
    let rec = one.store().session(&a.session.id).await.unwrap().unwrap();
    assert_eq!(rec.generation, 2);
    assert_eq!(rec.current, TokenHash::of(&results[0].refresh_token));
}

pub async fn concurrent_rotation_after_the_window_detects_reuse(backend: &dyn Backend) {
    let (one, two) = backend.pair().await;
    let a = one.open(&Opening::plain("bob", None, None), 0).await.unwrap();
    let b = one.rotate(&a.refresh_token, 1).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let svc = if i % 3 == 0 { one.clone() } else { two.clone() };
            let barrier = barrier.clone();
            let token = if i % 2 == 0 {
                a.refresh_token.clone()
            } else {
                b.refresh_token.clone()
            };
            tokio::spawn(async move {
                barrier.wait().await;
                svc.rotate(&token, 100 - 50).await.map(|i| i.refresh_token)
            })
        })
        .collect();
    let mut successors = std::collections::HashSet::new();
    for h in handles {
        match h.await.unwrap() {
            Ok(t) => {
                successors.insert(t);
            }
            Err(e) => assert!(matches!(e, RefreshError::Reused | RefreshError::Revoked), "{e}"),
        }
    }
    assert!(successors.len() <= 1);
    assert!(
        one.session(&a.session.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
}

/// One `#[tokio::test]` per behaviour of the suite, each with a fresh `$backend`.
/// A key used once is refused ever after (login challenges), on every instance sharing the
/// store.
pub async fn used_once(backend: &dyn Backend) {
    let (svc, other) = backend.pair().await;
    assert!(svc.store().use_once("challenge:a", 60).await.unwrap());
    assert!(!svc.store().use_once("challenge:a", 60).await.unwrap());
    assert!(svc.store().use_once("challenge:b", 60).await.unwrap());
    assert!(
        !other.store().use_once("challenge:b", 60).await.unwrap(),
        "another instance knows it too"
    );
}

/// A user's sessions by application: listed (live ones, most recently used first) and ended
/// one application at a time.
pub async fn sessions_by_application(backend: &dyn Backend) {
    use crate::tokens::refresh::Opening;
    let svc = backend.service().await;
    let open = |client: Option<&'static str>, device: Option<&'static str>, at: i64| {
        let svc = &svc;
        async move {
            let o = Opening {
                user: "bob",
                device,
                client_id: client,
                address: Some("192.0.2.1".into()),
                ..Opening::default()
            };
            svc.open(&o, at).await.unwrap()
        }
    };
    let web = open(Some("web"), Some("laptop"), 0).await;
    let web2 = open(Some("web"), Some("phone"), 1).await;
    let cli = open(Some("cli"), None, 2).await;
    svc.open(&Opening::plain("alice", None, Some("web")), 3)
        .await
        .unwrap();
    let listed = svc.sessions_of("bob", 4).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|s| s.info.id.as_str()).collect();
    assert_eq!(ids, [&cli.session.id, &web2.session.id, &web.session.id]);
    assert_eq!(listed[0].info.address.as_deref(), Some("192.0.2.1"));
    // A rotation is a use: the rotated session comes first.
    svc.rotate(&web.refresh_token, 5).await.unwrap();
    assert_eq!(
        svc.sessions_of("bob", 6).await.unwrap()[0].info.id,
        web.session.id
    );

    let mut ended: Vec<String> = svc
        .revoke(SessionSelector::UserApplication("bob", "web"), "signed out", 7)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    ended.sort();
    let mut want = vec![web.session.id.clone(), web2.session.id.clone()];
    want.sort();
    assert_eq!(ended, want);
    let left = svc.sessions_of("bob", 8).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].info.id, cli.session.id);
    assert_eq!(
        svc.sessions_of("alice", 8).await.unwrap().len(),
        1,
        "alice's web session stays"
    );
    assert!(
        svc.revoke(SessionSelector::UserApplication("bob", "web"), "again", 9)
            .await
            .unwrap()
            .is_empty()
    );
    // Past its end a session is no longer listed.
    assert!(svc.sessions_of("bob", 1000).await.unwrap().is_empty());
}

#[macro_export]
macro_rules! run_store_suite {
    ($backend:expr) => {
        #[tokio::test]
        async fn start_and_rotate_chain() {
            let backend = $backend;
            $crate::testing::store_suite::start_and_rotate_chain(&backend).await;
        }
        #[tokio::test]
        async fn exactly_one_successor() {
            let backend = $backend;
            $crate::testing::store_suite::exactly_one_successor(&backend).await;
        }
        #[tokio::test]
        async fn reuse_after_grace_revokes_the_family() {
            let backend = $backend;
            $crate::testing::store_suite::reuse_after_grace_revokes_the_family(&backend).await;
        }
        #[tokio::test]
        async fn grace_replay_returns_the_identical_successor() {
            let backend = $backend;
            $crate::testing::store_suite::grace_replay_returns_the_identical_successor(&backend).await;
        }
        #[tokio::test]
        async fn replay_of_an_older_generation_is_reuse() {
            let backend = $backend;
            $crate::testing::store_suite::replay_of_an_older_generation_is_reuse(&backend).await;
        }
        #[tokio::test]
        async fn replay_whose_successor_was_rotated_is_reuse() {
            let backend = $backend;
            $crate::testing::store_suite::replay_whose_successor_was_rotated_is_reuse(&backend).await;
        }
        #[tokio::test]
        async fn a_changed_secret_cannot_replay() {
            let backend = $backend;
            $crate::testing::store_suite::a_changed_secret_cannot_replay(&backend).await;
        }
        #[tokio::test]
        async fn expiry_by_idle_lifetime() {
            let backend = $backend;
            $crate::testing::store_suite::expiry_by_idle_lifetime(&backend).await;
        }
        #[tokio::test]
        async fn expiry_by_absolute_cap() {
            let backend = $backend;
            $crate::testing::store_suite::expiry_by_absolute_cap(&backend).await;
        }
        #[tokio::test]
        async fn revoke_session_touches_only_that_session() {
            let backend = $backend;
            $crate::testing::store_suite::revoke_session_touches_only_that_session(&backend).await;
        }
        #[tokio::test]
        async fn revoke_user_and_device() {
            let backend = $backend;
            $crate::testing::store_suite::revoke_user_and_device(&backend).await;
        }
        #[tokio::test]
        async fn used_once() {
            let backend = $backend;
            $crate::testing::store_suite::used_once(&backend).await;
        }
        #[tokio::test]
        async fn sessions_by_application() {
            let backend = $backend;
            $crate::testing::store_suite::sessions_by_application(&backend).await;
        }
        #[tokio::test]
        async fn revoke_before_is_inclusive() {
            let backend = $backend;
            $crate::testing::store_suite::revoke_before_is_inclusive(&backend).await;
        }
        #[tokio::test]
        async fn revocation_entries() {
            let backend = $backend;
            $crate::testing::store_suite::revocation_entries(&backend).await;
        }
        #[tokio::test]
        async fn reopening_keeps_everything() {
            let backend = $backend;
            $crate::testing::store_suite::reopening_keeps_everything(&backend).await;
        }
        #[tokio::test]
        async fn concurrent_rotation_yields_one_successor() {
            let backend = $backend;
            $crate::testing::store_suite::concurrent_rotation_yields_one_successor(&backend).await;
        }
        #[tokio::test]
        async fn concurrent_rotation_after_the_window_detects_reuse() {
            let backend = $backend;
            $crate::testing::store_suite::concurrent_rotation_after_the_window_detects_reuse(&backend).await;
        }
    };
}
pub use run_store_suite as run_suite;
