//! `make demo-cluster` is there to show the others carrying on when one process dies. Before
//! the fix its script waited with `wait -n` and tore everything down when any process
//! stopped. Its processes are now started and watched by `scripts/supervise.sh`: one ending
//! leaves the rest running; Ctrl-C or SIGTERM still stops all.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::DEADLINE;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn wait_for(file: &Path, what: &str, f: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if f(&text) {
            return text;
        }
        assert!(start.elapsed() < DEADLINE, "{what}: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_process_stopping_leaves_the_others_running_and_sigterm_stops_all() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let script = format!(
        "source '{}'\nstart 'node n1' sleep 300\nstart 'node n2' sleep 300\nstart 'instance' sleep 300\n\
         echo \"pids ${{pids[*]}}\"\nsupervise\n",
        repo().join("scripts/supervise.sh").display()
    );
    let mut demo = Command::new("bash")
        .args(["-c", &script])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let text = wait_for(&out, "the processes start", |t| t.ends_with('\n'));
    let pids: Vec<u32> = text
        .trim()
        .strip_prefix("pids ")
        .unwrap()
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    // One node dies: the script says so, and the others carry on.
    Command::new("kill")
        .args(["-KILL", &pids[1].to_string()])
        .status()
        .unwrap();
    let said = wait_for(&err, "the supervisor notices", |t| t.contains("has stopped"));
    assert!(said.contains(&format!("node n2 (pid {})", pids[1])), "{said}");
    assert!(
        alive(pids[0]) && alive(pids[2]),
        "the others were stopped: {said}"
    );
    assert!(
        demo.try_wait().unwrap().is_none(),
        "the demo ended with one process"
    );
    // SIGTERM (or Ctrl-C) stops everything it started.
    let status = crate::support::sigterm(&mut demo);
    assert_eq!(status.code(), Some(143));
    assert!(!alive(pids[0]) && !alive(pids[2]), "a process outlived the demo");
}

#[test]
fn the_cluster_demo_is_supervised() {
    let script = std::fs::read_to_string(repo().join("scripts/demo-cluster.sh")).unwrap();
    assert!(script.contains("source scripts/supervise.sh"), "demo-cluster.sh");
    assert!(
        script.trim_end().ends_with("supervise"),
        "demo-cluster.sh ends waiting in supervise"
    );
    assert!(
        !script.contains("wait -n"),
        "demo-cluster.sh tears down on the first exit"
    );
    let starts = script
        .lines()
        .filter(|l| l.trim_start().starts_with("start "))
        .count();
    assert_eq!(
        starts, 3,
        "three nodes and two instances (one loop) are started through `start`"
    );
}
