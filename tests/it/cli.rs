//! The `nats-callout` binary: `keys`, `check`, `hash-password`, `token` and `serve`
//! as an operator runs them.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{EnvOptions, TestEnv, bin};

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn keys_writes_private_files_and_prints_the_server_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let (code, out, _) = run(bin().args(["keys", "--dir"]).arg(&keys));
    assert_eq!(code, 0);
    assert!(
        out.contains("auth_callout")
            && out.contains("issuer: $CALLOUT_ISSUER")
            && out.contains("xkey: $CALLOUT_XKEY"),
        "{out}"
    );
    // Beside the keys, the complete configuration the snippet names.
    let conf = std::fs::read_to_string(keys.join("nats-server.conf")).unwrap();
    assert!(out.contains(&format!(
        "nats-server -c {}",
        keys.join("nats-server.conf").display()
    )));
    let settings = |t: &str| t[t.find("include \"").expect("an include")..].to_string();
    assert_eq!(
        settings(&out),
        settings(&conf),
        "the snippet's lines are the file's"
    );
    assert!(conf.contains("\nlisten: "), "{conf}");
    use std::os::unix::fs::PermissionsExt;
    for f in [
        "issuer.nk",
        "xkey.xk",
        "token-signing.pem",
        "callout.pass",
        "sys.pass",
    ] {
        let mode = std::fs::metadata(keys.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
        let content = std::fs::read_to_string(keys.join(f)).unwrap();
        assert!(!out.contains(content.trim()), "{f} leaked into the snippet");
        assert!(!conf.contains(content.trim()), "{f} leaked into nats-server.conf");
    }
    // A second run refuses to overwrite; with --keep it keeps them and succeeds.
    let (code, _, err) = run(bin().args(["keys", "--dir"]).arg(&keys));
    assert_ne!(code, 0);
    assert!(err.contains("--force"), "{err}");
    let before = std::fs::read_to_string(keys.join("issuer.nk")).unwrap();
    let (code, again, err) = run(bin().args(["keys", "--keep", "--dir"]).arg(&keys));
    assert_eq!(code, 0, "{err}");
    assert!(again.is_empty() && err.contains("kept"), "{again} {err}");
    assert_eq!(std::fs::read_to_string(keys.join("issuer.nk")).unwrap(), before);

    // What it printed is the book's snippet, but for the directory and the public keys.
    let issuer = nkeys::KeyPair::from_seed(before.trim()).unwrap().public_key();
    let xkey = nkeys::XKey::from_seed(std::fs::read_to_string(keys.join("xkey.xk")).unwrap().trim())
        .unwrap()
        .public_key();
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/getting-started/existing-server.md");
    let documented = std::fs::read_to_string(page).unwrap();
    let documented = documented
        .split("```hcl\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/src/getting-started/existing-server.md shows the snippet");
    let printed = out
        .replace(&keys.display().to_string(), "/etc/nats-callout/keys")
        .replace(&issuer, "A...")
        .replace(&xkey, "X...");
    assert_eq!(
        printed, documented,
        "the snippet in docs/src/getting-started/existing-server.md is not what `keys` prints"
    );
}

#[test]
fn check_accepts_the_demo_files() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions");
    let (code, out, _) = run(bin().arg("check").arg(&demo));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn check_reports_file_and_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[users.bob]\nroles = [\"user\"]\n\n[rooms.\"a.b\"]\nmembers = [\"bob\"]\n\n[rooms.ok]\nmembers = [\"nobody\"]\n",
    )
    .unwrap();
    let (code, out, _) = run(bin().arg("check").arg(dir.path()));
    assert_ne!(code, 0);
    assert!(out.contains("bad.toml:4:"), "invalid room name on line 4: {out}");
    assert!(out.contains("bad.toml:8:"), "unknown member on line 8: {out}");
    let (code, out, _) = run(bin().arg("check").arg(dir.path().join("missing")));
    assert_ne!(code, 0, "{out}");
}

/// With the service's configuration, `check` names the users the files place in an account
/// the service does not serve (valid files, so exit 0; their connections would be denied).
#[test]
fn check_names_users_placed_in_accounts_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let perms = dir.path().join("permissions");
    std::fs::create_dir(&perms).unwrap();
    std::fs::write(
        perms.join("placed.toml"),
        "[users.carol]\naccount = \"APP2\"\n[users.dave]\naccount = \"APP3\"\n[users.erin]\n",
    )
    .unwrap();
    let config = dir.path().join("callout.toml");
    std::fs::write(&config, "[callout]\nuser_accounts = [\"APP2\"]\n").unwrap();
    let (code, out, _) = run(bin().arg("--config").arg(&config).arg("check").arg(&perms));
    assert_eq!(code, 0, "{out}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains("\"dave\"") && warnings[0].contains("\"APP3\""),
        "{out}"
    );
    // No configuration file: the defaults serve APP alone.
    let (code, out, _) = run(bin()
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .arg("check")
        .arg(&perms));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("warning:")).count(),
        2,
        "{out}"
    );
}

#[test]
fn hash_password_reads_stdin_and_prints_an_argon2id_hash() {
    let mut child = bin()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"correct horse\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(nats_callout::password::verify_password(
        hash.trim(),
        "correct horse"
    ));
    assert!(!nats_callout::password::verify_password(hash.trim(), "wrong"));
}

