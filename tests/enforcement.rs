//! Live enforcement against a real nats-server: permission files edited while clients are
//! connected, LDM then KICK, revocations, token reset, several instances, throttling.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, Event, ServerError};
use common::{CalloutHandle, DEADLINE, EnvOptions, TestEnv};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

/// What a watched client saw, with when.
#[derive(Debug, Clone)]
enum Seen {
    LameDuck(Instant),
    Disconnected,
    Error(String),
}

struct Watched {
    client: async_nats::Client,
    seen: mpsc::UnboundedReceiver<Seen>,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Watched {
    /// Wait for something the client saw, up to the deadline.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        tokio::time::timeout(DEADLINE, async {
            loop {
                match self.seen.recv().await {
                    Some(s) if pred(&s) => return s,
                    Some(_) => {}
                    None => panic!("client gone while waiting for {what}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("did not see {what} within {DEADLINE:?}"))
    }

    fn saw(&self, pred: impl Fn(&Seen) -> bool) -> bool {
        self.log.lock().unwrap().iter().any(pred)
    }
}

/// Connect like a chat client; with `handle_ldm` it reconnects when told to.
async fn watched(env: &TestEnv, token: &str, rooms: &str, handle_ldm: bool) -> Watched {
    let (tx, rx) = mpsc::unbounded_channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let me: Arc<Mutex<Option<async_nats::Client>>> = Arc::default();
    let (me2, log2) = (me.clone(), log.clone());
    let client = ConnectOptions::new()
        .user_and_password(rooms.to_string(), String::new())
        .token(token.to_string())
        .event_callback(move |e| {
            let (tx, me, log) = (tx.clone(), me2.clone(), log2.clone());
            async move {
                let seen = match e {
                    Event::LameDuckMode => {
                        if handle_ldm && let Some(c) = me.lock().unwrap().clone() {
                            tokio::spawn(async move {
                                let _ = c.force_reconnect().await;
                            });
                        }
                        Seen::LameDuck(Instant::now())
                    }
                    Event::Disconnected => Seen::Disconnected,
                    Event::ServerError(ServerError::Other(s)) => Seen::Error(s),
                    _ => return,
                };
                log.lock().unwrap().push(seen.clone());
                let _ = tx.send(seen);
            }
        })
        .connect(env.server.url())
        .await
        .expect("connects");
    *me.lock().unwrap() = Some(client.clone());
    Watched {
        client,
        seen: rx,
        log,
    }
}

/// Replace a permission file the way editors do: write a temp file, rename it over.
fn replace_file(dir: &Path, name: &str, contents: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The demo rooms, with bob taken out of all1.
const ROOMS_WITHOUT_BOB_IN_ALL1: &str = r#"
[groups.everyone]
members = ["bob", "alice"]
[rooms.all1]
members = ["alice"]
[rooms.all2]
members = ["@everyone"]
[rooms.all3]
members = ["@everyone"]
[rooms.alice1]
members = ["alice"]
[rooms.alice2]
members = ["alice"]
[rooms.bob1]
members = ["bob"]
[rooms.bob2]
members = ["bob"]
"#;

/// The client (user `user`) can subscribe to a room and hear its own message there.
async fn receives(c: &async_nats::Client, room: &str, user: &str) {
    let subject = format!("chat.{room}.>");
    let mut sub = c.subscribe(subject.clone()).await.unwrap();
    c.flush().await.unwrap();
    let probe = format!("chat.{room}.{user}");
    for _ in 0..50 {
        c.publish(probe.clone(), "hi".into()).await.unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            assert_eq!(m.subject.as_str(), probe);
            return;
        }
    }
    panic!("nothing received on {subject}");
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until the registry knows `n` connections of `user` (decision records arrived).
async fn registered(svc: &CalloutHandle, user: &str, n: usize) {
    let s = svc.sessions.clone().expect("live enforcement on");
    wait_until(&format!("{n} registered connections of {user}"), || {
        s.connections_of(user).len() >= n
    })
    .await;
}

/// A client that handles LDM reconnects, then has `chat.all1.>` denied while
/// `chat.bob1.>` keeps working. The file is replaced by rename.
#[tokio::test]
async fn ldm_client_reconnects_and_loses_only_the_removed_room() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut bob = watched(&env, &env.token("bob"), "all1;bob1", true).await;
    let _all1 = bob.client.subscribe("chat.all1.>").await.unwrap();
    receives(&bob.client, "bob1", "bob").await;
    registered(&svc, "bob", 1).await;

    replace_file(
        &env.config.permissions.dir,
        "rooms.toml",
        ROOMS_WITHOUT_BOB_IN_ALL1,
    );

    bob.wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    bob.wait_for("all1 denied after reconnecting", |s| {
        matches!(s, Seen::Error(e) if e.contains("Permissions Violation for Subscription to \"chat.all1.>\""))
    })
    .await;
    receives(&bob.client, "bob1", "bob").await;
    let stats = &svc.sessions.as_ref().unwrap().stats;
    assert!(stats.ldm_sent.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert_eq!(svc.reloader.status().reloads_ok, 1, "{:?}", svc.reloader.status());
}

/// A client that ignores the notice is kicked after the grace.
#[tokio::test]
async fn a_client_ignoring_ldm_is_kicked_after_the_grace() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut bob = watched(&env, &env.token("bob"), "all1;bob1", false).await;
    registered(&svc, "bob", 1).await;
    std::fs::write(
        env.config.permissions.dir.join("rooms.toml"),
        ROOMS_WITHOUT_BOB_IN_ALL1,
    )
    .unwrap();
    let ldm = bob
        .wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    bob.wait_for("the kick", |s| matches!(s, Seen::Disconnected))
        .await;
    if let Seen::LameDuck(at) = ldm {
        assert!(
            at.elapsed() >= Duration::from_millis(900),
            "kicked only after the 1 s grace"
        );
    }
    let stats = &svc.sessions.as_ref().unwrap().stats;
    wait_until("a kick counted", || {
        stats.kicks_sent.load(std::sync::atomic::Ordering::Relaxed) >= 1
    })
    .await;
}

/// A broken edit changes nothing and is reported with file and line.
#[tokio::test]
async fn a_broken_edit_keeps_the_grants_and_reports_the_error() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut bob = watched(&env, &env.token("bob"), "all1;bob1", true).await;
    registered(&svc, "bob", 1).await;
    std::fs::write(
        env.config.permissions.dir.join("broken.toml"),
        "[rooms.all1]\nmembers = [\"nobody\"]\n",
    )
    .unwrap();
    wait_until("the failed reload", || svc.reloader.status().reloads_failed >= 1).await;
    let status = svc.reloader.status();
    assert!(
        status.last_errors.iter().any(|e| e.contains("broken.toml:2:")),
        "{status:?}"
    );
    // Grants unchanged: a new connection still gets all1, the old one got no notice.
    let fresh = env.connect(Some(&env.token("bob")), "all1").await.unwrap();
    receives(&fresh.client, "all1", "bob").await;
    assert!(!bob.saw(|s| matches!(s, Seen::LameDuck(_))));
    // The admin status endpoint reports it too.
    let admin = env.token("admin");
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/admin/status", svc.http_url()))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let errors = body["permissions"]["lastErrors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("broken.toml:2:")),
        "{body}"
    );
    drop(bob.seen.try_recv());
}

