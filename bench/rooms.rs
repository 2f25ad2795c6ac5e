//! Rooms as data at scale (issue 25): 100,000 data rooms and 1,000,000 memberships written
//! straight through the rooms' store API (`RedbRooms::import`, `KvRooms::import` on a
//! JetStream R1 server); the service's start on each (until `/readyz`, resident memory);
//! decisions at c=20 asking data rooms on each against the files-only service (rounds
//! interleaved, medians); then, with thousands of live connections each subscribed to its
//! user's notices, the time from a membership change (HTTP API) to the notice
//! (`nats-callout.notice.<user>`) and, for a removal, to the kick (`enforcement.grace` 1 s).
//!
//! The layout: room `d{r}` has `per_room` members; membership `m` is of room
//! `m / per_room` and of user `b{m % rooms}`, so user `b{u}` is in room `d{u / per_room}`
//! (its home room) and not in `d{u / per_room + 1}` (checked). Users `b0..` with live
//! connections are in the permission files (as are `all1` and `benchadmin`, an admin).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nats_callout::permissions::Access;
use nats_callout::rooms::store::{KvRooms, RedbRooms};
use nats_callout::rooms::{JoinPolicy, MemberRecord, RoomRecord};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::RunArgs;
use crate::client::{self, Cred};
use crate::procs::{self, Proc, free_port};
use crate::servers::Server;
use crate::setup::{ConfigParts, Setup, Target, interleaved_c20, write_bench_permissions_n};
use crate::shared::{Quantiles, quantiles};
use crate::stats::{Summary, summarize_systems};

/// `enforcement.grace` of the live part: the lame-duck notice, then the kick this long after.
pub const GRACE: Duration = Duration::from_secs(1);
/// Membership additions timed one after another (each until its notice).
const NOTICE_SAMPLES: usize = 500;
/// Removals timed until the kick, sent `KICK_PACE` apart.
const KICK_SAMPLES: usize = 200;
const KICK_PACE: Duration = Duration::from_millis(50);
/// A notice or a kick not seen within this long counts as missing.
const GIVE_UP: Duration = Duration::from_secs(10);
/// Users whose CONNECTs the decision phases send (tokens repeat, as on reconnects).
const DECISION_USERS: usize = 1000;
/// The three systems of the decision phases.
const SYSTEMS: [&str; 3] = ["rooms-files", "rooms-redb", "rooms-jetstream"];

/// The rooms' options of `bench run`.
#[derive(clap::Args, Clone)]
pub struct RoomsArgs {
    /// Skip the rooms-as-data phase.
    #[arg(long, conflicts_with = "only_rooms")]
    pub skip_rooms: bool,
    /// Run only the rooms-as-data phase.
    #[arg(long)]
    pub only_rooms: bool,
    /// Data rooms written into each store.
    #[arg(long, default_value_t = 100_000)]
    pub rooms_data: usize,
    /// Memberships written into each store.
    #[arg(long, default_value_t = 1_000_000)]
    pub rooms_members: usize,
    /// Live connections (one per user) while membership changes are timed.
    #[arg(long, default_value_t = 5000)]
    pub rooms_connections: usize,
}

