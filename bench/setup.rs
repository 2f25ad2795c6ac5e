//! What every benchmark shares: the throughput set-up (keys, permission files, servers,
//! users), the targets a phase runs against, and one measured phase.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use nats_callout::config::TokenSettings;
use nats_callout::keys;
use nats_callout::tokens::{MintRequest, TokenKeys};
use serde::Serialize;
use serde_json::json;

use crate::RunArgs;
use crate::client::{self, Cred, Failure};
use crate::procs::{self, Proc};
use crate::servers::{self, Server, StaticUser};

/// Users in the throughput permission set (each connection uses one; tokens repeat, as
/// they do when clients reconnect).
pub const USERS: usize = 1000;

/// What one phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub system: String,
    pub concurrency: usize,
    pub round: usize,
    pub ok: usize,
    /// `-ERR` answers (Authorization Violation).
    pub refused: usize,
    pub timeouts: usize,
    pub io_errors: usize,
    pub seconds: f64,
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
    /// CPU seconds of the service (callout or responder) during the phase.
    pub service_cpu: f64,
    /// CPU seconds of nats-server during the phase.
    pub server_cpu: f64,
}

impl Phase {
    /// Nothing counted yet.
    fn empty(system: &str, concurrency: usize, round: usize) -> Phase {
        Phase {
            system: system.to_string(),
            concurrency,
            round,
            ok: 0,
            refused: 0,
            timeouts: 0,
            io_errors: 0,
            seconds: 0.0,
            latencies_ms: Vec::new(),
            service_cpu: 0.0,
            server_cpu: 0.0,
        }
    }
}

impl Phase {
    pub fn failed(&self) -> usize {
        self.refused + self.timeouts + self.io_errors
    }
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds.max(1e-9)
    }
}

/// One system under test: where to connect, which processes to watch, which CONNECTs to send.
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
    pub server_pid: u32,
    pub service_pid: Option<u32>,
    pub creds: Arc<Vec<Cred>>,
    /// Each CONNECT at most once (fresh tokens); the phase ends early when they run out.
    pub once: bool,
}

/// Connect `concurrency` clients in a loop for `dur`.
pub async fn phase(t: &Target, concurrency: usize, dur: Duration, round: usize) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + dur;
    let (svc0, srv0) = (
        t.service_pid.map_or(0.0, procs::cpu_seconds),
        procs::cpu_seconds(t.server_pid),
    );
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (t, next) = (t.clone(), next.clone());
        workers.spawn(async move {
            let mut out = Phase::empty(&t.name, concurrency, round);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if t.once && i >= t.creds.len() {
                    break;
                }
                let cred = &t.creds[i % t.creds.len()];
                match client::connect(t.addr, cred, false).await {
                    Ok(c) => {
                        out.ok += 1;
                        out.latencies_ms.push(c.latency.as_secs_f64() * 1e3);
                        c.reset();
                    }
                    Err(Failure::Refused(_)) => out.refused += 1,
                    Err(Failure::Timeout) => out.timeouts += 1,
                    Err(Failure::Io(_)) => {
                        out.io_errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            out
        });
    }
    let mut total = Phase::empty(&t.name, concurrency, round);
    while let Some(Ok(p)) = workers.join_next().await {
        total.ok += p.ok;
        total.refused += p.refused;
        total.timeouts += p.timeouts;
        total.io_errors += p.io_errors;
        total.latencies_ms.extend(p.latencies_ms);
    }
    total.seconds = start.elapsed().as_secs_f64();
    total.service_cpu = t.service_pid.map_or(0.0, procs::cpu_seconds) - svc0;
    total.server_cpu = procs::cpu_seconds(t.server_pid) - srv0;
    total
}

/// A second of warm-up on each target, then `args.rounds` rounds of c=20 phases, the
/// targets' order rotated per round so that drift on a shared host hits each alike.
pub async fn interleaved_c20(args: &RunArgs, targets: &[Target]) -> Vec<Phase> {
    for t in targets {
        phase(t, 20, Duration::from_secs(1), 0).await;
    }
    let mut phases = Vec::new();
    for round in 0..args.rounds {
        for k in 0..targets.len() {
            let t = &targets[(k + round) % targets.len()];
            let p = phase(t, 20, args.phase(), round).await;
            eprintln!("{}", crate::stats::phase_line(&p));
            phases.push(p);
        }
    }
    phases
}