/// Revoking one device kicks only that device's connections.
#[tokio::test]
async fn revoking_a_device_kicks_only_that_device() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let login = |device: &'static str| {
        let url = format!("{}/api/auth/login", svc.http_url());
        async move {
            let b: serde_json::Value = reqwest::Client::new()
                .post(url)
                .json(&json!({"username": "bob", "password": "bob", "deviceId": device}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            b["accessToken"].as_str().unwrap().to_string()
        }
    };
    let (phone_token, laptop_token) = (login("phone").await, login("laptop").await);
    let mut phone = watched(&env, &phone_token, "all1", true).await;
    let laptop = watched(&env, &laptop_token, "all1", true).await;
    registered(&svc, "bob", 2).await;
    svc.callout.stats();
    let tokens = svc_tokens(&svc);
    tokens
        .revoke(
            &nats_callout::tokens::service::RevokeTarget::Device("phone".into()),
            "test",
            nats_callout::callout::now_secs(),
        )
        .await
        .unwrap();
    phone
        .wait_for("the phone kicked", |s| matches!(s, Seen::Disconnected))
        .await;
    receives(&laptop.client, "all1", "bob").await;
    assert!(!laptop.saw(|s| matches!(s, Seen::Disconnected | Seen::LameDuck(_))));
}

