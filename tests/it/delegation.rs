//! Delegated decisions (contract 13) on a real nats-server: app services answering who may
//! use a room, in the app account (exported to the service's) and in the service's own;
//! grants and refusals per user; delegates that answer garbage, slowly, never, or are gone;
//! two delegated rooms in one CONNECT within one budget; the cache (one ask for many
//! connects) and invalidation (a live connection loses the room). Each decision is read from
//! its audit event, which names the delegate as the room's source.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nats_callout::access::DelegateSettings;
use nats_callout::config::Config;
use serde_json::{Value, json};

use crate::enforcement::{Seen, watched};
use crate::support::{CalloutHandle, DEADLINE, EnvOptions, TestEnv, wait_until};

/// What a test app service does with an ask.
#[derive(Clone)]
pub(crate) enum Reply {
    /// Answer this body at once.
    Now(String),
    /// Answer this body after a while.
    After(Duration, String),
    /// Never answer (subscribed, silent).
    Silent,
}

/// An app service answering on one subject: by (user, room), else `otherwise`.
pub(crate) struct AppService {
    pub asks: Arc<AtomicUsize>,
    /// Every ask received, in order, and the subject each was to be answered on.
    pub seen: Arc<Mutex<Vec<Value>>>,
    pub replies: Arc<Mutex<Vec<String>>>,
    pub answers: Arc<Mutex<HashMap<(String, String), Reply>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reply {
    /// `{"access": access}` at once.
    pub(crate) fn access(access: &str) -> Reply {
        Reply::Now(json!({ "access": access }).to_string())
    }
}

impl Drop for AppService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AppService {
    /// Subscribe on `subject` with `client` and answer: per (user, room) from the table,
    /// else `otherwise`.
    pub(crate) async fn start(client: async_nats::Client, subject: &str, otherwise: Reply) -> AppService {
        let mut sub = client.subscribe(subject.to_string()).await.unwrap();
        client.flush().await.unwrap();
        let asks = Arc::new(AtomicUsize::new(0));
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let answers: Arc<Mutex<HashMap<(String, String), Reply>>> = Arc::default();
        let replies: Arc<Mutex<Vec<String>>> = Arc::default();
        let (a, l, t, r) = (asks.clone(), seen.clone(), answers.clone(), replies.clone());
        let task = tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                a.fetch_add(1, Ordering::SeqCst);
                let ask: Value = serde_json::from_slice(&m.payload).unwrap_or_default();
                let key = (
                    ask["user"].as_str().unwrap_or("").to_string(),
                    ask["room"].as_str().unwrap_or("").to_string(),
                );
                l.lock().unwrap().push(ask);
                r.lock().unwrap().extend(m.reply.as_ref().map(|s| s.to_string()));
                let reply = t
                    .lock()
                    .unwrap()
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| otherwise.clone());
                let (client, to) = (client.clone(), m.reply.clone());
                tokio::spawn(async move {
                    let body = match reply {
                        Reply::Now(b) => b,
                        Reply::After(d, b) => {
                            tokio::time::sleep(d).await;
                            b
                        }
                        Reply::Silent => return,
                    };
                    if let Some(to) = to {
                        let _ = client.publish(to, body.into()).await;
                        let _ = client.flush().await;
                    }
                });
            }
        });
        AppService {
            asks,
            seen,
            replies,
            answers,
            task,
        }
    }

    pub(crate) fn answer(&self, user: &str, room: &str, access: &str) {
        self.answers
            .lock()
            .unwrap()
            .insert((user.into(), room.into()), Reply::access(access));
    }

    pub(crate) fn asked(&self) -> usize {
        self.asks.load(Ordering::SeqCst)
    }
}

pub(crate) fn delegate(rooms: &str, subject: &str, timeout_ms: u64) -> DelegateSettings {
    DelegateSettings {
        rooms: rooms.into(),
        subject: subject.into(),
        timeout: Duration::from_millis(timeout_ms),
        cache: Duration::from_secs(30),
    }
}

/// A world whose app account exports `apps.>` to the service's account.
pub(crate) async fn app_world() -> TestEnv {
    TestEnv::start(EnvOptions {
        app_services: &["apps.>"],
        ..Default::default()
    })
    .await
}