/// What an operator does: `serve` the binary against a server, mint a token with
/// `token --user bob`, connect with it and a room list.
#[tokio::test]
async fn serve_and_token_work_together() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let cfg = env.write_config_file("127.0.0.1:0");
    let mut serve = bin()
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, token, err) = run(bin()
        .args(["token", "--user", "bob", "--ttl", "2m", "--config"])
        .arg(&cfg));
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    let claims = env
        .tokens
        .verify(&token, nats_callout::clock::now_secs())
        .unwrap();
    assert_eq!(claims.sub, "bob");
    assert!(claims.exp - claims.iat <= 120);

    let mut conn = env.connect_when_served(&token, "all1;bob1;alice1").await;
    let _s = conn.client.subscribe("chat.all1.>").await.unwrap();
    let _s = conn.client.subscribe("chat.alice1.>").await.unwrap();
    conn.expect_error("Permissions Violation for Subscription to \"chat.alice1.>\"")
        .await;

    // SIGTERM stops it cleanly.
    let status = crate::support::sigterm(&mut serve);
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn unknown_config_keys_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[callout]\nmax_romos = 3\n").unwrap();
    let (code, _, err) = run(bin().args(["token", "--user", "bob", "--config"]).arg(&cfg));
    assert_ne!(code, 0);
    assert!(err.contains("max_romos"), "{err}");
}

#[test]
fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[tokens]\nsigning_key_file = \"nope.pem\"\n").unwrap();
    let keys = dir.path().join("k");
    assert_eq!(run(bin().args(["keys", "--dir"]).arg(&keys)).0, 0);
    let (code, out, err) = run(bin().args(["token", "--user", "bob", "--config"]).arg(&cfg).env(
        "NATS_CALLOUT_TOKENS__SIGNING_KEY_FILE",
        keys.join("token-signing.pem"),
    ));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().split('.').count(), 3);
}

/// `token --ttl` longer than `tokens.max_token_ttl` is refused with a reason naming the
/// setting: revocation entries live only that long.
#[test]
fn token_ttl_beyond_the_revocation_horizon_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("k");
    assert_eq!(run(bin().args(["keys", "--dir"]).arg(&keys)).0, 0);
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tokens]\nsigning_key_file = {:?}\nmax_token_ttl = \"2h\"\n",
            keys.join("token-signing.pem")
        ),
    )
    .unwrap();
    let token = |ttl: &str| {
        run(bin()
            .args(["token", "--user", "bob", "--ttl", ttl, "--config"])
            .arg(&cfg))
    };
    let (code, out, err) = token("3h");
    assert_ne!(code, 0, "{out}");
    assert!(out.is_empty(), "no token printed: {out}");
    assert!(
        err.contains("tokens.max_token_ttl") && err.contains("3h"),
        "{err}"
    );
    let (code, out, err) = token("2h");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().split('.').count(), 3);
    // A limit below the access-token lifetime is a configuration error.
    std::fs::write(
        &cfg,
        format!(
            "[tokens]\nsigning_key_file = {:?}\nmax_token_ttl = \"1m\"\n",
            keys.join("token-signing.pem")
        ),
    )
    .unwrap();
    let (code, _, err) = token("1m");
    assert_ne!(code, 0);
    assert!(err.contains("tokens.max_token_ttl"), "{err}");
}

/// `token --client APP` mints an application's token (its connections reach only the
/// application's rooms); an application the files do not define, or no valid name, is refused.
#[test]
fn token_for_an_application() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("k");
    assert_eq!(run(bin().args(["keys", "--dir"]).arg(&keys)).0, 0);
    let perms = dir.path().join("permissions");
    std::fs::create_dir_all(&perms).unwrap();
    std::fs::write(perms.join("users.toml"), "[users.bob]\n").unwrap();
    std::fs::write(
        perms.join("rooms.toml"),
        "[rooms.all1]\nmembers = [\"bob\"]\n[applications.mobile]\nrooms = [\"all1\"]\n",
    )
    .unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tokens]\nsigning_key_file = {:?}\n[permissions]\ndir = {perms:?}\n",
            keys.join("token-signing.pem")
        ),
    )
    .unwrap();
    let token = |client: &str| {
        run(bin()
            .args(["token", "--user", "bob", "--client", client, "--config"])
            .arg(&cfg))
    };
    let (code, out, err) = token("mobile");
    assert_eq!(code, 0, "{err}");
    let verifier = nats_callout::tokens::TokenKeys::from_settings(&nats_callout::config::TokenSettings {
        signing_key_file: keys.join("token-signing.pem"),
        ..Default::default()
    })
    .unwrap();
    let claims = verifier
        .verify(out.trim(), nats_callout::clock::now_secs())
        .unwrap();
    assert_eq!(claims.client_id.as_deref(), Some("mobile"));
    for bad in ["desktop", "a.b"] {
        let (code, out, err) = token(bad);
        assert_ne!(code, 0, "{bad}: {out}");
        assert!(out.is_empty() && err.contains("--client"), "{bad}: {err}");
    }
}
