//! The reconnect storm: thousands of connected clients, every one kicked at once
//! (`$SYS.REQ.SERVER.<id>.KICK`); each reconnects at once, as nats.go and nats.js do
//! for the first attempt after losing a server. Counts authorization failures and
//! measures the time until every client is authorized again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::client::{self, Cred, Failure};
use crate::procs;
use crate::servers::Server;
use crate::setup::{Setup, USERS};

/// How many clients connect at once while the storm is set up.
const RAMP_CONCURRENCY: usize = 200;
/// The storm is measured for at most this long after the kick.
pub const GIVE_UP: Duration = Duration::from_secs(40);
/// After a failed reconnect, wait like nats.go's `ReconnectWait` (2 s) plus jitter.
const RETRY_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Default)]
pub struct Storm {
    pub clients: usize,
    /// Time to connect every client the first time (RAMP_CONCURRENCY at once).
    pub ramp_seconds: f64,
    pub ramp_failures: usize,
    /// Time to send every KICK.
    pub kick_seconds: f64,
    /// Answers to the KICK requests.
    pub kick_replies: usize,
    /// Clients that were disconnected by the kick.
    pub kicked: usize,
    /// Clients authorized again.
    pub recovered: usize,
    /// From the first KICK to the last client authorized again.
    pub recovery_seconds: f64,
    /// Failures while reconnecting: `-ERR` (authorization), timeouts, other.
    pub refused: usize,
    pub timeouts: usize,
    pub io_errors: usize,
    /// Connect latency of the reconnects.
    pub reconnect_p50_ms: f64,
    pub reconnect_p99_ms: f64,
    /// Service CPU per re-authorization during the storm.
    pub service_cpu_ms_per_auth: f64,
}

/// A system-account connection to `server` (for KICK).
pub async fn sys_client(server: &Server, sys_pw: &str) -> anyhow::Result<async_nats::Client> {
    Ok(async_nats::ConnectOptions::new()
        .user_and_password("sys".into(), sys_pw.to_string())
        .connect(server.url())
        .await?)
}

#[derive(Default)]
struct ClientReport {
    ramp_failures: usize,
    kicked: Option<Instant>,
    back: Option<Instant>,
    latency: Option<Duration>,
    refused: usize,
    timeouts: usize,
    io_errors: usize,
}

impl ClientReport {
    fn count(&mut self, f: &Failure) {
        match f {
            Failure::Refused(_) => self.refused += 1,
            Failure::Timeout => self.timeouts += 1,
            Failure::Io(_) => self.io_errors += 1,
        }
    }
}

async fn one_client(
    addr: std::net::SocketAddr,
    cred: Cred,
    ramp: Arc<Semaphore>,
    ids: mpsc::UnboundedSender<(u64, String)>,
    back: Arc<AtomicUsize>,
    mut done: watch::Receiver<bool>,
) -> ClientReport {
    let mut r = ClientReport::default();
    let first = {
        let _permit = ramp.acquire().await;
        loop {
            match client::connect(addr, &cred, true).await {
                Ok(c) => break c,
                Err(_) => {
                    r.ramp_failures += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    };
    let _ = ids.send((first.cid, first.server_id.clone()));
    tokio::select! {
        _ = first.wait_closed() => {}
        _ = done.changed() => return r,
    }
    r.kicked = Some(Instant::now());
    loop {
        let attempt = tokio::select! {
            a = client::connect(addr, &cred, false) => a,
            _ = done.changed() => return r,
        };
        match attempt {
            Ok(c) => {
                r.back = Some(Instant::now());
                r.latency = Some(c.latency);
                back.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = c.wait_closed() => {}
                    _ = done.changed() => {}
                }
                return r;
            }
            Err(f) => {
                r.count(&f);
                let jitter = Duration::from_millis(rand::random::<u64>() % 100);
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_WAIT + jitter) => {}
                    _ = done.changed() => return r,
                }
            }
        }
    }
}

/// A never-seen access token and the room list of a bench user for each of `n` storm clients.
pub fn token_creds(setup: &Setup, requested: &[String], n: usize) -> Vec<Cred> {
    eprintln!("bench: storm: minting {n} tokens");
    (0..n)
        .map(|k| {
            let i = k % USERS;
            let token = setup.token(&format!("b{i}"), &format!("storm{k}"));
            client::connect_line(&token, &requested[i], "")
        })
        .collect()
}

