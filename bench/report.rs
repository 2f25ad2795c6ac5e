//! Summaries, ratios, targets, and what is printed.

use serde::Serialize;

use crate::setup::Phase;
use crate::stats::Summary;
use crate::store::Store;
use crate::storm::Storm;

/// Everything one run measured (written as JSON).
#[derive(Debug, Serialize, Default)]
pub struct Results {
    pub date: String,
    pub machine: Machine,
    pub args: String,
    pub elapsed_seconds: f64,
    /// The service's resident memory after the throughput phases (small permission set).
    pub service_rss_mib: f64,
    pub throughput: Vec<Summary>,
    pub storm: Option<Storm>,
    /// The same storm against the minimal responder (not a target; the floor).
    pub storm_minimal: Option<Storm>,
    /// The same storm with `authorization.timeout: 10s` (not a target; shows the effect).
    pub storm_long_timeout: Option<Storm>,
    /// Operator mode: minting every bench user's NATS credentials over HTTP (not timed in
    /// the connect rates).
    pub mint: Option<crate::operator::Mint>,
    /// The storm with NATS credentials (JWT + nonce signature), and through the callout on
    /// the same operator-mode server.
    pub storm_credentials: Option<Storm>,
    pub storm_callout_op: Option<Storm>,
    pub store: Option<Store>,
    /// The scale-out phase (JetStream store, propagation, failover).
    pub shared: Option<crate::shared::Shared>,
    /// Rooms as data at scale.
    pub rooms: Option<crate::rooms::Rooms>,
    /// Delegated decisions: one delegated room beside the plain callout.
    pub delegation: Option<crate::delegation::Delegation>,
    /// A client reconnecting in a loop, with and without `limits.connect_rate`.
    pub looping: Option<crate::looping::Looping>,
    pub targets: Vec<Check>,
    pub phases: Vec<Phase>,
}

#[derive(Debug, Serialize, Default)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_mib: f64,
    pub kernel: String,
    pub load_average: String,
    pub nats_server: String,
}

/// A target and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub target: String,
    pub value: f64,
    pub limit: String,
    pub met: bool,
}

fn find<'a>(s: &'a [Summary], system: &str, c: usize) -> Option<&'a Summary> {
    s.iter().find(|x| x.system == system && x.concurrency == c)
}

pub fn print_throughput(s: &[Summary]) {
    println!();
    println!("Authorized connections (medians of the rounds; latency over all connections)");
    println!(
        "{:<14} {:>4} {:>9} {:>19} {:>8} {:>8} {:>7} {:>12} {:>12}",
        "system", "c", "conn/s", "(min..max)", "p50 ms", "p99 ms", "failed", "svc ms/auth", "srv ms/conn"
    );
    for x in s {
        println!(
            "{:<14} {:>4} {:>9.0} {:>19} {:>8.2} {:>8.2} {:>7} {:>12} {:>12.3}",
            x.system,
            x.concurrency,
            x.rate_median,
            format!("({:.0}..{:.0})", x.rate_min, x.rate_max),
            x.p50_ms,
            x.p99_ms,
            x.refused + x.timeouts + x.io_errors,
            x.service_cpu_ms_per_auth
                .map_or("-".to_string(), |v| format!("{v:.3}")),
            x.server_cpu_ms_per_conn,
        );
    }
    println!();
    println!("Ratios (same run)");
    let concs: Vec<usize> = {
        let mut c: Vec<usize> = s.iter().map(|x| x.concurrency).collect();
        c.dedup();
        c.sort();
        c.dedup();
        c
    };
    for c in concs {
        let (Some(co), Some(mi), Some(st)) =
            (find(s, "callout", c), find(s, "minimal", c), find(s, "static", c))
        else {
            continue;
        };
        println!(
            "  c={c:<3} callout/minimal {:.2}x  callout/static {:.2}x  minimal/static {:.2}x  p99 callout/minimal {:.2}x",
            co.rate_median / mi.rate_median,
            co.rate_median / st.rate_median,
            mi.rate_median / st.rate_median,
            co.p99_ms / mi.p99_ms,
        );
        if let (Some(cr), Some(op)) = (find(s, "credentials", c), find(s, "callout-op", c)) {
            println!(
                "        credentials/callout-op {:.2}x  credentials/callout {:.2}x  credentials/static {:.2}x  callout-op/callout {:.2}x",
                cr.rate_median / op.rate_median,
                cr.rate_median / co.rate_median,
                cr.rate_median / st.rate_median,
                op.rate_median / co.rate_median,
            );
            // On a host where every process shares the cores, connects/s follow CPU per
            // connect: what nats-server and the service spend on each way in bounds the ratio
            // (the load generator's own share, alike for both, pulls it towards 1).
            let svc = |x: &Summary| x.service_cpu_ms_per_auth.unwrap_or(0.0);
            let op_cpu = op.server_cpu_ms_per_conn + svc(op);
            println!(
                "        CPU per connect (nats-server + service) callout-op/credentials {:.2}x; \
                 with a service spending nothing on credentials {:.2}x",
                op_cpu / (cr.server_cpu_ms_per_conn + svc(cr)),
                op_cpu / cr.server_cpu_ms_per_conn,
            );
        }
    }
}