/// The service with these delegates.
pub(crate) async fn serve(env: &TestEnv, delegates: Vec<DelegateSettings>) -> CalloutHandle {
    let mut config: Config = env.config.clone();
    config.access.delegate = delegates;
    config.validate().expect("the delegates are valid");
    env.start_callout_with(config).await
}

/// A static user of the app account (it skips the callout): where app services run.
pub(crate) async fn app_account_client(env: &TestEnv) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .user_and_password("observer".into(), env.observer_password.clone())
        .connect(env.server.url())
        .await
        .unwrap()
}

/// The audit trail of decisions, watched from the service's account.
pub(crate) struct Decisions(async_nats::Subscriber);

impl Decisions {
    pub(crate) async fn watch(env: &TestEnv) -> Decisions {
        let watcher = env.connect_auth_user().await;
        let sub = watcher.subscribe("nats-callout.audit.allowed").await.unwrap();
        watcher.flush().await.unwrap();
        Decisions(sub)
    }

    /// The next allowed decision of `user`.
    pub(crate) async fn next(&mut self, user: &str) -> Value {
        loop {
            let m = tokio::time::timeout(DEADLINE, self.0.next())
                .await
                .unwrap_or_else(|_| panic!("no decision for {user}"))
                .unwrap();
            let e: Value = serde_json::from_slice(&m.payload).unwrap();
            if e["user"] == user {
                return e;
            }
        }
    }
}

/// Connect `user` asking for `rooms` and return the decision's rooms (granted, refused).
async fn rooms_of(
    env: &TestEnv,
    decisions: &mut Decisions,
    user: &str,
    rooms: &str,
) -> (Value, crate::support::Conn) {
    let conn = env
        .connect(Some(&env.token(user)), rooms)
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"));
    let e = decisions.next(user).await;
    (e, conn)
}

#[tokio::test]
async fn app_services_in_the_app_account_and_in_the_services_own_decide_their_rooms() {
    let env = app_world().await;
    let _svc = serve(
        &env,
        vec![
            delegate("team-*", "apps.teams", 250),
            delegate("ops-*", "svc.ops", 250),
        ],
    )
    .await;
    let none = Reply::access("none");
    // In the app account, exported to the service's.
    let teams = AppService::start(app_account_client(&env).await, "apps.teams", none.clone()).await;
    teams.answer("bob", "team-a", "readwrite");
    teams.answer("alice", "team-a", "read");
    // In the service's own account (the demo's `callout` user).
    let ops = AppService::start(env.connect_auth_user().await, "svc.ops", none).await;
    ops.answer("bob", "ops-x", "write");
    let mut decisions = Decisions::watch(&env).await;

    let (bob, _bob_conn) = rooms_of(&env, &mut decisions, "bob", "all1;team-a;team-b;ops-x").await;
    assert_eq!(
        bob["rooms"],
        json!({
            "asked": ["all1", "team-a", "team-b", "ops-x"],
            "granted": [
                {"room": "all1", "access": "readwrite"},
                {"room": "team-a", "access": "readwrite", "source": "delegate:apps.teams"},
                {"room": "ops-x", "access": "write", "source": "delegate:svc.ops"},
            ],
            "refused": [{"room": "team-b", "reason": "delegate-none", "source": "delegate:apps.teams"}],
        })
    );
    // The ask: who, where, and what the files and the token say of them.
    let ask = teams
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|a| a["room"] == "team-b")
        .cloned()
        .unwrap();
    assert_eq!(
        ask,
        json!({"user": "bob", "room": "team-b", "groups": ["everyone"], "roles": ["user"],
            "account": "APP", "deviceId": "test"}),
        "the ask about bob in team-b"
    );
    let (alice, alice_conn) = rooms_of(&env, &mut decisions, "alice", "team-a;ops-x").await;
    assert_eq!(
        alice["rooms"]["granted"],
        json!([{"room": "team-a", "access": "read", "source": "delegate:apps.teams"}])
    );
    assert_eq!(
        alice["rooms"]["refused"],
        json!([{"room": "ops-x", "reason": "delegate-none", "source": "delegate:svc.ops"}])
    );

    // The grant is the server's: alice reads team-a, where bob writes; alice may not write.
    let mut sub = alice_conn.client.subscribe("chat.team-a.>").await.unwrap();
    alice_conn.client.flush().await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        _bob_conn
            .client
            .publish("chat.team-a.bob", "hi".into())
            .await
            .unwrap();
        _bob_conn.client.flush().await.unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            assert_eq!(m.subject.as_str(), "chat.team-a.bob");
            break;
        }
        assert!(Instant::now() < deadline, "alice never heard bob in team-a");
    }
    let mut alice_conn = alice_conn;
    alice_conn
        .client
        .publish("chat.team-a.alice", "hi".into())
        .await
        .unwrap();
    alice_conn.client.flush().await.unwrap();
    alice_conn
        .expect_error("Permissions Violation for Publish to \"chat.team-a.alice\"")
        .await;
}