fn svc_tokens(svc: &CalloutHandle) -> Arc<nats_callout::tokens::service::TokenService> {
    svc.tokens.clone()
}

/// `auth.v1.tokenReset` re-authorizes exactly the connections holding those token ids.
#[tokio::test]
async fn token_reset_affects_exactly_the_matching_connections() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let (t1, t2) = (env.token("bob"), env.token("bob"));
    let tid = env
        .tokens
        .verify(&t1, nats_callout::callout::now_secs())
        .unwrap()
        .tid;
    let mut one = watched(&env, &t1, "all1", true).await;
    let two = watched(&env, &t2, "all1", true).await;
    registered(&svc, "bob", 2).await;

    // The admin (sysadmin role) may publish auth.v1.tokenReset; bob may not.
    let admin = common::connect_to(
        &env.server.url(),
        Some(&env.token("admin")),
        "",
        Some("_INBOX.admin"),
    )
    .await
    .unwrap();
    let reply = admin
        .client
        .request(
            "auth.v1.tokenReset",
            json!({"tids": [tid], "reason": "test"}).to_string().into(),
        )
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["affected"], 1, "{body}");
    one.wait_for("the notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    receives(&two.client, "all1", "bob").await;
    assert!(!two.saw(|s| matches!(s, Seen::LameDuck(_) | Seen::Disconnected)));

    let mut plain = env.connect(Some(&env.token("bob")), "all1").await.unwrap();
    plain
        .client
        .publish("auth.v1.tokenReset", "{}".into())
        .await
        .unwrap();
    plain
        .expect_error("Permissions Violation for Publish to \"auth.v1.tokenReset\"")
        .await;
}

/// Two instances: one kick per connection, not two.
#[tokio::test]
async fn two_instances_send_one_kick_per_connection() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let a = env.start_callout().await;
    let b = env.start_callout().await;
    let (sa, sb) = (a.sessions.clone().unwrap(), b.sessions.clone().unwrap());
    wait_until("the instances see each other", || {
        sa.instances() == 2 && sb.instances() == 2
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(watched(&env, &env.token("bob"), "all1;bob1", false).await);
    }
    wait_until("both registries know the connections", || {
        sa.connections_of("bob").len() == 3 && sb.connections_of("bob").len() == 3
    })
    .await;
    std::fs::write(
        env.config.permissions.dir.join("rooms.toml"),
        ROOMS_WITHOUT_BOB_IN_ALL1,
    )
    .unwrap();
    for c in &mut clients {
        c.wait_for("the kick", |s| matches!(s, Seen::Disconnected)).await;
    }
    // The kicked clients come back; give any duplicate enforcement time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kicks =
        |s: &nats_callout::sessions::Sessions| s.stats.kicks_sent.load(std::sync::atomic::Ordering::Relaxed);
    let ldms =
        |s: &nats_callout::sessions::Sessions| s.stats.ldm_sent.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(kicks(&sa) + kicks(&sb), 3, "one kick per connection");
    assert_eq!(ldms(&sa) + ldms(&sb), 3, "one notice per connection");
    assert!(kicks(&sa) == 0 || kicks(&sb) == 0, "exactly one enforcer");
}

