//! An operator-mode world on a real nats-server running decentralized JWT authentication:
//! the set-up `nats-callout keys --operator` writes, the service in operator mode in-process
//! (NATS credentials on), tokens, and NATS credentials minted over HTTP.

use std::time::Duration;

use nats_callout::app::App;
use nats_callout::config::Config;
use nats_callout::operator::setup::{Generated, SetupOptions, generate};
use nats_callout::tokens::{MintRequest, TokenKeys};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

use super::env::copy_demo_permissions;
use super::raw::Raw;
use super::server::NatsServer;
use super::{Conn, DEADLINE, connect_to, free_port};

/// `tokens.credentials_ttl` of these tests (one test sets a short one to see its JWT expire).
pub(crate) const CREDENTIALS_TTL: Duration = Duration::from_secs(120);

/// Users beside the demo ones: carol lives in APP2, dave in an account the AUTH JWT does
/// not allow.
pub(crate) const PLACED: &str = "[users.carol]\naccount = \"APP2\"\n[users.carol.rooms]\nall1 = \"readwrite\"\n\n\
                      [users.dave]\naccount = \"OTHER\"\n[users.dave.rooms]\nall1 = \"readwrite\"\n\n\
                      [users.erin]\nlimits = { connections = 1, subscriptions = 2 }\n\
                      [users.erin.rooms]\nall1 = \"readwrite\"\n";

pub(crate) struct World {
    pub(crate) server: NatsServer,
    pub(crate) generated: Generated,
    pub(crate) tokens: TokenKeys,
    pub(crate) http: std::net::SocketAddr,
    /// The service, running in this process (none while a test has stopped it).
    pub(crate) service: Option<Running>,
    /// The configuration the service runs with (a restart runs it again).
    config: Config,
    pub(crate) origin: String,
    pub(crate) _dir: TempDir,
}

