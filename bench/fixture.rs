//! Keys and requests shaped like nats-server 2.15.1's, shared by the criterion benches
//! (`benches/request_path.rs`) and the load tool (`bench/main.rs`).
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use arc_swap::ArcSwap;
use nats_callout::callout::Callout;
use nats_callout::callout::decision::Policy;
use nats_callout::claims::encode;
use nats_callout::config::CalloutSettings;
use nats_callout::keys::CalloutKeys;
use nats_callout::permissions::Snapshot;
use nats_callout::tokens::access::generate_signing_pem;
use nats_callout::tokens::revocation::Revocations;
use nats_callout::tokens::{MintRequest, TokenKeys};
use nkeys::{KeyPair, XKey};
use serde_json::json;

/// The demo permission files (the benches decide against them).
pub const DEMO_PERMISSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/permissions");

/// A callout's keys plus one nats-server's keys.
pub struct World {
    pub issuer: KeyPair,
    pub xkey: XKey,
    pub server: KeyPair,
    pub server_xkey: XKey,
    /// The callout's token keys (verification, with its verified-token cache).
    pub tokens: Arc<TokenKeys>,
    /// The same signing key in another instance: what the login service mints with, so
    /// that the callout has not seen its tokens.
    pub minter: TokenKeys,
    /// The token signing key (PKCS#8 PEM).
    pub token_pem: String,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        let pem = generate_signing_pem();
        let keys = || {
            TokenKeys::new("nats-callout", "nats")
                .with_signing_pem(&pem)
                .expect("fresh key")
        };
        let (tokens, minter) = (keys(), keys());
        World {
            issuer: KeyPair::new_account(),
            xkey: XKey::new(),
            server: KeyPair::new_server(),
            server_xkey: XKey::new(),
            tokens: Arc::new(tokens),
            minter,
            token_pem: pem.clone(),
        }
    }

    pub fn issuer_public(&self) -> String {
        self.issuer.public_key()
    }

    /// The server's public curve key, as nats-server sends it in `Nats-Server-Xkey`.
    pub fn server_xkey_public(&self) -> String {
        self.server_xkey.public_key()
    }

    /// An access token for `user` (5 minutes, like the service mints), not yet seen by
    /// the callout.
    pub fn token(&self, user: &str, now: i64) -> String {
        self.minter
            .mint(
                &MintRequest {
                    user,
                    session: "bench-session",
                    device: Some("bench"),
                    ttl: Duration::from_secs(300),
                    session_expires_at: None,
                },
                now,
            )
            .expect("mint")
            .0
    }

    /// The signed request JWT nats-server 2.15.1 sends for a client with `token` and `rooms`.
    pub fn request_jwt(&self, token: &str, rooms: &str, now: i64) -> String {
        let server = self.server.public_key();
        let claims = json!({
            "aud": "nats-authorization-request", "exp": now + 2, "iat": now, "iss": server,
            "jti": nuid::next().to_string(), "sub": self.issuer_public(),
            "nats": {
                "server_id": {"name": "bench", "host": "127.0.0.1", "id": server,
                              "version": "2.15.1", "xkey": self.server_xkey_public()},
                "user_nkey": KeyPair::new_user().public_key(),
                "client_info": {"host": "127.0.0.1", "id": 4242, "user": "[REDACTED]",
                                "kind": "Client", "type": "nats", "rtt": "412µs",
                                "start": "2026-11-26T00:00:00.000000000Z"},
                "connect_opts": {"auth_token": token, "user": rooms, "pass": "",
                                 "lang": "bench", "version": "0.1.0", "protocol": 1},
                "type": "authorization_request", "version": 2
            }
        });
        encode(&claims, &self.server).expect("sign request")
    }

    /// The request sealed to our xkey by the server, as it arrives with xkey on.
    pub fn sealed_request(&self, token: &str, rooms: &str, now: i64) -> Vec<u8> {
        let jwt = self.request_jwt(token, rooms, now);
        let ours = XKey::from_public_key(&self.xkey.public_key()).expect("public xkey");
        self.server_xkey.seal(jwt.as_bytes(), &ours).expect("seal")
    }

    /// The demo permission files as a snapshot.
    pub fn demo_snapshot() -> Snapshot {
        Snapshot::load_dir(std::path::Path::new(DEMO_PERMISSIONS)).expect("demo permissions load")
    }

    /// A callout over the demo permissions with the default policy, xkey on.
    pub fn callout(&self) -> Callout {
        let issuer = KeyPair::from_seed(&self.issuer.seed().expect("seed")).expect("issuer");
        Callout::new(
            CalloutKeys::new(issuer, Some(self.xkey.clone())),
            self.tokens.clone(),
            Arc::new(ArcSwap::from_pointee(Self::demo_snapshot())),
            Arc::new(AtomicU64::new(0)),
            Revocations::default(),
            Policy::from_settings(&CalloutSettings::default()).expect("default policy"),
        )
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    nats_callout::callout::now_secs()
}