/// What the phase measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Rooms {
    pub rooms: usize,
    pub memberships: usize,
    /// Writing them through the store API, per store.
    pub fill: Vec<Fill>,
    /// The service's start on each: files only, data on redb, data on JetStream R1.
    pub start: Vec<Start>,
    /// c=20, the systems of [`SYSTEMS`].
    pub decisions: Vec<Summary>,
    /// Live connections, each subscribed to its user's notices.
    pub connections: usize,
    /// Of those, how many the service counted before the changes began.
    pub registered: usize,
    pub grace_ms: f64,
    /// From the membership added (request sent) to its notice on the user's connection.
    pub notice_ms: Quantiles,
    pub notices_missing: usize,
    /// From the membership removed (request sent) to the connection closed by the server.
    pub kick_ms: Quantiles,
    pub kicks_missing: usize,
    /// The same removals: to the removal's notice, and to the lame-duck notice.
    pub removal_notice_ms: Quantiles,
    pub lame_duck_ms: Quantiles,
    /// Changes the HTTP API refused (every one should be 200).
    pub api_errors: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fill {
    pub store: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Start {
    pub system: String,
    /// From starting the process to `/readyz` answering 200.
    pub ready_seconds: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    /// After the decision phases.
    pub rss_after_mib: f64,
}

/// Where the memberships are (see the module's documentation).
#[derive(Clone, Copy)]
struct Layout {
    rooms: usize,
    members: usize,
    per_room: usize,
}

impl Layout {
    fn new(rooms: usize, members: usize) -> Layout {
        Layout {
            rooms,
            members,
            per_room: members.div_ceil(rooms.max(1)).max(1),
        }
    }

    fn room(r: usize) -> String {
        format!("d{r}")
    }

    fn user(u: usize) -> String {
        format!("b{u}")
    }

    /// Membership `m`: (room, user).
    fn membership(&self, m: usize) -> (usize, usize) {
        (m / self.per_room, m % self.rooms)
    }

    fn home(&self, u: usize) -> usize {
        u / self.per_room
    }

    fn is_member(&self, u: usize, r: usize) -> bool {
        (u..self.members)
            .step_by(self.rooms)
            .any(|m| self.membership(m).0 == r)
    }

    /// A room `u` is not in.
    fn elsewhere(&self, u: usize) -> usize {
        (1..self.rooms)
            .map(|k| (self.home(u) + k) % self.rooms)
            .find(|&r| !self.is_member(u, r))
            .unwrap_or(0)
    }

    /// The rooms asked for by `u`'s connections: the files' `all1`, its home room (granted
    /// by data) and a data room it is not in (refused).
    fn asked(&self, u: usize) -> String {
        format!(
            "all1;{};{}",
            Self::room(self.home(u)),
            Self::room(self.elsewhere(u))
        )
    }

    fn records(&self) -> (Vec<RoomRecord>, Vec<(String, String, MemberRecord)>) {
        let now = nats_callout::clock::now_secs();
        let rooms: Vec<RoomRecord> = (0..self.rooms)
            .map(|r| RoomRecord {
                name: Self::room(r),
                id: format!("i{r}"),
                description: None,
                join: JoinPolicy::Invite,
                created_at: now,
                created_by: Self::user(self.membership(r * self.per_room).1),
            })
            .collect();
        let members = (0..self.members)
            .map(|m| {
                let (r, u) = self.membership(m);
                let record = MemberRecord {
                    room_id: format!("i{r}"),
                    access: Access::Read,
                    owner: false,
                    added_at: now,
                    added_by: "bench".into(),
                    left: false,
                };
                (Self::room(r), Self::user(u), record)
            })
            .collect();
        (rooms, members)
    }
}

/// One service of the phase and what it listens on.
struct Service {
    name: &'static str,
    server: Server,
    proc: Proc,
    http: String,
    admin: String,
}

impl Service {
    async fn get(&self, path: &str) -> Option<String> {
        let r = reqwest::get(format!("{}{path}", self.admin)).await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().await.ok()
    }

    /// `nats_callout_live_connections` from `/metrics`.
    async fn live_connections(&self) -> usize {
        let text = self.get("/metrics").await.unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with("nats_callout_live_connections "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as usize)
    }
}

/// Start `name` on `server` and time it until `/readyz` says ready.
async fn start(
    setup: &Setup,
    name: &'static str,
    server: Server,
    perms: &Path,
    extra: &str,
) -> anyhow::Result<(Service, Start)> {
    let (listen, admin_listen) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let nats = setup.system_user();
    let extra = format!("[enforcement]\ngrace = \"{}ms\"\n{extra}", GRACE.as_millis());
    let parts = ConfigParts {
        nats: &nats,
        listen: &listen,
        admin_listen: &admin_listen,
        extra: &extra,
    };
    let conf = setup.service_config_parts(name, &server, perms, &parts)?;
    let t = Instant::now();
    let proc = setup.start_service(name, &conf)?;
    let svc = Service {
        name,
        server,
        proc,
        http: format!("http://{listen}"),
        admin: format!("http://{admin_listen}"),
    };
    while svc.get("/readyz").await.is_none() {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(600),
            "{name} was not ready after 10 minutes (see its log in the work directory)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_seconds = t.elapsed().as_secs_f64();
    let (rss_mib, peak_rss_mib) = procs::memory_mib(svc.proc.pid());
    eprintln!(
        "bench: rooms: {name} ready after {ready_seconds:.2} s, {rss_mib:.0} MiB resident (peak {peak_rss_mib:.0} MiB)"
    );
    let s = Start {
        system: name.into(),
        ready_seconds,
        rss_mib,
        peak_rss_mib,
        rss_after_mib: 0.0,
    };
    Ok((svc, s))
}

/// The whole phase.
pub async fn run(args: &RunArgs, setup: &Setup) -> anyhow::Result<Rooms> {
    let a = &args.rooms;
    let layout = Layout::new(a.rooms_data, a.rooms_members);
    anyhow::ensure!(
        a.rooms_connections <= a.rooms_data && a.rooms_data <= a.rooms_members && a.rooms_data >= 2,
        "--rooms-connections <= --rooms-data <= --rooms-members, and at least 2 rooms"
    );
    let dir = setup.dir.join("rooms");
    let perms = dir.join("perms");
    let users = a.rooms_connections.max(DECISION_USERS.min(a.rooms_data));
    let files_asked = write_bench_permissions_n(&perms, users)?;
    std::fs::write(
        perms.join("admin.json"),
        serde_json::to_vec(&json!({"users": {"benchadmin": {"roles": ["admin"]}}}))?,
    )?;
    let mut out = Rooms {
        rooms: layout.rooms,
        memberships: layout.members,
        grace_ms: GRACE.as_secs_f64() * 1e3,
        ..Default::default()
    };

    eprintln!(
        "bench: rooms: writing {} rooms and {} memberships through the store API",
        layout.rooms, layout.members
    );
    let (rooms, members) = layout.records();
    // redb: the data service's token store file (`Setup::service_config_parts` names it
    // after the service), where its rooms live.
    let redb_path = setup.dir.join(format!("{}-tokens.redb", SYSTEMS[1]));
    let t = Instant::now();
    {
        let db = Arc::new(redb::Database::create(&redb_path)?);
        RedbRooms::open(db)?.import(&rooms, &members)?;
    }
    out.fill.push(fill("redb", t));
    // JetStream R1: the callout's own server, with JetStream for its account.
    let js_server = setup.callout_server_with("rooms-jetstream", 2, true)?;
    let t = Instant::now();
    {
        let client = async_nats::ConnectOptions::new()
            .user_and_password("callout".into(), setup.callout_pw.clone())
            .connect(js_server.url())
            .await?;
        let defaults = nats_callout::config::StoreSettings::default();
        let kv = KvRooms::new(client.clone(), &defaults.bucket_prefix, 1);
        kv.import(&rooms, &members, 512).await?;
        client.flush().await?;
    }
    out.fill.push(fill("jetstream-r1", t));
    drop((rooms, members));

    // One service at a time, so that each start has the machine to itself.
    let mut js_server = Some(js_server);
    let mut services = Vec::new();
    for (name, extra) in [
        (SYSTEMS[0], ""),
        (SYSTEMS[1], ""),
        (SYSTEMS[2], "[store]\nbackend = \"jetstream\"\n"),
    ] {
        let server = match js_server.take_if(|_| name == SYSTEMS[2]) {
            Some(s) => s,
            None => setup.callout_server(name, 2)?,
        };
        let (svc, s) = start(setup, name, server, &perms, extra).await?;
        services.push(svc);
        out.start.push(s);
    }

    out.decisions = decisions(args, setup, &services, &layout, &files_asked).await;
    for (s, svc) in out.start.iter_mut().zip(&services) {
        s.rss_after_mib = procs::memory_mib(svc.proc.pid()).0;
    }

    // The live part on the redb service alone.
    let mut services = services.into_iter();
    let redb = services.nth(1).context("the redb service")?;
    drop(services);
    live(setup, &redb, &layout, a.rooms_connections, &mut out).await?;
    Ok(out)
}

fn fill(store: &str, t: Instant) -> Fill {
    let f = Fill {
        store: store.into(),
        seconds: t.elapsed().as_secs_f64(),
    };
    eprintln!("bench: rooms: written into {} in {:.1} s", f.store, f.seconds);
    f
}

/// c=20 on the three services, rounds interleaved and rotated.
async fn decisions(
    args: &RunArgs,
    setup: &Setup,
    services: &[Service],
    layout: &Layout,
    files_asked: &[String],
) -> Vec<Summary> {
    let n = DECISION_USERS.min(files_asked.len());
    let tokens: Vec<String> = (0..n)
        .map(|u| setup.token(&Layout::user(u), &format!("rooms{u}")))
        .collect();
    let files: Vec<Cred> = (0..n)
        .map(|u| client::connect_line(&tokens[u], &files_asked[u], ""))
        .collect();
    let data: Vec<Cred> = (0..n)
        .map(|u| client::connect_line(&tokens[u], &layout.asked(u), ""))
        .collect();
    let (files, data) = (Arc::new(files), Arc::new(data));
    let targets: Vec<Target> = services
        .iter()
        .map(|s| Target {
            name: s.name.into(),
            addr: s.server.addr(),
            server_pid: s.server.pid(),
            service_pid: Some(s.proc.pid()),
            creds: if s.name == SYSTEMS[0] {
                files.clone()
            } else {
                data.clone()
            },
            once: false,
        })
        .collect();
    let phases = interleaved_c20(args, &targets).await;
    let s = summarize_systems(&phases, &SYSTEMS, &[20]);
    for x in &s {
        eprintln!(
            "bench: rooms: {:<16} c=20 {:>6.0}/s (median of {}), p99 {:.2} ms, failed {}",
            x.system,
            x.rate_median,
            x.rounds,
            x.p99_ms,
            x.refused + x.timeouts + x.io_errors
        );
    }
    s
}

/// What a live connection saw.
enum Seen {
    Notice(Instant, Value),
    LameDuck(Instant),
    Closed(Instant),
}

/// Connect user `u` with `connect`, subscribe to its notices, and report what it sees.
async fn live_connection(
    addr: SocketAddr,
    connect: Cred,
    u: usize,
    seen: mpsc::UnboundedSender<(usize, Seen)>,
) -> anyhow::Result<()> {
    let c = client::connect(addr, &connect, false)
        .await
        .map_err(|e| anyhow::anyhow!("connection {u}: {e:?}"))?;
    let mut stream = c.into_stream();
    let sub = format!("SUB nats-callout.notice.{} 1\r\nPING\r\n", Layout::user(u));
    stream.write_all(sub.as_bytes()).await?;
    let (subscribed, ok) = oneshot::channel();
    tokio::spawn(follow(stream, u, seen, subscribed));
    ok.await
        .context("closed before subscribing")?
        .map_err(|e| anyhow::anyhow!("connection {u} may not subscribe to its notices: {e}"))
}

/// Read the connection until the server closes it: notices, lame-duck INFO, PINGs.
async fn follow(
    mut stream: TcpStream,
    u: usize,
    seen: mpsc::UnboundedSender<(usize, Seen)>,
    subscribed: oneshot::Sender<Result<(), String>>,
) {
    let mut subscribed = Some(subscribed);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Every complete line (and message) in the buffer.
        while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]).into_owned();
            if let Some(rest) = line.strip_prefix("MSG ") {
                let size: usize = rest
                    .split_whitespace()
                    .last()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if buf.len() < end + 2 + size + 2 {
                    break; // the payload is still coming
                }
                let payload = serde_json::from_slice(&buf[end + 2..end + 2 + size]).unwrap_or(Value::Null);
                buf.drain(..end + 2 + size + 2);
                let _ = seen.send((u, Seen::Notice(Instant::now(), payload)));
                continue;
            }
            buf.drain(..end + 2);
            if line == "PING" {
                if stream.write_all(b"PONG\r\n").await.is_err() {
                    break;
                }
            } else if line == "PONG" {
                if let Some(s) = subscribed.take() {
                    let _ = s.send(Ok(()));
                }
            } else if line.starts_with("-ERR") {
                if let Some(s) = subscribed.take() {
                    let _ = s.send(Err(line));
                }
            } else if line.starts_with("INFO ") && line.contains("\"ldm\":true") {
                let _ = seen.send((u, Seen::LameDuck(Instant::now())));
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                let _ = seen.send((u, Seen::Closed(Instant::now())));
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A membership change through the HTTP API as the admin: whether it was accepted.
async fn change(http: &reqwest::Client, base: &str, token: &str, add: bool, room: &str, user: &str) -> bool {
    let req = if add {
        http.post(format!("{base}/api/rooms/{room}/members"))
            .json(&json!({"userId": user, "access": "read"}))
    } else {
        http.delete(format!("{base}/api/rooms/{room}/members/{user}"))
    };
    match req.bearer_auth(token).send().await {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => {
            eprintln!("bench: rooms: {room}/{user}: HTTP {}", r.status());
            false
        }
        Err(e) => {
            eprintln!("bench: rooms: {room}/{user}: {e}");
            false
        }
    }
}

/// `n` of `0..total`, spread evenly.
fn spread(n: usize, total: usize) -> Vec<usize> {
    let n = n.min(total);
    (0..n).map(|i| i * total / n).collect()
}

/// Live connections, then membership changes timed to their notices and kicks.
async fn live(
    setup: &Setup,
    svc: &Service,
    layout: &Layout,
    connections: usize,
    out: &mut Rooms,
) -> anyhow::Result<()> {
    eprintln!("bench: rooms: {connections} live connections, each subscribed to its notices");
    let (tx, mut seen) = mpsc::unbounded_channel();
    let ramp = Arc::new(Semaphore::new(200));
    let mut set = tokio::task::JoinSet::new();
    for u in 0..connections {
        let token = setup.token(&Layout::user(u), &format!("live{u}"));
        let connect = client::connect_line(&token, &layout.asked(u), "");
        let (addr, tx, ramp) = (svc.server.addr(), tx.clone(), ramp.clone());
        set.spawn(async move {
            let _permit = ramp.acquire().await;
            live_connection(addr, connect, u, tx).await
        });
    }
    drop(tx);
    while let Some(r) = set.join_next().await {
        r??;
    }
    out.connections = connections;
    let t = Instant::now();
    while svc.live_connections().await < connections && t.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out.registered = svc.live_connections().await;
    eprintln!(
        "bench: rooms: the service counts {} live connections",
        out.registered
    );

    let http = reqwest::Client::new();
    let admin = setup.token("benchadmin", "bench");
    // Growth: add each sampled user to a room it is not in; wait for its notice.
    let mut notice_ms = Vec::new();
    for u in spread(NOTICE_SAMPLES, connections) {
        let room = Layout::room(layout.elsewhere(u));
        let t = Instant::now();
        if !change(&http, &svc.http, &admin, true, &room, &Layout::user(u)).await {
            out.api_errors += 1;
            continue;
        }
        let deadline = tokio::time::Instant::from_std(t + GIVE_UP);
        let got = loop {
            match tokio::time::timeout_at(deadline, seen.recv()).await {
                Ok(Some((who, Seen::Notice(at, n)))) if who == u && n["room"] == room.as_str() => {
                    break Some(at.duration_since(t));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break None,
            }
        };
        match got {
            Some(d) => notice_ms.push(d.as_secs_f64() * 1e3),
            None => out.notices_missing += 1,
        }
    }
    out.notice_ms = quantiles(notice_ms);
    eprintln!(
        "bench: rooms: change to notice p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} notices, {} missing)",
        out.notice_ms.p50, out.notice_ms.p99, out.notice_ms.max, out.notice_ms.n, out.notices_missing
    );

    // Removal: take each sampled user out of its home room (its connection holds it).
    let sample = spread(KICK_SAMPLES, connections);
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<(usize, Option<Instant>)>();
    let removals = {
        let (http, admin) = (http.clone(), admin.clone());
        let (base, layout, sample) = (svc.http.clone(), *layout, sample.clone());
        tokio::spawn(async move {
            let mut next = tokio::time::Instant::now();
            for u in sample {
                tokio::time::sleep_until(next).await;
                next += KICK_PACE;
                let (http, admin, tx, base) = (http.clone(), admin.clone(), sent_tx.clone(), base.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let room = Layout::room(layout.home(u));
                    let ok = change(&http, &base, &admin, false, &room, &Layout::user(u)).await;
                    let _ = tx.send((u, ok.then_some(t)));
                });
            }
        })
    };
    let mut sent: HashMap<usize, Instant> = HashMap::new();
    let (mut kicks, mut lame, mut told) = (HashMap::new(), HashMap::new(), HashMap::new());
    let wanted: std::collections::HashSet<usize> = sample.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + KICK_PACE * sample.len() as u32 + GRACE + GIVE_UP;
    loop {
        if kicks.len() == sample.len() {
            break;
        }
        tokio::select! {
            s = sent_rx.recv() => match s {
                Some((u, Some(t))) => { sent.insert(u, t); }
                Some((_, None)) => out.api_errors += 1,
                None => {}
            },
            e = seen.recv() => match e {
                Some((u, Seen::Closed(at))) if wanted.contains(&u) => { kicks.insert(u, at); }
                Some((u, Seen::LameDuck(at))) if wanted.contains(&u) => { lame.entry(u).or_insert(at); }
                Some((u, Seen::Notice(at, n))) if wanted.contains(&u) && n["access"] == "none" => { told.entry(u).or_insert(at); }
                Some(_) => {}
                None => break,
            },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    removals.abort();
    while let Ok((u, t)) = sent_rx.try_recv() {
        if let Some(t) = t {
            sent.insert(u, t);
        }
    }
    let since = |m: &HashMap<usize, Instant>| -> Vec<f64> {
        m.iter()
            .filter_map(|(u, at)| Some(at.checked_duration_since(*sent.get(u)?)?.as_secs_f64() * 1e3))
            .collect()
    };
    out.kick_ms = quantiles(since(&kicks));
    out.kicks_missing = sample.len() - out.kick_ms.n;
    out.lame_duck_ms = quantiles(since(&lame));
    out.removal_notice_ms = quantiles(since(&told));
    eprintln!(
        "bench: rooms: change to kick (grace {} ms) p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} kicks, {} missing); \
         to the removal's notice p50 {:.1} ms, p99 {:.1} ms; to the lame-duck notice p50 {:.1} ms, p99 {:.1} ms",
        out.grace_ms,
        out.kick_ms.p50,
        out.kick_ms.p99,
        out.kick_ms.max,
        out.kick_ms.n,
        out.kicks_missing,
        out.removal_notice_ms.p50,
        out.removal_notice_ms.p99,
        out.lame_duck_ms.p50,
        out.lame_duck_ms.p99,
    );
    Ok(())
}