/// Connects keep flowing while the files change: every decision matches the old or the
/// new files, never a mix.
#[tokio::test]
async fn a_reload_under_steady_connects_makes_no_mixed_decision() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let auth = env.connect_auth_user().await;
    let mut records = auth
        .subscribe(nats_callout::sessions::DECISION_SUBJECT)
        .await
        .unwrap();
    auth.flush().await.unwrap();
    let dir = env.config.permissions.dir.clone();
    let old_users = std::fs::read_to_string(dir.join("users.toml")).unwrap();
    // New files: bob loses all1 and gains team1.
    let new_rooms = format!("{ROOMS_WITHOUT_BOB_IN_ALL1}\n[rooms.team1]\nmembers = [\"bob\"]\n");
    let token = env.token("bob");
    let connects = {
        let url = env.server.url();
        let token = token.clone();
        tokio::spawn(async move {
            let mut n = 0;
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(3) {
                let c = common::connect_to(&url, Some(&token), "all1;bob1;team1", None)
                    .await
                    .expect("allowed");
                drop(c);
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..6 {
        let rooms = if i % 2 == 0 {
            new_rooms.clone()
        } else {
            std::fs::read_to_string(common_rooms()).unwrap()
        };
        replace_file(&dir, "rooms.toml", &rooms);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let n = connects.await.unwrap();
    assert!(n > 10, "a steady stream of connects ({n})");
    let old: Vec<&str> = vec!["all1", "bob1"];
    let new: Vec<&str> = vec!["bob1", "team1"];
    let mut checked = 0;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), records.next()).await {
        let r: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let mut rooms: Vec<&str> = r["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[0].as_str().unwrap())
            .collect();
        rooms.sort();
        assert!(
            rooms == old || rooms == new,
            "decision {rooms:?} is neither the old nor the new grant"
        );
        checked += 1;
    }
    assert!(checked >= n, "every decision checked ({checked} of {n})");
    assert!(svc.reloader.status().reloads_ok >= 3);
    let _ = old_users;
}

fn common_rooms() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions/rooms.toml")
}

/// A large edit is spread over time at the configured rate.
#[tokio::test]
async fn a_large_edit_is_spread_at_the_configured_rate() {
    let env = TestEnv::start(EnvOptions {
        tweak: |c| {
            c.enforcement.rate_per_second = 5.0;
            c.enforcement.burst = 1;
            c.enforcement.grace = Duration::from_secs(30);
        },
        ..Default::default()
    })
    .await;
    let svc = env.start_callout().await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(watched(&env, &env.token("bob"), "all1", false).await);
    }
    registered(&svc, "bob", 8).await;
    std::fs::write(
        env.config.permissions.dir.join("rooms.toml"),
        ROOMS_WITHOUT_BOB_IN_ALL1,
    )
    .unwrap();
    let mut times = Vec::new();
    for c in &mut clients {
        if let Seen::LameDuck(at) = c.wait_for("the notice", |s| matches!(s, Seen::LameDuck(_))).await {
            times.push(at);
        }
    }
    times.sort();
    let spread = *times.last().unwrap() - times[0];
    // 8 notices, burst 1, 5 per second: at least 7 / 5 s apart (minus slack for jitter-free timing).
    assert!(
        spread >= Duration::from_millis(1200),
        "notices spread over {spread:?}"
    );
    let throttled = svc
        .sessions
        .as_ref()
        .unwrap()
        .stats
        .throttled
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(throttled >= 6, "throttled {throttled}");
}

/// After a restart the decision records are gone: connections found through CONNZ are
/// judged per user, and still lose what was taken away.
#[tokio::test]
async fn after_a_restart_connections_are_enforced_at_user_level() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let first = env.start_callout().await;
    let mut bob = watched(&env, &env.token("bob"), "all1;bob1", true).await;
    registered(&first, "bob", 1).await;
    first.stop().await;

    let second = env.start_callout().await;
    registered(&second, "bob", 1).await; // from CONNZ: no decision record
    std::fs::write(
        env.config.permissions.dir.join("rooms.toml"),
        ROOMS_WITHOUT_BOB_IN_ALL1,
    )
    .unwrap();
    bob.wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    let _all1 = bob.client.subscribe("chat.all1.>").await.unwrap();
    bob.wait_for("all1 denied after reconnecting", |s| {
        matches!(s, Seen::Error(e) if e.contains("Permissions Violation for Subscription to \"chat.all1.>\""))
    })
    .await;
}

