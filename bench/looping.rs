//! A client reconnecting in a tight loop beside normal traffic (issue 30): what it costs the
//! normal clients, with and without `limits.connect_rate`.
//!
//! Two callout servers, each answered by the real service with live enforcement; one has
//! `connect_rate` on (by default the guide's example: 20 connects in 10 s, a 60 s cool-down). In each
//! phase normal clients connect at c=20 (users `b1..`) while one broken client (user `b0`)
//! connects and drops its connection as fast as it can, on the same server; a third system
//! is the server without the rate and without the looping client (the baseline). Rounds are
//! interleaved and rotated as in the other phases; p99 is over every normal connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::RunArgs;
use crate::client::{self, Cred, Failure};
use crate::setup::{ConfigParts, Setup, Target, phase, wait_authorized};
use crate::stats::{Summary, summarize_systems};

/// The systems of the phase, in the order of the report.
pub const SYSTEMS: [&str; 3] = ["no-loop", "loop-rate-off", "loop-rate-on"];
/// `limits.connect_rate` of the rate-on service, with `connects` (the guide's example: 20).
fn rate(connects: u32) -> String {
    format!("connect_rate = {{ connects = {connects}, window = \"10s\", cooldown = \"60s\" }}")
}

/// What the phase measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Looping {
    pub rate: String,
    /// The normal clients (c=20), per system.
    pub normal: Vec<Summary>,
    /// The looping client, per system: its connects allowed and refused per second (the
    /// medians of the rounds).
    pub looper: Vec<Looper>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Looper {
    pub system: String,
    pub allowed_per_second: f64,
    pub refused_per_second: f64,
}

/// The looping client's counts of one phase.
#[derive(Default)]
struct Counts {
    allowed: AtomicUsize,
    refused: AtomicUsize,
}

/// Connect with `cred` as fast as possible until `stop` (a refused one is retried at once:
/// a broken client).
async fn looping(addr: std::net::SocketAddr, cred: Cred, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    while !stop.load(Ordering::Relaxed) {
        match client::connect(addr, &cred, false).await {
            Ok(c) => {
                counts.allowed.fetch_add(1, Ordering::Relaxed);
                c.reset();
            }
            Err(Failure::Refused(_)) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Run the phase: `creds[0]` is the looping client's CONNECT, the rest the normal clients'.
pub async fn run(
    args: &RunArgs,
    setup: &Setup,
    perms: &std::path::Path,
    creds: &[Cred],
) -> anyhow::Result<Looping> {
    let nats = setup.system_user();
    let start = |name: &'static str, extra: String| -> anyhow::Result<_> {
        let server = setup.callout_server(name, 2)?;
        let parts = ConfigParts {
            nats: &nats,
            listen: "",
            admin_listen: "",
            extra: &extra,
        };
        let conf = setup.service_config_parts(name, &server, perms, &parts)?;
        let service = setup.start_service(name, &conf)?;
        Ok((server, service))
    };
    let (srv_off, svc_off) = start("loop-rate-off", String::new())?;
    let rate = rate(args.looping_connects);
    let (srv_on, svc_on) = start("loop-rate-on", format!("[limits]\n{rate}\n"))?;
    let normal = Arc::new(creds[1..].to_vec());
    let target = |name: &str, srv: &crate::servers::Server, svc: &crate::procs::Proc| Target {
        name: name.into(),
        addr: srv.addr(),
        server_pid: srv.pid(),
        service_pid: Some(svc.pid()),
        creds: normal.clone(),
        once: false,
    };
    let targets = [
        target(SYSTEMS[0], &srv_off, &svc_off),
        target(SYSTEMS[1], &srv_off, &svc_off),
        target(SYSTEMS[2], &srv_on, &svc_on),
    ];
    for t in &targets {
        wait_authorized(t.addr, &t.creds[0], Duration::from_secs(20))
            .await
            .with_context(|| format!("{} does not authorize", t.name))?;
    }
    // Past the first moments of each server the rate does not count (`settle`).
    tokio::time::sleep(Duration::from_secs(11)).await;
    for t in &targets {
        phase(t, 20, Duration::from_secs(1), 0).await;
    }
    let mut phases = Vec::new();
    let mut loopers: Vec<(String, f64, f64)> = Vec::new();
    for round in 0..args.rounds {
        for k in 0..targets.len() {
            let t = &targets[(k + round) % targets.len()];
            let (stop, counts) = (Arc::new(AtomicBool::new(false)), Arc::new(Counts::default()));
            let looper = (t.name != SYSTEMS[0])
                .then(|| tokio::spawn(looping(t.addr, creds[0].clone(), stop.clone(), counts.clone())));
            let p = phase(t, 20, args.phase(), round).await;
            stop.store(true, Ordering::Relaxed);
            if let Some(l) = looper {
                let _ = l.await;
                let secs = p.seconds.max(1e-9);
                let (ok, refused) = (
                    counts.allowed.load(Ordering::Relaxed),
                    counts.refused.load(Ordering::Relaxed),
                );
                loopers.push((t.name.clone(), ok as f64 / secs, refused as f64 / secs));
                eprintln!(
                    "{}  (looping client: {ok} allowed, {refused} refused)",
                    crate::stats::phase_line(&p)
                );
            } else {
                eprintln!("{}", crate::stats::phase_line(&p));
            }
            phases.push(p);
        }
    }
    let looper = SYSTEMS[1..]
        .iter()
        .map(|s| {
            let of = |f: fn(&(String, f64, f64)) -> f64| {
                crate::stats::median(loopers.iter().filter(|l| l.0 == *s).map(f).collect())
            };
            Looper {
                system: s.to_string(),
                allowed_per_second: of(|l| l.1),
                refused_per_second: of(|l| l.2),
            }
        })
        .collect();
    let measured = Looping {
        rate,
        normal: summarize_systems(&phases, &SYSTEMS, &[20]),
        looper,
    };
    crate::report::print_looping(&measured);
    drop((svc_off, svc_on, srv_off, srv_on));
    Ok(measured)
}
