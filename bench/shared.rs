//! The scale-out numbers: refreshes per second and their latency on redb, JetStream R1
//! (one server) and JetStream R3 (a three-node cluster) in the same run; authorization
//! throughput of the service with the JetStream store against redb (decisions read
//! revocations from memory, so the store must not slow them); how long a revocation
//! written by one instance takes to be in force on another; how long the enforcer lease
//! takes to move when its holder dies.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nats_callout::enforcement::lease::Lease;
use nats_callout::health::Health;
use nats_callout::tokens::Opening;
use nats_callout::tokens::feed;
use nats_callout::tokens::refresh::{RefreshService, RefreshSettings};
use nats_callout::tokens::revocation::{Revocation, RevocationKind, Revocations};
use nats_callout::tokens::store::{KvSettings, KvStore, RedbStore, TokenStore};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::RunArgs;
use crate::client::Cred;
use crate::procs::free_port;
use crate::servers::{self, Server};
use crate::setup::{Setup, Target, interleaved_c20, wait_authorized};
use crate::stats::{Summary, percentile, summarize_systems};

/// Concurrent refresh chains per store.
const REFRESH_WORKERS: usize = 16;
/// Revocations timed from one instance to another.
const REVOCATIONS: usize = 50;
/// The enforcer lease time (the default `enforcement.lease_ttl`).
const LEASE_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize)]
pub struct Shared {
    pub refresh: Vec<RefreshRun>,
    pub authorization: Vec<Summary>,
    pub revocation_ms: Quantiles,
    pub failover_ms: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct RefreshRun {
    pub store: String,
    pub refreshes: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Quantiles {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn quantiles(mut v: Vec<f64>) -> Quantiles {
    v.sort_by(f64::total_cmp);
    Quantiles {
        n: v.len(),
        p50: percentile(&v, 0.5),
        p99: percentile(&v, 0.99),
        max: v.last().copied().unwrap_or(0.0),
    }
}

/// A plain JetStream node (no auth): `cluster` is its `cluster {}` block, or empty.
fn js_node(bin: &Path, dir: &Path, name: &'static str, cluster: String) -> anyhow::Result<Server> {
    let store = dir.join(format!("js-{name}"));
    servers::start(bin, dir, name, |port| {
        format!(
            "listen: 127.0.0.1:{port}\nserver_name: {name}\njetstream {{ store_dir: {store:?} }}\n{cluster}\n"
        )
    })
}

/// Three JetStream nodes clustered on loopback.
fn js_cluster(bin: &Path, dir: &Path) -> anyhow::Result<Vec<Server>> {
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let list = routes
        .iter()
        .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let names = ["js-n1", "js-n2", "js-n3"];
    names
        .iter()
        .zip(&routes)
        .map(|(name, port)| {
            let cluster =
                format!("cluster {{ name: bench, listen: \"127.0.0.1:{port}\", routes: [{list}] }}");
            js_node(bin, dir, name, cluster)
        })
        .collect()
}

fn kv_settings(replicas: usize) -> KvSettings {
    KvSettings {
        prefix: "bench".into(),
        replicas,
        records_max_age: Duration::from_secs(86_400),
        revocations_max_age: Duration::from_secs(86_400),
    }
}

/// A JetStream store on `url`, once its buckets answer (a new cluster elects first).
async fn kv_store(url: &str, replicas: usize) -> anyhow::Result<Arc<KvStore>> {
    let client = async_nats::connect(url).await?;
    let store = Arc::new(KvStore::new(client, kv_settings(replicas)));
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = store.check().await {
        anyhow::ensure!(
            Instant::now() < deadline,
            "JetStream at {url} never answered: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(store)
}

/// `REFRESH_WORKERS` chains refreshing as fast as they can for `dur`.
async fn refresh_run(name: &str, store: Arc<dyn TokenStore>, dur: Duration) -> anyhow::Result<RefreshRun> {
    let svc = Arc::new(RefreshService::new(store, [9; 32], RefreshSettings::default()));
    let now = nats_callout::clock::now_secs();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..REFRESH_WORKERS {
        let first = svc
            .open(&Opening::plain(&format!("u{w}"), Some("d"), None), now)
            .await?;
        let svc = svc.clone();
        workers.spawn(async move {
            let (mut token, mut lat, mut errors) = (first.refresh_token, Vec::new(), 0usize);
            let end = Instant::now() + dur;
            while Instant::now() < end {
                let t = Instant::now();
                match svc.rotate(&token, nats_callout::clock::now_secs()).await {
                    Ok(next) => {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        token = next.refresh_token;
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        });
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    while let Some(r) = workers.join_next().await {
        let (l, e) = r?;
        lat.extend(l);
        errors += e;
    }
    let q = quantiles(lat);
    let run = RefreshRun {
        store: name.into(),
        refreshes: q.n,
        per_second: q.n as f64 / dur.as_secs_f64(),
        p50_ms: q.p50,
        p99_ms: q.p99,
        errors,
    };
    eprintln!(
        "bench: refresh on {:<14} {:>7.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
        run.store, run.per_second, run.p50_ms, run.p99_ms, run.errors
    );
    Ok(run)
}

/// From `record_revocation` on one store to the entry applied by the other's watch.
async fn revocation_times(writer: &KvStore, reader: Arc<KvStore>) -> anyhow::Result<Quantiles> {
    let revocations = Revocations::default();
    let (loaded_tx, mut loaded) = tokio::sync::watch::channel(false);
    let stop = CancellationToken::new();
    let follow = tokio::spawn(feed::follow(
        reader,
        revocations.clone(),
        Arc::new(Health::default()),
        loaded_tx,
        stop.clone(),
    ));
    feed::until_loaded(&mut loaded).await;
    let mut applied = revocations.subscribe();
    let mut times = Vec::with_capacity(REVOCATIONS);
    for i in 0..REVOCATIONS {
        let r = Revocation {
            kind: RevocationKind::User,
            value: format!("bench-user-{i}"),
            cutoff: nats_callout::clock::now_secs(),
            expires_at: nats_callout::clock::now_secs() + 3600,
        };
        let t = Instant::now();
        writer.record_revocation(&r).await?;
        loop {
            let got = tokio::time::timeout(Duration::from_secs(10), applied.recv())
                .await
                .context("a revocation never arrived")??;
            if got.iter().any(|g| g.value == r.value) {
                break;
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    stop.cancel();
    let _ = follow.await;
    let q = quantiles(times);
    eprintln!(
        "bench: revocation from one instance in force on another: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} revocations)",
        q.p50, q.p99, q.max, q.n
    );
    Ok(q)
}

/// Two instances contend for the lease; the holder dies (stops renewing, never lets go);
/// the time until the other holds it.
async fn failover_times(url: &str, replicas: usize, trials: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for trial in 0..trials {
        let spec = Lease::bucket(format!("bench_leases_{trial}"), LEASE_TTL, replicas);
        let js = |c| nats_callout::kv::context(c);
        let (a, b) = (Lease::new("a", spec.clone()), Lease::new("b", spec));
        let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
        let task_a = tokio::spawn(
            a.clone()
                .run(js(async_nats::connect(url).await?), || {}, stop_a.clone()),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !a.held() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the first instance never took the lease"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let task_b = tokio::spawn(
            b.clone()
                .run(js(async_nats::connect(url).await?), || {}, stop_b.clone()),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        anyhow::ensure!(!b.held(), "two holders");
        task_a.abort(); // died: no renewal, no release
        let died = Instant::now();
        while !b.held() {
            anyhow::ensure!(died.elapsed() < Duration::from_secs(30), "the lease never moved");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        out.push(died.elapsed().as_secs_f64() * 1e3);
        stop_a.cancel();
        stop_b.cancel();
        let _ = task_b.await;
    }
    eprintln!(
        "bench: enforcer failover (lease {LEASE_TTL:?}): {}",
        out.iter()
            .map(|ms| format!("{:.1} s", ms / 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(out)
}

/// Authorization throughput at concurrency 20, the service on redb and on JetStream,
/// rounds interleaved.
async fn authorization(
    args: &RunArgs,
    setup: &Setup,
    perms: &Path,
    creds: &Arc<Vec<Cred>>,
) -> anyhow::Result<Vec<Summary>> {
    let mut targets = Vec::new();
    let mut keep = Vec::new();
    for (name, extra) in [
        ("callout-redb", ""),
        ("callout-jetstream", "[store]\nbackend = \"jetstream\"\n"),
    ] {
        let srv = setup.callout_server_with(name, 2, true)?;
        let conf = setup.service_config_with(name, &srv, perms, extra)?;
        let svc = setup.start_service(name, &conf)?;
        wait_authorized(srv.addr(), &creds[0], Duration::from_secs(30))
            .await
            .with_context(|| format!("{name} does not authorize"))?;
        targets.push(Target {
            name: name.into(),
            addr: srv.addr(),
            server_pid: srv.pid(),
            service_pid: Some(svc.pid()),
            creds: creds.clone(),
            once: false,
        });
        keep.push((srv, svc));
    }
    let phases = interleaved_c20(args, &targets).await;
    let s = summarize_systems(&phases, &["callout-redb", "callout-jetstream"], &[20]);
    for x in &s {
        eprintln!(
            "bench: authorizations with the {:<18} store: {:>6.0}/s (median of {}), p99 {:.2} ms",
            x.system.trim_start_matches("callout-"),
            x.rate_median,
            x.rounds,
            x.p99_ms
        );
    }
    Ok(s)
}

/// The whole scale-out phase.
pub async fn run(
    args: &RunArgs,
    setup: &Setup,
    perms: &Path,
    creds: &Arc<Vec<Cred>>,
) -> anyhow::Result<Shared> {
    let dir = setup.dir.join("shared");
    std::fs::create_dir_all(&dir)?;
    let dur = args.phase();
    let mut refresh = Vec::new();
    let redb = RedbStore::open(&dir.join("refresh.redb"))?;
    refresh.push(refresh_run("redb", Arc::new(redb), dur).await?);
    let one = js_node(&setup.nats_bin, &dir, "js-single", String::new())?;
    refresh.push(refresh_run("jetstream-r1", kv_store(&one.url(), 1).await?, dur).await?);
    let nodes = js_cluster(&setup.nats_bin, &dir)?;
    let r3 = kv_store(&nodes[0].url(), 3).await?;
    refresh.push(refresh_run("jetstream-r3", r3.clone(), dur).await?);
    let other = kv_store(&nodes[1].url(), 3).await?;
    let revocation_ms = revocation_times(&r3, other).await?;
    let failover_ms = failover_times(&nodes[2].url(), 3, 2).await?;
    drop(nodes);
    drop(one);
    let authorization = authorization(args, setup, perms, creds).await?;
    Ok(Shared {
        refresh,
        authorization,
        revocation_ms,
        failover_ms,
    })
}