#[tokio::test]
async fn a_delegate_that_answers_garbage_slowly_never_or_is_gone_refuses_its_room_only() {
    let env = app_world().await;
    let svc = serve(
        &env,
        vec![
            delegate("team-*", "apps.teams", 250),
            delegate("bad-*", "apps.garbage", 250),
            delegate("slow-*", "apps.slow", 250),
            delegate("silent-*", "apps.silent", 250),
            delegate("gone-*", "apps.gone", 250),
        ],
    )
    .await;
    let app = app_account_client(&env).await;
    let _teams = AppService::start(app.clone(), "apps.teams", Reply::access("readwrite")).await;
    let _bad = AppService::start(app.clone(), "apps.garbage", Reply::Now("garbage".into())).await;
    let _slow = AppService::start(
        app.clone(),
        "apps.slow",
        Reply::After(Duration::from_millis(600), r#"{"access":"readwrite"}"#.into()),
    )
    .await;
    let _silent = AppService::start(app.clone(), "apps.silent", Reply::Silent).await;
    let mut decisions = Decisions::watch(&env).await;

    let started = Instant::now();
    let (e, _conn) = rooms_of(
        &env,
        &mut decisions,
        "bob",
        "all1;team-a;bad-1;slow-1;silent-1;gone-1",
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        e["rooms"]["granted"],
        json!([
            {"room": "all1", "access": "readwrite"},
            {"room": "team-a", "access": "readwrite", "source": "delegate:apps.teams"},
        ])
    );
    assert_eq!(
        e["rooms"]["refused"],
        json!([
            {"room": "bad-1", "reason": "delegate-bad-answer", "source": "delegate:apps.garbage"},
            {"room": "slow-1", "reason": "delegate-unavailable", "source": "delegate:apps.slow"},
            {"room": "silent-1", "reason": "delegate-unavailable", "source": "delegate:apps.silent"},
            {"room": "gone-1", "reason": "delegate-unavailable", "source": "delegate:apps.gone"},
        ])
    );
    // Asked in parallel: far from four budgets one after the other, and never the server's
    // 2 s deadline.
    let decided = Duration::from_micros(e["tookUs"].as_u64().unwrap());
    assert!(
        decided >= Duration::from_millis(250) && decided < Duration::from_millis(900),
        "decided in {decided:?}"
    );
    assert!(took < Duration::from_millis(1800), "connected in {took:?}");
    // Failures are not kept: the next connect asks again (and a slow delegate's late answer,
    // dropped, was not kept either).
    let (again, _c2) = rooms_of(&env, &mut decisions, "bob", "silent-1;slow-1").await;
    assert_eq!(again["rooms"]["granted"], json!([]));
    // The metrics name each delegate.
    let m = reqwest::get(format!("{}/metrics", svc.admin_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "nats_callout_delegate_asks_total{delegate=\"apps.teams\"}",
        "nats_callout_delegate_bad_answers_total{delegate=\"apps.garbage\"}",
        "nats_callout_delegate_timeouts_total{delegate=\"apps.slow\"}",
        "nats_callout_delegate_timeouts_total{delegate=\"apps.silent\"}",
        "nats_callout_delegate_unavailable_total{delegate=\"apps.gone\"}",
        "nats_callout_delegate_seconds_count{delegate=\"apps.teams\"}",
    ] {
        assert!(m.contains(line), "no {line} in /metrics");
    }
}

#[tokio::test]
async fn two_delegated_rooms_in_one_connect_are_asked_within_one_budget() {
    let env = app_world().await;
    let _svc = serve(
        &env,
        vec![
            delegate("one-*", "apps.one", 600),
            delegate("two-*", "apps.two", 600),
        ],
    )
    .await;
    let app = app_account_client(&env).await;
    let _one = AppService::start(app.clone(), "apps.one", Reply::Silent).await;
    let _two = AppService::start(
        app.clone(),
        "apps.two",
        Reply::After(Duration::from_millis(300), r#"{"access":"read"}"#.into()),
    )
    .await;
    let mut decisions = Decisions::watch(&env).await;
    let (e, _conn) = rooms_of(&env, &mut decisions, "bob", "one-a;two-a;one-b").await;
    assert_eq!(
        e["rooms"]["granted"],
        json!([{"room": "two-a", "access": "read", "source": "delegate:apps.two"}])
    );
    let decided = Duration::from_micros(e["tookUs"].as_u64().unwrap());
    // One budget (600 ms) for the three asks together, not 600 + 300 + 600.
    assert!(
        decided >= Duration::from_millis(600) && decided < Duration::from_millis(1100),
        "decided in {decided:?}"
    );
}

#[tokio::test]
async fn answers_are_cached_and_invalidation_takes_a_room_back_from_a_live_connection() {
    let env = app_world().await;
    env.add_service_user("svc");
    let svc = serve(&env, vec![delegate("team-*", "apps.teams", 250)]).await;
    let teams = AppService::start(
        app_account_client(&env).await,
        "apps.teams",
        Reply::access("none"),
    )
    .await;
    teams.answer("bob", "team-a", "readwrite");
    let mut decisions = Decisions::watch(&env).await;

    // One ask for many connects (positive and negative answers alike).
    for _ in 0..5 {
        let (e, conn) = rooms_of(&env, &mut decisions, "bob", "team-a;team-b").await;
        assert_eq!(e["rooms"]["granted"][0]["room"], "team-a", "{e}");
        assert_eq!(e["rooms"]["refused"][0]["reason"], "delegate-none", "{e}");
        drop(conn);
    }
    assert_eq!(teams.asked(), 2, "one ask per room, then the cache");

    // A live connection holding team-a: the app service takes it back and invalidates.
    let token = env.token("bob");
    let mut live = watched(&env, &token, "all1;team-a", false).await;
    let first = decisions.next("bob").await;
    assert_eq!(first["rooms"]["granted"][1]["room"], "team-a", "{first}");
    let enforcement = svc.enforcement.clone().unwrap();
    wait_until("the registry knows bob's team-a", || {
        enforcement
            .connections()
            .iter()
            .any(|c| c.user == "bob" && c.rooms.iter().any(|r| r == "team-a"))
    })
    .await;
    teams.answer("bob", "team-a", "none");
    let caller = env.endpoint_caller("svc").await;
    let reply = caller
        .client
        .request(
            "auth.v1.access.invalidate",
            json!({"user": "bob", "room": "team-a"}).to_string().into(),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["forgotten"], 1, "{reply}");
    assert_eq!(reply["reauthorized"], 1, "{reply}");
    assert_eq!(
        teams.asked(),
        3,
        "the live connection's room was asked about again"
    );
    live.wait_for("the lame-duck notice", |s| matches!(s, Seen::LameDuck(_)))
        .await;
    live.wait_for("the kick after the grace", |s| matches!(s, Seen::Disconnected))
        .await;
    // Reconnecting (the kicked client does by itself): the new answer, from the cache the
    // invalidation filled.
    let e = decisions.next("bob").await;
    assert_eq!(
        e["rooms"]["refused"],
        json!([{"room": "team-a", "reason": "delegate-none", "source": "delegate:apps.teams"}])
    );
    assert_eq!(teams.asked(), 3, "the answer asked at the invalidation was kept");
    // A bad request is refused with a reason; invalidating nothing is fine.
    let bad = caller
        .client
        .request("auth.v1.access.invalidate", r#"{"user":"a.b"}"#.into())
        .await
        .unwrap();
    let bad: Value = serde_json::from_slice(&bad.payload).unwrap();
    assert_eq!(bad["error_code"], "bad-request", "{bad}");
    let all = caller
        .client
        .request("auth.v1.access.invalidate", "{}".into())
        .await
        .unwrap();
    let all: Value = serde_json::from_slice(&all.payload).unwrap();
    assert_eq!(all["reauthorized"], 0, "{all}");
}

#[tokio::test]
async fn only_the_service_role_may_invalidate() {
    let env = app_world().await;
    let _svc = serve(&env, vec![delegate("team-*", "apps.teams", 250)]).await;
    let mut bob = env.endpoint_caller("bob").await;
    bob.client
        .publish("auth.v1.access.invalidate", "{}".into())
        .await
        .unwrap();
    bob.client.flush().await.unwrap();
    bob.expect_error("Permissions Violation for Publish to \"auth.v1.access.invalidate\"")
        .await;
}

#[tokio::test]
async fn explain_names_the_delegate_offline_and_asks_it_live() {
    let env = app_world().await;
    let svc = serve(&env, vec![delegate("team-*", "apps.teams", 250)]).await;
    let teams = AppService::start(
        app_account_client(&env).await,
        "apps.teams",
        Reply::access("none"),
    )
    .await;
    teams.answer("bob", "team-a", "read");
    let q = nats_callout::explain::Question {
        user_id: "bob".into(),
        rooms: vec!["team-a".into(), "team-b".into(), "all1".into()],
        client_id: None,
    };
    let offline = nats_callout::explain::offline(
        &env.config.callout,
        &[delegate("team-*", "apps.teams", 250)],
        &env.config.permissions.dir,
        &q,
    )
    .unwrap();
    let r = &offline.rooms[0];
    assert_eq!((r.access.as_str(), r.reason.as_str()), ("none", "delegated"));
    assert_eq!(
        r.source,
        "delegate:apps.teams: delegated to apps.teams (not asked offline)"
    );
    let live = svc
        .ops
        .explain(&q, nats_callout::clock::now_secs())
        .await
        .unwrap();
    let got: Vec<(&str, &str, &str)> = live
        .rooms
        .iter()
        .map(|r| (r.room.as_str(), r.access.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("team-a", "read", "granted"),
            ("team-b", "none", "delegate-none"),
            ("all1", "readwrite", "granted")
        ]
    );
    assert!(
        live.rooms[0].source.starts_with("delegate:apps.teams"),
        "{:?}",
        live.rooms[0]
    );
}

/// The fenced blocks of `lang` in the guide, in order.
fn guide_blocks(lang: &str) -> Vec<String> {
    let guide = include_str!("../../docs/src/guides/delegation.md");
    guide
        .split(&format!("```{lang}\n"))
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect()
}

/// The guide (`docs/src/guides/delegation.md`) as written: its table appended to the demo's
/// `callout.toml` loads; its ask and answer are the contract's; its config-mode wiring, run
/// by a real nats-server, lets an app service in the app account answer while a user of the
/// app account can neither subscribe there nor send asks.
#[tokio::test]
async fn the_guide_runs_as_written() {
    // The table, appended to the demo's configuration.
    let table = &guide_blocks("toml")[0];
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/callout.toml")).unwrap();
    let path = dir.path().join("callout.toml");
    std::fs::write(&path, format!("{demo}\n{table}")).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.access.delegate.len(), 1);
    assert_eq!(c.access.delegate[0].subject, "apps.access");

    // The messages.
    let json = guide_blocks("json");
    let ask: nats_callout::access::Ask = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(
        serde_json::to_value(&ask).unwrap(),
        serde_json::from_str::<Value>(&json[0]).unwrap()
    );
    assert_eq!(
        nats_callout::access::ask::parse_answer(json[1].as_bytes()).unwrap(),
        Some(nats_callout::permissions::Access::ReadWrite)
    );

    // The config-mode wiring on a real server, with this test's keys.
    let env = TestEnv::start(EnvOptions::default()).await;
    let accounts = &guide_blocks("text")[0];
    let keydir = env.dir.path().join("keys");
    let sys_password = std::fs::read_to_string(keydir.join(nats_callout::keys::SYS_PASSWORD_FILE)).unwrap();
    let issuer = nkeys::KeyPair::from_seed(
        std::fs::read_to_string(&env.config.callout.issuer_seed_file)
            .unwrap()
            .trim(),
    )
    .unwrap()
    .public_key();
    let xkey = nkeys::XKey::from_seed(
        std::fs::read_to_string(env.config.callout.xkey_seed_file.as_ref().unwrap())
            .unwrap()
            .trim(),
    )
    .unwrap()
    .public_key();
    let port = crate::support::free_port();
    let conf = env.dir.path().join("guide-server.conf");
    let app_password = nuid::next().to_string();
    std::fs::write(
        &conf,
        format!(
            "CALLOUT_PASSWORD: \"{}\"\nSYS_PASSWORD: \"{}\"\nACCESS_SERVICE_PASSWORD: \"{app_password}\"\n\
             listen: 127.0.0.1:{port}\nmax_control_line: 8KB\n{accounts}system_account: SYS\n{}",
            env.callout_password,
            sys_password.trim(),
            nats_callout::keys::authorization_block(
                &issuer,
                Some(&xkey),
                &["callout", "sys", "access-service"],
                2
            ),
        ),
    )
    .unwrap();
    let server =
        crate::support::server::NatsServer::start_file(&conf, port, 0).expect("the guide's server starts");
    let mut config = env.config.clone();
    config.nats.url = server.url();
    config.access.delegate = vec![delegate("team-*", "apps.access", 250)];
    let _svc = env.start_callout_with(config).await;
    let app = async_nats::ConnectOptions::new()
        .user_and_password("access-service".into(), app_password)
        .connect(server.url())
        .await
        .unwrap();
    let access = AppService::start(app, "apps.access", Reply::access("read")).await;
    let watcher = async_nats::ConnectOptions::new()
        .user_and_password("callout".into(), env.callout_password.clone())
        .connect(server.url())
        .await
        .unwrap();
    let mut decisions = Decisions(watcher.subscribe("nats-callout.audit.allowed").await.unwrap());
    watcher.flush().await.unwrap();
    let bob = crate::support::connect_to(&server.url(), Some(&env.token("bob")), "all1;team-a", None)
        .await
        .expect("bob connects through the guide's server");
    assert_eq!(access.asked(), 1);
    let e = decisions.next("bob").await;
    assert_eq!(
        e["rooms"]["granted"][1],
        json!({"room": "team-a", "access": "read", "source": "delegate:apps.access"})
    );
    // bob may not reach the delegate's subject.
    let mut bob = bob;
    let _d = bob.client.subscribe("apps.access").await.unwrap();
    bob.expect_error("Permissions Violation for Subscription to \"apps.access\"")
        .await;
}

/// The delegated-decisions phase of `make bench` (`bench run --only-delegation`) at a small
/// scale, so that it cannot rot: every system authorizes, none is refused, and each delegate
/// was asked as its cache says (the cached one once per user at most).
#[tokio::test(flavor = "multi_thread")]
async fn the_delegation_benchmark_runs() {
    let (results, log) =
        crate::rooms::bench::run_bench(&["--only-delegation", "--rounds", "1", "--phase-secs", "0.3"]).await;
    let d = &results["delegation"];
    let systems: Vec<(&str, u64)> = d["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["system"].as_str().unwrap(), s["concurrency"].as_u64().unwrap()))
        .collect();
    assert_eq!(systems.len(), 10, "{d}");
    for s in d["systems"].as_array().unwrap() {
        assert!(s["ok"].as_u64().unwrap() > 0, "{s}");
        let failed = ["refused", "timeouts", "io_errors"]
            .iter()
            .map(|k| s[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(failed, 0, "{s}\n{log}");
    }
    let never = d["systems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == "delegate-never")
        .unwrap();
    assert!(
        never["p50_ms"].as_f64().unwrap() >= 250.0,
        "a silent delegate costs the budget: {never}"
    );
    assert!(
        d["asks_now"].as_u64().unwrap() > 0 && d["asks_never"].as_u64().unwrap() > 0,
        "{d}"
    );
    assert!(d["asks_cached"].as_u64().unwrap() <= 1000, "{d}");
    let targets = results["targets"].as_array().unwrap();
    assert!(
        targets
            .iter()
            .any(|t| t["target"] == "delegation: failed authorizations"),
        "{results}"
    );
}
