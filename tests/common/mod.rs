//! Test harness: a real nats-server per test (free ports, temp dir) and the service in-process.
#![allow(dead_code)]

pub mod raw;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, ServerError};
use nats_callout::app::App;
use nats_callout::config::Config;
use nats_callout::keys;
use nats_callout::tokens::{MintRequest, TokenKeys};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};

/// Generous upper bound on anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The nats-server binary: `NATS_SERVER_BIN`, then `.tools/`, then `PATH`.
pub fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return p.into();
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/nats-server");
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running nats-server, killed on drop.
pub struct NatsServer {
    pub conf_dir: PathBuf,
    child: Child,
    pub port: u16,
    pub ws_port: u16,
    pub log: PathBuf,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(keep) = std::env::var_os("TEST_KEEP_LOGS") {
            let _ = std::fs::copy(
                &self.log,
                Path::new(&keep).join(format!("nats-{}.log", self.port)),
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NatsServer {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.ws_port)
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server log so far (for assertions and failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

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
    /// The README's hardened set-up: TLS on the client listener (a CA made with openssl,
    /// in `config.nats.tls_ca_file`) and the service user authenticated by an nkey.
    pub hardened: bool,
    /// JetStream on the server, enabled for the app account.
    pub jetstream: bool,
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
        }
    }
}

/// One test's world: keys, permission files, a nats-server, the service config.
pub struct TestEnv {
    /// Declared first so the server stops before its directory is removed.
    pub server: NatsServer,
    pub dir: TempDir,
    pub config: Config,
    pub tokens: TokenKeys,
    pub issuer_public: String,
    pub callout_password: String,
    /// Password of `observer`, a static user of the app account listed in `auth_users`
    /// (so it skips the callout): it may subscribe to `>` and see every message.
    pub observer_password: String,
    instances: std::sync::atomic::AtomicUsize,
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
        let server = start_server(dir.path(), &secrets, &opts);

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
            config,
            tokens,
            issuer_public: g.issuer_public,
            callout_password,
            observer_password,
            instances: Default::default(),
        }
    }

    /// Start the service in-process; it stops when the handle drops. The first instance
    /// uses `config.tokens.store_path`; later ones get their own store file.
    pub async fn start_callout(&self) -> CalloutHandle {
        let n = self.instances.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut config = self.config.clone();
        if n > 0 {
            config.tokens.store_path = self.dir.path().join(format!("tokens-{n}.redb"));
        }
        self.start_callout_with(config).await
    }

    pub async fn start_callout_with(&self, config: Config) -> CalloutHandle {
        let app = App::build(config).await.expect("service starts");
        let callout = app.callout();
        let http_addr = app.http_addr();
        let sessions = app.sessions();
        let reloader = app.reloader();
        let tokens = app.tokens();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        CalloutHandle {
            stop: Some(tx),
            task: Some(task),
            callout,
            http_addr,
            sessions,
            reloader,
            tokens,
        }
    }

    /// A fresh access token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.token_with(user, Duration::from_secs(300), None)
    }

    pub fn token_with(&self, user: &str, ttl: Duration, session_end: Option<i64>) -> String {
        let now = nats_callout::callout::now_secs();
        self.tokens
            .mint(
                &MintRequest {
                    user,
                    session: "test-session",
                    device: Some("test"),
                    ttl,
                    session_expires_at: session_end,
                },
                now,
            )
            .unwrap()
            .0
    }

    /// Connect as a chat client: `auth_token` = token, `user` = room list.
    pub async fn connect(&self, token: Option<&str>, rooms: &str) -> Result<Conn, async_nats::ConnectError> {
        let user = token
            .and_then(|t| self.tokens.verify(t, nats_callout::callout::now_secs()).ok())
            .map(|c| c.sub);
        let mut conn = connect_to(&self.server.url(), token, rooms, None).await?;
        conn.user = user;
        Ok(conn)
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

    /// Write this environment's service configuration as a `callout.toml` for the binary.
    pub fn write_config_file(&self, http_listen: &str) -> PathBuf {
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
                 [permissions]\ndir = \"{}\"\n[http]\nlisten = \"{http_listen}\"\n",
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
}

/// A client connection plus the server errors it received (permission violations).
pub struct Conn {
    pub client: Client,
    /// The user the token names (when it verifies).
    pub user: Option<String>,
    pub errors: mpsc::UnboundedReceiver<String>,
}

impl Conn {
    /// Wait for an asynchronous server error containing `needle`.
    pub async fn expect_error(&mut self, needle: &str) {
        let found = tokio::time::timeout(DEADLINE, async {
            while let Some(e) = self.errors.recv().await {
                if e.contains(needle) {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(matches!(found, Ok(true)), "no server error containing {needle:?}");
    }
}

pub async fn connect_to(
    url: &str,
    token: Option<&str>,
    rooms: &str,
    inbox: Option<&str>,
) -> Result<Conn, async_nats::ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut opts = ConnectOptions::new()
        .user_and_password(rooms.to_string(), String::new())
        .max_reconnects(Some(1))
        .connection_timeout(DEADLINE)
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let Event::ServerError(ServerError::Other(s)) = e {
                    let _ = tx.send(s);
                }
            }
        });
    if let Some(t) = token {
        opts = opts.token(t.to_string());
    }
    if let Some(i) = inbox {
        opts = opts.custom_inbox_prefix(i);
    }
    let client = opts.connect(url).await?;
    Ok(Conn {
        client,
        user: None,
        errors: rx,
    })
}

/// Stops the in-process service when dropped (or explicitly).
pub struct CalloutHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub callout: std::sync::Arc<nats_callout::callout::Callout>,
    pub http_addr: Option<std::net::SocketAddr>,
    pub sessions: Option<std::sync::Arc<nats_callout::sessions::Sessions>>,
    pub reloader: std::sync::Arc<nats_callout::reload::Reloader>,
    pub tokens: std::sync::Arc<nats_callout::tokens::service::TokenService>,
}

