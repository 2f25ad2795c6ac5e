//! A real OpenID provider for the tests: `tests/oidc/provider.mjs` (the npm package
//! `oidc-provider`) on a free loopback port, with its test-only endpoints (rotate the keys,
//! sign arbitrary claims) and the token requests clients make.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nats_callout::oidc::{OidcSettings, UnknownUsers};
use nats_callout::permissions::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{DEADLINE, free_port};

/// The audience of the provider's access tokens.
pub const AUDIENCE: &str = "urn:nats:chat";

/// A running provider; stopped when dropped.
pub struct Idp {
    child: Option<Child>,
    pub port: u16,
    pub issuer: String,
    state: PathBuf,
    redirects: Vec<String>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/provider.mjs")
}

impl Idp {
    /// Start a provider keeping its keys in `state`, with the `chat` client's redirect URIs.
    pub async fn start(state: &Path, redirects: &[String]) -> Idp {
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("web/node_modules/oidc-provider")
                .exists(),
            "web/node_modules/oidc-provider is missing: run `npm ci` in web/ (make test does)"
        );
        let mut idp = Idp {
            child: None,
            port: 0,
            issuer: String::new(),
            state: state.to_path_buf(),
            redirects: redirects.to_vec(),
        };
        idp.launch(None).await;
        idp
    }

    /// Start (again, on `port` when given, else on a free one).
    async fn launch(&mut self, port: Option<u16>) {
        for _ in 0..5 {
            let port = port.unwrap_or_else(free_port);
            let mut cmd = Command::new("node");
            cmd.arg(script())
                .args(["--port", &port.to_string(), "--state"])
                .arg(&self.state)
                .args(["--audience", AUDIENCE])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            for r in &self.redirects {
                cmd.args(["--redirect", r]);
            }
            let mut child = cmd.spawn().expect("node runs (is Node.js installed?)");
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
            match ready {
                Ok(Ok(Some(line))) if line.starts_with("ready ") => {
                    self.issuer = line["ready ".len()..].trim().to_string();
                    self.port = port;
                    self.child = Some(child);
                    return;
                }
                other => {
                    // Exit 1: the port was taken meanwhile; try again (another port, unless fixed).
                    let status = child.wait().await;
                    assert!(
                        port_taken(&status),
                        "the provider did not start: {other:?}, {status:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        panic!("the provider did not start after five attempts");
    }

    /// Stop it (SIGTERM) and wait.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            let _ = tokio::time::timeout(DEADLINE, child.wait()).await;
        }
    }

    /// Start again on the same port with the same keys.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch(Some(self.port)).await;
    }

    /// Settings for this provider as the tests use it: users by `preferred_username`,
    /// groups from `groups`, `chat-admins` → admin, keys checked again after 1 s at the
    /// earliest.
    pub fn settings(&self, name: &str, unknown: UnknownUsers) -> OidcSettings {
        let mut s = OidcSettings::new(name, &self.issuer, AUDIENCE);
        s.user_claim = "preferred_username".into();
        s.groups_claim = Some("groups".into());
        s.roles = [("chat-admins".to_string(), Role::Admin)].into();
        s.unknown_users = unknown;
        s.min_refresh_interval = Duration::from_secs(1);
        s
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A client-credentials access token for `client` (secret `{client}-secret`).
    pub async fn client_token(&self, client: &str) -> String {
        let resp = reqwest::Client::new()
            .post(self.url("/token"))
            .basic_auth(client, Some(format!("{client}-secret")))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "token request: {status} {body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// A new signing key; the old stays published. Returns the new `kid`.
    pub async fn rotate(&self) -> String {
        let v = self.control("/test/rotate", json!({})).await;
        v["kid"].as_str().unwrap().to_string()
    }

    /// `claims` signed as `key` says (`current`, `unpublished`, `hs256-public`, `none`).
    pub async fn sign(&self, claims: Value, key: &str) -> String {
        let v = self
            .control("/test/sign", json!({"claims": claims, "key": key}))
            .await;
        v["token"].as_str().unwrap().to_string()
    }

    /// Claims a provider access token for `user` would carry, valid now for 5 minutes.
    pub fn claims(&self, user: &str, groups: &[&str]) -> Value {
        let now = nats_callout::clock::now_secs();
        json!({"iss": self.issuer, "aud": AUDIENCE, "sub": user, "preferred_username": user,
            "groups": groups, "iat": now, "exp": now + 300, "jti": format!("{user}-{now}")})
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let resp = reqwest::Client::new()
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }
}

fn port_taken(status: &std::io::Result<std::process::ExitStatus>) -> bool {
    matches!(status, Ok(s) if s.code() == Some(1))
}
