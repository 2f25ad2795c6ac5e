//! Store scale: a generated large permission set. A probe process loads it (time, memory,
//! lookups, a second load while the first is alive: the reload peak); then the real service
//! runs on it and reloads it (SIGHUP) while clients connect.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nats_callout::permissions::Snapshot;
use serde::{Deserialize, Serialize};

use crate::RunArgs;
use crate::client::{self, Cred};
use crate::generate::{self, GenArgs};
use crate::procs::{self, Proc};
use crate::servers::Server;
use crate::setup::{self, Setup, Target};

/// What the probe process measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Probe {
    pub users: usize,
    pub rooms: usize,
    pub load_seconds: f64,
    pub rss_after_load_mib: f64,
    pub peak_during_load_mib: f64,
    /// One decision's lookups: the user, then three requested rooms.
    pub decision_lookup_ns: f64,
    /// One `access(user, room)`.
    pub access_ns: f64,
    pub reload_seconds: f64,
    /// Peak while the second snapshot is built next to the first.
    pub peak_during_reload_mib: f64,
    pub rss_after_reload_mib: f64,
}

/// The service on the large set.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Store {
    pub generated: Option<generate::Written>,
    pub generate_seconds: f64,
    pub probe: Probe,
    /// From starting the service to its first authorized connection.
    pub service_start_seconds: f64,
    pub service_rss_steady_mib: f64,
    pub service_peak_during_reloads_mib: f64,
    pub service_rss_after_reloads_mib: f64,
    pub reloads: usize,
    /// Seen in the service log ("permissions reloaded").
    pub reloads_logged: usize,
    pub reload_seconds: Vec<f64>,
    pub under_reload_ok: usize,
    pub under_reload_failed: usize,
    pub under_reload_rate: f64,
    pub under_reload_p99_ms: f64,
}

/// The child process: `bench store-probe --dir DIR` prints `probe {json}`.
pub fn probe(dir: &Path) -> anyhow::Result<()> {
    let me = std::process::id();
    let t = Instant::now();
    let first = Snapshot::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let load_seconds = t.elapsed().as_secs_f64();
    let (rss, peak) = procs::memory_mib(me);
    let (users, rooms) = (first.user_count(), first.room_count());
    let direct = generate::direct_per_user(users, 1_000_000).max(2);

    // Lookups for 200,000 decisions: a user, two of its rooms and one random room.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let queries: Vec<(String, [String; 3])> = (0..200_000)
        .map(|_| {
            let u = rnd(users);
            let rooms_q = [
                generate::room_name(generate::direct_room(u, 0, rooms)),
                generate::room_name(generate::direct_room(u, rnd(direct), rooms)),
                generate::room_name(rnd(rooms)),
            ];
            (generate::user_name(u), rooms_q)
        })
        .collect();
    let mut granted = 0usize;
    let t = Instant::now();
    for (user, rooms_q) in &queries {
        let Some(u) = first.user(black_box(user)) else {
            continue;
        };
        for r in rooms_q {
            granted += usize::from(first.access(u, black_box(r)).is_some());
        }
    }
    let decision_lookup_ns = t.elapsed().as_secs_f64() * 1e9 / queries.len() as f64;
    anyhow::ensure!(
        granted >= 2 * queries.len(),
        "lookups found too few grants ({granted})"
    );
    let users_q: Vec<_> = queries.iter().filter_map(|(u, _)| first.user(u)).collect();
    let t = Instant::now();
    let mut n = 0usize;
    for (u, (_, rooms_q)) in users_q.iter().zip(&queries) {
        for r in rooms_q {
            n += usize::from(first.access(u, black_box(r)).is_some());
        }
    }
    let access_ns = t.elapsed().as_secs_f64() * 1e9 / (3 * users_q.len()) as f64;
    black_box(n);
    drop(users_q);

    procs::reset_peak(me);
    let t = Instant::now();
    let second = Snapshot::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let reload_seconds = t.elapsed().as_secs_f64();
    let (_, peak_reload) = procs::memory_mib(me);
    drop(first);
    let (rss_after, _) = procs::memory_mib(me);
    black_box(second.user_count());
    let p = Probe {
        users,
        rooms,
        load_seconds,
        rss_after_load_mib: rss,
        peak_during_load_mib: peak,
        decision_lookup_ns,
        access_ns,
        reload_seconds,
        peak_during_reload_mib: peak_reload,
        rss_after_reload_mib: rss_after,
    };
    println!("probe {}", serde_json::to_string(&p)?);
    Ok(())
}

