//! The JavaScript client kit (`clients/js`) under Node's own test runner (`node --test`),
//! against a real nats-server and the service: this test starts the world, hands its
//! addresses to the kit's tests in environment variables, and serves them a small control
//! endpoint for what only the operator can do (kick or send a lame-duck notice to a user's
//! connections, restart nats-server).
//!
//! Needs `npm ci` in `clients/js` (and in `web/` and Chromium for the browser mode; `make
//! test` does all three).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use crate::browser::root;
use crate::support::{EnvOptions, TestEnv};

/// The access tokens' lifetime in this world: short, so the kit must renew them.
const ACCESS_TTL: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_kit_against_the_service() {
    // KIT_TESTS picks the test files (default: all of clients/js/tests).
    let files = std::env::var("KIT_TESTS").unwrap_or_else(|_| "tests/".into());
    run_kit(&files, |_| {}, &[]).await;
}

/// User JWTs that expire while connected: nats-server closes the connection with "User
/// Authentication Expired", and the kit renews its token and connects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_kit_survives_user_jwt_expiry() {
    let ttl = Duration::from_secs(2);
    run_kit(
        "tests/expiry.test.js",
        |env| env.config.callout.user_jwt_ttl = ttl,
        &[("USER_JWT_TTL_MS", ttl.as_millis().to_string())],
    )
    .await;
}

/// The kit in browser mode (`cookie: true`), bundled into a page of the service's origin in
/// headless Chromium: password login, joins granted and refused over the websocket with the
/// cookie, no token visible to the page, the access cookie renewed, a new page reusing the
/// session, logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_kit_in_chromium() {
    crate::browser::prerequisites();
    let http_port = crate::support::free_port();
    let mut env = crate::browser::page_env(http_port).await;
    env.config.tokens.access_ttl = ACCESS_TTL;
    let _svc = env.start_callout().await;
    let out = crate::browser::run(
        Command::new("node")
            .arg("tests/browser/kit.mjs")
            .current_dir(root())
            .env("BASE_URL", format!("http://127.0.0.1:{http_port}/"))
            .env("ACCESS_TTL_MS", ACCESS_TTL.as_millis().to_string())
            .env("CHROMIUM", crate::browser::chromium()),
        "tests/browser/kit.mjs",
        Duration::from_secs(120),
    )
    .await;
    if !out.status.success() {
        println!("---- nats-server log\n{}", env.server.log());
    }
    crate::browser::assert_succeeded(&out, "the kit in Chromium failed");
}

/// In operator mode, the kit connects with NATS credentials (here living 3 s: renewed before
/// they expire), keeps the callout's grant, and goes through the callout when asked to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_kit_uses_nats_credentials_in_operator_mode() {
    let ttl = Duration::from_secs(3);
    run_kit_operator(Some(ttl), &[("CREDENTIALS_TTL_MS", ttl.as_millis().to_string())]).await;
}

/// In operator mode with `tokens.credentials_ttl = "0s"`, the service answers `credentials-off`
/// and the kit goes through the callout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_kit_falls_back_to_the_callout_when_credentials_are_off() {
    run_kit_operator(None, &[]).await;
}

/// `tests/credentials.test.js` against the operator-mode world of tests/it/operator.rs,
/// credentials living at most `ttl` (`None`: none minted).
async fn run_kit_operator(ttl: Option<Duration>, vars: &[(&str, String)]) {
    let w = crate::support::operator::World::start_configured(false, Duration::from_secs(120), |c| {
        c.tokens.credentials_ttl = Some(ttl.unwrap_or(Duration::ZERO));
        c.http.login_per_user_per_minute = 1000;
        c.http.login_per_address_per_minute = 1000;
    })
    .await;
    let mode = if ttl.is_some() { "on" } else { "off" };
    let mut vars: Vec<(&str, String)> = vars.to_vec();
    vars.push(("NATS_CREDENTIALS", mode.into()));
    let status = node_tests(
        "tests/credentials.test.js",
        &format!("http://{}", w.http),
        &w.server.url(),
        &vars,
        None,
    )
    .await;
    if !status.success() {
        print_tail(&w.server.log());
    }
    assert!(
        status.success(),
        "the JS kit's tests failed (their output is above)"
    );
}

