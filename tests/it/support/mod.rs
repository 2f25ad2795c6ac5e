//! What the integration tests start, split by what it is:
//!
//! - [`server`]: a nats-server (free ports, temp dir), a cluster, the hardened TLS set-up;
//! - [`env`]: one test's world around it: keys, permission files, the service configuration;
//! - [`service`]: the service in-process, and the binary;
//! - [`client`]: chat clients (async-nats, websocket);
//! - [`operator`]: an operator-mode world (decentralized JWTs, NATS credentials);
//! - [`raw`]: raw protocol connections;
//! - [`api`]: the HTTP API as a client uses it;
//! - [`idp`]: a real OpenID provider (npm `oidc-provider`);
//! - [`proxy`]: a TCP proxy a test can cut.

pub mod api;
pub mod client;
pub mod env;
pub mod idp;
pub mod operator;
pub mod proxy;
pub mod raw;
pub mod server;
pub mod service;

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub use client::{Conn, TokenIn, connect_to, connect_via, connect_with_jwt, talks, ws_exchange};
pub use env::{EnvOptions, TestEnv};
pub use service::CalloutHandle;

/// Generous upper bound on anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A port free now, for a listener a test starts a little later. Chosen at random below
/// the kernel's ephemeral range: a port from that range (what binding port 0 gives) can be
/// taken in the meantime by any client's outbound socket, and the tests open thousands.
pub fn free_port() -> u16 {
    use rand::Rng;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (ephemeral_start / 2, ephemeral_start);
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let port = rng.gen_range(low..high);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..{high}");
}

/// The `nats-callout` binary, with the developer's `NATS_CALLOUT_*` variables kept out.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nats-callout"));
    for (k, _) in std::env::vars() {
        if k.starts_with("NATS_CALLOUT_") {
            c.env_remove(k);
        }
    }
    c
}

/// A child process, killed when dropped (a failing test leaves nothing running).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until something listens on `port` (the process `what` started), up to the deadline.
pub fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < DEADLINE, "{what} did not open port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until the nats-server `child`, logging to `log` (`-l`), says it is ready: `false`
/// if it exited first (a port of its configuration was taken meanwhile). An open port alone
/// proves nothing: another test's server may hold it.
pub fn nats_ready(child: &mut Child, log: &std::path::Path) -> bool {
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::fs::read_to_string(log).is_ok_and(|l| l.contains("Server is ready")) {
            return true;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "nats-server ({}) never got ready",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
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
    let limit = nats_callout::testing::raise_fd_limit();
    assert!(limit >= n, "the open-file limit {limit} is below {n}");
}

/// Wait until `f` holds, checking every 20 ms, up to the deadline.
pub async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until the service has completed a CONNZ reconcile asked after this call: two more
/// than now (the one under way may have asked before).
pub async fn after_a_reconcile(ops: &nats_callout::ops::Ops) {
    let count = |s: serde_json::Value| {
        s["enforcement"]["reconciles"]
            .as_u64()
            .expect("reconciles in status")
    };
    let start = count(ops.status().await);
    let since = Instant::now();
    while count(ops.status().await) < start + 2 {
        assert!(since.elapsed() < DEADLINE, "no CONNZ reconcile completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
