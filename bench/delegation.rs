//! Delegated decisions (issue 27): connect latency with one delegated room beside the plain
//! callout, on one nats-server and one service (`authorization.timeout` 2 s). An app service
//! in the service's own account (the load tool, as the `callout` user) answers `bench.now`
//! at once, `bench.slow` after 100 ms and never `bench.never` (subscribed, silent: each such
//! room waits the whole budget, 250 ms); `bench.cached` answers at once and its answers are
//! kept (30 s), the others' not (`cache = "0s"`: every connect asks). Users `b{i}` ask for
//! `all1` and one room: `r{i}` (the files, no delegate), or a delegated room of their own.
//! Concurrency 1 and 20, the systems interleaved per round.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;

use crate::RunArgs;
use crate::client;
use crate::setup::{Setup, Target, USERS, phase, wait_authorized, write_bench_permissions};
use crate::stats::{Summary, phase_line, summarize_systems};

/// The systems: the plain callout, then one delegated room answered at once, from the cache,
/// after 100 ms, and never.
pub const SYSTEMS: [&str; 5] = [
    "plain",
    "delegate-now",
    "delegate-cached",
    "delegate-100ms",
    "delegate-never",
];

/// The delegates' budget (`timeout`).
pub const BUDGET: Duration = Duration::from_millis(250);

/// The delegation options of `bench run`.
#[derive(clap::Args, Clone)]
pub struct DelegationArgs {
    /// Skip the delegated-decisions phase.
    #[arg(long, conflicts_with = "only_delegation")]
    pub skip_delegation: bool,
    /// Run only the delegated-decisions phase.
    #[arg(long)]
    pub only_delegation: bool,
}

/// What the phase measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Delegation {
    /// Each system at c=1 and c=20.
    pub systems: Vec<Summary>,
    /// Asks the app service received, per subject.
    pub asks_now: u64,
    pub asks_cached: u64,
    pub asks_slow: u64,
    pub asks_never: u64,
    pub budget_ms: f64,
}

/// The `[[access.delegate]]` tables of the service.
fn tables() -> String {
    let table = |rooms: &str, subject: &str, cache: &str| {
        format!(
            "[[access.delegate]]\nrooms = \"{rooms}\"\nsubject = \"{subject}\"\ntimeout = \"{}ms\"\n{cache}",
            BUDGET.as_millis()
        )
    };
    [
        table("now-*", "bench.now", "cache = \"0s\"\n"),
        table("cached-*", "bench.cached", ""),
        table("slow-*", "bench.slow", "cache = \"0s\"\n"),
        table("never-*", "bench.never", "cache = \"0s\"\n"),
    ]
    .concat()
}

/// The app service: answers on each subject as the module says; counts the asks.
async fn app_service(
    client: async_nats::Client,
    subject: &'static str,
    delay: Option<Duration>,
) -> anyhow::Result<Arc<AtomicU64>> {
    let mut sub = client.subscribe(subject).await?;
    client.flush().await?;
    let asks = Arc::new(AtomicU64::new(0));
    let counted = asks.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            counted.fetch_add(1, Ordering::Relaxed);
            let (Some(reply), Some(delay)) = (m.reply, delay) else {
                continue;
            };
            let client = client.clone();
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let _ = client.publish(reply, r#"{"access":"readwrite"}"#.into()).await;
            });
        }
    });
    Ok(asks)
}

/// The phase.
pub async fn run(args: &RunArgs, setup: &Setup) -> anyhow::Result<Delegation> {
    eprintln!("bench: delegated decisions (one delegated room against the plain callout)");
    let perms = setup.dir.join("perms-delegation");
    write_bench_permissions(&perms)?;
    let server = setup.callout_server("nats-delegation", 2)?;
    let conf = setup.service_config_with("service-delegation", &server, &perms, &tables())?;
    let service = setup.start_service("service-delegation", &conf)?;
    let app = async_nats::ConnectOptions::new()
        .user_and_password("callout".into(), setup.callout_pw.clone())
        .connect(server.url())
        .await
        .context("the app service connects")?;
    let asks = [
        app_service(app.clone(), "bench.now", Some(Duration::ZERO)).await?,
        app_service(app.clone(), "bench.cached", Some(Duration::ZERO)).await?,
        app_service(app.clone(), "bench.slow", Some(Duration::from_millis(100))).await?,
        app_service(app.clone(), "bench.never", None).await?,
    ];
    let rooms = |system: &str, i: usize| match system {
        "plain" => format!("all1;r{i}"),
        "delegate-now" => format!("all1;now-{i}"),
        "delegate-cached" => format!("all1;cached-{i}"),
        "delegate-100ms" => format!("all1;slow-{i}"),
        _ => format!("all1;never-{i}"),
    };
    let tokens: Vec<String> = (0..USERS)
        .map(|i| setup.token(&format!("b{i}"), &format!("delegation{i}")))
        .collect();
    let targets: Vec<Target> = SYSTEMS
        .iter()
        .map(|system| Target {
            name: (*system).into(),
            addr: server.addr(),
            server_pid: server.pid(),
            service_pid: Some(service.pid()),
            creds: Arc::new(
                (0..USERS)
                    .map(|i| client::connect_line(&tokens[i], &rooms(system, i), ""))
                    .collect(),
            ),
            once: false,
        })
        .collect();
    for t in &targets {
        wait_authorized(t.addr, &t.creds[0], Duration::from_secs(20))
            .await
            .with_context(|| format!("{} does not authorize", t.name))?;
    }
    let concurrency = [1, 20];
    for t in &targets {
        phase(t, 20, Duration::from_millis(500), 0).await;
    }
    let mut phases = Vec::new();
    for round in 0..args.rounds {
        for &c in &concurrency {
            for k in 0..targets.len() {
                let t = &targets[(k + round) % targets.len()];
                let p = phase(t, c, args.phase(), round).await;
                eprintln!("{}", phase_line(&p));
                phases.push(p);
            }
        }
    }
    let systems = summarize_systems(&phases, &SYSTEMS, &concurrency);
    for s in &systems {
        eprintln!(
            "bench: delegation: {:<16} c={:<2} {:>6.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  failed {}",
            s.system,
            s.concurrency,
            s.rate_median,
            s.p50_ms,
            s.p99_ms,
            s.refused + s.timeouts + s.io_errors
        );
    }
    let n = |i: usize| asks[i].load(Ordering::Relaxed);
    Ok(Delegation {
        systems,
        asks_now: n(0),
        asks_cached: n(1),
        asks_slow: n(2),
        asks_never: n(3),
        budget_ms: BUDGET.as_secs_f64() * 1e3,
    })
}
