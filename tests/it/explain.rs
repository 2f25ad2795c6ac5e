//! `explain` (contract 14): offline from the configuration and the files alone (no keys, no
//! server), `--live` over NATS and `POST /api/console/explain` on a running service (rooms in
//! data, sessions, revocations), and their bad inputs.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::rooms::{add, call, create, token_of};
use crate::support::env::copy_demo_permissions;
use crate::support::{EnvOptions, TestEnv, bin};

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The line of `needle` in `file`.
fn line_of(file: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle}"))
        + 1
}

/// A configuration naming only the permission directory: no keys exist anywhere.
fn bare_config(dir: &Path) -> std::path::PathBuf {
    let perms = dir.join("permissions");
    copy_demo_permissions(&perms);
    let config = dir.join("callout.toml");
    std::fs::write(&config, format!("[permissions]\ndir = \"{}\"\n", perms.display())).unwrap();
    config
}

#[test]
fn offline_explain_names_the_file_and_line_of_each_grant_and_why_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = bare_config(dir.path());
    let rooms_file = dir.path().join("permissions/rooms.toml");
    let (code, out, err) = run(bin().arg("--config").arg(&config).args([
        "explain",
        "--user",
        "bob",
        "--rooms",
        "all1;bob1;alice1;bad.name",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&answer["user"], &answer["mode"]),
        (&json!("bob"), &json!("offline"))
    );
    let rooms = answer["rooms"].as_array().unwrap();
    let verdict = |i: usize| {
        let r = &rooms[i];
        (
            r["room"].as_str().unwrap().to_string(),
            r["access"].as_str().unwrap().to_string(),
            r["reason"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(verdict(0), ("all1".into(), "readwrite".into(), "granted".into()));
    let all1 = line_of(&rooms_file, "[rooms.all1]") + 1;
    assert_eq!(
        rooms[0]["source"],
        format!(
            "{}:{all1}: [rooms.all1] members \"@everyone\" (user bob is in group everyone)",
            rooms_file.display()
        )
    );
    assert_eq!(rooms[0]["files"][0]["line"], all1);
    assert_eq!(verdict(1), ("bob1".into(), "readwrite".into(), "granted".into()));
    assert!(
        rooms[1]["source"]
            .as_str()
            .unwrap()
            .contains("[rooms.bob1] members \"bob\"")
    );
    assert_eq!(verdict(2), ("alice1".into(), "none".into(), "no-grant".into()));
    assert_eq!(
        verdict(3),
        ("bad.name".into(), "none".into(), "bad-room-name".into())
    );

    // The table for people says the same.
    let (code, out, _) =
        run(bin()
            .arg("--config")
            .arg(&config)
            .args(["explain", "--user", "bob", "--rooms", "all1,alice1"]));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("user bob (offline: the permission files only"),
        "{out}"
    );
    assert!(out.contains(&format!("rooms.toml:{all1}: [rooms.all1]")), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("alice1") && l.contains("no-grant")),
        "{out}"
    );

    // An unknown user: every room refused, and why.
    let (code, out, _) = run(bin()
        .arg("--config")
        .arg(&config)
        .args(["explain", "--user", "mallory", "--rooms", "all1", "--json"]));
    assert_eq!(code, 0);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["denied"], "unknown-user");
    assert_eq!(answer["rooms"][0]["reason"], "unknown-user");
}

#[test]
fn offline_explain_refuses_bad_questions_and_broken_files_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = bare_config(dir.path());
    let explain = |args: &[&str]| run(bin().arg("--config").arg(&config).arg("explain").args(args));
    let (code, _, err) = explain(&["--user", "bo b", "--rooms", "all1"]);
    assert_ne!(code, 0);
    assert!(err.contains("userId"), "{err}");
    let many = vec!["r"; 300].join(";");
    let (code, _, err) = explain(&["--user", "bob", "--rooms", &many]);
    assert_ne!(code, 0);
    assert!(err.contains("at most 256"), "{err}");
    std::fs::write(
        dir.path().join("permissions/broken.toml"),
        "[users.eve]\nroles = [\"root\"]\n",
    )
    .unwrap();
    let (code, out, err) = explain(&["--user", "bob", "--rooms", "all1"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("broken.toml:2:"), "{err}");
}

/// `POST /api/console/explain` with `token`: status, `x-error-code`, JSON body.
async fn explain(svc: &crate::support::CalloutHandle, token: &str, question: Value) -> (u16, String, Value) {
    call(svc, Method::POST, "/api/console/explain", token, Some(question)).await
}

