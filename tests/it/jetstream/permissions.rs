//! Permissions for many hosts: `permissions push` validates a directory and publishes it
//! as one versioned KV entry; `history` lists the revisions; `rollback` republishes one.
//! Instances with `permissions.source = "kv"` follow it with the rules of files.

use std::path::Path;
use std::process::Command;

use nats_callout::config::PermissionSource;

use crate::support::{EnvOptions, TestEnv, wait_until};

fn cli(cfg: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nats-callout"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env("NATS_CALLOUT_PERMISSIONS_BY", "ops-test")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn kv_source() -> EnvOptions {
    EnvOptions {
        tweak: |c| {
            c.store.backend = nats_callout::config::StoreBackend::Jetstream;
            c.permissions.source = PermissionSource::Kv;
        },
        ..EnvOptions::shared()
    }
}

#[tokio::test]
async fn pushed_permissions_are_validated_versioned_followed_and_rolled_back() {
    let env = TestEnv::start(kv_source()).await;
    let cfg = env.write_config("", "");
    let dir = env.config.permissions.dir.clone();

    // Nothing published: an instance starts but answers nothing and says why.
    let a = env.launch_callout(env.config.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (ready, why) = a.ops.readiness().await;
    assert!(!ready, "{why}");
    assert_eq!(why["parts"]["permissions"]["ok"], false, "{why}");
    assert!(a.ops.reloader.status().last_errors[0].contains("nothing published"));

    // A bad directory is refused with file:line, and nothing is published.
    let bad = env.dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("rooms.toml"), "[rooms.all1]\nmembers = [\"ghost\"]\n").unwrap();
    let (ok, out) = cli(&cfg, &["permissions", "push", bad.to_str().unwrap()]);
    assert!(
        !ok && out.contains("rooms.toml:2:") && out.contains("nothing published"),
        "{out}"
    );
    let (ok, out) = cli(&cfg, &["permissions", "history"]);
    assert!(ok && out.trim().is_empty(), "{out}");

    // The demo set: published, picked up, decisions follow it.
    let (ok, out) = cli(&cfg, &["permissions", "push", dir.to_str().unwrap()]);
    assert!(ok, "{out}");
    let first: u64 = out.split_whitespace().nth(2).unwrap().parse().unwrap();
    wait_until("the instance loads the published set", || {
        a.ops.reloader.status().users > 0
    })
    .await;
    let token = env.token("bob");
    env.connect_when_served(&token, "all1").await;
    let mut live = crate::enforcement::watched(&env, &token, "all1;bob1", false).await;

    // A new revision without bob in all1: live connections are re-decided, new ones refused all1.
    let edited = env.dir.path().join("edited");
    crate::support::env::copy_demo_permissions(&edited);
    std::fs::write(
        edited.join("rooms.toml"),
        crate::enforcement::ROOMS_WITHOUT_BOB_IN_ALL1,
    )
    .unwrap();
    let (ok, out) = cli(&cfg, &["permissions", "push", edited.to_str().unwrap()]);
    assert!(ok, "{out}");
    let epoch = a.ops.reloader.status().epoch;
    wait_until("the new revision is applied", || {
        a.ops.reloader.status().epoch > epoch
    })
    .await;
    live.wait_for("the live connection is told to re-authorize", |s| {
        matches!(s, crate::enforcement::Seen::LameDuck(_))
    })
    .await;
    let mut c = env.connect(Some(&token), "all1").await.unwrap();
    let _sub = c.client.subscribe("chat.all1.>").await.unwrap();
    c.expect_error("Permissions Violation for Subscription to \"chat.all1.>\"")
        .await;

    // History: both revisions, with who and checksum; rollback to the first.
    let (ok, out) = cli(&cfg, &["permissions", "history"]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().all(|l| l.contains("ops-test")), "{out}");
    let (ok, out) = cli(&cfg, &["permissions", "rollback", &first.to_string()]);
    assert!(ok, "{out}");
    let epoch = a.ops.reloader.status().epoch;
    wait_until("the rollback is applied", || {
        a.ops.reloader.status().epoch > epoch
    })
    .await;
    let (_, out) = cli(&cfg, &["permissions", "history"]);
    assert!(out.contains(&format!("(rollback of {first})")), "{out}");
    let (ok, out) = cli(&cfg, &["permissions", "rollback", "999"]);
    assert!(!ok && out.contains("no revision 999"), "{out}");

    // Written around the CLI (nats kv put): refused, the last good set stays.
    let js = async_nats::jetstream::new(env.connect_auth_user().await);
    let kv = js.get_key_value("callout_permissions").await.unwrap();
    let good = a.ops.reloader.status();
    for junk in [
        &b"not json"[..],
        br#"{"files":[],"by":"x","at":1,"checksum":"00"}"#,
    ] {
        let failed = a.ops.reloader.status().reloads_failed;
        kv.put("set", junk.to_vec().into()).await.unwrap();
        wait_until("the bad revision is refused", || {
            a.ops.reloader.status().reloads_failed > failed
        })
        .await;
    }
    let after = a.ops.reloader.status();
    assert_eq!(
        (after.epoch, after.users),
        (good.epoch, good.users),
        "the last good set stays"
    );
    assert!(!after.last_errors.is_empty());
    env.connect(Some(&token), "all1").await.expect("still decided");
}
