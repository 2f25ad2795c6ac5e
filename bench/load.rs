//! The throughput and latency phases, and the whole run.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::RunArgs;
use crate::client::{self, Cred};
use crate::procs::{self, Proc};
use crate::report;
use crate::servers;
use crate::setup::{Setup, Target, USERS, phase, static_users, wait_authorized, write_bench_permissions};
use crate::stats;

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
    let fresh_creds: Vec<Cred> = (0..fresh_n)
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
    if args.delegation.only_delegation {
        let measured = report::Results {
            delegation: Some(crate::delegation::run(&args, &setup).await?),
            ..Default::default()
        };
        return finish(&args, &setup, started, work, measured, None);
    }
    if args.only_looping {
        let measured = report::Results {
            looping: Some(crate::looping::run(&args, &setup, &perms, &callout_creds).await?),
            ..Default::default()
        };
        return finish(&args, &setup, started, work, measured, None);
    }
    if args.rooms.only_rooms {
        let measured = report::Results {
            rooms: Some(crate::rooms::run(&args, &setup).await?),
            ..Default::default()
        };
        return finish(&args, &setup, started, work, measured, None);
    }
    let srv_callout = setup.callout_server("nats-callout", 2)?;
    let srv_minimal = setup.callout_server("nats-minimal", 2)?;
    let users = static_users(&requested);
    let srv_static = servers::start(&setup.nats_bin, &dir, "nats-static", |port| {
        servers::static_conf(port, &users, &setup.callout_pw, &setup.sys_pw)
    })?;

    // Operator mode: NATS credentials, and the callout behind the same server.
    let operator = if args.skip_credentials {
        None
    } else {
        Some(crate::operator::Operator::start(&setup, &perms)?)
    };

    let service_conf = setup.service_config("service", &srv_callout, &perms)?;
    let service = setup.start_service("service", &service_conf)?;
    let responder_conf = setup.service_config("responder", &srv_minimal, &perms)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("responder").arg("--config").arg(&responder_conf);
    let mut responder = Proc::spawn("responder", cmd, &dir.join("responder.log"))?;
    responder.wait_line("ready", Duration::from_secs(20))?;

    let mut targets = vec![
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
    let mut jwt_creds = Vec::new();
    let mut mint = None;
    if let Some(op) = &operator {
        op.wait_minting(
            &setup.token("b0", "probe"),
            &requested[0],
            Duration::from_secs(30),
        )
        .await?;
        eprintln!("bench: minting NATS credentials for {USERS} users");
        let (creds, m) = op.mint_all(&setup, &requested).await?;
        report::print_mint(&m);
        (jwt_creds, mint) = (creds, Some(m));
        let on_op = |name: &str, creds: Arc<Vec<Cred>>| Target {
            name: name.into(),
            addr: op.server.addr(),
            server_pid: op.server.pid(),
            service_pid: Some(op.service.pid()),
            creds,
            once: false,
        };
        targets.push(on_op("credentials", Arc::new(jwt_creds.clone())));
        targets.push(on_op("callout-op", callout_creds.clone()));
    }
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
                eprintln!("{}", stats::phase_line(&p));
                phases.push(p);
            }
            if c == 20 {
                let p = phase(&fresh, c, args.phase(), round).await;
                eprintln!("{}", stats::phase_line(&p));
                phases.push(p);
            }
        }
    }
    let service_rss = procs::memory_mib(service.pid());
    let throughput = stats::summarize(&phases, &args.concurrency);
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
    let (mut storm_credentials, mut storm_callout_op) = (None, None);
    if let Some(op) = &operator
        && n > 0
    {
        let sys = op.sys_client().await?;
        let pid = Some(op.service.pid());
        // Each nkey's JWT used by several clients, as the callout's storm repeats users.
        let creds = (0..n).map(|k| jwt_creds[k % jwt_creds.len()].clone()).collect();
        let s = crate::storm::run(&op.server, &sys, creds, pid).await?;
        report::print_storm("operator mode, NATS credentials (JWT + nonce signature)", &s);
        storm_credentials = Some(s);
        let creds = crate::storm::token_creds(&setup, &requested, n);
        let s = crate::storm::run(&op.server, &sys, creds, pid).await?;
        report::print_storm("operator mode, the callout (same server)", &s);
        storm_callout_op = Some(s);
    }
    drop(operator);

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
    let rooms = if args.rooms.skip_rooms {
        None
    } else {
        Some(crate::rooms::run(&args, &setup).await?)
    };
    let looping = if args.skip_looping {
        None
    } else {
        Some(crate::looping::run(&args, &setup, &perms, &callout_creds).await?)
    };
    let delegation = if args.delegation.skip_delegation {
        None
    } else {
        Some(crate::delegation::run(&args, &setup).await?)
    };
    let measured = report::Results {
        rooms,
        looping,
        delegation,
        service_rss_mib: service_rss.0,
        throughput,
        storm,
        storm_minimal,
        storm_long_timeout,
        mint,
        storm_credentials,
        storm_callout_op,
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
    let creds = crate::storm::token_creds(setup, requested, clients);
    let s = crate::storm::run(server, &kick_conn, creds, Some(pid)).await?;
    report::print_storm(label, &s);
    Ok(s)
}