/// Counts "permissions reloaded" lines in a growing log, reading only what was appended.
struct LogWatch {
    path: std::path::PathBuf,
    offset: u64,
    tail: String,
    count: usize,
}

impl LogWatch {
    const NEEDLE: &str = "permissions reloaded";

    fn new(path: &Path) -> Self {
        let mut w = LogWatch {
            path: path.to_path_buf(),
            offset: 0,
            tail: String::new(),
            count: 0,
        };
        w.poll();
        w
    }

    fn poll(&mut self) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return self.count;
        };
        let mut new = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_ok() && f.read_to_end(&mut new).is_ok() {
            self.offset += new.len() as u64;
            let text = std::mem::take(&mut self.tail) + &String::from_utf8_lossy(&new);
            self.count += text.matches(Self::NEEDLE).count();
            // Keep a partial needle at the end for the next read.
            let keep = text.len().saturating_sub(Self::NEEDLE.len() - 1);
            let keep = (keep..=text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            self.tail = text[keep..].to_string();
        }
        self.count
    }
}

/// The store part of `make bench`.
pub async fn run(args: &RunArgs, setup: &Setup, server: &Server) -> anyhow::Result<Store> {
    let dir = setup.dir.join("big");
    let gen_args = GenArgs {
        out: dir.clone(),
        users: args.store_users,
        rooms: args.store_rooms,
        grants: args.store_grants,
        files: 10,
    };
    let mut s = Store::default();
    let t = Instant::now();
    s.generated = Some(generate::write(&gen_args)?);
    s.generate_seconds = t.elapsed().as_secs_f64();

    eprintln!("bench: store: probing load, lookups and memory");
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("store-probe").arg("--dir").arg(&dir);
    let mut p = Proc::spawn("store-probe", cmd, &setup.dir.join("store-probe.log"))?;
    let line = p.wait_line("probe ", Duration::from_secs(180))?;
    s.probe = serde_json::from_str(line.trim_start_matches("probe "))?;
    drop(p);

    eprintln!("bench: store: the service on the large set, reloading under load");
    let (users, rooms) = (args.store_users, args.store_rooms);
    let direct = generate::direct_per_user(users, args.store_grants).max(2);
    let creds: Vec<Cred> = (0..1000)
        .map(|k| {
            let u = (k * 7919) % users;
            let list = format!(
                "{};{};{}",
                generate::room_name(generate::direct_room(u, 0, rooms)),
                generate::room_name(generate::direct_room(u, direct - 1, rooms)),
                generate::room_name((u * 31) % rooms)
            );
            client::connect_line(
                &setup.token(&generate::user_name(u), &format!("big{k}")),
                &list,
                "",
            )
        })
        .collect();
    let conf = setup.service_config("service-big", server, &dir)?;
    let t = Instant::now();
    let service = setup.start_service("service-big", &conf)?;
    setup::wait_authorized(server.addr(), &creds[0], Duration::from_secs(60)).await?;
    s.service_start_seconds = t.elapsed().as_secs_f64();
    let target = Target {
        name: "callout-big".into(),
        addr: server.addr(),
        server_pid: server.pid(),
        service_pid: Some(service.pid()),
        creds: Arc::new(creds),
        once: false,
    };
    setup::phase(&target, 20, Duration::from_secs(2), 0).await;
    s.service_rss_steady_mib = procs::memory_mib(service.pid()).0;

    procs::reset_peak(service.pid());
    let mut log = LogWatch::new(&setup.dir.join("service-big.log"));
    let before = log.count;
    let phase_target = target.clone();
    let under = tokio::spawn(async move { setup::phase(&phase_target, 20, Duration::from_secs(9), 0).await });
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let seen = log.poll();
        let t = Instant::now();
        service.signal(libc::SIGHUP);
        s.reloads += 1;
        while log.poll() == seen && t.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s.reload_seconds.push(t.elapsed().as_secs_f64());
    }
    let phase = under.await?;
    s.reloads_logged = log.poll() - before;
    let (rss, peak) = procs::memory_mib(service.pid());
    s.service_peak_during_reloads_mib = peak;
    s.service_rss_after_reloads_mib = rss;
    s.under_reload_ok = phase.ok;
    s.under_reload_failed = phase.failed();
    s.under_reload_rate = phase.rate();
    let mut l = phase.latencies_ms.clone();
    l.sort_by(f64::total_cmp);
    s.under_reload_p99_ms = crate::stats::percentile(&l, 0.99);
    drop(service);
    Ok(s)
}
