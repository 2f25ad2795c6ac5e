//! The throughput and latency phases, and the whole run.

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
use crate::client::{self, Failure};
use crate::procs::{self, Proc};
use crate::report;
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
    pub creds: Arc<Vec<Vec<u8>>>,
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

/// Connect once with `cred` until it is authorized (the service is up and subscribed).
pub async fn wait_authorized(addr: SocketAddr, cred: &[u8], timeout: Duration) -> anyhow::Result<()> {
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
    fn new(dir: &Path, args: &RunArgs) -> anyhow::Result<Setup> {
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
        let k = |f: &str| self.keydir.join(f).display().to_string();
        let text = format!(
            "[nats]\nurl = {url:?}\nuser = \"callout\"\npassword_file = {pw:?}\n\
             [callout]\nissuer_seed_file = {issuer:?}\nxkey_seed_file = {xkey:?}\n\
             [tokens]\nsigning_key_file = {sign:?}\nrefresh_secret_file = {refresh:?}\nstore_path = {store:?}\n\
             [permissions]\ndir = {perms:?}\n[http]\nlisten = \"\"\nadmin_listen = \"\"\n{extra}",
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

/// The throughput permission set: users `b{i}`, each with its own room `r{i}` and the
/// shared room `all1` (through a group). Returns the room list each user asks for:
/// its two rooms and its neighbour's (refused).
fn write_bench_permissions(dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut users = serde_json::Map::new();
    let mut requested = Vec::with_capacity(USERS);
    for i in 0..USERS {
        users.insert(
            format!("b{i}"),
            json!({ "rooms": { format!("r{i}"): "readwrite" } }),
        );
        requested.push(format!("all1;r{i};r{}", (i + 1) % USERS));
    }
    let members: Vec<String> = (0..USERS).map(|i| format!("b{i}")).collect();
    let doc = json!({
        "users": users,
        "groups": { "everyone": { "members": members } },
        "rooms": { "all1": { "members": ["@everyone"] } },
    });
    std::fs::write(dir.join("bench.json"), serde_json::to_vec(&doc)?)?;
    Ok(requested)
}

/// The subjects the callout grants user `i` (the static users get exactly these).
fn static_users(requested: &[String]) -> Vec<StaticUser> {
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

/// `make bench`.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let work = tempfile::Builder::new().prefix("nats-callout-bench-").tempdir()?;
    let dir = work.path().to_path_buf();
    // Kept from the start with --keep, so a run that fails leaves its logs too.
    let work = if args.keep {
        eprintln!("bench: keeping {}", work.keep().display());
        None
    } else {
        Some(work)
    };
    let setup = Setup::new(&dir, &args)?;
    eprintln!(
        "bench: load average {}; work dir {}, nats-server {}, service {}, open-file limit {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
        dir.display(),
        setup.nats_bin.display(),
        setup.service_bin.display(),
        procs::fd_limit()
    );

    let perms = dir.join("perms");
    let requested = write_bench_permissions(&perms)?;
    let mut callout_creds = Vec::with_capacity(USERS);
    let mut static_creds = Vec::with_capacity(USERS);
    for (i, rooms) in requested.iter().enumerate() {
        let token = setup.token(&format!("b{i}"), &format!("d{i}"));
        callout_creds.push(client::connect_line(&token, rooms, ""));
        static_creds.push(client::connect_line(&token, rooms, &format!("p{i}")));
    }
    // Fresh tokens (never seen by the service) for the cold-cache phases.
    let fresh_n = ((4000.0 * args.phase_secs) as usize * args.rounds).clamp(2000, 40_000);
    let fresh_creds: Vec<Vec<u8>> = (0..fresh_n)
        .map(|n| {
            let i = n % USERS;
            let token = setup.token(&format!("b{i}"), &format!("fresh{n}"));
            client::connect_line(&token, &requested[i], "")
        })
        .collect();

    let callout_creds = Arc::new(callout_creds);
    if args.only_shared {
        let shared = crate::shared::run(&args, &setup, &perms, &callout_creds).await?;
        return finish(&args, &setup, started, work, Default::default(), Some(shared));
    }
    let srv_callout = setup.callout_server("nats-callout", 2)?;
    let srv_minimal = setup.callout_server("nats-minimal", 2)?;
    let users = static_users(&requested);
    let srv_static = servers::start(&setup.nats_bin, &dir, "nats-static", |port| {
        servers::static_conf(port, &users, &setup.callout_pw, &setup.sys_pw)
    })?;

    let service_conf = setup.service_config("service", &srv_callout, &perms)?;
    let service = setup.start_service("service", &service_conf)?;
    let responder_conf = setup.service_config("responder", &srv_minimal, &perms)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("responder").arg("--config").arg(&responder_conf);
    let mut responder = Proc::spawn("responder", cmd, &dir.join("responder.log"))?;
    responder.wait_line("ready", Duration::from_secs(20))?;

    let targets = [
        Target {
            name: "callout".into(),
            addr: srv_callout.addr(),
            server_pid: srv_callout.pid(),
            service_pid: Some(service.pid()),
            creds: callout_creds.clone(),
            once: false,
        },
        Target {
            name: "minimal".into(),
            addr: srv_minimal.addr(),
            server_pid: srv_minimal.pid(),
            service_pid: Some(responder.pid()),
            creds: callout_creds.clone(),
            once: false,
        },
        Target {
            name: "static".into(),
            addr: srv_static.addr(),
            server_pid: srv_static.pid(),
            service_pid: None,
            creds: Arc::new(static_creds),
            once: false,
        },
    ];
    let fresh = Target {
        name: "callout-fresh".into(),
        creds: Arc::new(fresh_creds),
        once: true,
        ..targets[0].clone()
    };
    for t in &targets {
        wait_authorized(t.addr, &t.creds[0], Duration::from_secs(20))
            .await
            .with_context(|| format!("{} does not authorize", t.name))?;
    }
    eprintln!("bench: warming up");
    for t in &targets {
        phase(t, 20, Duration::from_secs(1), 0).await;
    }

    let mut phases = Vec::new();
    for round in 0..args.rounds {
        for &c in &args.concurrency {
            // Rotate the order each round so that drift on a shared host hits every system alike.
            for k in 0..targets.len() {
                let t = &targets[(k + round) % targets.len()];
                let p = phase(t, c, args.phase(), round).await;
                eprintln!("{}", report::phase_line(&p));
                phases.push(p);
            }
            if c == 20 {
                let p = phase(&fresh, c, args.phase(), round).await;
                eprintln!("{}", report::phase_line(&p));
                phases.push(p);
            }
        }
    }
    let service_rss = procs::memory_mib(service.pid());
    let throughput = report::summarize(&phases, &args.concurrency);
    report::print_throughput(&throughput);

    drop(srv_static);

    let n = args.storm_clients;
    let (mut storm, mut storm_minimal, mut storm_long_timeout) = (None, None, None);
    if n > 0 {
        // The floor: the same storm against the minimal responder (not a target).
        let label = "minimal responder, authorization.timeout 2s";
        storm_minimal = Some(storm_on(&setup, &srv_minimal, responder.pid(), &requested, n, label).await?);
    }
    drop(responder);
    drop(srv_minimal);
    if n > 0 {
        let label = "authorization.timeout 2s (as configured in this repo)";
        storm = Some(storm_on(&setup, &srv_callout, service.pid(), &requested, n, label).await?);
    }
    drop(service);
    if n > 0 {
        // The same storm against a server that gives the callout 10 s instead of 2 s.
        let srv = setup.callout_server("nats-storm-10s", 10)?;
        let conf = setup.service_config("service-storm-10s", &srv, &perms)?;
        let svc = setup.start_service("service-storm-10s", &conf)?;
        wait_authorized(srv.addr(), &targets[0].creds[0], Duration::from_secs(20)).await?;
        let label = "authorization.timeout 10s";
        storm_long_timeout = Some(storm_on(&setup, &srv, svc.pid(), &requested, n, label).await?);
    }

    let store = if args.skip_store {
        None
    } else {
        let s = crate::store::run(&args, &setup, &srv_callout).await?;
        report::print_store(&s);
        Some(s)
    };
    drop(srv_callout);
    let shared = if args.skip_shared {
        None
    } else {
        Some(crate::shared::run(&args, &setup, &perms, &callout_creds).await?)
    };
    let measured = report::Results {
        service_rss_mib: service_rss.0,
        throughput,
        storm,
        storm_minimal,
        storm_long_timeout,
        store,
        phases,
        ..Default::default()
    };
    finish(&args, &setup, started, work, measured, shared)
}

/// Fill in the run's facts, check the targets, write the JSON.
fn finish(
    args: &RunArgs,
    setup: &Setup,
    started: Instant,
    work: Option<tempfile::TempDir>,
    measured: report::Results,
    shared: Option<crate::shared::Shared>,
) -> anyhow::Result<()> {
    let elapsed = started.elapsed();
    let mut results = report::Results {
        date: report::utc_now(),
        machine: report::machine(&setup.nats_bin),
        args: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        elapsed_seconds: elapsed.as_secs_f64(),
        shared,
        ..measured
    };
    results.targets = report::targets(&results);
    let targets_ok = report::print_targets(&results.targets);
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)?;
    eprintln!(
        "bench: done in {:.0} s; results in {}{}",
        elapsed.as_secs_f64(),
        args.out.display(),
        if targets_ok { "" } else { " (some targets missed)" }
    );
    drop(work);
    Ok(())
}

/// The reconnect storm of `clients` against `server` (answered by process `pid`), printed as `label`.
async fn storm_on(
    setup: &Setup,
    server: &servers::Server,
    pid: u32,
    requested: &[String],
    clients: usize,
    label: &str,
) -> anyhow::Result<crate::storm::Storm> {
    let kick_conn = crate::storm::sys_client(server, &setup.sys_pw).await?;
    let s = crate::storm::run(server, &kick_conn, setup, requested, clients, Some(pid)).await?;
    report::print_storm(label, &s);
    Ok(s)
}
