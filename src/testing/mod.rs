//! One test world for unit tests, integration tests, fuzzing and benchmarks (cargo feature
//! `testing`): the keys of a callout and of a nats-server, access-token keys, the permission
//! texts, a decision policy, and a request exactly as nats-server 2.15.1 sends it.
//!
//! Not part of the service: compiled only for tests and with the feature.

pub mod fuzz;
pub mod rooms_suite;
pub mod store_suite;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use nkeys::{KeyPair, KeyPairType, XKey};
use serde_json::{Value, json};

use crate::callout::Callout;
use crate::callout::decision::Policy;
use crate::claims::encode;
use crate::claims::request::{AuthRequest, ClientInfo, ConnectOpts};
use crate::config::CalloutSettings;
use crate::keys::CalloutKeys;
use crate::permissions::Access;
use crate::permissions::{Permissions, Snapshot};
use crate::tokens::access::kid_for;
use crate::tokens::revocation::{Revocation, Revocations};
use crate::tokens::store::{
    PurgeReport, RotateStep, RotateView, SessionInfo, SessionRecord, SessionSelector, StoreError, TokenHash,
    TokenRecord, TokenStore,
};
use crate::tokens::{AccessClaims, MintRequest, TokenKeys};

/// A fixed clock for tests that need one (unix seconds).
pub const NOW: i64 = 1_700_000_000;
/// The access-token issuer and audience of the test world (the service's defaults).
pub const TOKEN_ISSUER: &str = "nats-callout";
pub const TOKEN_AUDIENCE: &str = "nats";

/// A permission set with every kind of grant: direct grants (read-only, write-only, a
/// pattern), a group, rooms with user and group members, an admin, a sysadmin and a
/// service user.
pub const PERMISSIONS: &str = r#"
[users.bob]
groups = ["everyone"]
[users.bob.rooms]
bob1 = "readwrite"
news = "read"
drop = "write"
[users.alice]
groups = ["everyone"]
[users.alice.rooms]
alice1 = "readwrite"
"team-*" = "read"
[users.root]
roles = ["admin"]
[users.sysop]
roles = ["sysadmin"]
[users.svc]
roles = ["service"]
[users.svc.rooms]
ops = "write"
[groups.everyone]
members = []
[groups.devs]
members = ["alice", "svc"]
[rooms.all1]
members = ["@everyone"]
[rooms.dev]
members = ["@devs"]
access = "read"
[rooms."x*y"]
members = ["bob"]
access = "write"
"#;

/// A room in data named `name`, incarnation `id`, made by `creator` (its first owner).
pub fn room_event(
    name: &str,
    id: &str,
    creator: &str,
    join: crate::rooms::JoinPolicy,
) -> crate::rooms::RoomEvent {
    crate::rooms::RoomEvent::Room(crate::rooms::RoomRecord {
        name: name.into(),
        id: id.into(),
        description: None,
        join,
        created_at: 0,
        created_by: creator.into(),
    })
}

/// `user`'s membership of incarnation `id` of `room`.
pub fn member_event(
    room: &str,
    id: &str,
    user: &str,
    access: Access,
    owner: bool,
) -> crate::rooms::RoomEvent {
    crate::rooms::RoomEvent::Member {
        room: room.into(),
        user: user.into(),
        member: crate::rooms::MemberRecord {
            room_id: id.into(),
            access,
            owner,
            added_at: 0,
            added_by: "alice".into(),
            left: false,
        },
    }
}

/// The nats-server binary: `NATS_SERVER_BIN`, then `.tools/` (where `make test` installs
/// it), then `PATH`.
pub fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        // Absolute, so that it also works from another working directory.
        return std::fs::canonicalize(&p).unwrap_or_else(|_| p.into());
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/nats-server");
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}

/// Raise this process's open-file limit to the hard limit (children inherit it) and return
/// the limit now in force: tests and benchmarks that hold thousands of sockets need it.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// The repository's demo permission files (`permissions/`).
pub fn demo_permissions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions")
}

/// The demo permission files as a snapshot.
pub fn demo_snapshot() -> Snapshot {
    Snapshot::load_dir(&demo_permissions_dir()).expect("the demo permissions load")
}

/// One permission file's text as a snapshot.
pub fn snapshot(text: &str) -> Snapshot {
    Snapshot::from_sources(&[("test.toml".to_string(), text.to_string())]).expect("test permissions load")
}

/// The default decision rules, with the default token-reset roles (sysadmin, service).
pub fn policy() -> Policy {
    let roles = crate::config::EnforcementSettings::default().token_reset_roles;
    Policy::with_token_reset_roles(&CalloutSettings::default(), &roles).expect("the default policy is valid")
}

