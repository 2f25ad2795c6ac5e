//! One test's world: generated keys, the demo permission files, a nats-server and the
//! service configuration pointing at it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::{Client, ConnectOptions};
use nats_callout::config::Config;
use nats_callout::keys;
use nats_callout::tokens::{MintRequest, TokenKeys};
use tempfile::TempDir;

use super::DEADLINE;
use super::client::{Conn, TokenIn, connect_via};
use super::raw;
use super::server::{Hardened, NatsServer, ServerSecrets, start_cluster, start_server};

/// What a test wants from its environment.
#[derive(Clone)]
pub struct EnvOptions {
    pub xkey: bool,
    /// Extra lines for the `websocket {}` block.
    pub websocket: bool,
    /// Change the service configuration before it starts.
    pub tweak: fn(&mut Config),
    /// Configure `auth_callout` on the server. Off, the server is plain (anyone in
    /// AUTH may publish raw requests on `$SYS.REQ.USER.AUTH`, which nats-server
    /// otherwise forbids) and the service is driven directly.
    pub auth_callout: bool,
    /// The websocket listener's `allowed_origins` (the chat page's origin).
    pub ws_allowed_origins: Vec<String>,
    /// The book's hardened set-up (docs/src/guides/deploying.md): TLS on the client
    /// listener (a CA made with openssl, in `config.nats.tls_ca_file`) and the service user
    /// authenticated by an nkey.
    pub hardened: bool,
    /// JetStream on the server, enabled for the app account and the service's (AUTH).
    pub jetstream: bool,
    /// Subjects the app account (APP) exports as services and the service's account (AUTH)
    /// imports: where app services in APP answer delegated decisions.
    pub app_services: &'static [&'static str],
}

impl EnvOptions {
    /// Instances sharing one JetStream store (`store.backend = "jetstream"`).
    pub fn shared() -> Self {
        EnvOptions {
            jetstream: true,
            tweak: |c| c.store.backend = nats_callout::config::StoreBackend::Jetstream,
            ..Default::default()
        }
    }
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            xkey: true,
            websocket: true,
            tweak: |_| {},
            auth_callout: true,
            ws_allowed_origins: vec!["http://127.0.0.1:8080".into()],
            hardened: false,
            jetstream: false,
            app_services: &[],
        }
    }
}

/// One test's world: keys, permission files, a nats-server, the service config.
pub struct TestEnv {
    /// Declared first so the servers stop before their directory is removed.
    pub server: NatsServer,
    /// The other nodes of a cluster ([`TestEnv::cluster`]); none for a lone server.
    pub others: Vec<NatsServer>,
    pub dir: TempDir,
    pub config: Config,
    pub tokens: TokenKeys,
    pub callout_password: String,
    /// Password of `observer`, a static user of the app account listed in `auth_users`
    /// (so it skips the callout): it may subscribe to `>` and see every message.
    pub observer_password: String,
    pub(super) instances: std::sync::atomic::AtomicUsize,
}