pub fn print_mint(m: &crate::operator::Mint) {
    println!();
    println!(
        "NATS credentials minted over HTTP: {} for {} users ({} failed) in {:.2} s at concurrency {}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, service {:.3} ms CPU/mint",
        m.minted,
        m.minted + m.failed,
        m.failed,
        m.seconds,
        m.concurrency,
        m.per_second,
        m.p50_ms,
        m.p99_ms,
        m.service_cpu_ms_per_mint
    );
}

pub fn print_storm(what: &str, s: &Storm) {
    println!();
    println!(
        "Reconnect storm, {what}: {} clients (connected in {:.1} s), all kicked ({} kicks sent in {:.2} s, {} answered)",
        s.clients, s.ramp_seconds, s.clients, s.kick_seconds, s.kick_replies
    );
    let recovery = if s.recovered == s.clients {
        format!("recovery {:.2} s", s.recovery_seconds)
    } else {
        format!("NOT recovered within {:.0} s", s.recovery_seconds)
    };
    println!(
        "  disconnected {}, back {}, {recovery}, failures: {} refused, {} timeouts, {} other; reconnect p50 {:.1} ms p99 {:.1} ms; service {:.3} ms CPU/auth",
        s.kicked,
        s.recovered,
        s.refused,
        s.timeouts,
        s.io_errors,
        s.reconnect_p50_ms,
        s.reconnect_p99_ms,
        s.service_cpu_ms_per_auth
    );
}

pub fn print_looping(l: &crate::looping::Looping) {
    println!();
    println!(
        "A client reconnecting in a loop beside normal clients (c=20); rate-on: {}",
        l.rate
    );
    for s in &l.normal {
        let looper = l.looper.iter().find(|x| x.system == s.system);
        let looped = looper.map_or(String::new(), |x| {
            format!(
                "; looping client {:.0} allowed/s, {:.0} refused/s",
                x.allowed_per_second, x.refused_per_second
            )
        });
        println!(
            "  {:14} normal {:7.0}/s  p50 {:6.2} ms  p99 {:6.2} ms{looped}",
            s.system, s.rate_median, s.p50_ms, s.p99_ms
        );
    }
}

