//! Client text cannot read as another field of a log line. Control characters were already
//! escaped, but client text went unquoted: a CONNECT `user` of `x result=allow user=admin`
//! ended a deny line in `result=allow user=admin`, and the OpenID callback's `error`
//! parameter did the same without any credentials. The text format now quotes and escapes
//! every value holding whitespace, `=`, `"` or `\`. Deny lines name the user and session
//! when the token verified (a revoked user's deny names them); allow lines the rooms
//! granted.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::api::{login, s};
use crate::support::idp::Idp;
use crate::support::raw::Raw;
use crate::support::{DEADLINE, EnvOptions, Running, TestEnv, free_port};

/// The fields of a text log line after its target (`... nats_callout::x: message k=v ...`),
/// read as a log collector reads them: `key=value` or `key="quoted \"value\""`. Words of
/// the message are left out. Every key with every value it has, in order.
fn fields(line: &str) -> Vec<(String, String)> {
    let rest = line.split_once(": ").map_or(line, |(_, r)| r);
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    while chars.peek().is_some() {
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c == ' ' || c == '=' {
                break;
            }
            word.push(c);
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            chars.next();
            continue;
        }
        chars.next();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((word, value));
    }
    out
}

#[test]
fn the_reader_reads_what_it_should() {
    let f = fields(
        r#"2026 INFO nats_callout::callout: authorization result=deny requested="x result=allow \"y\"" user="#,
    );
    assert_eq!(
        f,
        [
            ("result".to_string(), "deny".to_string()),
            ("requested".to_string(), r#"x result=allow "y""#.to_string()),
            ("user".to_string(), String::new()),
        ]
    );
}

/// Every value of `key` in `line`.
fn values<'a>(f: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    f.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The service binary with the text format, logging to `log` (killed if the test fails).
fn serve(cfg: &Path, log: &Path) -> Running {
    serve_with(cfg, log, &[])
}

/// [`serve`] with more `NATS_CALLOUT_*` variables.
fn serve_with(cfg: &Path, log: &Path, vars: &[(&str, &std::ffi::OsStr)]) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_nats-callout"))
        .args(["serve", "--config"])
        .arg(cfg)
        .env("NATS_CALLOUT_LOG__FORMAT", "text")
        .env("RUST_LOG", "nats_callout=info")
        .envs(vars.iter().copied())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Running(child)
}

