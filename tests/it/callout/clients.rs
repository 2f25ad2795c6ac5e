//! The official clients as people use them: nats-py, which can send a token only without a
//! user, connects with user = rooms and password = token; async-nats joins a room by
//! reconnecting with a new list; a client that sends both `auth_token` and a password is
//! decided on `auth_token`, and no password reaches the log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use async_nats::{ConnectErrorKind, ConnectOptions, Event, ServerError};
use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::support::{Conn, DEADLINE, EnvOptions, Running, TestEnv, TokenIn, bin, sigterm, talks};

/// The Python that has nats-py: `NATS_PY_PYTHON`, else `.tools/venv/bin/python`, where
/// `scripts/install-nats-py.sh` (run by `make test`) installs it.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_PY_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python");
    assert!(
        venv.exists(),
        "no nats-py: run scripts/install-nats-py.sh (`make test` does) or set NATS_PY_PYTHON"
    );
    venv
}

/// `tests/clients/nats_py_chat.py` running, read step by step.
struct PyChat {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl PyChat {
    fn start(api: &str, nats: &str) -> PyChat {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/nats_py_chat.py");
        let mut child = tokio::process::Command::new(python())
            .arg(script)
            .args([api, nats])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python runs");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        PyChat { child, lines }
    }

    /// The next line, which must be step `want`. The script bounds each of its own waits
    /// (10 s) and says on stderr which one failed; this waits longer, so that its report is
    /// what a failure shows.
    async fn step(&mut self, want: &str) -> Value {
        let line = tokio::time::timeout(2 * DEADLINE, self.lines.next_line()).await;
        let Ok(Ok(Some(line))) = line else {
            // Let it finish its report (it exits on its own timeouts) before stopping it.
            let _ = tokio::time::timeout(DEADLINE, self.child.wait()).await;
            let _ = self.child.start_kill();
            let mut err = String::new();
            let stderr = self.child.stderr.as_mut().unwrap();
            let _ = tokio::time::timeout(DEADLINE, stderr.read_to_string(&mut err)).await;
            panic!("nats_py_chat.py did not say {want}: {line:?}\n{err}");
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["step"], want, "{v}");
        v
    }
}

/// A Python bot with nats-py 2.16.0: it logs in over HTTP as bob, connects with user = rooms
/// and password = access token, hears alice, is refused a room and alice's name as sender,
/// and joins another room by reconnecting with a new list (the nats-py snippet of the book's first-client page).
#[tokio::test]
async fn nats_py_logs_in_and_chats_with_the_token_as_password() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let alice = env
        .connect_via(Some(&env.token("alice")), "all1", TokenIn::Pass)
        .await
        .expect("alice connects");
    let mut room = alice.client.subscribe("chat.all1.>").await.unwrap();
    alice.client.flush().await.unwrap();

    let mut py = PyChat::start(&svc.http_url(), &env.server.url());
    py.step("ready").await;
    alice
        .client
        .publish("chat.all1.alice", "hello from alice".into())
        .await
        .unwrap();
    alice.client.flush().await.unwrap();
    let heard = py.step("heard").await;
    assert_eq!(heard["subject"], "chat.all1.alice", "{heard}");
    assert_eq!(heard["data"], "hello from alice", "{heard}");
    let refused = py.step("refused").await;
    let errors = refused["errors"].to_string();
    for needle in [
        r#"permissions violation for subscription to \"chat.alice1.>\""#,
        r#"permissions violation for publish to \"chat.all1.alice\""#,
    ] {
        assert!(errors.contains(needle), "{needle} not in {errors}");
    }
    py.step("rejoined").await;
    py.step("done").await;
    assert!(py.child.wait().await.unwrap().success());

    // Alice heard python's message on bob's subject, and nothing sent under her name
    // before it (one connection's messages arrive in order).
    let hi = loop {
        let m = tokio::time::timeout(DEADLINE, room.next())
            .await
            .expect("alice hears python")
            .unwrap();
        let text = String::from_utf8_lossy(&m.payload).into_owned();
        assert_ne!(text, "forged by python", "a message as alice got through");
        if text == "hi from python" {
            break m;
        }
    };
    assert_eq!(hi.subject.as_str(), "chat.all1.bob");
}

/// A connection with `auth_token` and a password at once (async-nats sends both).
async fn connect_both(
    env: &TestEnv,
    token: &str,
    password: &str,
) -> Result<async_nats::Client, ConnectErrorKind> {
    ConnectOptions::new()
        .user_and_password("all1;bob1".into(), password.into())
        .token(token.into())
        .max_reconnects(Some(1))
        .connection_timeout(DEADLINE)
        .connect(env.server.url())
        .await
        .map_err(|e| e.kind())
}