/// A request as the decision sees it once verified: a client of `kind`/`client_type`
/// with `token` in `auth_token` and `rooms` in `user`.
pub fn auth_request(token: Option<&str>, rooms: Option<&str>, kind: &str, client_type: &str) -> AuthRequest {
    AuthRequest {
        user_nkey: "UTEST".into(),
        client_info: ClientInfo {
            kind: kind.into(),
            client_type: client_type.into(),
            ..Default::default()
        },
        connect_opts: ConnectOpts {
            auth_token: token.map(str::to_string),
            user: rooms.map(str::to_string),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A callout's keys, one nats-server's keys and the access-token keys.
pub struct World {
    /// The callout's issuer account key.
    pub issuer: KeyPair,
    /// The callout's curve key (requests are sealed to it).
    pub xkey: XKey,
    /// The nats-server that signs requests, and its curve key.
    pub server: KeyPair,
    pub server_xkey: XKey,
    /// What the callout verifies access tokens with (with its verified-token cache).
    pub tokens: Arc<TokenKeys>,
    /// The same signing key in another instance: what the login service mints with, so
    /// that the callout has not seen its tokens.
    pub minter: TokenKeys,
    /// The token signing key, its PKCS#8 PEM and its `kid` (to sign arbitrary bodies).
    pub signing: ed25519_dalek::SigningKey,
    pub token_pem: String,
    pub kid: String,
}

impl World {
    /// Keys made from fixed bytes: every run sees the same keys (fuzz inputs replay
    /// identically in any process).
    pub fn fixed() -> World {
        Self::from_parts(
            KeyPair::new_from_raw(KeyPairType::Account, [1; 32]).expect("account key"),
            XKey::new_from_raw([2; 32]),
            KeyPair::new_from_raw(KeyPairType::Server, [3; 32]).expect("server key"),
            XKey::new_from_raw([4; 32]),
            ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
        )
    }

    /// Fresh random keys.
    pub fn random() -> World {
        Self::from_parts(
            KeyPair::new_account(),
            XKey::new(),
            KeyPair::new_server(),
            XKey::new(),
            ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        )
    }

    /// A world around a running callout's keys (from its seed files): random server and
    /// token keys, so that tests can play nats-server against it.
    pub fn for_callout(issuer: KeyPair, xkey: XKey) -> World {
        Self::from_parts(
            issuer,
            xkey,
            KeyPair::new_server(),
            XKey::new(),
            ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        )
    }

    fn from_parts(
        issuer: KeyPair,
        xkey: XKey,
        server: KeyPair,
        server_xkey: XKey,
        signing: ed25519_dalek::SigningKey,
    ) -> World {
        let token_pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an ed25519 key encodes")
            .to_string();
        let keys = || {
            TokenKeys::new(TOKEN_ISSUER, TOKEN_AUDIENCE)
                .with_signing_pem(&token_pem)
                .expect("a fresh signing key loads")
        };
        World {
            kid: kid_for(&signing.verifying_key().to_bytes()),
            tokens: Arc::new(keys()),
            minter: keys(),
            issuer,
            xkey,
            server,
            server_xkey,
            signing,
            token_pem,
        }
    }

    pub fn issuer_public(&self) -> String {
        self.issuer.public_key()
    }

    /// A copy of the issuer key (key pairs do not clone).
    pub fn issuer_key(&self) -> KeyPair {
        KeyPair::from_seed(&self.issuer.seed().expect("a seed")).expect("the issuer key")
    }

    /// An access token for `user` on session `s1` (5 minutes, like the service mints),
    /// minted by [`World::minter`] so that the callout has not seen it.
    pub fn token(&self, user: &str, now: i64) -> String {
        self.mint(user, None, None, now).0
    }

    /// An access token with a device and a session end, and its claims.
    pub fn mint(
        &self,
        user: &str,
        device: Option<&str>,
        session_end: Option<i64>,
        now: i64,
    ) -> (String, AccessClaims) {
        let req = MintRequest {
            user,
            session: "s1",
            device,
            ttl: Duration::from_secs(300),
            session_expires_at: session_end,
            asserted: None,
            client_id: None,
        };
        // A token id of its own: two tokens minted in the same second differ, so a
        // "fresh" token is never one the callout has verified before.
        self.minter.mint(&req, now).expect("mint")
    }

    /// The claims of the request nats-server 2.15.1 sends for a plain client with `token`
    /// in `auth_token` and `rooms` in `user` (what the server writes, field for field).
    pub fn request_claims(&self, token: &str, rooms: &str, now: i64) -> Value {
        let server = self.server.public_key();
        json!({
            "aud": crate::claims::request::REQUEST_AUDIENCE, "exp": now + 2, "iat": now, "iss": server,
            "jti": nuid::next().to_string(), "sub": self.issuer_public(),
            "nats": {
                "server_id": {"name": "test", "host": "127.0.0.1", "id": server,
                              "version": "2.15.1", "xkey": self.server_xkey.public_key()},
                "user_nkey": KeyPair::new_user().public_key(),
                "client_info": {"host": "127.0.0.1", "id": 4242, "user": "[REDACTED]",
                                "kind": "Client", "type": "nats", "rtt": "412µs",
                                "start": "2026-11-26T00:00:00.000000000Z"},
                "connect_opts": {"auth_token": token, "user": rooms, "pass": "",
                                 "lang": "rust", "version": "0.51.0", "protocol": 1},
                "type": crate::claims::request::REQUEST_TYPE, "version": 2
            }
        })
    }

    /// [`World::request_claims`] signed by the server.
    pub fn request_jwt(&self, token: &str, rooms: &str, now: i64) -> String {
        self.sign_request(&self.request_claims(token, rooms, now))
    }

    /// Sign request claims as the server does.
    pub fn sign_request(&self, claims: &Value) -> String {
        encode(claims, &self.server).expect("sign request")
    }

    /// A JWT with `body` as its claims (not checked), signed by the server key.
    pub fn server_signed(&self, body: &[u8]) -> String {
        let mut jwt = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(body));
        let sig = self.server.sign(jwt.as_bytes()).expect("sign");
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(sig));
        jwt
    }

    /// Seal `data` as nats-server does, from its curve key to the callout's.
    pub fn seal(&self, data: &[u8]) -> Vec<u8> {
        let ours = XKey::from_public_key(&self.xkey.public_key()).expect("public xkey");
        self.server_xkey.seal(data, &ours).expect("seal")
    }

    /// [`World::request_jwt`] sealed to the callout, as it arrives with xkey on.
    pub fn sealed_request(&self, token: &str, rooms: &str, now: i64) -> Vec<u8> {
        self.seal(self.request_jwt(token, rooms, now).as_bytes())
    }

    /// Open a reply sealed by the callout to the server.
    pub fn open_reply(&self, reply: &[u8]) -> Option<Vec<u8>> {
        let ours = XKey::from_public_key(&self.xkey.public_key()).ok()?;
        self.server_xkey.open(reply, &ours).ok()
    }

    /// A callout over `snapshot` with [`policy`], sealing with the xkey when `xkey`.
    pub fn callout(&self, snapshot: Snapshot, xkey: bool) -> Callout {
        let xkey = xkey.then(|| XKey::from_seed(&self.xkey.seed().expect("a seed")).expect("the xkey"));
        Callout::new(
            CalloutKeys::new(self.issuer_key(), xkey),
            self.tokens.clone(),
            Permissions::new(snapshot),
            Revocations::default(),
            policy(),
        )
    }
}

/// A real token store that can be taken down and brought back: while down, every call
/// fails with [`StoreError::Unavailable`] (what a lost disk or an unreachable JetStream
/// looks like to the service).
pub struct Faulty<S> {
    inner: S,
    down: std::sync::atomic::AtomicBool,
}

impl<S: TokenStore> Faulty<S> {
    pub fn new(inner: S) -> Self {
        Faulty {
            inner,
            down: Default::default(),
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn up(&self) -> Result<&S, StoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(StoreError::Unavailable("taken down by the test".into()))
        } else {
            Ok(&self.inner)
        }
    }
}

#[async_trait::async_trait]
impl<S: TokenStore> TokenStore for Faulty<S> {
    async fn create_session(
        &self,
        session: &SessionRecord,
        first: &TokenHash,
        token: &TokenRecord,
    ) -> Result<(), StoreError> {
        self.up()?.create_session(session, first, token).await
    }
    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.up()?.token(hash).await
    }
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.up()?.session(id).await
    }
    async fn sessions_of(&self, user: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.up()?.sessions_of(user).await
    }
    async fn use_once(&self, key: &str, expires_at: i64) -> Result<bool, StoreError> {
        self.up()?.use_once(key, expires_at).await
    }
    async fn rotate(
        &self,
        hash: &TokenHash,
        decide: &mut (dyn for<'v> FnMut(RotateView<'v>) -> RotateStep + Send),
    ) -> Result<bool, StoreError> {
        self.up()?.rotate(hash, decide).await
    }
    async fn revoke_sessions(
        &self,
        which: SessionSelector<'_>,
        at: i64,
        reason: &str,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        self.up()?.revoke_sessions(which, at, reason).await
    }
    async fn record_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        self.up()?.record_revocation(revocation).await
    }
    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.up()?.revocations().await
    }
    async fn purge(&self, now: i64, tombstone: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        self.up()?.purge(now, tombstone, batch).await
    }
    async fn check(&self) -> Result<(), StoreError> {
        self.up()?.check().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmarks' "fresh token" cases rely on it: a token from [`World::token`] is one
    /// the callout's keys have never verified, however many are minted in one second.
    #[test]
    fn tokens_are_fresh_to_the_callout() {
        let w = World::random();
        let now = crate::clock::now_secs();
        let (a, b) = (w.token("bob", now), w.token("bob", now));
        assert_ne!(a, b);
        assert_eq!(w.tokens.cached_tokens(), 0);
        w.tokens.verify(&a, now).expect("it verifies");
        assert_eq!(w.tokens.cached_tokens(), 1, "verified once, then cached");
    }
}