/// CONNZ answers 1,024 connections at a time: a registry rebuilt after a restart (no
/// decision records) pages through all of them.
#[tokio::test]
async fn a_restarted_registry_pages_through_more_than_1024_connections() {
    const N: usize = 1100;
    common::raise_fd_limit(3000);
    let opts = EnvOptions {
        // Reconcile again soon should a busy machine let a CONNZ page miss its 500 ms.
        tweak: |c| c.enforcement.reconcile_interval = Duration::from_secs(1),
        ..Default::default()
    };
    let env = TestEnv::start(opts).await;
    let first = env.start_callout().await;
    let token = env.token("bob");
    let mut conns = Vec::with_capacity(N);
    while conns.len() < N {
        let batch = (N - conns.len()).min(50);
        let connects = (0..batch).map(|_| env.connect(Some(&token), "all1"));
        for c in futures::future::join_all(connects).await {
            conns.push(c.expect("bob connects"));
        }
    }
    registered(&first, "bob", N).await;
    first.stop().await;

    let second = env.start_callout().await;
    registered(&second, "bob", N).await;
    let sessions = second.sessions.clone().expect("live enforcement on");
    assert_eq!(sessions.connections_of("bob").len(), N);
}

/// A connection the registry holds but nats-server no longer has (its disconnect event was
/// missed) is dropped by the next CONNZ reconcile, even when the server has no connection
/// left in the account at all.
#[tokio::test]
async fn reconcile_forgets_connections_the_server_no_longer_has() {
    use nats_callout::sessions::DECISION_SUBJECT;
    use nats_callout::sessions::registry::{ConnKey, DecisionRecord};
    let opts = EnvOptions {
        tweak: |c| c.enforcement.reconcile_interval = Duration::from_secs(1),
        ..Default::default()
    };
    let env = TestEnv::start(opts).await;
    let svc = env.start_callout().await;
    let auth = env.connect_auth_user().await;
    let record = DecisionRecord {
        conn: ConnKey {
            server: auth.server_info().server_id,
            cid: 999_999,
        },
        user: "ghost".into(),
        session: "s".into(),
        device: None,
        tid: "t".into(),
        iat: 0,
        rooms: Vec::new(),
        privileges: Default::default(),
        leafnode: false,
        expires_at: i64::MAX,
        // Current epochs: a stale record would be judged (and kicked) at once instead.
        snapshot_epoch: u64::MAX,
        revocation_epoch: u64::MAX,
    };
    let body = serde_json::to_vec(&record).unwrap();
    auth.publish(DECISION_SUBJECT, body.into()).await.unwrap();
    auth.flush().await.unwrap();
    registered(&svc, "ghost", 1).await;
    let s = svc.sessions.clone().expect("live enforcement on");
    wait_until("the stale connection forgotten", || {
        s.connections_of("ghost").is_empty()
    })
    .await;
}

// ---- every revocation path closes the connections it covers ----

/// One login of a user on a device, connected to NATS and registered.
struct Login {
    access: String,
    refresh: String,
    session: String,
    conn: Watched,
}