/// The running service's view: a room in data, the user's sessions, a user-wide revocation;
/// the same answer over NATS (`explain --live`) and for admins over HTTP, nobody else.
#[tokio::test]
async fn live_explain_sees_rooms_in_data_sessions_and_revocations() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let (alice, admin) = (token_of(&svc, "alice").await, token_of(&svc, "admin").await);
    // bob logs in on his laptop: one session.
    token_of(&svc, "bob").await;
    create(&svc, &alice, "lounge", "invite").await;
    add(&svc, &alice, "lounge", "bob", "read").await;
    let question = json!({"userId": "bob", "rooms": ["all1", "lounge", "alice1"]});
    let (status, code, answer) = explain(&svc, &admin, question.clone()).await;
    assert_eq!((status, code.as_str()), (200, ""), "{answer}");
    assert_eq!(answer["mode"], "live");
    let rooms = answer["rooms"].as_array().unwrap();
    assert_eq!(
        (&rooms[0]["access"], &rooms[0]["reason"]),
        (&json!("readwrite"), &json!("granted"))
    );
    assert!(
        rooms[0]["source"].as_str().unwrap().contains("rooms.toml:"),
        "{answer}"
    );
    assert_eq!(rooms[1]["access"], "read");
    assert_eq!(rooms[1]["source"], "room in data \"lounge\" (member, read)");
    assert_eq!(rooms[2]["reason"], "no-grant");
    let sessions = answer["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{answer}");
    assert_eq!(
        (&sessions[0]["deviceId"], &sessions[0]["revoked"]),
        (&json!("laptop"), &Value::Null)
    );
    assert_eq!(answer.get("revocations"), None);

    // The command line asks the same service over NATS with the service's credentials.
    // The service runs in this test's runtime: the command is awaited, never blocked on.
    let config = env.write_config_file("127.0.0.1:0");
    let cli = async |args: &[&str]| {
        let out = tokio::process::Command::from(bin())
            .arg("--config")
            .arg(&config)
            .arg("explain")
            .args(args)
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = cli(&[
        "--live",
        "--json",
        "--user",
        "bob",
        "--rooms",
        "all1;lounge;alice1",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let over_nats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(over_nats, answer);

    // bob revoked: the answer says his tokens are refused, and his session is gone.
    let (status, _, body) = call(
        &svc,
        Method::POST,
        "/api/auth/revoke",
        &admin,
        Some(json!({"userId": "bob"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (code, out, err) = cli(&["--live", "--user", "bob", "--rooms", "lounge"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" are refused: user-revoked"), "{out}");
    let (_, _, answer) = explain(&svc, &admin, question.clone()).await;
    assert_eq!(
        (&answer["revocations"][0]["reason"], &answer["sessions"]),
        (&json!("user-revoked"), &json!([]))
    );

    // Admins only, and the question is bounded.
    let (status, _, _) = explain(&svc, &alice, question.clone()).await;
    assert_eq!(status, 403);
    let (status, _, _) = explain(&svc, "", question).await;
    assert_eq!(status, 401);
    for (bad, needle) in [
        (json!({"userId": "bob", "rooms": [], "extra": 1}), "unknown field"),
        (json!({"userId": "b.b", "rooms": []}), "userId"),
        (json!({"userId": "bob", "rooms": vec!["r"; 257]}), "at most 256"),
    ] {
        let (status, code, body) = explain(&svc, &admin, bad).await;
        assert_eq!((status, code.as_str()), (400, "bad-request"), "{body}");
        assert!(body["error"].as_str().unwrap().contains(needle), "{body}");
    }
    let (code, _, err) = cli(&["--live", "--user", "b.b", "--rooms", "x"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("userId"), "{err}");
    svc.stop().await;
}

/// The guide's offline example is what the command prints, run from the repository root
/// as the guide says (the demo configuration and files; no keys needed).
#[test]
fn the_guides_offline_example_is_what_the_command_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/src/guides/explain.md")).unwrap();
    let block = guide
        .split("```console\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the guide shows a console example");
    let (command, shown) = block.split_once('\n').unwrap();
    let args = command
        .strip_prefix("$ target/release/nats-callout ")
        .expect("the example runs the binary");
    let args: Vec<String> = args
        .split(' ')
        .map(|a| a.trim_matches('\'').to_string())
        .collect();
    let (code, out, err) = run(bin()
        .current_dir(root)
        .env_remove("NATS_CALLOUT_CONFIG")
        .args(&args));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, shown, "docs/src/guides/explain.md shows another output");
}
