//! The rooms-as-data phase of `make bench` (`bench run --only-rooms`, BENCHMARKS.md) at a
//! small scale, so that it cannot rot: 200 data rooms and 2,000 memberships written through
//! both stores' import, the three services started and asked for data rooms, 50 live
//! connections each hearing its notices, and every removal ending in a lame-duck notice and
//! a kick. The load tool is built (`cargo build --example bench`) if it is not already.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The load tool of this build's profile, built first (a no-op when it is up to date).
pub(crate) fn bench_tool() -> PathBuf {
    let service = Path::new(env!("CARGO_BIN_EXE_nats-callout"));
    let profile_dir = service.parent().expect("the binary's directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = profile_dir.parent().expect("the target directory");
    let status = Command::new(cargo)
        .args(["build", "--locked", "--example", "bench", "--profile", profile])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the load tool builds");
    profile_dir.join("examples").join("bench")
}

/// `bench run ARGS` with this build's service and nats-server (at most 5 minutes): the
/// results it wrote, and what it printed on stderr.
pub(crate) async fn run_bench(args: &[&str]) -> (Value, String) {
    let tool = tokio::task::spawn_blocking(bench_tool).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("results.json");
    let mut cmd = tokio::process::Command::new(tool);
    cmd.arg("run")
        .args(args)
        .arg("--out")
        .arg(&out)
        .arg("--service-bin")
        .arg(env!("CARGO_BIN_EXE_nats-callout"))
        .arg("--nats-server")
        .arg(nats_callout::testing::nats_server_bin())
        .kill_on_drop(true);
    let ran = tokio::time::timeout(std::time::Duration::from_secs(300), cmd.output())
        .await
        .expect("the phase ends by itself")
        .unwrap();
    let log = String::from_utf8_lossy(&ran.stderr).into_owned();
    assert!(ran.status.success(), "bench failed:\n{log}");
    let results: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    (results, log)
}

fn n(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} in {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rooms_benchmark_hears_every_notice_and_sees_every_kick() {
    let (results, log) = run_bench(&[
        "--only-rooms",
        "--rooms-data",
        "200",
        "--rooms-members",
        "2000",
        "--rooms-connections",
        "50",
        "--rounds",
        "1",
        "--phase-secs",
        "0.5",
    ])
    .await;
    let r = &results["rooms"];
    assert_eq!((n(r, "/rooms"), n(r, "/memberships")), (200.0, 2000.0), "{r}");
    let stores: Vec<&str> = r["fill"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["store"].as_str().unwrap())
        .collect();
    assert_eq!(stores, ["redb", "jetstream-r1"]);
    let started = r["start"].as_array().unwrap();
    assert_eq!(started.len(), 3, "{r}");
    for s in started {
        assert!(n(s, "/ready_seconds") > 0.0 && n(s, "/rss_mib") > 0.0, "{s}");
    }
    // Every system authorized connections asking for its rooms, and refused none.
    let decisions = r["decisions"].as_array().unwrap();
    let systems: Vec<&str> = decisions.iter().map(|d| d["system"].as_str().unwrap()).collect();
    assert_eq!(systems, ["rooms-files", "rooms-redb", "rooms-jetstream"]);
    for d in decisions {
        assert!(n(d, "/ok") > 0.0, "{d}");
        assert_eq!(
            n(d, "/refused") + n(d, "/timeouts") + n(d, "/io_errors"),
            0.0,
            "{d}"
        );
    }
    // Every live connection was counted; every added member was told; every removed one was
    // told, got the lame-duck notice and was kicked (after the grace, not before).
    assert_eq!(n(r, "/connections"), 50.0);
    assert!(n(r, "/registered") >= 50.0, "{log}");
    assert_eq!(n(r, "/api_errors"), 0.0, "{log}");
    assert_eq!(
        (n(r, "/notice_ms/n"), n(r, "/notices_missing")),
        (50.0, 0.0),
        "{log}"
    );
    assert_eq!((n(r, "/kick_ms/n"), n(r, "/kicks_missing")), (50.0, 0.0), "{log}");
    assert_eq!(n(r, "/removal_notice_ms/n"), 50.0, "{log}");
    assert_eq!(n(r, "/lame_duck_ms/n"), 50.0, "{log}");
    assert!(
        n(r, "/kick_ms/p50") >= n(r, "/grace_ms"),
        "kicked before the grace: {r}"
    );
    let targets = results["targets"].as_array().unwrap();
    assert!(
        targets
            .iter()
            .any(|t| t["target"] == "rooms: change-to-notice p99 ms"),
        "{results}"
    );
}