/// Copy the demo permission files into `dst`.
pub fn copy_demo_permissions(dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions");
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

impl TestEnv {
    pub async fn start(opts: EnvOptions) -> TestEnv {
        Self::start_nodes(opts, 1).await
    }

    /// A three-node cluster (`server` is the first node, with the websocket listener;
    /// `others` the rest); the service points at the first node.
    pub async fn cluster(opts: EnvOptions) -> TestEnv {
        Self::start_nodes(opts, 3).await
    }

    async fn start_nodes(opts: EnvOptions, nodes: usize) -> TestEnv {
        // Service logs, shown for failing tests (filter with RUST_LOG).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "nats_callout=info".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let keydir = dir.path().join("keys");
        let g = keys::generate(&keydir, false).unwrap();
        let read = |f: &str| {
            std::fs::read_to_string(keydir.join(f))
                .unwrap()
                .trim()
                .to_string()
        };
        let callout_password = read(keys::CALLOUT_PASSWORD_FILE);
        let sys_password = read(keys::SYS_PASSWORD_FILE);
        let observer_password = nuid::next().to_string();
        let perms = dir.path().join("permissions");
        copy_demo_permissions(&perms);

        let hardened = opts.hardened.then(|| Hardened::make(&keydir));
        let callout_user = match &hardened {
            Some(h) => format!("{{ nkey: {} }}", h.nkey_public),
            None => format!("{{ user: callout, password: \"{callout_password}\" }}"),
        };
        let secrets = ServerSecrets {
            issuer: &g.issuer_public,
            xkey: opts.xkey.then_some(g.xkey_public.as_str()),
            callout_user: &callout_user,
            auth_user: hardened.as_ref().map_or("callout", |h| h.nkey_public.as_str()),
            sys_pw: &sys_password,
            observer_pw: &observer_password,
            tls: hardened.as_ref(),
        };
        let mut servers = if nodes == 1 {
            vec![start_server(dir.path(), &secrets, &opts)]
        } else {
            start_cluster(dir.path(), &secrets, &opts, nodes)
        };
        let server = servers.remove(0);

        let mut config = Config::default();
        config.nats.url = server.url();
        config.nats.user = Some("callout".into());
        config.nats.password_file = Some(keydir.join(keys::CALLOUT_PASSWORD_FILE));
        config.callout.issuer_seed_file = keydir.join(keys::ISSUER_FILE);
        config.callout.xkey_seed_file = opts.xkey.then(|| keydir.join(keys::XKEY_FILE));
        config.tokens.signing_key_file = keydir.join(keys::TOKEN_KEY_FILE);
        config.tokens.refresh_secret_file = keydir.join(keys::REFRESH_SECRET_FILE);
        config.tokens.store_path = dir.path().join("tokens.redb");
        config.http.listen = "127.0.0.1:0".into();
        config.http.admin_listen = "127.0.0.1:0".into();
        config.nats.system_user = Some("sys".into());
        config.nats.system_password_file = Some(keydir.join(keys::SYS_PASSWORD_FILE));
        config.enforcement.grace = Duration::from_secs(1);
        config.permissions.dir = perms;
        if let Some(h) = hardened {
            config.nats.url = format!("tls://127.0.0.1:{}", server.port);
            config.nats.tls_ca_file = Some(h.ca);
            config.nats.user = None;
            config.nats.password_file = None;
            config.nats.nkey_seed_file = Some(h.nkey_seed_file);
        }
        (opts.tweak)(&mut config);
        config.validate().unwrap();
        let tokens = TokenKeys::from_settings(&config.tokens).unwrap();
        TestEnv {
            dir,
            server,
            others: servers,
            config,
            tokens,
            callout_password,
            observer_password,
            instances: Default::default(),
        }
    }

    /// Add `name`, a user with the `service` role (an app service), to the permission files.
    pub fn add_service_user(&self, name: &str) {
        std::fs::write(
            self.config.permissions.dir.join(format!("service-{name}.toml")),
            format!("[users.{name}]\nroles = [\"service\"]\n"),
        )
        .unwrap();
    }

    /// A fresh access token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.token_with(user, Duration::from_secs(300), None)
    }

    pub fn token_with(&self, user: &str, ttl: Duration, session_end: Option<i64>) -> String {
        let now = nats_callout::clock::now_secs();
        self.tokens
            .mint(
                &MintRequest {
                    user,
                    session: "test-session",
                    device: Some("test"),
                    ttl,
                    session_expires_at: session_end,
                    asserted: None,
                    client_id: None,
                },
                now,
            )
            .unwrap()
            .0
    }

    /// Connect as a chat client: `auth_token` = token, `user` = room list.
    pub async fn connect(&self, token: Option<&str>, rooms: &str) -> Result<Conn, async_nats::ConnectError> {
        self.connect_via(token, rooms, TokenIn::AuthToken).await
    }

    /// Connect as a chat client with the token where `how` says, `user` = room list.
    pub async fn connect_via(
        &self,
        token: Option<&str>,
        rooms: &str,
        how: TokenIn,
    ) -> Result<Conn, async_nats::ConnectError> {
        let user = token
            .and_then(|t| self.tokens.verify(t, nats_callout::clock::now_secs()).ok())
            .map(|c| c.sub);
        let mut conn = connect_via(&self.server.url(), token, rooms, None, how).await?;
        conn.user = user;
        Ok(conn)
    }

    /// A connection of `user` (a fresh token) asking for no room, with the inbox the grant
    /// allows (`_INBOX.<user>`): how a service (role `service`) or an operator (a token-reset
    /// role) calls the `auth.v1` endpoints.
    pub async fn endpoint_caller(&self, user: &str) -> Conn {
        let inbox = format!("_INBOX.{user}");
        super::client::connect_to(&self.server.url(), Some(&self.token(user)), "", Some(&inbox))
            .await
            .unwrap_or_else(|e| panic!("{user} connects: {e}"))
    }

    /// Connect as a chat client once a service started in another process answers
    /// (it may still be starting): retried until the deadline.
    pub async fn connect_when_served(&self, token: &str, rooms: &str) -> Conn {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            match self.connect(Some(token), rooms).await {
                Ok(c) => return c,
                Err(e) if std::time::Instant::now() > deadline => panic!("the service never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Write this environment's service configuration as a `callout.toml` for the binary,
    /// with the public listener on `http_listen` and no operations listener.
    pub fn write_config_file(&self, http_listen: &str) -> PathBuf {
        self.write_config(http_listen, "")
    }

    /// [`TestEnv::write_config_file`] with the operations listener on `admin_listen`.
    pub fn write_config(&self, http_listen: &str, admin_listen: &str) -> PathBuf {
        let c = &self.config;
        let path = self.dir.path().join("callout.toml");
        let xkey = c
            .callout
            .xkey_seed_file
            .as_ref()
            .map(|p| format!("xkey_seed_file = \"{}\"\n", p.display()))
            .unwrap_or_default();
        std::fs::write(
            &path,
            format!(
                "[nats]\nurl = \"{}\"\nuser = \"callout\"\npassword_file = \"{}\"\n\
                 [callout]\nissuer_seed_file = \"{}\"\n{xkey}\
                 [tokens]\nsigning_key_file = \"{}\"\nrefresh_secret_file = \"{}\"\nstore_path = \"{}\"\n\
                 [permissions]\ndir = \"{}\"\n[http]\nlisten = \"{http_listen}\"\nadmin_listen = \"{admin_listen}\"\n",
                c.nats.url,
                c.nats.password_file.as_ref().unwrap().display(),
                c.callout.issuer_seed_file.display(),
                c.tokens.signing_key_file.display(),
                c.tokens.refresh_secret_file.display(),
                c.tokens.store_path.display(),
                c.permissions.dir.display(),
            ),
        )
        .unwrap();
        path
    }

    /// The test world around this environment's callout keys: a nats-server of the test's
    /// own making that signs (and seals) requests to the service.
    pub fn world(&self) -> nats_callout::testing::World {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap().trim().to_string();
        let issuer = nkeys::KeyPair::from_seed(&read(&self.config.callout.issuer_seed_file)).unwrap();
        let xkey = match &self.config.callout.xkey_seed_file {
            Some(f) => nkeys::XKey::from_seed(&read(f)).unwrap(),
            None => nkeys::XKey::new(),
        };
        nats_callout::testing::World::for_callout(issuer, xkey)
    }

    /// A raw connection as `observer`, subscribed to `>` in the app account (sid `obs`):
    /// it sees every message anybody publishes there.
    pub async fn observer(&self) -> raw::Raw {
        let body = serde_json::json!({
            "verbose": false, "pedantic": false, "protocol": 1, "headers": true,
            "user": "observer", "pass": self.observer_password,
        });
        let mut o = raw::Raw::connect(self.server.port, &body)
            .await
            .expect("observer connects");
        o.send("SUB > obs\r\n").await;
        o.sync().await.expect("observer subscribed");
        o
    }

    /// Connect as the service user in the AUTH account (to send raw requests).
    pub async fn connect_auth_user(&self) -> Client {
        ConnectOptions::new()
            .user_and_password("callout".into(), self.callout_password.clone())
            .connect(self.server.url())
            .await
            .unwrap()
    }

    /// Send `verb` (`KICK`, `LDM`) to every connection of `user`, as the system account
    /// would (CONNZ, then one request per cid); returns how many connections it reached.
    pub async fn system_to_user(&self, user: &str, verb: &str) -> usize {
        let password =
            std::fs::read_to_string(self.dir.path().join("keys").join(keys::SYS_PASSWORD_FILE)).unwrap();
        let sys = ConnectOptions::new()
            .user_and_password("sys".into(), password.trim().into())
            .connect(self.server.url())
            .await
            .unwrap();
        let body = serde_json::json!({"acc": self.config.callout.account, "auth": true, "limit": 1024});
        let reply = sys
            .request("$SYS.REQ.SERVER.PING.CONNZ", body.to_string().into())
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        let server = v["server"]["id"].as_str().unwrap().to_string();
        let cids: Vec<u64> = v["data"]["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["authorized_user"] == user)
            .filter_map(|c| c["cid"].as_u64())
            .collect();
        for cid in &cids {
            let subject = format!("$SYS.REQ.SERVER.{server}.{verb}");
            let r = sys
                .request(subject, serde_json::json!({ "cid": cid }).to_string().into())
                .await
                .unwrap();
            println!("{verb} {user} cid {cid}: {}", String::from_utf8_lossy(&r.payload));
        }
        cids.len()
    }
}
