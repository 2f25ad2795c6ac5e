//! The nats-server set-up as the book's "Pointing an existing nats-server at it" gives it,
//! followed literally: the complete `nats-server.conf` that `keys --dir` writes, and the
//! snippet it prints merged into an existing configuration as it says. Each time a real
//! nats-server 2.15.1 starts from it, the service runs with the page's `callout.toml`, and bob
//! connects with exactly his grant and hears his notices.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::support::{DEADLINE, Running, TokenIn, bin, connect_via, free_port, wait_for_port};

/// `keys --dir <dir>/keys`: what it printed.
fn keys(dir: &Path) -> String {
    let out = bin()
        .arg("keys")
        .arg("--dir")
        .arg(dir.join("keys"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// nats-server on `conf`, started from `cwd`; `args` as an operator would add them.
fn nats_server(conf: &Path, cwd: &Path, args: &[&str], port: u16) -> Running {
    let check = Command::new(nats_callout::testing::nats_server_bin())
        .arg("-t")
        .arg("-c")
        .arg(conf)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nats-server refuses {}: {}{}",
        conf.display(),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let server = Running(
        Command::new(nats_callout::testing::nats_server_bin())
            .arg("-c")
            .arg(conf)
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, "nats-server");
    server
}

/// the page's `callout.toml` (step 2) with its paths made this test's: the keys in
/// `<dir>/keys`, the store and the demo permission files in `<dir>`.
fn readme_callout_toml(dir: &Path, nats_port: u16) -> PathBuf {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/getting-started/existing-server.md");
    let section = std::fs::read_to_string(page).unwrap();
    let documented = section
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the page's callout.toml");
    let text = documented
        .replace("/etc/nats-callout/keys", &dir.join("keys").display().to_string())
        .replace(
            "/etc/nats-callout/permissions",
            &dir.join("permissions").display().to_string(),
        )
        .replace("/var/lib/nats-callout", &dir.display().to_string())
        .replace("nats://127.0.0.1:4222", &format!("nats://127.0.0.1:{nats_port}"));
    assert!(!text.contains("/etc/") && !text.contains("/var/"), "{text}");
    crate::support::env::copy_demo_permissions(&dir.join("permissions"));
    let path = dir.join("callout.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The service with `config` (its listeners moved off the demo's ports through their
/// documented variables), ready, then bob with a token from `nats-callout token`: his rooms
/// granted, alice's refused.
async fn serve_bob(config: &Path, nats_port: u16) {
    let (admin, http) = (free_port(), free_port());
    let _serve = Running(
        bin()
            .args(["serve", "--config"])
            .arg(config)
            .env("NATS_CALLOUT_HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .env("NATS_CALLOUT_HTTP__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{admin}/readyz");
    let start = Instant::now();
    while !bin()
        .args(["healthcheck", "--url", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(start.elapsed() < DEADLINE, "the service never got ready");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let out = bin()
        .args(["token", "--user", "bob", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut bob = connect_via(
        &format!("nats://127.0.0.1:{nats_port}"),
        Some(&token),
        "all1;bob1;alice1",
        None,
        TokenIn::Pass,
    )
    .await
    .expect("bob connects");
    crate::support::talks(&bob, "bob1", "bob").await;
    let _s = bob.client.subscribe("chat.alice1.>").await.unwrap();
    bob.expect_error("Permissions Violation for Subscription to \"chat.alice1.>\"")
        .await;
    // Told when alice shares a room with him: the notices' export and import work.
    crate::support::api::told_when_added(&bob, &format!("http://127.0.0.1:{http}"), "bob", "shared").await;
}

/// The complete configuration, exactly as written, its `listen` given on the command line as
/// the operator's edit; nats-server started from another directory (the include is found
/// beside the file, not in the working directory).
#[tokio::test]
async fn the_written_nats_server_conf_serves_bob() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let port = free_port();
    let conf = dir.path().join("keys/nats-server.conf");
    let _nats = nats_server(
        &conf,
        Path::new("/"),
        &["-a", "127.0.0.1", "-p", &port.to_string()],
        port,
    );
    let config = readme_callout_toml(dir.path(), port);
    serve_bob(&config, port).await;
}

/// An existing configuration (its own listen and server name) with the printed snippet
/// appended exactly as printed and `nats-keys.conf` copied beside it, 0600, as it says.
#[tokio::test]
async fn the_printed_snippet_merged_as_it_says_serves_bob() {
    let dir = tempfile::tempdir().unwrap();
    let snippet = keys(dir.path());
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let port = free_port();
    let existing = format!("server_name: existing\nlisten: 127.0.0.1:{port}\n\n");
    let conf = etc.join("nats-server.conf");
    std::fs::write(&conf, existing + &snippet).unwrap();
    let vars = etc.join("nats-keys.conf");
    std::fs::copy(dir.path().join("keys/nats-keys.conf"), &vars).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&vars).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "copied as it was written");
    let _nats = nats_server(&conf, Path::new("/"), &[], port);
    let config = readme_callout_toml(dir.path(), port);
    serve_bob(&config, port).await;
}