/// Both sent: `auth_token` decides whatever the password holds. The service binary's log
/// (at trace level) names where each token came from and never holds a password or token.
#[tokio::test]
async fn with_both_auth_token_decides_and_no_password_is_logged() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let cfg = env.write_config_file("");
    let log = env.dir.path().join("service.log");
    let mut serve = Running(
        bin()
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("NATS_CALLOUT_LOG__FORMAT", "json")
            .env("RUST_LOG", "nats_callout=trace")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let (token, pass_token) = (env.token("bob"), env.token("bob"));
    let (bad_pass, bad_token) = (format!("pw-{}", nuid::next()), format!("tok-{}", nuid::next()));
    env.connect_when_served(&token, "all1").await;

    let good_token_bad_pass = connect_both(&env, &token, &bad_pass)
        .await
        .expect("a good auth_token decides, whatever the password");
    let conn = Conn {
        client: good_token_bad_pass,
        user: Some("bob".into()),
        errors: tokio::sync::mpsc::unbounded_channel().1,
    };
    talks(&conn, "bob1", "bob").await;
    assert_eq!(
        connect_both(&env, &bad_token, &pass_token).await.err(),
        Some(ConnectErrorKind::AuthorizationViolation),
        "a bad auth_token decides, whatever the password"
    );
    env.connect_via(Some(&pass_token), "all1", TokenIn::Pass)
        .await
        .expect("the token in pass alone");
    assert_eq!(
        env.connect_via(Some(&bad_pass), "all1", TokenIn::Pass)
            .await
            .err()
            .map(|e| e.kind()),
        Some(ConnectErrorKind::AuthorizationViolation)
    );

    assert!(sigterm(&mut serve.0).success(), "exit 0 after SIGTERM");
    let text = std::fs::read_to_string(&log).unwrap();
    // A token's claims and signature are unique to it (the header is shared).
    let secrets: Vec<&str> = [&token, &pass_token]
        .iter()
        .flat_map(|t| t.split('.').skip(1))
        .chain([bad_pass.as_str(), bad_token.as_str()])
        .collect();
    for s in secrets {
        assert!(!text.contains(s), "{s} reached the log");
    }
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let decisions: Vec<(&str, &str, &str)> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "authorization")
        .map(|l| {
            let f = &l["fields"];
            let s = |k: &str| f[k].as_str().unwrap_or("");
            (s("result"), s("token_from"), s("reason"))
        })
        .collect();
    for want in [
        ("allow", "auth_token", ""),
        ("deny", "auth_token", "token-malformed"),
        ("allow", "pass", ""),
        ("deny", "pass", "token-malformed"),
    ] {
        assert!(decisions.contains(&want), "{want:?} not in {decisions:?}");
    }
}

/// The async-nats snippet of the book's first-client page: the room list and the token come from a callback run at
/// every connect, so a new list takes effect at `force_reconnect` (joining a room).
#[tokio::test]
async fn async_nats_joins_a_room_by_reconnecting_with_a_new_list() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let _svc = env.start_callout().await;
    let token = env.token("bob");
    let rooms = Arc::new(Mutex::new("all1".to_string()));
    let list = rooms.clone();
    let (tx, errors) = tokio::sync::mpsc::unbounded_channel();
    let client = ConnectOptions::with_auth_callback(move |_nonce| {
        let (rooms, token) = (list.lock().unwrap().clone(), token.clone());
        async move {
            let mut auth = async_nats::Auth::new();
            (auth.username, auth.password) = (Some(rooms), Some(token));
            Ok(auth)
        }
    })
    .event_callback(move |event| {
        let tx = tx.clone();
        async move {
            if let Event::ServerError(ServerError::Other(e)) = event {
                let _ = tx.send(e);
            }
        }
    })
    .connect(env.server.url())
    .await
    .expect("bob connects");
    let mut bob = Conn {
        client,
        user: Some("bob".into()),
        errors,
    };
    let _s = bob.client.subscribe("chat.bob1.>").await.unwrap();
    bob.expect_error("Permissions Violation for Subscription to \"chat.bob1.>\"")
        .await;
    *rooms.lock().unwrap() = "all1;bob1".into();
    bob.client.force_reconnect().await.unwrap();
    talks(&bob, "bob1", "bob").await;
}