impl CalloutHandle {
    /// Base URL of this instance's HTTP API.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr.expect("HTTP API enabled"))
    }

    pub fn stats(&self) -> nats_callout::callout::Stats {
        self.callout.stats()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for CalloutHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Stop a child process with SIGTERM (as an operator would) and wait for it.
pub fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
    child.wait().unwrap()
}

/// Raise this process's open-file limit (inherited by the nats-servers it starts) to at
/// least `n`, for tests that hold many connections.
pub fn raise_fd_limit(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < n {
            assert!(
                lim.rlim_max >= n,
                "the hard open-file limit {} is below {n}",
                lim.rlim_max
            );
            lim.rlim_cur = n;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// What the server configuration needs from the generated keys.
struct ServerSecrets<'a> {
    issuer: &'a str,
    xkey: Option<&'a str>,
    /// The service user's entry in the AUTH account, and its name in `auth_users`.
    callout_user: &'a str,
    auth_user: &'a str,
    sys_pw: &'a str,
    observer_pw: &'a str,
    tls: Option<&'a Hardened>,
}

/// The files of the hardened set-up: a CA and a server certificate for 127.0.0.1, and the
/// service user's nkey.
struct Hardened {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    nkey_public: String,
    nkey_seed_file: PathBuf,
}

impl Hardened {
    fn make(dir: &Path) -> Hardened {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir).output();
            let out = out.expect("openssl (Debian package openssl) makes the test certificates");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=nats-callout test CA"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        ca.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(&ca);
        let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&csr);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        let user = nkeys::KeyPair::new_user();
        let nkey_seed_file = dir.join("callout.nk");
        std::fs::write(&nkey_seed_file, user.seed().unwrap()).unwrap();
        Hardened {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            nkey_public: user.public_key(),
            nkey_seed_file,
        }
    }
}

fn start_server(dir: &Path, secrets: &ServerSecrets<'_>, opts: &EnvOptions) -> NatsServer {
    let ServerSecrets {
        issuer,
        xkey,
        callout_user,
        auth_user,
        sys_pw,
        observer_pw,
        tls,
    } = *secrets;
    let tls = tls
        .map(|h| format!("tls {{ cert_file: {:?}, key_file: {:?} }}", h.cert, h.key))
        .unwrap_or_default();
    let (websocket, auth_callout, ws_allowed_origins) =
        (opts.websocket, opts.auth_callout, &opts.ws_allowed_origins);
    for _attempt in 0..5 {
        let (port, ws_port) = (free_port(), free_port());
        let xkey_line = xkey.map(|x| format!("xkey: {x}")).unwrap_or_default();
        let ws = if websocket {
            let origins = ws_allowed_origins
                .iter()
                .map(|o| format!("{o:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "websocket {{ listen: \"127.0.0.1:{ws_port}\", no_tls: true, token_cookie: nats_token, \
                 allowed_origins: [{origins}] }}"
            )
        } else {
            String::new()
        };
        let authorization = if auth_callout {
            format!(
                "authorization {{\n  timeout: 2s\n  auth_callout {{\n    issuer: {issuer}\n    account: AUTH\n    auth_users: [ {auth_user}, sys, observer ]\n    {xkey_line}\n  }}\n}}"
            )
        } else {
            String::new()
        };
        let (jetstream, app_js) = if opts.jetstream {
            (
                format!("jetstream {{ store_dir: {:?} }}", dir.join("js")),
                "jetstream: enabled,",
            )
        } else {
            (String::new(), "")
        };
        let conf = format!(
            r#"listen: 127.0.0.1:{port}
server_name: test
max_control_line: 8KB
{jetstream}
accounts {{
  AUTH {{ users: [ {callout_user} ], exports: [ {{ service: "auth.v1.>" }} ] }}
  APP {{ {app_js} users: [ {{ user: observer, password: "{observer_pw}" }} ],
         imports: [ {{ service: {{ account: AUTH, subject: "auth.v1.>" }} }} ] }}
  SYS {{ users: [ {{ user: sys, password: "{sys_pw}" }} ] }}
}}
system_account: SYS
{authorization}
{ws}
{tls}
"#
        );
        let conf_path = dir.join("nats-server.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = dir.join("nats-server.log");
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&conf_path)
            .arg("-l")
            .arg(&log)
            .args(if std::env::var_os("TEST_NATS_TRACE").is_some() {
                &["-DV"][..]
            } else {
                &[][..]
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (run scripts/install-nats-server.sh or set NATS_SERVER_BIN)",
                    nats_server_bin().display()
                )
            });
        let mut server = NatsServer {
            conf_dir: dir.to_path_buf(),
            child,
            port,
            ws_port,
            log,
        };
        let started = std::time::Instant::now();
        while started.elapsed() < DEADLINE {
            if let Ok(Some(_)) = server.child.try_wait() {
                break; // exited: probably a port race; try other ports
            }
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && (!websocket || std::net::TcpStream::connect(("127.0.0.1", ws_port)).is_ok());
            if up {
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = server.child.kill();
    }
    panic!("nats-server did not start");
}