/// Wait until the log holds a line for which `f` holds; that line.
async fn line_where(log: &Path, what: &str, f: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| f(l)) {
            return l.to_string();
        }
        assert!(start.elapsed() < DEADLINE, "no log line {what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_text_stays_inside_its_field_and_denies_name_their_user() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let port = free_port();
    let cfg = env.write_config_file(&format!("127.0.0.1:{port}"));
    let log = env.dir.path().join("service.log");
    let mut service = serve(&cfg, &log);
    let token = env.token("bob");
    env.connect_when_served(&token, "all1;bob1").await;

    // An allow line names the rooms granted.
    let allow = line_where(&log, "allowing bob", |l| {
        l.contains("result=allow") && l.contains("user=bob")
    })
    .await;
    let f = fields(&allow);
    assert_eq!(values(&f, "granted"), ["all1;bob1"], "{allow}");

    // A forged field in the room list: one result, deny; the text stays in `requested`.
    const FORGED: &str = "x result=allow user=admin";
    let refused = Raw::connect(env.server.port, &Raw::connect_body(Some(&token), FORGED, true)).await;
    assert!(refused.is_err());
    let deny = line_where(&log, "denying the forged list", |l| {
        l.contains("result=deny") && l.contains("bad-room-name")
    })
    .await;
    let f = fields(&deny);
    assert_eq!(values(&f, "result"), ["deny"], "{deny}");
    assert_eq!(values(&f, "requested"), [FORGED], "{deny}");
    assert_eq!(
        values(&f, "user"),
        ["bob"],
        "the token verified before the deny: {deny}"
    );

    // A revoked session: the deny names bob and the session.
    let base = format!("http://127.0.0.1:{port}");
    let bob = login(&base, "bob", Some("laptop")).await;
    let access = s(&bob, "accessToken");
    let sid = env
        .tokens
        .verify(&access, nats_callout::clock::now_secs())
        .unwrap()
        .sid;
    let (status, _, _) = crate::support::api::post_bearer(
        &format!("{base}/api/auth/revoke"),
        &access,
        json!({"sessionId": sid}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(env.connect(Some(&access), "all1").await.is_err());
    let deny = line_where(&log, "denying the revoked session", |l| {
        l.contains("access-token-revoked")
    })
    .await;
    let f = fields(&deny);
    assert_eq!(
        (values(&f, "user"), values(&f, "session")),
        (vec!["bob"], vec![sid.as_str()]),
        "{deny}"
    );
    // The login was logged once, with how bob proved who he is.
    let text = std::fs::read_to_string(&log).unwrap();
    let started: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("session started") && l.contains(&sid))
        .collect();
    assert_eq!(started.len(), 1, "{started:#?}");
    assert_eq!(
        values(&fields(started[0]), "method"),
        ["password"],
        "{}",
        started[0]
    );
    crate::support::sigterm(&mut service.0);
}

/// The OpenID callback's `error` parameter needs no credentials at all: it stays in its
/// field too.
#[tokio::test]
async fn the_callbacks_error_parameter_stays_inside_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let idp = Idp::start(&dir.path().join("idp"), &[]).await;
    let env = TestEnv::start(EnvOptions::default()).await;
    let port = free_port();
    let cfg = env.write_config_file(&format!("127.0.0.1:{port}"));
    let secret = env.dir.path().join("client-secret");
    std::fs::write(&secret, "chat-secret").unwrap();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "[[identity.oidc]]\nname = \"corp\"\nissuer = \"{}\"\naudience = \"{}\"\nclient_id = \"chat\"\nclient_secret_file = \"{}\"\n",
        idp.issuer,
        crate::support::idp::AUDIENCE,
        secret.display()
    ));
    std::fs::write(&cfg, text).unwrap();
    let log = env.dir.path().join("service.log");
    let mut service = serve(&cfg, &log);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = Instant::now();
    let begin = loop {
        match http.get(format!("{base}/api/auth/oidc/corp/login")).send().await {
            Ok(r) => break r,
            Err(_) => {
                assert!(start.elapsed() < DEADLINE, "the service never listened");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(begin.status(), 303);
    let to = reqwest::Url::parse(begin.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<_, _> = to.query_pairs().into_owned().collect();
    let pending = begin.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    const FORGED: &str = "denied result=allow user=admin";
    let mut url = reqwest::Url::parse(&format!("{base}/api/auth/oidc/corp/callback")).unwrap();
    url.query_pairs_mut()
        .append_pair("error", FORGED)
        .append_pair("state", &q["state"]);
    let back = http.get(url).header("cookie", pending).send().await.unwrap();
    assert_eq!(back.status(), 303);
    let line = line_where(&log, "the failed provider login", |l| {
        l.contains("login through a provider failed")
    })
    .await;
    let f = fields(&line);
    assert!(
        values(&f, "result").is_empty() && values(&f, "user").is_empty(),
        "{line}"
    );
    assert!(values(&f, "error").iter().any(|e| e.contains(FORGED)), "{line}");
    crate::support::sigterm(&mut service.0);
}

/// resgate's token reset names a subject, and any reset a reason: client text both, each
/// stays in its own field of the "token reset" line.
#[tokio::test]
async fn a_token_resets_subject_and_reason_stay_inside_their_fields() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let port = free_port();
    let cfg = env.write_config_file(&format!("127.0.0.1:{port}"));
    let log = env.dir.path().join("service.log");
    let sys_password = env.config.nats.system_password_file.clone().unwrap();
    let mut service = serve_with(
        &cfg,
        &log,
        &[
            ("NATS_CALLOUT_NATS__SYSTEM_USER", "sys".as_ref()),
            (
                "NATS_CALLOUT_NATS__SYSTEM_PASSWORD_FILE",
                sys_password.as_os_str(),
            ),
        ],
    );
    let token = env.token("bob");
    env.connect_when_served(&token, "all1").await;
    let tid = env
        .tokens
        .verify(&token, nats_callout::clock::now_secs())
        .unwrap()
        .tid;
    let admin = env.endpoint_caller("admin").await;
    const FORGED: &str = "x\" result=allow user=admin";
    let body = json!({"tids": [tid], "subject": "auth.chat.reauth", "reason": FORGED});
    let answer = crate::support::api::ask(&admin.client, "auth.v1.tokenReset", &body).await;
    assert!(answer["affected"].is_u64(), "{answer}");
    let line = line_where(&log, "the token reset", |l| l.contains("token reset")).await;
    let f = fields(&line);
    assert_eq!(values(&f, "subject"), ["auth.chat.reauth"], "{line}");
    assert_eq!(values(&f, "reason"), [FORGED], "{line}");
    assert!(
        values(&f, "result").is_empty() && values(&f, "user").is_empty(),
        "{line}"
    );
    crate::support::sigterm(&mut service.0);
}