/// Connect once with `cred` until it is authorized (the service is up and subscribed).
pub async fn wait_authorized(addr: SocketAddr, cred: &Cred, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match client::connect(addr, cred, false).await {
            Ok(c) => {
                c.reset();
                return Ok(());
            }
            Err(e) if Instant::now() > deadline => anyhow::bail!("not authorized after {timeout:?}: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Keys, passwords and the token signer of one run.
pub struct Setup {
    pub dir: PathBuf,
    pub keydir: PathBuf,
    pub issuer_public: String,
    pub xkey_public: String,
    pub callout_pw: String,
    pub sys_pw: String,
    pub tokens: TokenKeys,
    pub service_bin: PathBuf,
    pub nats_bin: PathBuf,
}

impl Setup {
    pub fn new(dir: &Path, args: &RunArgs) -> anyhow::Result<Setup> {
        let keydir = dir.join("keys");
        let g = keys::generate(&keydir, false)?;
        let read = |f: &str| -> anyhow::Result<String> {
            Ok(std::fs::read_to_string(keydir.join(f))?.trim().to_string())
        };
        let defaults = TokenSettings::default();
        let tokens = TokenKeys::new(&defaults.issuer, &defaults.audience)
            .with_signing_pem(&read(keys::TOKEN_KEY_FILE)?)?;
        let service_bin = match &args.service_bin {
            Some(p) => p.clone(),
            None => {
                let me = std::env::current_exe()?;
                // target/<profile>/examples/bench -> target/<profile>/nats-callout
                me.parent()
                    .and_then(Path::parent)
                    .map(|d| d.join("nats-callout"))
                    .context("cannot locate nats-callout next to the bench binary")?
            }
        };
        anyhow::ensure!(
            service_bin.exists(),
            "{} does not exist (cargo build --release first, or --service-bin)",
            service_bin.display()
        );
        Ok(Setup {
            dir: dir.to_path_buf(),
            keydir: keydir.clone(),
            issuer_public: g.issuer_public,
            xkey_public: g.xkey_public,
            callout_pw: read(keys::CALLOUT_PASSWORD_FILE)?,
            sys_pw: read(keys::SYS_PASSWORD_FILE)?,
            tokens,
            service_bin,
            nats_bin: servers::nats_server_bin(args.nats_server.as_deref()),
        })
    }

    /// A token for `user`, valid for the whole run.
    pub fn token(&self, user: &str, device: &str) -> String {
        self.tokens
            .mint(
                &MintRequest {
                    user,
                    session: device,
                    device: Some(device),
                    ttl: Duration::from_secs(3600),
                    session_expires_at: None,
                    asserted: None,
                    client_id: None,
                },
                nats_callout::clock::now_secs(),
            )
            .expect("mint")
            .0
    }

    /// A nats-server answered by a callout, with `authorization.timeout` = `timeout_s`.
    pub fn callout_server(&self, name: &'static str, timeout_s: u32) -> anyhow::Result<Server> {
        self.callout_server_with(name, timeout_s, false)
    }

    /// [`Setup::callout_server`], with JetStream for the callout's account when `jetstream`.
    pub fn callout_server_with(
        &self,
        name: &'static str,
        timeout_s: u32,
        jetstream: bool,
    ) -> anyhow::Result<Server> {
        let store = jetstream.then(|| self.dir.join(format!("js-{name}")));
        servers::start(&self.nats_bin, &self.dir, name, |port| {
            servers::callout_conf(
                port,
                &self.issuer_public,
                &self.xkey_public,
                &self.callout_pw,
                &self.sys_pw,
                timeout_s,
                store.as_deref(),
            )
        })
    }

    /// A `callout.toml` for the service (or the responder) on `server`.
    pub fn service_config(&self, name: &str, server: &Server, permissions: &Path) -> anyhow::Result<PathBuf> {
        self.service_config_with(name, server, permissions, "")
    }

    /// [`Setup::service_config`] followed by `extra` TOML sections.
    pub fn service_config_with(
        &self,
        name: &str,
        server: &Server,
        permissions: &Path,
        extra: &str,
    ) -> anyhow::Result<PathBuf> {
        self.service_config_parts(
            name,
            server,
            permissions,
            &ConfigParts {
                extra,
                ..Default::default()
            },
        )
    }

    /// The system user (live enforcement on: notices, lame-duck notices, kicks).
    pub fn system_user(&self) -> String {
        let pw = self.keydir.join(keys::SYS_PASSWORD_FILE);
        format!(
            "system_user = \"sys\"\nsystem_password_file = {:?}\n",
            pw.display().to_string()
        )
    }

    /// [`Setup::service_config`] with `parts`.
    pub fn service_config_parts(
        &self,
        name: &str,
        server: &Server,
        permissions: &Path,
        parts: &ConfigParts<'_>,
    ) -> anyhow::Result<PathBuf> {
        let ConfigParts {
            nats,
            listen,
            admin_listen,
            extra,
        } = parts;
        let k = |f: &str| self.keydir.join(f).display().to_string();
        let text = format!(
            "[nats]\nurl = {url:?}\nuser = \"callout\"\npassword_file = {pw:?}\n{nats}\
             [callout]\nissuer_seed_file = {issuer:?}\nxkey_seed_file = {xkey:?}\n\
             [tokens]\nsigning_key_file = {sign:?}\nrefresh_secret_file = {refresh:?}\nstore_path = {store:?}\n\
             [permissions]\ndir = {perms:?}\n[http]\nlisten = {listen:?}\nadmin_listen = {admin_listen:?}\n{extra}",
            url = server.url(),
            pw = k(keys::CALLOUT_PASSWORD_FILE),
            issuer = k(keys::ISSUER_FILE),
            xkey = k(keys::XKEY_FILE),
            sign = k(keys::TOKEN_KEY_FILE),
            refresh = k(keys::REFRESH_SECRET_FILE),
            store = self.dir.join(format!("{name}-tokens.redb")).display().to_string(),
            perms = permissions.display().to_string(),
        );
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// The real service (`nats-callout serve`), logging at its default level into a file.
    pub fn start_service(&self, name: &str, config: &Path) -> anyhow::Result<Proc> {
        let mut cmd = Command::new(&self.service_bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env_remove("RUST_LOG");
        Proc::spawn(name, cmd, &self.dir.join(format!("{name}.log")))
    }
}

/// What [`Setup::service_config_parts`] adds to the base configuration.
#[derive(Default)]
pub struct ConfigParts<'a> {
    /// More of `[nats]` (the system user).
    pub nats: &'a str,
    /// `http.listen` and `http.admin_listen` ("" = off).
    pub listen: &'a str,
    pub admin_listen: &'a str,
    /// Sections after the others.
    pub extra: &'a str,
}

/// The throughput permission set: users `b{i}`, each with its own room `r{i}` and the
/// shared room `all1` (through a group). Returns the room list each user asks for:
/// its two rooms and its neighbour's (refused).
pub fn write_bench_permissions(dir: &Path) -> anyhow::Result<Vec<String>> {
    write_bench_permissions_n(dir, USERS)
}

/// [`write_bench_permissions`] with `n` users.
pub fn write_bench_permissions_n(dir: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut users = serde_json::Map::new();
    let mut requested = Vec::with_capacity(n);
    for i in 0..n {
        users.insert(
            format!("b{i}"),
            json!({ "rooms": { format!("r{i}"): "readwrite" } }),
        );
        requested.push(format!("all1;r{i};r{}", (i + 1) % n));
    }
    let members: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
    let doc = json!({
        "users": users,
        "groups": { "everyone": { "members": members } },
        "rooms": { "all1": { "members": ["@everyone"] } },
    });
    std::fs::write(dir.join("bench.json"), serde_json::to_vec(&doc)?)?;
    Ok(requested)
}

/// The subjects the callout grants user `i` (the static users get exactly these).
pub fn static_users(requested: &[String]) -> Vec<StaticUser> {
    (0..USERS)
        .map(|i| {
            let (u, inbox) = (format!("b{i}"), format!("_INBOX.b{i}.>"));
            StaticUser {
                name: requested[i].clone(),
                password: format!("p{i}"),
                publish: vec![inbox.clone(), format!("chat.all1.{u}"), format!("chat.r{i}.{u}")],
                subscribe: vec![inbox, "chat.all1.>".into(), format!("chat.r{i}.>")],
            }
        })
        .collect()
}