async fn post_json(url: String, bearer: Option<&str>, body: serde_json::Value) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().post(url).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// Log `user` in on `device` over HTTP and connect with the access token.
async fn login_and_connect(env: &TestEnv, svc: &CalloutHandle, user: &str, device: &str) -> Login {
    let (status, b) = post_json(
        format!("{}/api/auth/login", svc.http_url()),
        None,
        json!({"username": user, "password": user, "deviceId": device}),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let access = b["accessToken"].as_str().unwrap().to_string();
    let claims = env
        .tokens
        .verify(&access, nats_callout::callout::now_secs())
        .unwrap();
    let before = svc.sessions.as_ref().unwrap().connections_of(user).len();
    let conn = watched(env, &access, "all1", false).await;
    registered(svc, user, before + 1).await;
    Login {
        refresh: b["refreshToken"].as_str().unwrap().to_string(),
        session: claims.sid,
        access,
        conn,
    }
}

/// The connection is closed by the server and its token no longer connects.
async fn assert_closed(env: &TestEnv, l: &mut Login, what: &str) {
    l.conn
        .wait_for(&format!("{what}: the connection closed"), |s| {
            matches!(s, Seen::Disconnected)
        })
        .await;
    let err = env.connect(Some(&l.access), "all1").await.err();
    assert!(err.is_some(), "{what}: the revoked token still connects");
}

/// The connection stays up and works.
async fn assert_untouched(l: &Login, user: &str, what: &str) {
    receives(&l.conn.client, "all1", user).await;
    assert!(
        !l.conn
            .saw(|s| matches!(s, Seen::Disconnected | Seen::LameDuck(_))),
        "{what}: a bystander was disturbed"
    );
}

async fn revoke(svc: &CalloutHandle, bearer: &str, body: serde_json::Value) {
    let (status, b) = post_json(format!("{}/api/auth/revoke", svc.http_url()), Some(bearer), body).await;
    assert_eq!(status, 200, "{b}");
}

/// A user revoking his own device closes that device's live connection (the enforcer once
/// looked the stored `user/device` value up as a bare device id and missed it).
#[tokio::test]
async fn a_user_revoking_his_own_device_closes_its_connection() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut phone = login_and_connect(&env, &svc, "bob", "phone").await;
    let laptop = login_and_connect(&env, &svc, "bob", "laptop").await;
    let alice_phone = login_and_connect(&env, &svc, "alice", "phone").await;
    revoke(&svc, &phone.access.clone(), json!({"deviceId": "phone"})).await;
    assert_closed(&env, &mut phone, "own device").await;
    assert_untouched(&laptop, "bob", "own device").await;
    assert_untouched(
        &alice_phone,
        "alice",
        "own device: another user's device of the same name",
    )
    .await;
}

/// Admin revocations by device, session and user close exactly what they name.
#[tokio::test]
async fn admin_revocations_by_device_session_and_user_close_their_connections() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let admin = env.token("admin");
    let mut tablet = login_and_connect(&env, &svc, "bob", "tablet").await;
    let mut phone = login_and_connect(&env, &svc, "bob", "phone").await;
    let laptop = login_and_connect(&env, &svc, "bob", "laptop").await;
    let alice = login_and_connect(&env, &svc, "alice", "desk").await;

    revoke(&svc, &admin, json!({"deviceId": "tablet"})).await;
    assert_closed(&env, &mut tablet, "admin device").await;
    assert_untouched(&phone, "bob", "admin device").await;

    revoke(&svc, &admin, json!({"sessionId": phone.session.clone()})).await;
    assert_closed(&env, &mut phone, "admin session").await;
    assert_untouched(&laptop, "bob", "admin session").await;

    let mut laptop = laptop;
    revoke(&svc, &admin, json!({"userId": "bob"})).await;
    assert_closed(&env, &mut laptop, "admin user").await;
    assert_untouched(&alice, "alice", "admin user").await;
}

/// "Everything before T" (sysadmins) closes every connection whose token is older.
#[tokio::test]
async fn revoke_before_closes_every_older_connection() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut bob = login_and_connect(&env, &svc, "bob", "phone").await;
    let mut alice = login_and_connect(&env, &svc, "alice", "desk").await;
    let now = nats_callout::callout::now_secs();
    revoke(&svc, &env.token("admin"), json!({"before": now})).await;
    assert_closed(&env, &mut bob, "before").await;
    assert_closed(&env, &mut alice, "before").await;
}

/// Logging out closes the live connection of that session only.
#[tokio::test]
async fn logout_closes_the_sessions_connection() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut phone = login_and_connect(&env, &svc, "bob", "phone").await;
    let laptop = login_and_connect(&env, &svc, "bob", "laptop").await;
    let (status, b) = post_json(
        format!("{}/api/auth/logout", svc.http_url()),
        None,
        json!({"refreshToken": phone.refresh.clone()}),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_closed(&env, &mut phone, "logout").await;
    assert_untouched(&laptop, "bob", "logout").await;
}

