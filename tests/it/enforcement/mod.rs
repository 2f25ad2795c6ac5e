//! Live enforcement against a real nats-server: permission files edited while clients are
//! connected, LDM then KICK, revocations, token reset, several instances, throttling.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::api::{ask, login_for};
use crate::support::{CalloutHandle, DEADLINE, EnvOptions, TestEnv, wait_until};
use async_nats::{ConnectOptions, Event, ServerError};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

mod lease;
mod notices;
mod revocations;

/// What a watched client saw, with when.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    Connected(Instant),
    LameDuck(Instant),
    Disconnected,
    Error(String),
}

pub(crate) struct Watched {
    pub(crate) client: async_nats::Client,
    seen: mpsc::UnboundedReceiver<Seen>,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Watched {
    /// Wait for something the client saw, up to the deadline.
    pub(crate) async fn wait_for(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
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

    pub(crate) fn saw(&self, pred: impl Fn(&Seen) -> bool) -> bool {
        self.log.lock().unwrap().iter().any(pred)
    }
}

/// Connect like a chat client; with `handle_ldm` it reconnects when told to.
pub(crate) async fn watched(env: &TestEnv, token: &str, rooms: &str, handle_ldm: bool) -> Watched {
    let opts = ConnectOptions::new()
        .user_and_password(rooms.to_string(), String::new())
        .token(token.to_string());
    watched_with(opts, &env.server.url(), handle_ldm).await
}

/// Connect to `url` with `opts`, watching what happens; with `handle_ldm` it reconnects
/// when told to.
pub(crate) async fn watched_with(opts: ConnectOptions, url: &str, handle_ldm: bool) -> Watched {
    let (tx, rx) = mpsc::unbounded_channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let me: Arc<Mutex<Option<async_nats::Client>>> = Arc::default();
    let (me2, log2) = (me.clone(), log.clone());
    let client = opts
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
                    Event::Connected => Seen::Connected(Instant::now()),
                    Event::Disconnected => Seen::Disconnected,
                    Event::ServerError(ServerError::Other(s)) => Seen::Error(s),
                    _ => return,
                };
                log.lock().unwrap().push(seen.clone());
                let _ = tx.send(seen);
            }
        })
        .connect(url)
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
pub(crate) fn replace_file(dir: &Path, name: &str, contents: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The demo rooms, with bob taken out of all1.
pub(crate) const ROOMS_WITHOUT_BOB_IN_ALL1: &str = r#"
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
pub(crate) async fn receives(c: &async_nats::Client, room: &str, user: &str) {
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

/// Wait until the registry knows `n` connections of `user` (decision records arrived).
pub(crate) async fn registered(svc: &CalloutHandle, user: &str, n: usize) {
    let s = svc.enforcement.clone().expect("live enforcement on");
    wait_until(&format!("{n} registered connections of {user}"), || {
        s.connections_of(user).len() >= n
    })
    .await;
}

/// The set-up of the edit tests: bob connected to all1 and bob1, known to the registry.
async fn bob_in_all1_and_bob1(handle_ldm: bool) -> (TestEnv, CalloutHandle, Watched) {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let bob = watched(&env, &env.token("bob"), "all1;bob1", handle_ldm).await;
    registered(&svc, "bob", 1).await;
    (env, svc, bob)
}

/// A client that handles LDM reconnects, then has `chat.all1.>` denied while
/// `chat.bob1.>` keeps working. The file is replaced by rename.
#[tokio::test]
async fn ldm_client_reconnects_and_loses_only_the_removed_room() {
    let (env, svc, mut bob) = bob_in_all1_and_bob1(true).await;
    let _all1 = bob.client.subscribe("chat.all1.>").await.unwrap();
    receives(&bob.client, "bob1", "bob").await;

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
    let stats = &svc.enforcement.as_ref().unwrap().stats;
    assert!(stats.ldm_sent.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert_eq!(svc.reloader.status().reloads_ok, 1, "{:?}", svc.reloader.status());
}

/// A client that ignores the notice is kicked after the grace.
#[tokio::test]
async fn a_client_ignoring_ldm_is_kicked_after_the_grace() {
    let (env, svc, mut bob) = bob_in_all1_and_bob1(false).await;
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
    let stats = &svc.enforcement.as_ref().unwrap().stats;
    wait_until("a kick counted", || {
        stats.kicks_sent.load(std::sync::atomic::Ordering::Relaxed) >= 1
    })
    .await;
}

/// A broken edit changes nothing and is reported with file and line.
#[tokio::test]
async fn a_broken_edit_keeps_the_grants_and_reports_the_error() {
    let (env, svc, mut bob) = bob_in_all1_and_bob1(true).await;
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
    let (_, body, _) =
        crate::support::api::get_bearer(&format!("{}/api/admin/status", svc.admin_url()), &admin).await;
    let errors = body["permissions"]["lastErrors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("broken.toml:2:")),
        "{body}"
    );
    drop(bob.seen.try_recv());
}

/// `auth.v1.tokenReset` re-authorizes exactly the connections holding those token ids.
#[tokio::test]
async fn token_reset_affects_exactly_the_matching_connections() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let (t1, t2) = (env.token("bob"), env.token("bob"));
    let tid = env
        .tokens
        .verify(&t1, nats_callout::clock::now_secs())
        .unwrap()
        .tid;
    let mut one = watched(&env, &t1, "all1", true).await;
    let two = watched(&env, &t2, "all1", true).await;
    registered(&svc, "bob", 2).await;

    // The admin (sysadmin role) may publish auth.v1.tokenReset; bob may not.
    let admin = env.endpoint_caller("admin").await;
    let reset = json!({"tids": [tid], "reason": "test"});
    let body = ask(&admin.client, "auth.v1.tokenReset", &reset).await;
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

/// An edit of an application reaches its live connections: the one whose application no
/// longer reaches bob1 gets the notice and, reconnecting, loses bob1 only; bob's connection
/// without an application is left alone.
#[tokio::test]
async fn a_connection_loses_the_room_its_application_no_longer_reaches() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let dir = &env.config.permissions.dir;
    std::fs::write(
        dir.join("applications.toml"),
        "[applications.mobile]\nrooms = [\"all1\", \"bob1\"]\n",
    )
    .unwrap();
    let svc = env.start_callout().await;
    let mobile = login_for(&svc.http_url(), "bob", "mobile").await;
    let mut scoped = watched(&env, mobile["accessToken"].as_str().unwrap(), "all1;bob1", true).await;
    let plain = watched(&env, &env.token("bob"), "all1;bob1", true).await;
    registered(&svc, "bob", 2).await;
    let _bob1 = scoped.client.subscribe("chat.bob1.>").await.unwrap();
    receives(&scoped.client, "all1", "bob").await;

    replace_file(
        dir,
        "applications.toml",
        "[applications.mobile]\nrooms = [\"all1\"]\n",
    );

    scoped
        .wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    scoped
        .wait_for("bob1 denied after reconnecting", |s| {
            matches!(s, Seen::Error(e) if e.contains("Permissions Violation for Subscription to \"chat.bob1.>\""))
        })
        .await;
    receives(&scoped.client, "all1", "bob").await;
    // The same judgement found nothing to take from the connection without an application.
    receives(&plain.client, "bob1", "bob").await;
    assert!(!plain.saw(|s| matches!(s, Seen::LameDuck(_) | Seen::Disconnected)));
}

/// resgate's token reset `{"tids": [...], "subject": "..."}` re-authorizes the connections
/// holding those token ids; an empty list, a subject that is not one and unknown fields are
/// refused with `bad-request`.
#[tokio::test]
async fn resgates_token_reset_with_a_subject_reaches_its_token_ids() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let token = env.token("bob");
    let tid = env
        .tokens
        .verify(&token, nats_callout::clock::now_secs())
        .unwrap()
        .tid;
    let mut bob = watched(&env, &token, "all1", true).await;
    registered(&svc, "bob", 1).await;
    let admin = env.endpoint_caller("admin").await;
    let reset = |body: serde_json::Value| {
        let client = admin.client.clone();
        async move { ask(&client, "auth.v1.tokenReset", &body).await }
    };
    for bad in [
        json!({"tids": [], "subject": "auth.chat.reauth"}),
        json!({"tids": [tid], "subject": "auth.chat.*"}),
        json!({"tids": [tid], "subject": "auth chat"}),
        json!({"tids": [tid], "subject": "x".repeat(257)}),
        json!({"tids": [tid], "subject": "auth.chat.reauth", "token": "x"}),
    ] {
        let body = reset(bad.clone()).await;
        assert_eq!(body["error_code"], "bad-request", "{bad} -> {body}");
    }
    assert!(!bob.saw(|s| matches!(s, Seen::LameDuck(_))));
    let body = reset(json!({"tids": [tid], "subject": "auth.chat.reauth"})).await;
    assert_eq!(body["affected"], 1, "{body}");
    bob.wait_for("the notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
}

/// Two instances sharing the JetStream store: one holds the lease, one kick per
/// connection, not two.
#[tokio::test]
async fn two_instances_send_one_kick_per_connection() {
    let env = TestEnv::start(EnvOptions::shared()).await;
    let a = env.start_callout().await;
    let b = env.start_callout().await;
    let (sa, sb) = (a.enforcement.clone().unwrap(), b.enforcement.clone().unwrap());
    wait_until("one instance holds the lease", || {
        sa.is_leader() != sb.is_leader()
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
    let kicks = |s: &nats_callout::enforcement::Enforcement| {
        s.stats.kicks_sent.load(std::sync::atomic::Ordering::Relaxed)
    };
    let ldms = |s: &nats_callout::enforcement::Enforcement| {
        s.stats.ldm_sent.load(std::sync::atomic::Ordering::Relaxed)
    };
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
        .subscribe(nats_callout::wire::DECISION_SUBJECT)
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
                match crate::support::connect_to(&url, Some(&token), "all1;bob1;team1", None).await {
                    Ok(c) => drop(c),
                    // Decided on the files just replaced, the enforcer may close it before
                    // the client has read the server's answer (its decision still counts
                    // below); anything else is a refusal.
                    Err(e) if e.kind() == async_nats::ConnectErrorKind::Io => {}
                    Err(e) => panic!("allowed: {e:?}"),
                }
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
        .enforcement
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
    crate::support::raise_fd_limit(3000);
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
    let sessions = second.enforcement.clone().expect("live enforcement on");
    assert_eq!(sessions.connections_of("bob").len(), N);
}

/// A connection the registry holds but nats-server no longer has (its disconnect event was
/// missed) is dropped by the next CONNZ reconcile, even when the server has no connection
/// left in the account at all.
#[tokio::test]
async fn reconcile_forgets_connections_the_server_no_longer_has() {
    use nats_callout::wire::DECISION_SUBJECT;
    use nats_callout::wire::{ConnKey, DecisionRecord};
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
        rooms_epoch: u64::MAX,
        asserted: None,
        client_id: None,
        at: 0,
    };
    let body = serde_json::to_vec(&record).unwrap();
    auth.publish(DECISION_SUBJECT, body.into()).await.unwrap();
    auth.flush().await.unwrap();
    registered(&svc, "ghost", 1).await;
    let s = svc.enforcement.clone().expect("live enforcement on");
    wait_until("the stale connection forgotten", || {
        s.connections_of("ghost").is_empty()
    })
    .await;
}
