//! A write subject always ends in the sender's own name, inside the readers' subject of the
//! same room: that is what lets the server guarantee who sent a message. Before the fix
//! `callout.write_subject = "chat.{room}.>"` was accepted (anyone could post as anyone) and
//! `*` was taken as a literal. The service refuses such templates at start, naming the key.

use crate::support::{EnvOptions, TestEnv};

#[tokio::test]
async fn templates_that_break_the_sender_guarantee_are_refused_at_start() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let cfg = env.write_config_file("");
    // (key, value, what the refusal says)
    let cases = [
        ("WRITE_SUBJECT", "chat.{room}.>", "callout.write_subject"),
        ("WRITE_SUBJECT", "chat.{room}", "callout.write_subject"),
        ("WRITE_SUBJECT", "chat.{room}.*", "callout.write_subject"),
        ("WRITE_SUBJECT", "chat.{room}.{user}.x", "callout.write_subject"),
        // Inside another room's readers: a user named `all1` would reach room all1.
        (
            "WRITE_SUBJECT",
            "chat.{user}.{room}.{user}",
            "callout.write_subject",
        ),
        ("WRITE_SUBJECT", "post.{room}.{user}", "callout.write_subject"),
        ("READ_SUBJECT", "chat.>", "callout.read_subject"),
        ("READ_SUBJECT", "chat.*.{room}.>", "callout.read_subject"),
        ("READ_SUBJECT", "chat.{room}.*", "callout.read_subject"),
        ("INBOX_PREFIX", "_INBOX.{user}.>", "callout.inbox_prefix"),
        ("INBOX_PREFIX", "_INBOX.*.{user}", "callout.inbox_prefix"),
    ];
    for (key, value, named) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nats-callout"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .env(format!("NATS_CALLOUT_CALLOUT__{key}"), value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}={value} was accepted");
        assert!(err.contains(named), "{key}={value}: {err}");
    }
    // Templates that keep the guarantee start (checked without serving: `check` reads the
    // configuration the same way).
    for (read, write) in [
        ("chat.{room}.>", "chat.{room}.{user}"),
        ("rooms.{room}.>", "rooms.{room}.msg.{user}"),
    ] {
        let c = nats_callout::config::Config {
            callout: nats_callout::config::CalloutSettings {
                read_subject: read.into(),
                write_subject: write.into(),
                ..env.config.callout.clone()
            },
            ..env.config.clone()
        };
        c.validate().unwrap_or_else(|e| panic!("{read} / {write}: {e}"));
    }
}
