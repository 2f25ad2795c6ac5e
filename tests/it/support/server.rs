//! A real nats-server per test: free ports, a temp dir, the test's accounts (AUTH, APP with
//! an `observer`, SYS), auth callout, websocket, TLS and JetStream as asked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nats_callout::testing::nats_server_bin;

use super::{DEADLINE, EnvOptions, free_port};

/// A running nats-server, killed on drop.
pub struct NatsServer {
    child: Child,
    conf: PathBuf,
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
    /// A server from a configuration file of the test's (listening on `port`, with a
    /// websocket on `ws_port`); `None` when it did not come up (a port taken meanwhile).
    pub fn start_file(conf: &Path, port: u16, ws_port: u16) -> Option<NatsServer> {
        let log = conf.with_extension("log");
        let mut child = spawn(conf, &log);
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if child.try_wait().ok().flatten().is_some() || std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(NatsServer {
            child,
            conf: conf.to_path_buf(),
            port,
            ws_port,
            log,
        })
    }

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

    /// Stop the server (SIGKILL, as a crash).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start the stopped server again, same configuration and ports.
    pub fn start_again(&mut self) {
        self.child = spawn(&self.conf, &self.log);
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not come back on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn spawn(conf: &Path, log: &Path) -> Child {
    Command::new(nats_server_bin())
        .arg("-c")
        .arg(conf)
        .arg("-l")
        .arg(log)
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
        })
}

/// What the server configuration needs from the generated keys.
pub(super) struct ServerSecrets<'a> {
    pub(super) issuer: &'a str,
    pub(super) xkey: Option<&'a str>,
    /// The service user's entry in the AUTH account, and its name in `auth_users`.
    pub(super) callout_user: &'a str,
    pub(super) auth_user: &'a str,
    pub(super) sys_pw: &'a str,
    pub(super) observer_pw: &'a str,
    pub(super) tls: Option<&'a Hardened>,
}

/// The files of the hardened set-up: a CA and a server certificate for 127.0.0.1, and the
/// service user's nkey.
pub struct Hardened {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub(super) nkey_public: String,
    pub(super) nkey_seed_file: PathBuf,
}

