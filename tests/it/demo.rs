//! The demo's own files: the repository's `nats-server.conf` and `callout.toml` (keys made
//! as `make demo` makes them, only the ports moved so tests run side by side) serve bob over
//! TCP and over the websocket; `make demo` refuses clearly when its ports are taken.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{DEADLINE, Running, bin, free_port, sigterm, ws_exchange};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the demo (the two configuration files and the permission files) in a temp
/// dir, with every demo port replaced by a free one.
struct DemoCopy {
    dir: tempfile::TempDir,
    /// demo port -> the port used here.
    ports: Vec<(u16, u16)>,
}

impl DemoCopy {
    /// `make demo`'s files.
    fn new() -> DemoCopy {
        Self::of(
            &["nats-server.conf", "callout.toml"],
            &[4222, 8222, 9222, 8080, 9090],
        )
    }

    /// `files` (paths in the repository, kept) with `ports` moved to free ones.
    fn of(files: &[&str], ports: &[u16]) -> DemoCopy {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = ports.iter().map(|p| (*p, free_port())).collect();
        for f in files {
            let text = move_ports(&std::fs::read_to_string(repo().join(f)).unwrap(), &ports);
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect();
            for (from, _) in &ports {
                let left = code
                    .iter()
                    .any(|l| hosts_ports(l.split('#').next().unwrap()).contains(from));
                assert!(!left, "{f}: port {from} left in place");
            }
            let to = dir.path().join(f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(to, text).unwrap();
        }
        crate::support::env::copy_demo_permissions(&dir.path().join("permissions"));
        DemoCopy { dir, ports }
    }

    fn port(&self, demo: u16) -> u16 {
        self.ports.iter().find(|(d, _)| *d == demo).unwrap().1
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    /// nats-server on `conf` in the copy, ready (killed when dropped); `None` when it could
    /// not bind a port (another process took it since it was chosen).
    fn start_nats(&self, conf: &str) -> Option<Running> {
        let log = self.path(&format!("{}.log", conf.replace('/', "_")));
        let mut nats = Running(
            Command::new(nats_callout::testing::nats_server_bin())
                .args(["-c", conf, "-l"])
                .arg(&log)
                .current_dir(self.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        crate::support::nats_ready(&mut nats.0, &log).then_some(nats)
    }

    /// `make demo`'s files with keys made as `make demo` makes them (`keys --dir .demo`,
    /// then `prepare`), and nats-server ready on `conf`; new ports until none is taken.
    fn started(conf: &str, prepare: impl Fn(&DemoCopy)) -> (DemoCopy, Running) {
        for _ in 0..5 {
            let demo = DemoCopy::new();
            let out = bin()
                .args(["keys", "--dir", ".demo"])
                .current_dir(demo.dir.path())
                .output()
                .unwrap();
            keys_made(&out);
            prepare(&demo);
            if let Some(nats) = demo.start_nats(conf) {
                return (demo, nats);
            }
        }
        panic!("nats-server on {conf} never found free ports");
    }
}

/// `keys` succeeded and printed no seed.
fn keys_made(out: &std::process::Output) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let seed = |w: &str| w.len() == 58 && w.starts_with('S') && w.chars().all(|c| c.is_ascii_alphanumeric());
    assert!(
        !printed.split(|c: char| !c.is_ascii_alphanumeric()).any(seed),
        "a seed was printed: {printed}"
    );
}

/// The ports after `127.0.0.1:` or `localhost:` in `text`.
fn hosts_ports(text: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for host in ["127.0.0.1:", "localhost:"] {
        for (i, _) in text.match_indices(host) {
            let digits: String = text[i + host.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            out.extend(digits.parse::<u16>().ok());
        }
    }
    out
}

/// `text` with every `127.0.0.1:<from>` / `localhost:<from>` (the whole port) made `<to>`,
/// in one pass (a new port is never rewritten again).
fn move_ports(text: &str, ports: &[(u16, u16)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for host in ["127.0.0.1:", "localhost:"] {
            if let Some(after) = rest.strip_prefix(host) {
                let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
                let port = digits.parse::<u16>().ok();
                let to = ports.iter().find(|(f, _)| Some(*f) == port).map(|(_, t)| *t);
                out.push_str(host);
                match to {
                    Some(to) => out.push_str(&to.to_string()),
                    None => out.push_str(&digits),
                }
                rest = &after[digits.len()..];
                continue 'scan;
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[test]
fn ports_move_whole_and_once() {
    let moved = move_ports(
        "a 127.0.0.1:4222 b localhost:42220 c 127.0.0.1:4223,",
        &[(4222, 4223), (4223, 9)],
    );
    assert_eq!(moved, "a 127.0.0.1:4223 b localhost:42220 c 127.0.0.1:9,");
    assert_eq!(hosts_ports("x 127.0.0.1:42245 localhost:80"), [42245, 80]);
}

/// `make ARGS` in the repository (with the tests' nats-server): whether it succeeded, and
/// its standard error.
fn make(args: &[&str]) -> (bool, String) {
    let out = Command::new("make")
        .args(args)
        .current_dir(repo())
        .env("NATS_SERVER_BIN", nats_callout::testing::nats_server_bin())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_demo_files_serve_bob_over_tcp_and_websocket() {
    // The repository's nats-server.conf with keys as `make demo` makes them.
    let (demo, _nats) = DemoCopy::started("nats-server.conf", |_| {});
    // Killed if the test fails before its SIGTERM.
    let mut serve = Running(
        bin()
            .args(["serve", "--config", "callout.toml"])
            .current_dir(demo.dir.path())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Ready as an operator sees it (the health check the container image runs).
    let start = Instant::now();
    loop {
        let ok = bin()
            .args(["healthcheck", "--config"])
            .arg(demo.path("callout.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if ok {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the demo service never got ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    bob_over_tcp_with_the_readme_token(&demo).await;
    bob_over_the_websocket(&demo).await;
    assert!(sigterm(&mut serve.0).success());
}

/// A token from `nats-callout token --user bob`, run where the README runs it: bob connects
/// over TCP with exactly his rooms.
async fn bob_over_tcp_with_the_readme_token(demo: &DemoCopy) {
    let out = bin()
        .args(["token", "--user", "bob"])
        .current_dir(demo.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut bob = crate::support::connect_to(
        &format!("nats://127.0.0.1:{}", demo.port(4222)),
        Some(&token),
        "all1;bob1;alice1",
        None,
    )
    .await
    .expect("bob connects over TCP");
    let _s = bob.client.subscribe("chat.alice1.>").await.unwrap();
    bob.expect_error("Permissions Violation for Subscription to \"chat.alice1.>\"")
        .await;
    let page = format!("http://127.0.0.1:{}", demo.port(8080));
    crate::support::api::told_when_added(&bob, &page, "bob", "shared").await;
}

/// The page's way: a browser login puts the token in the cookie the websocket listener reads.
async fn bob_over_the_websocket(demo: &DemoCopy) {
    let page = format!("http://127.0.0.1:{}", demo.port(8080));
    let resp = reqwest::Client::new()
        .post(format!("{page}/api/auth/login"))
        .header("Origin", &page)
        .json(&serde_json::json!({"username": "bob", "password": "bob", "cookie": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("nats_token="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .expect("the nats_token cookie");
    let ws = format!("ws://127.0.0.1:{}", demo.port(9222));
    let ok = ws_exchange(&ws, &page, Some(&cookie), "all1;bob1", "SUB chat.bob1.> 1\r\n").await;
    assert!(
        ok.contains("PONG") && !ok.contains("-ERR"),
        "bob over the websocket: {ok}"
    );
    let no = ws_exchange(&ws, &page, Some(&cookie), "all1", "SUB chat.alice1.> 1\r\n").await;
    assert!(no.contains("Permissions Violation"), "{no}");
}

/// `make demo` checks its ports before building anything and names the taken ones.
#[test]
fn make_demo_refuses_clearly_when_its_ports_are_taken() {
    // Hold one of the demo's ports (or find it already held by something else).
    let _held = std::net::TcpListener::bind("127.0.0.1:9222");
    let start = Instant::now();
    let (ok, err) = make(&["demo"]);
    assert!(!ok, "make demo ran with port 9222 taken");
    assert!(err.contains("9222") && err.contains("already in use"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "it refused without building"
    );
    assert!(!Path::new(&repo().join(".demo-snippet.tmp")).exists());
    // MODE=operator refuses as clearly (the same port is still held), and MODE is checked.
    let (ok, err) = make(&["demo", "MODE=operator"]);
    assert!(
        !ok && err.contains("9222") && err.contains("already in use"),
        "{err}"
    );
    let (ok, err) = make(&["demo", "MODE=nope"]);
    assert!(!ok);
    assert!(err.contains("MODE is config or operator, not nope"));
}

/// The cluster demo's files (deploy/cluster, what `make demo-cluster` runs): three nodes and
/// two instances; a session made on one instance goes on on the other.
#[tokio::test]
async fn the_cluster_demo_files_share_one_session_between_two_instances() {
    let files = [
        "deploy/cluster/accounts.conf",
        "deploy/cluster/n1.conf",
        "deploy/cluster/n2.conf",
        "deploy/cluster/n3.conf",
        "deploy/cluster/callout.toml",
    ];
    // Fourteen free ports: another process may take one first (before a node or an instance
    // binds it); then everything starts again elsewhere.
    let mut started = None;
    for _ in 0..5 {
        let Some((demo, nodes)) = start_cluster_demo(&files) else {
            continue;
        };
        if let Some(instances) = start_cluster_instances(&demo).await {
            started = Some((demo, nodes, instances));
            break;
        }
    }
    let (demo, _nodes, _instances) = started.expect("the cluster demo did not start");
    let (one, two) = (
        format!("http://127.0.0.1:{}", demo.port(8080)),
        format!("http://127.0.0.1:{}", demo.port(8081)),
    );
    let first = crate::support::api::login(&one, "bob", None).await;
    let (status, next) =
        crate::support::api::refresh(&two, &crate::support::api::s(&first, "refreshToken")).await;
    assert_eq!(
        status, 200,
        "the second instance goes on with the first one's session: {next}"
    );
    let bob = crate::support::connect_to(
        &format!("nats://127.0.0.1:{}", demo.port(4223)),
        Some(&crate::support::api::s(&next, "accessToken")),
        "all1;bob1",
        None,
    )
    .await
    .unwrap_or_else(|e| {
        let logs: Vec<String> = (0..2)
            .map(|i| std::fs::read_to_string(demo.path(&format!("instance{i}.log"))).unwrap_or_default())
            .collect();
        panic!(
            "bob connects through the second node: {e}\n{}",
            logs.join("\n----\n")
        )
    });
    // A room shared on the first instance is told by whichever instance enforces.
    crate::support::api::told_when_added(&bob, &one, "bob", "shared").await;
}
/// The two instances of the cluster demo, ready; `None` when one could not bind its ports
/// (taken by another process since they were chosen).
async fn start_cluster_instances(demo: &DemoCopy) -> Option<Vec<Running>> {
    let second = [
        (
            "NATS_CALLOUT_HTTP__LISTEN",
            format!("127.0.0.1:{}", demo.port(8081)),
        ),
        (
            "NATS_CALLOUT_HTTP__ADMIN_LISTEN",
            format!("127.0.0.1:{}", demo.port(9091)),
        ),
    ];
    let mut instances = Vec::new();
    for (i, vars) in [&[][..], &second[..]].into_iter().enumerate() {
        let mut c = bin();
        let log = std::fs::File::create(demo.path(&format!("instance{i}.log"))).unwrap();
        c.args(["serve", "--config", "deploy/cluster/callout.toml"])
            .current_dir(demo.dir.path())
            .env("RUST_LOG", "nats_callout=debug")
            .stderr(log);
        for (k, v) in vars {
            c.env(k, v);
        }
        instances.push(Running(c.spawn().unwrap()));
    }
    for (i, admin) in [9090, 9091].into_iter().enumerate() {
        let url = format!("http://127.0.0.1:{}/readyz", demo.port(admin));
        let log = demo.path(&format!("instance{i}.log"));
        let start = Instant::now();
        loop {
            let out = bin().args(["healthcheck", "--url", &url]).output().unwrap();
            if out.status.success() {
                break;
            }
            if instances[i].0.try_wait().ok().flatten().is_some() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(
                    text.contains("Address already in use"),
                    "instance {i} stopped:\n{text}"
                );
                return None;
            }
            assert!(
                start.elapsed() < DEADLINE * 3,
                "instance on {admin} never got ready: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Some(instances)
}

/// The cluster demo's files with moved ports, keys made, the three nodes listening; `None`
/// when a node exited (a port was taken meanwhile).
fn start_cluster_demo(files: &[&str]) -> Option<(DemoCopy, Vec<Running>)> {
    let demo = DemoCopy::of(
        files,
        &[
            4222, 4223, 4224, 6222, 6223, 6224, 8222, 8223, 8224, 9222, 8080, 8081, 9090, 9091,
        ],
    );
    let out = bin()
        .args(["keys", "--dir", ".demo"])
        .current_dir(demo.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut nodes: Vec<(Running, PathBuf)> = (1..=3)
        .map(|n| {
            let log = demo.path(&format!("n{n}.log"));
            let node = Running(
                Command::new(nats_callout::testing::nats_server_bin())
                    .args(["-c", &format!("deploy/cluster/n{n}.conf"), "-l"])
                    .arg(&log)
                    .current_dir(demo.dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
            (node, log)
        })
        .collect();
    for (node, log) in &mut nodes {
        if !crate::support::nats_ready(&mut node.0, log) {
            return None;
        }
    }
    Some((demo, nodes.into_iter().map(|(n, _)| n).collect()))
}

/// `make demo-cluster` checks its ports before building anything and names the taken ones.
#[test]
fn make_demo_cluster_refuses_clearly_when_its_ports_are_taken() {
    let _held = std::net::TcpListener::bind("127.0.0.1:9091");
    let start = Instant::now();
    let (ok, err) = make(&["demo-cluster"]);
    assert!(!ok, "make demo-cluster ran with port 9091 taken");
    assert!(err.contains("9091") && err.contains("already in use"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "it refused without building"
    );
}

/// `make demo MODE=operator`'s files: `keys --operator --dir .demo/operator` beside the demo
/// keys, the nats-server it writes (operator mode), the service with the `callout.toml` it
/// writes, and bob with a token from `nats-callout token --user bob` run where the README
/// runs it (the config-mode `callout.toml`): the same token works in both modes.
#[tokio::test]
async fn the_operator_demo_files_serve_bob_with_the_same_token() {
    let operator_keys = |demo: &DemoCopy| {
        let out = bin()
            .args(["keys", "--operator", "--dir", ".demo/operator"])
            .current_dir(demo.dir.path())
            .output()
            .unwrap();
        keys_made(&out);
        // The generated files name the demo's ports: move them as DemoCopy moved the others.
        for f in [".demo/operator/nats-server.conf", ".demo/operator/callout.toml"] {
            let text = std::fs::read_to_string(demo.path(f)).unwrap();
            std::fs::write(demo.path(f), move_ports(&text, &demo.ports)).unwrap();
        }
    };
    let (demo, _nats) = DemoCopy::started(".demo/operator/nats-server.conf", operator_keys);
    let mut serve = Running(
        bin()
            .args(["serve", "--config", ".demo/operator/callout.toml"])
            .env(
                "NATS_CALLOUT_HTTP__LISTEN",
                format!("127.0.0.1:{}", demo.port(8080)),
            )
            .env(
                "NATS_CALLOUT_HTTP__ADMIN_LISTEN",
                format!("127.0.0.1:{}", demo.port(9090)),
            )
            .current_dir(demo.dir.path())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{}/readyz", demo.port(9090));
    let start = Instant::now();
    while !bin()
        .args(["healthcheck", "--url", &url])
        .status()
        .unwrap()
        .success()
    {
        assert!(
            start.elapsed() < DEADLINE,
            "the operator-mode service never got ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bob_over_tcp_with_the_readme_token(&demo).await;
    bob_over_the_websocket(&demo).await;
    assert!(sigterm(&mut serve.0).success());
}
