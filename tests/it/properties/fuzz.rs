//! Replays the fuzz inputs on stable Rust, through the same targets cargo-fuzz runs
//! (`nats_callout::testing::fuzz`): every file under `fuzz/regressions/<target>/` (inputs that once
//! crashed) and `fuzz/seeds/<target>/` (the seed corpus). `make fuzz` finds new ones.

use nats_callout::testing::fuzz as harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The inputs saved for `target`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for kind in ["regressions", "seeds"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for entry in dir {
            let path = entry.expect("readable directory").path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Run every input of `target`, then fail naming each input that panicked.
fn replay(target: &str, run: fn(&[u8])) {
    let mut failed = Vec::new();
    let files = inputs(target);
    for path in &files {
        let data = std::fs::read(path).expect("readable input");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&data))) {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failed.push(format!("{}: {msg}", path.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs panic:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn request_inputs_replay() {
    replay("request", harness::request);
}

#[test]
fn access_token_inputs_replay() {
    replay("access_token", harness::access_token);
}

#[test]
fn permissions_inputs_replay() {
    replay("permissions", harness::permissions);
}

/// The harness itself works: the unmutated request is allowed, plain and sealed, and
/// passes the reply checks.
#[test]
fn harness_sanity() {
    use nats_callout::callout::Verdict;
    let w = harness::world();
    let now = nats_callout::testing::NOW;
    let jwt = w.w.sign_request(&w.request_json());
    let (_, plain) = w.plain.handle(jwt.as_bytes(), None, now);
    let header = w.w.server_xkey.public_key();
    let sealed = w.w.seal(jwt.as_bytes());
    let (_, sealed) = w.sealed.handle(&sealed, Some(&header), now);
    for verdict in [plain, sealed] {
        let Verdict::Allowed(grant) = verdict else {
            panic!("{verdict:?}")
        };
        let rooms: Vec<&str> = grant.0.rooms.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(rooms, ["all1", "bob1"]);
    }
    // The structured variant without mutations, plain and sealed.
    harness::request(&[5, 0]);
    harness::request(&[5, 1]);
}