/// The storm: one client per cred in `creds`, connected to `server`, all kicked through the
/// system connection `sys`; `service_pid` is the process whose CPU counts per authorization.
pub async fn run(
    server: &Server,
    sys: &async_nats::Client,
    creds: Vec<Cred>,
    service_pid: Option<u32>,
) -> anyhow::Result<Storm> {
    let n = creds.len();
    let ramp = Arc::new(Semaphore::new(RAMP_CONCURRENCY));
    let (ids_tx, mut ids_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = watch::channel(false);
    let back = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let ramp_start = Instant::now();
    for cred in creds {
        tasks.spawn(one_client(
            server.addr(),
            cred,
            ramp.clone(),
            ids_tx.clone(),
            back.clone(),
            done_rx.clone(),
        ));
    }
    drop(ids_tx);
    let mut ids = Vec::with_capacity(n);
    let ramp_deadline = Instant::now() + Duration::from_secs(120);
    while ids.len() < n {
        match tokio::time::timeout_at(ramp_deadline.into(), ids_rx.recv()).await {
            Ok(Some(id)) => ids.push(id),
            _ => anyhow::bail!("storm: only {} of {n} clients connected", ids.len()),
        }
    }
    let ramp_seconds = ramp_start.elapsed().as_secs_f64();
    eprintln!("bench: storm: {n} clients connected in {ramp_seconds:.1} s; kicking all");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cpu0 = service_pid.map_or(0.0, procs::cpu_seconds);
    let inbox = sys.new_inbox();
    let mut replies = sys.subscribe(inbox.clone()).await?;
    let kick_start = Instant::now();
    for (cid, server_id) in &ids {
        let subject = format!("$SYS.REQ.SERVER.{server_id}.KICK");
        let body = serde_json::to_vec(&serde_json::json!({ "cid": cid }))?;
        sys.publish_with_reply(subject, inbox.clone(), body.into())
            .await?;
    }
    sys.flush().await?;
    let kick_seconds = kick_start.elapsed().as_secs_f64();
    let counting = tokio::spawn(async move {
        let mut k = 0usize;
        while k < n {
            match tokio::time::timeout(Duration::from_secs(2), replies.next()).await {
                Ok(Some(_)) => k += 1,
                _ => break,
            }
        }
        k
    });

    // Wait until every client is back (or give up), then close them all.
    let give_up = kick_start + GIVE_UP;
    while back.load(Ordering::Relaxed) < n && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu1 = service_pid.map_or(0.0, procs::cpu_seconds);
    let _ = done_tx.send(true);
    let mut reports = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        if let Ok(r) = r {
            reports.push(r);
        }
    }
    let kick_replies = counting.await.unwrap_or(0);

    let mut s = Storm {
        clients: n,
        ramp_seconds,
        kick_seconds,
        kick_replies,
        ..Default::default()
    };
    let mut latencies = Vec::new();
    let mut last_back = kick_start;
    for r in &reports {
        s.ramp_failures += r.ramp_failures;
        s.kicked += usize::from(r.kicked.is_some());
        if let Some(b) = r.back {
            s.recovered += 1;
            last_back = last_back.max(b);
        }
        if let Some(l) = r.latency {
            latencies.push(l.as_secs_f64() * 1e3);
        }
        s.refused += r.refused;
        s.timeouts += r.timeouts;
        s.io_errors += r.io_errors;
    }
    s.recovery_seconds = if s.recovered == n {
        last_back.duration_since(kick_start).as_secs_f64()
    } else {
        GIVE_UP.as_secs_f64() // not recovered within the limit
    };
    latencies.sort_by(f64::total_cmp);
    s.reconnect_p50_ms = crate::stats::percentile(&latencies, 0.50);
    s.reconnect_p99_ms = crate::stats::percentile(&latencies, 0.99);
    let auths = (s.recovered + s.refused).max(1) as f64;
    s.service_cpu_ms_per_auth = (cpu1 - cpu0) * 1e3 / auths;
    Ok(s)
}