/// Start the world (`tweak` changes the service's configuration), run `node --test` on
/// `files` in clients/js with the world's addresses and `vars`, and serve its controls.
async fn run_kit(files: &str, tweak: impl FnOnce(&mut TestEnv), vars: &[(&str, String)]) {
    let mut env = TestEnv::start(EnvOptions::default()).await;
    env.config.tokens.access_ttl = ACCESS_TTL;
    env.config.http.guests = true;
    // Every test logs in afresh; guests keep the default limit (a test runs into it).
    env.config.http.login_per_user_per_minute = 1000;
    env.config.http.login_per_address_per_minute = 1000;
    tweak(&mut env);
    let carol = nkeys::KeyPair::new_user();
    std::fs::write(
        env.config.permissions.dir.join("kit.toml"),
        format!(
            "[users.carol]\nnkeys = [\"{}\"]\n\n[groups.guest]\nmembers = []\n\n\
             [rooms.lobby]\nmembers = [\"@guest\", \"carol\"]\n\n\
             [rooms.news]\nmembers = [\"bob\"]\naccess = \"read\"\n",
            carol.public_key()
        ),
    )
    .unwrap();
    let svc = env.start_callout().await;
    let mut vars: Vec<(&str, String)> = vars.to_vec();
    vars.push(("ACCESS_TTL_MS", ACCESS_TTL.as_millis().to_string()));
    vars.push(("CAROL_SEED", carol.seed().unwrap()));
    let (api, nats) = (svc.http_url(), env.server.url());
    let status = node_tests(files, &api, &nats, &vars, Some(&mut env)).await;
    if !status.success() {
        print_tail(&env.server.log());
    }
    assert!(
        status.success(),
        "the JS kit's tests failed (their output is above)"
    );
}

/// `node --test` on `files` in clients/js with the world's addresses and `vars`, serving its
/// controls (when `env` is given) until it ends.
async fn node_tests(
    files: &str,
    api: &str,
    nats: &str,
    vars: &[(&str, String)],
    mut env: Option<&mut TestEnv>,
) -> std::process::ExitStatus {
    let kit = root().join("clients/js");
    assert!(
        kit.join("node_modules/@nats-io/transport-node").exists(),
        "clients/js/node_modules is missing: run `npm ci` in clients/js (make test does)"
    );
    let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut node = Command::new("node");
    node.args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .args(files.split_whitespace())
        .current_dir(&kit)
        .env("API_URL", api)
        .env("NATS_URL", nats)
        .env("CONTROL_URL", format!("http://{}", control.local_addr().unwrap()))
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = node.spawn().expect("cannot run node (is Node.js installed?)");
    let limit = tokio::time::sleep(Duration::from_secs(300));
    tokio::pin!(limit);
    loop {
        tokio::select! {
            s = child.wait() => break s.unwrap(),
            a = control.accept() => match env.as_deref_mut() {
                Some(env) => serve_control(env, a.unwrap().0).await,
                None => drop(a),
            },
            _ = &mut limit => panic!("node --test in clients/js did not finish within 300 s"),
        }
    }
}

/// The last lines of nats-server's log, after a failure.
fn print_tail(log: &str) {
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    println!("---- nats-server log (tail)");
    for line in tail.into_iter().rev() {
        println!("{line}");
    }
}

/// One control request: `POST /kick/USER`, `POST /ldm/USER` (answers how many connections
/// were reached) or `POST /restart-nats` (a crash: SIGKILL, then the same server again).
async fn serve_control(env: &mut TestEnv, mut sock: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
    let (status, body) = match path.split('/').collect::<Vec<_>>()[..] {
        ["", "kick", user] => ("200 OK", env.system_to_user(user, "KICK").await.to_string()),
        ["", "ldm", user] => ("200 OK", env.system_to_user(user, "LDM").await.to_string()),
        ["", "restart-nats"] => {
            env.server.stop();
            tokio::time::sleep(Duration::from_millis(300)).await;
            env.server.start_again();
            ("200 OK", "restarted".to_string())
        }
        _ => ("404 Not Found", format!("no such control: {path}")),
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(answer.as_bytes()).await;
    let _ = sock.shutdown().await;
}
