//! The chat page end to end in a real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `tests/browser/chat.mjs`): bob and alice log in, join, talk both ways,
//! are refused each other's rooms, and bob loses a room when the permission file changes.
//! Screenshots of the main states go to `target/browser-screenshots/`.
//!
//! Needs `/usr/bin/chromium` (`scripts/install-chromium.sh`) and `npm ci` in `web/`; `make test`
//! does both.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{EnvOptions, TestEnv, free_port};
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Where the screenshots go (emptied first).
fn screenshot_dir() -> PathBuf {
    let dir = root().join("target/browser-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn npm_packages() {
    assert!(
        root().join("web/node_modules/playwright-core").exists(),
        "web/node_modules is missing: run `npm ci` in web/ (make test does)"
    );
}

pub(crate) fn prerequisites() {
    assert!(
        chromium().exists(),
        "{} is missing: run scripts/install-chromium.sh (make test does)",
        chromium().display()
    );
    npm_packages();
}

pub(crate) async fn run(cmd: &mut Command, what: &str, limit: Duration) -> std::process::Output {
    let out = tokio::time::timeout(limit, cmd.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e} (is node installed?)"));
    println!("---- {what} stdout\n{}", String::from_utf8_lossy(&out.stdout));
    println!("---- {what} stderr\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Fail with `failure` unless the script succeeded, quoting the last lines it wrote to
/// stderr (where the browser scripts report the failed step): a long test log may be cut
/// before them.
pub(crate) fn assert_succeeded(out: &std::process::Output, failure: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    let last = lines[lines.len().saturating_sub(12)..].join("\n");
    assert!(out.status.success(), "{failure} (output above):\n{last}");
}

/// A test environment serving the chat page on `http_port`: its origin is allowed by the
/// websocket listener (known before nats-server starts) and for cookie requests.
pub(crate) async fn page_env(http_port: u16) -> TestEnv {
    let origin = format!("http://127.0.0.1:{http_port}");
    let mut env = TestEnv::start(EnvOptions {
        ws_allowed_origins: vec![origin.clone()],
        ..Default::default()
    })
    .await;
    env.config.http.listen = format!("127.0.0.1:{http_port}");
    env.config.http.allowed_origins = vec![origin];
    env.config.http.websocket_port = env.server.ws_port;
    env
}

/// The committed bundle in web/dist is what `npm run build` makes from web/src.
#[tokio::test]
async fn committed_bundle_is_up_to_date() {
    npm_packages();
    let out = run(
        Command::new("node")
            .args(["build.mjs", "--check"])
            .current_dir(root().join("web")),
        "web/build.mjs --check",
        Duration::from_secs(60),
    )
    .await;
    assert_succeeded(&out, "web/dist is stale: run `npm run build` in web/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_in_chromium() {
    prerequisites();
    // The page's origin must be known before nats-server starts: its websocket listener
    // accepts only listed origins.
    let http_port = free_port();
    let origin = format!("http://127.0.0.1:{http_port}");
    let mut env = page_env(http_port).await;
    // Short-lived access tokens, so the pages must refresh them during the test.
    env.config.tokens.access_ttl = Duration::from_secs(12);
    let _svc = env.start_callout().await;

    // The page itself, with its headers.
    let resp = reqwest::get(format!("{origin}/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains(&format!(
            "connect-src 'self' ws://127.0.0.1:{};",
            env.server.ws_port
        )),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-cache");
    let etag = h["etag"].clone();
    let again = reqwest::Client::new()
        .get(format!("{origin}/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.headers()["content-type"], "text/javascript; charset=utf-8");
    let cached = reqwest::Client::new()
        .get(format!("{origin}/"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cached.status(),
        304,
        "a revalidation with the ETag is answered 304"
    );
    let config: serde_json::Value = reqwest::get(format!("{origin}/api/config"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["websocketPort"], env.server.ws_port);
    assert!(config["user"].is_null());

    let shots = screenshot_dir();
    let mut node = Command::new("node");
    node.arg("tests/browser/chat.mjs")
        .current_dir(root())
        .env("BASE_URL", format!("{origin}/"))
        .env("PERMISSIONS_DIR", &env.config.permissions.dir)
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", chromium());
    let ok = tokio::time::timeout(Duration::from_secs(240), drive(&env, node))
        .await
        .expect("tests/browser/chat.mjs did not finish within 240 s");
    if !ok {
        println!("---- nats-server log (tail)");
        let log = env.server.log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        for line in tail.into_iter().rev() {
            println!("{line}");
        }
    }
    assert!(
        ok,
        "the browser test failed (see its output above; screenshots in {})",
        shots.display()
    );
}

/// Run the browser script, echoing its output. A line `@@kick USER` asks this side to kick
/// USER's connections (as the system account would); the answer `@@kicked N` goes to its stdin.
async fn drive(env: &TestEnv, mut node: Command) -> bool {
    let mut child = node
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node (is Node.js installed?)");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        println!("{line}");
        if let Some(user) = line.strip_prefix("@@kick ") {
            let n = env.system_to_user(user.trim(), "KICK").await;
            stdin
                .write_all(format!("@@kicked {n}\n").as_bytes())
                .await
                .unwrap();
            stdin.flush().await.unwrap();
        }
    }
    child.wait().await.unwrap().success()
}

/// "Log in with corp" in Chromium, through the real provider's own login form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_through_the_identity_provider_in_chromium() {
    prerequisites();
    let http_port = free_port();
    let origin = format!("http://127.0.0.1:{http_port}");
    let dir = tempfile::tempdir().unwrap();
    let callback = format!("{origin}/api/auth/oidc/corp/callback");
    let idp = crate::support::idp::Idp::start(&dir.path().join("idp"), &[callback]).await;
    let mut env = page_env(http_port).await;
    std::fs::write(
        env.config.permissions.dir.join("staff.toml"),
        "[groups.staff]\nmembers = []\n\n[rooms.staff1]\nmembers = [\"@staff\"]\n",
    )
    .unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "chat-secret\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut corp = idp.settings("corp", nats_callout::oidc::UnknownUsers::GroupsOnly);
    corp.client_id = Some("chat".into());
    corp.client_secret_file = Some(secret);
    corp.scopes = vec!["openid".into(), "profile".into(), "rooms".into()];
    env.config.identity.oidc = vec![corp];
    let _svc = env.start_callout().await;

    let config: Value = reqwest::get(format!("{origin}/api/config"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["providers"], json!([{"name": "corp", "label": "corp"}]));

    page_script(
        "tests/browser/oidc.mjs",
        &format!("{origin}/"),
        &[("ISSUER", idp.issuer.as_ref())],
        "the provider login in Chromium",
    )
    .await;
}

/// Rooms in data on the chat page: alice creates a room and invites bob, whose open page is
/// told (no reload) and joins; they talk; alice removes bob, whose page says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_in_data_on_the_chat_page_in_chromium() {
    prerequisites();
    let http_port = free_port();
    let env = page_env(http_port).await;
    let _svc = env.start_callout().await;
    let base = format!("http://127.0.0.1:{http_port}/");
    page_script(
        "tests/browser/rooms.mjs",
        &base,
        &[],
        "the rooms-in-data page test",
    )
    .await;
}

/// The account page (sign a device out, see its page lose its connection) and the admin
/// console (live chart, live connections, a broken permission file's problem, token reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_page_and_admin_console_in_chromium() {
    prerequisites();
    let http_port = free_port();
    let origin = format!("http://127.0.0.1:{http_port}");
    let env = page_env(http_port).await;
    let _svc = env.start_callout().await;
    page_script(
        "tests/browser/account.mjs",
        &format!("{origin}/"),
        &[("PERMISSIONS_DIR", env.config.permissions.dir.as_os_str())],
        "the account page and console test",
    )
    .await;
}

/// Run the page script `script` (tests/browser/*.mjs) in Chromium against the page at `base`
/// with `vars` beside `BASE_URL`, `SCREENSHOT_DIR` and `CHROMIUM`; fails the test with
/// `what` when the script fails (its output is above, its screenshots in
/// target/browser-screenshots).
async fn page_script(script: &str, base: &str, vars: &[(&str, &std::ffi::OsStr)], what: &str) {
    let shots = root().join("target/browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .current_dir(root())
        .env("BASE_URL", base)
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", chromium());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = run(&mut cmd, script, Duration::from_secs(120)).await;
    assert_succeeded(
        &out,
        &format!("{what} failed (screenshots in {})", shots.display()),
    );
}