/// The service running in this process.
pub(crate) struct Running {
    stop: Option<oneshot::Sender<()>>,
    ops: std::sync::Arc<nats_callout::ops::Ops>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Run `app` until stopped, once it is ready.
    async fn start(app: App) -> Running {
        let ops = app.ops();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let (ready, body) = ops.readiness().await;
            if ready {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never ready: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Running {
            stop: Some(tx),
            ops,
            task,
        }
    }

    /// Stop it and wait until it has stopped (its store closed, its ports free).
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        drop(self); // its handle on the service's state (the store among it)
        let _ = tokio::time::timeout(DEADLINE, task)
            .await
            .expect("the service stops");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl World {
    pub(crate) async fn start(xkey: bool) -> World {
        World::start_with(xkey, CREDENTIALS_TTL).await
    }

    /// The world with NATS credentials living at most `credentials_ttl`.
    pub(crate) async fn start_with(xkey: bool, credentials_ttl: Duration) -> World {
        World::start_configured(xkey, credentials_ttl, |_| {}).await
    }

    /// [`World::start_with`], the generated configuration changed by `configure` first.
    pub(crate) async fn start_configured(
        xkey: bool,
        credentials_ttl: Duration,
        configure: impl Fn(&mut Config),
    ) -> World {
        World::start_with_files(xkey, credentials_ttl, &[("placed.toml", PLACED)], configure).await
    }

    /// The demo's permission files and `files` (name, TOML) beside them instead of
    /// [`PLACED`]; the generated configuration changed by `configure`.
    pub(crate) async fn start_with_files(
        xkey: bool,
        credentials_ttl: Duration,
        files: &[(&str, &str)],
        configure: impl Fn(&mut Config),
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        nats_callout::keys::generate(&dir.path().join("tokens"), false).unwrap();
        let permissions = dir.path().join("permissions");
        copy_demo_permissions(&permissions);
        for (name, text) in files {
            std::fs::write(permissions.join(name), text).unwrap();
        }
        // A port chosen free may be taken (by any client's outbound socket) before it is
        // bound: nats-server and the HTTP API then start again on other ports.
        let mut attempt = 0;
        let (server, generated, origin, tokens, app, config) = loop {
            attempt += 1;
            let http_port = free_port();
            let origin = format!("http://127.0.0.1:{http_port}");
            let opts = SetupOptions {
                dir: dir.path().join(format!("operator{attempt}")),
                force: false,
                client_port: free_port(),
                http_port: free_port(),
                websocket_port: free_port(),
                allowed_origins: vec![origin.clone()],
                xkey,
                tokens_dir: dir.path().join("tokens"),
                permissions_dir: permissions.clone(),
            };
            let generated = generate(&opts).unwrap();
            let Some(server) =
                NatsServer::start_file(&generated.server_config, opts.client_port, opts.websocket_port)
            else {
                assert!(attempt < 5, "the operator-mode nats-server did not start");
                continue;
            };
            let mut config =
                Config::load(&generated.callout_config).expect("the generated callout.toml loads");
            config.http.listen = format!("127.0.0.1:{http_port}");
            config.http.admin_listen = String::new();
            config.http.allowed_origins = vec![origin.clone()];
            // Reconcile with CONNZ often: every account's connections must survive it.
            config.enforcement.reconcile_interval = Duration::from_secs(1);
            config.tokens.credentials_ttl = Some(credentials_ttl);
            config.audit.enabled = true;
            configure(&mut config);
            let tokens = TokenKeys::from_settings(&config.tokens).unwrap();
            match App::build(config.clone()).await {
                Ok(app) => break (server, generated, origin, tokens, app, config),
                Err(e) if attempt < 5 && format!("{e:#}").contains("Address already in use") => continue,
                Err(e) => panic!("the service starts in operator mode: {e:#}"),
            }
        };
        let http = app.http_addr().unwrap();
        World {
            server,
            generated,
            tokens,
            http,
            service: Some(Running::start(app).await),
            config,
            origin,
            _dir: dir,
        }
    }

    /// Stop the service and start it again on the same configuration, ports and store: it
    /// knows only what the servers and its store tell it.
    pub(crate) async fn restart(&mut self) {
        if let Some(running) = self.service.take() {
            running.stop().await;
        }
        let app = App::build(self.config.clone())
            .await
            .expect("the service starts again");
        self.service = Some(Running::start(app).await);
    }

    /// The running service's operations.
    pub(crate) fn ops(&self) -> &nats_callout::ops::Ops {
        &self.service.as_ref().expect("the service runs").ops
    }

    pub(crate) fn token(&self, user: &str) -> String {
        let req = MintRequest {
            user,
            session: "operator-session",
            device: None,
            ttl: Duration::from_secs(300),
            session_expires_at: None,
            asserted: None,
            client_id: None,
        };
        self.tokens.mint(&req, nats_callout::clock::now_secs()).unwrap().0
    }

    pub(crate) async fn connect(
        &self,
        token: Option<&str>,
        rooms: &str,
    ) -> Result<Conn, async_nats::ConnectError> {
        connect_to(&self.server.url(), token, rooms, None).await
    }

    /// CONNZ of one account through the system user's creds.
    pub(crate) async fn connections(&self, account: &str) -> Value {
        let sys = async_nats::ConnectOptions::new()
            .credentials_file(self.generated.dir.join("sys.creds"))
            .await
            .unwrap()
            .connect(self.server.url())
            .await
            .unwrap();
        let body = json!({"acc": account, "auth": true});
        let reply = sys
            .request("$SYS.REQ.SERVER.PING.CONNZ", body.to_string().into())
            .await
            .unwrap();
        serde_json::from_slice(&reply.payload).unwrap()
    }

    /// `user` connected to `rooms`, and a channel that gets one item per lame-duck notice.
    pub(crate) async fn watch_lame_duck(
        &self,
        user: &str,
        rooms: &str,
    ) -> (async_nats::Client, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::new()
            .token(self.token(user))
            .user_and_password(rooms.into(), String::new())
            .event_callback(move |e| {
                let tx = tx.clone();
                async move {
                    if matches!(e, async_nats::Event::LameDuckMode) {
                        let _ = tx.send(());
                    }
                }
            })
            .connect(self.server.url())
            .await
            .unwrap_or_else(|e| panic!("{user} connects: {e}"));
        (client, rx)
    }

    /// An admin's call to the HTTP API (a GET without a body, a POST with one): its JSON answer.
    pub(crate) async fn admin(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("http://{}{path}", self.http);
        let req = match body {
            Some(b) => reqwest::Client::new().post(url).json(&b),
            None => reqwest::Client::new().get(url),
        };
        req.bearer_auth(self.token("admin"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A connection of the service's own user (in AUTH).
    pub(crate) async fn service(&self) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .credentials_file(self.generated.dir.join("service.creds"))
            .await
            .unwrap()
            .connect(self.server.url())
            .await
            .unwrap()
    }

    /// NATS credentials for a fresh user nkey of `user`'s, asking for `rooms`
    /// (`;`-separated): the key and the JWT.
    pub(crate) async fn mint(&self, user: &str, rooms: &str) -> (nkeys::KeyPair, String) {
        let key = nkeys::KeyPair::new_user();
        let rooms: Vec<&str> = rooms.split(';').filter(|r| !r.is_empty()).collect();
        let body = json!({"publicKey": key.public_key(), "rooms": rooms});
        let (status, answer) = credentials(self, Some(&self.token(user)), body).await;
        assert_eq!(status, 200, "credentials for {user} {rooms:?}: {answer}");
        (key, answer["jwt"].as_str().expect("a jwt").to_string())
    }

    /// A raw client of `user` connected with NATS credentials minted for `rooms`.
    pub(crate) async fn raw_client(&self, user: &str, rooms: &str, echo: bool) -> Raw {
        let (key, jwt) = self.mint(user, rooms).await;
        Raw::connect_jwt(self.server.port, &jwt, &key, echo)
            .await
            .unwrap_or_else(|e| panic!("{user} connects with credentials for {rooms:?}: {e}"))
    }

    /// A raw connection of an unrestricted user of APP (its JWT signed by APP's signing
    /// key, as an operator would issue one), subscribed to `>` (sid `obs`): it sees every
    /// message anybody publishes in APP.
    pub(crate) async fn observer(&self) -> Raw {
        let seed = std::fs::read_to_string(self.generated.dir.join("APP-signing.nk")).unwrap();
        let signer = nkeys::KeyPair::from_seed(seed.trim()).unwrap();
        let key = nkeys::KeyPair::new_user();
        let claims = json!({
            "jti": nats_callout::claims::new_jti(),
            "iat": nats_callout::clock::now_secs(),
            "iss": signer.public_key(),
            "name": "observer",
            "sub": key.public_key(),
            "nats": {"issuer_account": self.target("APP"), "type": "user", "version": 2,
                     "subs": -1, "data": -1, "payload": -1},
        });
        let jwt = nats_callout::claims::encode(&claims, &signer).unwrap();
        let mut o = Raw::connect_jwt(self.server.port, &jwt, &key, true)
            .await
            .expect("observer connects");
        o.send("SUB > obs\r\n").await;
        o.sync().await.expect("observer subscribed");
        o
    }

    pub(crate) fn target(&self, name: &str) -> String {
        self.generated
            .targets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.clone())
            .unwrap()
    }
}

/// `POST /api/auth/nats-credentials` as `token`'s holder: the status and the JSON answer.
pub(crate) async fn credentials(w: &World, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{}/api/auth/nats-credentials", w.http))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}