impl Hardened {
    pub fn make(dir: &Path) -> Hardened {
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

/// One node's place in the configuration.
struct Node {
    /// `server_name`; files are `nats-server.conf` / `.log` for a lone server, else
    /// `nats-server-<name>.*`.
    name: String,
    port: u16,
    /// The websocket port (the first node only, in a cluster).
    ws_port: Option<u16>,
    /// The `cluster {}` block, empty for a lone server.
    cluster: String,
}

impl Node {
    fn files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let stem = if self.cluster.is_empty() {
            "nats-server".to_string()
        } else {
            format!("nats-server-{}", self.name)
        };
        (dir.join(format!("{stem}.conf")), dir.join(format!("{stem}.log")))
    }
}

/// The configuration text of `node`: the test's accounts, auth callout, websocket, TLS
/// and JetStream as `opts` asks.
fn conf(dir: &Path, secrets: &ServerSecrets<'_>, opts: &EnvOptions, node: &Node) -> String {
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
    let port = node.port;
    let ws = match node.ws_port.filter(|_| opts.websocket) {
        Some(ws_port) => {
            let origins = opts
                .ws_allowed_origins
                .iter()
                .map(|o| format!("{o:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "websocket {{ listen: \"127.0.0.1:{ws_port}\", no_tls: true, token_cookie: nats_token, \
                 allowed_origins: [{origins}] }}"
            )
        }
        None => String::new(),
    };
    let authorization = if opts.auth_callout {
        nats_callout::keys::authorization_block(issuer, xkey, &[auth_user, "sys", "observer"], 2)
    } else {
        String::new()
    };
    let (jetstream, js) = if opts.jetstream {
        (
            format!(
                "jetstream {{ store_dir: {:?} }}",
                dir.join(format!("js-{}", node.name))
            ),
            "jetstream: enabled,",
        )
    } else {
        (String::new(), "")
    };
    let (name, cluster) = (&node.name, &node.cluster);
    // App services answering in APP for the service (delegated decisions): the reverse of
    // auth.v1, exported by APP and imported by AUTH.
    let (app_exports, auth_imports) = if opts.app_services.is_empty() {
        (String::new(), String::new())
    } else {
        let list = |f: &dyn Fn(&str) -> String| {
            opts.app_services
                .iter()
                .map(|s| f(s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        (
            format!("exports: [ {} ],", list(&|s| format!("{{ service: {s:?} }}"))),
            format!(
                "imports: [ {} ],",
                list(&|s| format!("{{ service: {{ account: APP, subject: {s:?} }} }}"))
            ),
        )
    };
    format!(
        r#"listen: 127.0.0.1:{port}
server_name: {name}
max_control_line: 8KB
{jetstream}
{cluster}
accounts {{
  AUTH {{ {js} {auth_imports} users: [ {callout_user} ], exports: [ {{ service: "auth.v1.>" }}, {{ stream: "nats-callout.notice.>" }} ] }}
  APP {{ {js} {app_exports} users: [ {{ user: observer, password: "{observer_pw}" }} ],
         imports: [ {{ service: {{ account: AUTH, subject: "auth.v1.>" }} }}, {{ stream: {{ account: AUTH, subject: "nats-callout.notice.>" }} }} ] }}
  APP2 {{ imports: [ {{ service: {{ account: AUTH, subject: "auth.v1.>" }} }}, {{ stream: {{ account: AUTH, subject: "nats-callout.notice.>" }} }} ] }}
  SYS {{ users: [ {{ user: sys, password: "{sys_pw}" }} ] }}
}}
system_account: SYS
{authorization}
{ws}
{tls}
"#
    )
}

/// Write `node`'s configuration, start it and wait until it listens; `None` if it exited
/// (probably a port race).
fn launch(dir: &Path, secrets: &ServerSecrets<'_>, opts: &EnvOptions, node: &Node) -> Option<NatsServer> {
    let (conf_path, log) = node.files(dir);
    std::fs::write(&conf_path, conf(dir, secrets, opts, node)).unwrap();
    let child = spawn(&conf_path, &log);
    let mut server = NatsServer {
        child,
        conf: conf_path,
        port: node.port,
        ws_port: node.ws_port.unwrap_or(0),
        log,
    };
    // Ready once every listener is bound: one taken by another process ends the server.
    super::nats_ready(&mut server.child, &server.log).then_some(server)
}

pub(super) fn start_server(dir: &Path, secrets: &ServerSecrets<'_>, opts: &EnvOptions) -> NatsServer {
    for _attempt in 0..5 {
        let node = Node {
            name: "test".into(),
            port: free_port(),
            ws_port: Some(free_port()),
            cluster: String::new(),
        };
        if let Some(server) = launch(dir, secrets, opts, &node) {
            return server;
        }
    }
    panic!("nats-server did not start");
}

/// `n` nodes clustered on loopback (routes between all, JetStream on each when asked,
/// the websocket listener on the first).
pub(super) fn start_cluster(
    dir: &Path,
    secrets: &ServerSecrets<'_>,
    opts: &EnvOptions,
    n: usize,
) -> Vec<NatsServer> {
    'attempt: for _attempt in 0..5 {
        let route_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::new();
        for (i, route_port) in route_ports.iter().enumerate() {
            let node = Node {
                name: format!("n{}", i + 1),
                port: free_port(),
                ws_port: (i == 0).then(free_port),
                // no_advertise: a client knows only the URL it was given (a test can cut
                // one instance off the whole cluster with a proxy in front of one node).
                cluster: format!(
                    "cluster {{ name: callout-test, listen: \"127.0.0.1:{route_port}\", \
                     no_advertise: true, routes: [{routes}] }}"
                ),
            };
            match launch(dir, secrets, opts, &node) {
                Some(s) => nodes.push(s),
                None => continue 'attempt,
            }
        }
        return nodes;
    }
    panic!("the nats-server cluster did not start");
}