/// A refresh token used twice revokes its session: the connection made with the session's
/// access token closes too.
#[tokio::test]
async fn refresh_token_reuse_closes_the_sessions_connection() {
    let env = TestEnv::start(EnvOptions {
        tweak: |c| c.tokens.refresh_grace = Duration::ZERO,
        ..Default::default()
    })
    .await;
    let svc = env.start_callout().await;
    let mut phone = login_and_connect(&env, &svc, "bob", "phone").await;
    let laptop = login_and_connect(&env, &svc, "bob", "laptop").await;
    let url = format!("{}/api/auth/refresh", svc.http_url());
    let (status, b) = post_json(url.clone(), None, json!({"refreshToken": phone.refresh.clone()})).await;
    assert_eq!(status, 200, "{b}");
    // Within the grace second a replay still returns the same pair; after it, a reuse.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, b) = post_json(url.clone(), None, json!({"refreshToken": phone.refresh.clone()})).await;
        if status == 401 {
            assert_eq!(b["error_code"], "refresh-token-reused", "{b}");
            break;
        }
        assert!(Instant::now() < deadline, "never detected as reuse: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_closed(&env, &mut phone, "reuse").await;
    assert_untouched(&laptop, "bob", "reuse").await;
}

/// Token reset by user and by login session, over HTTP: the named connections decide
/// again (a notice), the others are left alone.
#[tokio::test]
async fn token_reset_by_user_and_by_session() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut phone = login_and_connect(&env, &svc, "bob", "phone").await;
    let laptop = login_and_connect(&env, &svc, "bob", "laptop").await;
    let mut alice = login_and_connect(&env, &svc, "alice", "desk").await;
    let url = format!("{}/api/admin/token-reset", svc.http_url());
    let admin = env.token("admin");
    let (status, b) = post_json(
        url.clone(),
        Some(&admin),
        json!({"sessions": [phone.session.clone()]}),
    )
    .await;
    assert_eq!((status, b["affected"].as_u64()), (200, Some(1)), "{b}");
    phone
        .conn
        .wait_for("a notice for the session", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    assert_untouched(&laptop, "bob", "reset by session").await;
    let (status, b) = post_json(
        url.clone(),
        Some(&admin),
        json!({"users": ["alice"], "reason": "rights changed"}),
    )
    .await;
    assert_eq!((status, b["affected"].as_u64()), (200, Some(1)), "{b}");
    alice
        .conn
        .wait_for("a notice for alice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    // Bad requests are refused with a reason.
    for body in [
        json!({}),
        json!({"tids": []}),
        json!({"users": "bob"}),
        json!({"bogus": 1}),
    ] {
        let (status, b) = post_json(url.clone(), Some(&admin), body.clone()).await;
        assert_eq!(status, 400, "{body} -> {b}");
    }
    // Over NATS too (the sysadmin role may publish auth.v1.tokenReset).
    let nats = common::connect_to(&env.server.url(), Some(&admin), "", Some("_INBOX.admin"))
        .await
        .unwrap();
    let reply = nats
        .client
        .request("auth.v1.tokenReset", json!({"users": ["bob"]}).to_string().into())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(body["affected"].as_u64().unwrap() >= 1, "{body}");
    let reply = nats
        .client
        .request("auth.v1.tokenReset", "{}".into())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["error_code"], "bad-request", "{body}");
}

/// A connection holding a role-derived right (token reset for a sysadmin) is re-authorized
/// when the files take that role away, as a lost room is.
#[tokio::test]
async fn losing_a_role_reaches_the_live_connection() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let mut admin = watched(&env, &env.token("admin"), "all1", false).await;
    let bob = watched(&env, &env.token("bob"), "all1", false).await;
    registered(&svc, "admin", 1).await;
    registered(&svc, "bob", 1).await;
    let users = env.config.permissions.dir.join("users.toml");
    let text = std::fs::read_to_string(&users).unwrap();
    // admin keeps every room (role admin) but loses sysadmin, and with it token reset.
    let edited = text.replace(r#"roles = ["admin", "sysadmin"]"#, r#"roles = ["admin"]"#);
    assert_ne!(text, edited);
    replace_file(&env.config.permissions.dir, "users.toml", &edited);
    admin
        .wait_for("a notice after losing the role", |s| {
            matches!(s, Seen::LameDuck(_))
        })
        .await;
    receives(&bob.client, "all1", "bob").await;
    assert!(!bob.saw(|s| matches!(s, Seen::LameDuck(_) | Seen::Disconnected)));
}
