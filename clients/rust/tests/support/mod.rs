//! One test's world: generated keys, the demo permission files, a real nats-server with auth
//! callout on free ports (in config mode, or in operator mode as `nats-callout keys
//! --operator` sets it up), and the real service in-process (its HTTP API on a free port).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nats_callout::app::App;
use nats_callout::config::Config;
use nats_callout::keys;
use nats_callout_client::{ChatClient, Message, Options};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// Generous upper bound on anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A nats-server and the service, stopped on drop.
pub struct World {
    server: Child,
    pub port: u16,
    pub api: String,
    pub nats: String,
    /// How the system user connects.
    sys: Sys,
    server_conf: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    service: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: TempDir,
}

/// The system user: a password (config mode) or creds (operator mode).
enum Sys {
    Password(String),
    Creds(PathBuf),
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.service.take() {
            t.abort();
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// A port free now, below the kernel's ephemeral range (see the service's tests).
pub fn free_port() -> u16 {
    use rand::Rng;
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let port = rng.gen_range(start / 2..start);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl World {
    /// The world with the service's configuration changed by `tweak` (access token lifetime,
    /// enforcement grace, ...).
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> World {
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
        let perms = dir.path().join("permissions");
        copy_permissions(&perms);
        let (server, port) = start_server(
            dir.path(),
            &g.issuer_public,
            &g.xkey_public,
            &callout_password,
            &sys_password,
        );

        let mut config = Config::default();
        config.nats.url = format!("nats://127.0.0.1:{port}");
        config.nats.user = Some("callout".into());
        config.nats.password_file = Some(keydir.join(keys::CALLOUT_PASSWORD_FILE));
        config.nats.system_user = Some("sys".into());
        config.nats.system_password_file = Some(keydir.join(keys::SYS_PASSWORD_FILE));
        config.callout.issuer_seed_file = keydir.join(keys::ISSUER_FILE);
        config.callout.xkey_seed_file = Some(keydir.join(keys::XKEY_FILE));
        config.tokens.signing_key_file = keydir.join(keys::TOKEN_KEY_FILE);
        config.tokens.refresh_secret_file = keydir.join(keys::REFRESH_SECRET_FILE);
        config.tokens.store_path = dir.path().join("tokens.redb");
        config.permissions.dir = perms;
        let (stop, service, api) = serve(config, tweak).await;
        World {
            server,
            port,
            api,
            nats: format!("nats://127.0.0.1:{port}"),
            sys: Sys::Password(sys_password),
            server_conf: dir.path().join("nats-server.conf"),
            stop: Some(stop),
            service: Some(service),
            dir,
        }
    }

    /// The world in operator mode (`nats-callout keys --operator`'s set-up: a nats-server
    /// trusting a generated operator, users placed in APP), NATS credentials living at most
    /// `credentials_ttl` (`None`: not minted), the configuration changed by `tweak`.
    pub async fn operator(credentials_ttl: Option<Duration>, tweak: impl Fn(&mut Config)) -> World {
        use nats_callout::operator::setup::{SetupOptions, generate};
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        keys::generate(&tokens, false).unwrap();
        let perms = dir.path().join("permissions");
        copy_permissions(&perms);
        // A port chosen free may be taken before nats-server binds it: then other ports.
        for attempt in 0..5 {
            let port = free_port();
            let opts = SetupOptions {
                dir: dir.path().join(format!("operator{attempt}")),
                force: false,
                client_port: port,
                http_port: free_port(),
                websocket_port: free_port(),
                allowed_origins: Vec::new(),
                xkey: true,
                tokens_dir: tokens.clone(),
                permissions_dir: perms.clone(),
            };
            let generated = generate(&opts).unwrap();
            let log = generated.dir.join("nats-server.log");
            let Some(server) = spawn_server(&generated.server_config, &log) else {
                continue;
            };
            let mut config =
                Config::load(&generated.callout_config).expect("the generated callout.toml loads");
            config.tokens.credentials_ttl = Some(credentials_ttl.unwrap_or_default());
            let (stop, service, api) = serve(config, &tweak).await;
            return World {
                server,
                port,
                api,
                nats: format!("nats://127.0.0.1:{port}"),
                sys: Sys::Creds(generated.dir.join("sys.creds")),
                server_conf: generated.server_config,
                stop: Some(stop),
                service: Some(service),
                dir,
            };
        }
        panic!("the operator-mode nats-server did not start");
    }

    /// Stop nats-server (SIGKILL, as a crash) and start it again on the same port.
    pub fn restart_server(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let log = self.server_conf.with_file_name("nats-server.log");
        self.server = spawn_server(&self.server_conf, &log).expect("nats-server comes back on its port");
    }

    /// A connection in the system account: lame-duck notices and kicks, as the service's
    /// enforcer sends them.
    pub async fn system(&self) -> async_nats::Client {
        let options = match &self.sys {
            Sys::Password(p) => async_nats::ConnectOptions::new().user_and_password("sys".into(), p.clone()),
            Sys::Creds(path) => async_nats::ConnectOptions::new()
                .credentials_file(path)
                .await
                .unwrap(),
        };
        options.connect(&self.nats).await.unwrap()
    }

    /// Who nats-server says `client`'s live connection authenticated as (CONNZ's
    /// `authorized_user`): the user's name through the callout, the user nkey with a JWT.
    pub async fn authorized_user(&self, client: &async_nats::Client) -> String {
        let info = client.server_info();
        let sys = self.system().await;
        let reply = sys
            .request(
                format!("$SYS.REQ.SERVER.{}.CONNZ", info.server_id),
                serde_json::json!({"cid": info.client_id, "auth": true})
                    .to_string()
                    .into(),
            )
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        body["data"]["connections"][0]["authorized_user"]
            .as_str()
            .unwrap_or_else(|| panic!("no connection {}: {body}", info.client_id))
            .to_string()
    }

    /// Send `verb` (`LDM`, `KICK`) about `client`'s live connection to its server.
    pub async fn server_request(&self, client: &async_nats::Client, verb: &str) {
        let info = client.server_info();
        let sys = self.system().await;
        let reply = sys
            .request(
                format!("$SYS.REQ.SERVER.{}.{verb}", info.server_id),
                serde_json::json!({"cid": info.client_id}).to_string().into(),
            )
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert!(body.get("error").is_none(), "{verb}: {body}");
    }
}

/// The demo permission files, copied to `to`.
fn copy_permissions(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(repo().join("permissions")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The service running `config` in-process (the HTTP API on a free port, no operations
/// listener, a grace of 1 s, then `tweak`), once ready: its stop switch, its task and the
/// HTTP API's base URL.
async fn serve(
    mut config: Config,
    tweak: impl FnOnce(&mut Config),
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    String,
) {
    config.http.listen = "127.0.0.1:0".into();
    config.http.admin_listen = String::new();
    config.enforcement.grace = Duration::from_secs(1);
    tweak(&mut config);
    config.validate().unwrap();
    let app = App::build(config).await.expect("the service starts");
    let http = app.http_addr().expect("an HTTP listener");
    let ops = app.ops();
    let (stop, rx) = oneshot::channel::<()>();
    let service = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    let deadline = Instant::now() + DEADLINE;
    while !ops.readiness().await.0 {
        assert!(Instant::now() < deadline, "the service never got ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (stop, service, format!("http://{http}"))
}

fn start_server(dir: &Path, issuer: &str, xkey: &str, callout_pw: &str, sys_pw: &str) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_port();
        let authorization = keys::authorization_block(issuer, Some(xkey), &["callout", "sys"], 2);
        let conf = format!(
            r#"listen: 127.0.0.1:{port}
server_name: kit
max_control_line: 8KB
accounts {{
  AUTH {{ users: [ {{ user: callout, password: "{callout_pw}" }} ], exports: [ {{ service: "auth.v1.>" }}, {{ stream: "nats-callout.notice.>" }} ] }}
  APP {{ imports: [ {{ service: {{ account: AUTH, subject: "auth.v1.>" }} }}, {{ stream: {{ account: AUTH, subject: "nats-callout.notice.>" }} }} ] }}
  SYS {{ users: [ {{ user: sys, password: "{sys_pw}" }} ] }}
}}
system_account: SYS
{authorization}
"#
        );
        let path = dir.join("nats-server.conf");
        let log = dir.join("nats-server.log");
        std::fs::write(&path, conf).unwrap();
        if let Some(child) = spawn_server(&path, &log) {
            return (child, port);
        }
    }
    panic!("nats-server did not start");
}

/// nats-server with the configuration at `conf`, once it says it is ready; `None` if it
/// exited first (a port taken meanwhile).
fn spawn_server(conf: &Path, log: &Path) -> Option<Child> {
    let _ = std::fs::remove_file(log);
    let mut child = Command::new(nats_callout::testing::nats_server_bin())
        .arg("-c")
        .arg(conf)
        .arg("-l")
        .arg(log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts (set NATS_SERVER_BIN)");
    let start = Instant::now();
    loop {
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        if std::fs::read_to_string(log).is_ok_and(|l| l.contains("Server is ready")) {
            return Some(child);
        }
        assert!(start.elapsed() < DEADLINE, "nats-server never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait (at most [`DEADLINE`]) for the next item of `stream` that `pick` accepts.
pub async fn next_matching<T, S: futures::Stream<Item = T> + Unpin>(
    stream: &mut S,
    what: &str,
    mut pick: impl FnMut(&T) -> bool,
) -> T {
    use futures::StreamExt;
    tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.next().await {
                Some(x) if pick(&x) => return x,
                Some(_) => {}
                None => panic!("the stream ended before {what}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
}

/// `user` logged in with the password `user` (the demo's).
pub async fn login(world: &World, user: &str) -> ChatClient {
    ChatClient::connect(Options::password(&world.api, &world.nats, user, user))
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"))
}

/// `speaker` says something in `room` until `listener` hears it (a subscription of a
/// connection that is just reconnecting may miss the first ones).
pub async fn heard(speaker: &ChatClient, listener: &ChatClient, room: &str) {
    let mut stream = listener.messages(room);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let text = format!("hello {}", rand_suffix());
    let mut ids = Vec::new();
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never heard {} in {room}",
            listener.user(),
            speaker.user()
        );
        // A send may fail while the speaker itself reconnects, never for not being in the room.
        match speaker.send(room, &text).await {
            Ok(id) => ids.push(id),
            Err(e) => assert_ne!(e.code(), "not-joined", "{} is not in {room}", speaker.user()),
        }
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await
            && m.text == text
        {
            let expected = Message {
                room: room.into(),
                from: speaker.user().into(),
                text,
                id: m.id.clone(),
            };
            assert_eq!(m, expected);
            assert!(
                ids.contains(m.id.as_ref().unwrap()),
                "{m:?} has an id the speaker sent"
            );
            return;
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}