pub fn print_store(s: &Store) {
    let p = &s.probe;
    println!();
    if let Some(g) = &s.generated {
        println!(
            "Store: {} users, {} rooms, {} direct grants + {} room memberships, {} groups ({:.1} MB JSON, generated in {:.1} s)",
            g.users,
            g.rooms,
            g.direct_grants,
            g.room_memberships,
            g.groups,
            g.bytes as f64 / 1e6,
            s.generate_seconds
        );
    }
    println!(
        "  probe: load {:.2} s (peak {:.0} MiB, then {:.0} MiB resident); lookups {:.0} ns per decision (user + 3 rooms), {:.0} ns per access",
        p.load_seconds, p.peak_during_load_mib, p.rss_after_load_mib, p.decision_lookup_ns, p.access_ns
    );
    println!(
        "  probe: second load next to the first {:.2} s, peak {:.0} MiB, {:.0} MiB after dropping the first",
        p.reload_seconds, p.peak_during_reload_mib, p.rss_after_reload_mib
    );
    println!(
        "  service: first authorization {:.2} s after start; resident {:.0} MiB steady; {} SIGHUP reloads under load (logged {}, {:?} s): peak {:.0} MiB, then {:.0} MiB",
        s.service_start_seconds,
        s.service_rss_steady_mib,
        s.reloads,
        s.reloads_logged,
        s.reload_seconds
            .iter()
            .map(|v| (v * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        s.service_peak_during_reloads_mib,
        s.service_rss_after_reloads_mib
    );
    println!(
        "  under reload (c=20, 9 s): {} authorized, {} failed, {:.0}/s, p99 {:.1} ms",
        s.under_reload_ok, s.under_reload_failed, s.under_reload_rate, s.under_reload_p99_ms
    );
}

/// The targets against this run.
pub fn targets(r: &Results) -> Vec<Check> {
    let mut out = Vec::new();
    let mut check = |target: &str, value: f64, limit: &str, met: bool| {
        out.push(Check {
            target: target.to_string(),
            value,
            limit: limit.to_string(),
            met,
        })
    };
    let s = &r.throughput;
    if let (Some(co), Some(mi), Some(st)) = (
        find(s, "callout", 20),
        find(s, "minimal", 20),
        find(s, "static", 20),
    ) {
        let v = co.rate_median / mi.rate_median;
        check("c=20 throughput callout/minimal", v, ">= 0.90", v >= 0.9);
        let v = co.rate_median / st.rate_median;
        check("c=20 throughput callout/static", v, ">= 0.42", v >= 0.42);
        let v = co.p99_ms / mi.p99_ms;
        check("c=20 p99 callout/minimal", v, "<= 1.50", v <= 1.5);
    }
    if let Some(co) = find(s, "callout", 200) {
        let v = (co.refused + co.timeouts + co.io_errors) as f64;
        check("c=200 failed authorizations (callout)", v, "= 0", v == 0.0);
    }
    let callout: Vec<&Summary> = s.iter().filter(|x| x.system == "callout").collect();
    if !callout.is_empty() {
        let ok: usize = callout.iter().map(|x| x.ok).sum();
        let cpu: f64 = callout
            .iter()
            .map(|x| x.service_cpu_ms_per_auth.unwrap_or(0.0) * x.ok as f64)
            .sum();
        let v = cpu / ok.max(1) as f64;
        check(
            "service CPU ms/authorization (callout, all c)",
            v,
            "<= 0.12",
            v <= 0.12,
        );
    }
    if let Some(st) = &r.storm {
        let v = (st.refused + st.timeouts + st.io_errors) as f64;
        check(
            "storm failed authorizations",
            v,
            "= 0",
            v == 0.0 && st.recovered == st.clients,
        );
        check(
            "storm time to recovery s",
            st.recovery_seconds,
            "< 10",
            st.recovery_seconds < 10.0,
        );
    }
    if let Some(st) = &r.storm_long_timeout {
        let v = (st.refused + st.timeouts + st.io_errors) as f64;
        let all = st.recovered == st.clients;
        check(
            "storm, timeout 10s: failed authorizations",
            v,
            "= 0",
            v == 0.0 && all,
        );
        check(
            "storm, timeout 10s: time to recovery s",
            st.recovery_seconds,
            "< 10",
            all && st.recovery_seconds < 10.0,
        );
    }
    for c in [1, 20, 200] {
        if let (Some(cr), Some(op)) = (find(s, "credentials", c), find(s, "callout-op", c)) {
            let v = cr.rate_median / op.rate_median;
            check(
                &format!("c={c} throughput credentials/callout-op"),
                v,
                ">= 2.00",
                v >= 2.0,
            );
        }
    }
    let credentials: Vec<&Summary> = s.iter().filter(|x| x.system == "credentials").collect();
    if !credentials.is_empty() {
        let v: usize = credentials
            .iter()
            .map(|x| x.refused + x.timeouts + x.io_errors)
            .sum();
        check("credentials failed connects (all c)", v as f64, "= 0", v == 0);
    }
    if let Some(m) = &r.mint {
        check("credentials failed mints", m.failed as f64, "= 0", m.failed == 0);
    }
    if let (Some(cr), Some(op)) = (&r.storm_credentials, &r.storm_callout_op) {
        let v = (cr.refused + cr.timeouts + cr.io_errors) as f64;
        let back = cr.recovered == cr.clients;
        check("storm failed connects (credentials)", v, "= 0", v == 0.0 && back);
        // A callout storm not back within the limit counts the limit: the ratio is then an
        // upper bound.
        let v = cr.recovery_seconds / op.recovery_seconds;
        check(
            "storm recovery credentials/callout-op",
            v,
            "<= 0.50",
            back && v <= 0.5,
        );
    }
    if let Some(st) = &r.store {
        let p = &st.probe;
        check("store load s", p.load_seconds, "< 1", p.load_seconds < 1.0);
        let us = p.decision_lookup_ns / 1e3;
        check("store lookup per decision us", us, "< 5", us < 5.0);
        let steady = st.service_rss_steady_mib.max(p.rss_after_load_mib);
        check("store steady RSS MiB (service)", steady, "< 300", steady < 300.0);
        let peak = st.service_peak_during_reloads_mib.max(p.peak_during_reload_mib);
        check("store peak RSS during reload MiB", peak, "< 600", peak < 600.0);
        let v = st.under_reload_failed as f64;
        check(
            "store failed authorizations during reloads",
            v,
            "= 0",
            v == 0.0 && st.reloads_logged == st.reloads,
        );
    }
    if let Some(ro) = &r.rooms {
        let rate = |n: &str| find(&ro.decisions, n, 20).map_or(0.0, |x| x.rate_median);
        let files = rate("rooms-files").max(1e-9);
        for (store, name) in [("redb", "rooms-redb"), ("jetstream", "rooms-jetstream")] {
            let v = rate(name) / files;
            check(
                &format!("rooms: c=20 decisions data ({store})/files-only"),
                v,
                ">= 0.95",
                v >= 0.95,
            );
        }
        let failed: usize = ro
            .decisions
            .iter()
            .map(|x| x.refused + x.timeouts + x.io_errors)
            .sum();
        check("rooms: failed authorizations", failed as f64, "= 0", failed == 0);
        check(
            "rooms: change-to-notice p99 ms",
            ro.notice_ms.p99,
            "< 1000, none missing",
            ro.notice_ms.p99 < 1000.0 && ro.notices_missing == 0 && ro.notice_ms.n > 0,
        );
        let limit = ro.grace_ms + 1000.0;
        check(
            "rooms: change-to-kick p99 ms",
            ro.kick_ms.p99,
            &format!("< {limit:.0} (grace + 1 s), none missing"),
            ro.kick_ms.p99 < limit && ro.kicks_missing == 0 && ro.kick_ms.n > 0,
        );
    }
    if let Some(d) = &r.delegation {
        let failed: usize = d
            .systems
            .iter()
            .map(|x| x.refused + x.timeouts + x.io_errors)
            .sum();
        check(
            "delegation: failed authorizations",
            failed as f64,
            "= 0",
            failed == 0,
        );
        if let Some(never) = find(&d.systems, "delegate-never", 20) {
            let limit = d.budget_ms + 150.0;
            check(
                "delegation: c=20 p99 ms, delegate never answers",
                never.p99_ms,
                &format!("< {limit:.0} (budget + 150 ms)"),
                never.p99_ms < limit,
            );
        }
        if let (Some(plain), Some(now)) = (find(&d.systems, "plain", 1), find(&d.systems, "delegate-now", 1))
        {
            let v = now.p50_ms - plain.p50_ms;
            check(
                "delegation: c=1 p50 ms added by an ask answered at once",
                v,
                "< 2",
                v < 2.0,
            );
        }
    }
    if let Some(sh) = &r.shared {
        let rate = |n: &str| {
            sh.authorization
                .iter()
                .find(|x| x.system == n)
                .map(|x| x.rate_median)
        };
        if let (Some(js), Some(redb)) = (rate("callout-jetstream"), rate("callout-redb")) {
            let v = js / redb;
            check("c=20 throughput jetstream store/redb", v, ">= 0.90", v >= 0.9);
        }
        let v = sh.revocation_ms.p99;
        check(
            "revocation in force on another instance p99 ms",
            v,
            "< 1000",
            v < 1000.0,
        );
        let v = sh.failover_ms.iter().copied().fold(0.0, f64::max) / 1e3;
        check(
            "enforcer failover s (lease 5 s)",
            v,
            "< 8",
            v < 8.0 && !sh.failover_ms.is_empty(),
        );
        let errors: usize = sh.refresh.iter().map(|x| x.errors).sum();
        check("refresh errors (all stores)", errors as f64, "= 0", errors == 0);
    }
    out
}

/// Print the targets; true when every one is met.
pub fn print_targets(checks: &[Check]) -> bool {
    println!();
    println!("Targets");
    for c in checks {
        println!(
            "  {:<4} {:<46} {:>10.3}  (target {})",
            if c.met { "ok" } else { "MISS" },
            c.target,
            c.value,
            c.limit
        );
    }
    checks.iter().all(|c| c.met)
}

pub fn utc_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

pub fn machine(nats_server: &std::path::Path) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, v)| v.trim().to_string());
    let memory_mib = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |k| k / 1024.0);
    let nats = std::process::Command::new(nats_server)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_mib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        load_average: read("/proc/loadavg").trim().to_string(),
        nats_server: nats,
    }
}
