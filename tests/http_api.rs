//! The HTTP API (DESIGN.md contract 5) driven through `nats_callout::http::router` with
//! `tower::ServiceExt::oneshot`: no socket, no NATS. Time is an injected clock the tests move;
//! nothing here sleeps.
//!
//! Every response goes through [`Api::call`], which checks that no error body ever carries a
//! token, a password or a password hash.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use nats_callout::config::HttpSettings;
use nats_callout::http::{HttpState, router};
use nats_callout::permissions::Snapshot;
use nats_callout::tokens::TokenKeys;
use nats_callout::tokens::access::generate_signing_pem;
use nats_callout::tokens::refresh::{RefreshService, RefreshSettings};
use nats_callout::tokens::revocation::Revocations;
use nats_callout::tokens::service::TokenService;
use nats_callout::tokens::store::RedbStore;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

/// A minute boundary, so rate-limit windows start with the test.
const T0: i64 = 1_800_000_000;
const MINUTE: i64 = 60;
const DAY: i64 = 24 * 60 * 60;
const ACCESS_TTL: i64 = 300;
const ORIGIN: &str = "http://127.0.0.1:8080";
const FOREIGN_ORIGIN: &str = "https://evil.example";

/// What may never appear in an error body, whatever the test.
const NEVER_IN_ERRORS: [&str; 4] = ["rt1_", "eyJ", "$argon2", "argon2id"];

fn repo_permissions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions")
}

/// A copy of the demo permission files plus `extra` (appended as another file).
fn permissions_with(extra: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_permissions()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("extra.toml"), extra).unwrap();
    dir
}

fn load(dir: &Path) -> Snapshot {
    Snapshot::load_dir(dir).unwrap_or_else(|e| panic!("permissions in {}: {e}", dir.display()))
}

/// One service under test: its state, its clock, its store directory.
struct Api {
    state: Arc<HttpState>,
    app: Router,
    clock: Arc<AtomicI64>,
    /// Tokens and passwords seen so far: none may show up in an error body.
    secrets: Mutex<Vec<String>>,
    _store: TempDir,
}

/// A response, read whole.
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Api {
    fn new() -> Self {
        Self::with(HttpSettings::default(), &repo_permissions())
    }

    fn with_settings(settings: HttpSettings) -> Self {
        Self::with(settings, &repo_permissions())
    }

    fn with(settings: HttpSettings, permissions: &Path) -> Self {
        let store_dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&store_dir.path().join("tokens.redb")).unwrap();
        let refresh = RefreshService::new(Arc::new(store), rand::random(), RefreshSettings::default());
        let keys = TokenKeys::new("nats-callout", "nats")
            .with_signing_pem(&generate_signing_pem())
            .unwrap();
        let tokens = TokenService::new(
            Arc::new(keys),
            refresh,
            Revocations::default(),
            Duration::from_secs(ACCESS_TTL as u64),
        );
        let clock = Arc::new(AtomicI64::new(T0));
        let c = clock.clone();
        let state = Arc::new(HttpState {
            tokens: Arc::new(tokens),
            snapshot: Arc::new(ArcSwap::from_pointee(load(permissions))),
            settings,
            limiter: Default::default(),
            clock: Arc::new(move || c.load(Ordering::SeqCst)),
            ops: Default::default(),
        });
        Api {
            app: router(state.clone()),
            state,
            clock,
            secrets: Mutex::new(Vec::new()),
            _store: store_dir,
        }
    }

    fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    fn remember(&self, secret: &str) {
        if !secret.is_empty() {
            self.secrets.lock().unwrap().push(secret.to_string());
        }
    }

    async fn call(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        let r = Resp {
            status,
            headers,
            text,
            json,
        };
        if status.is_success() {
            for key in ["accessToken", "refreshToken"] {
                if let Some(t) = r.json[key].as_str() {
                    self.remember(t);
                }
            }
            for name in ["nats_token", "nats_refresh"] {
                if let Some(v) = r.cookie_value(name) {
                    self.remember(&v);
                }
            }
        } else {
            for s in NEVER_IN_ERRORS {
                assert!(!r.text.contains(s), "error body contains {s:?}: {}", r.text);
            }
            for s in self.secrets.lock().unwrap().iter() {
                assert!(
                    !r.text.contains(s.as_str()),
                    "error body contains a secret: {}",
                    r.text
                );
            }
        }
        r
    }

    async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Body) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.call(b.body(body).unwrap()).await
    }

    /// POST a JSON body.
    async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Resp {
        self.post_raw(path, &body.to_string(), headers).await
    }

    /// POST raw bytes as JSON.
    async fn post_raw(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        self.request(Method::POST, path, &h, Body::from(body.to_string()))
            .await
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request(Method::GET, path, headers, Body::empty()).await
    }

    /// Log in (a non-browser client) and insist on success.
    async fn login(&self, user: &str, password: &str) -> Resp {
        self.login_with(json!({"username": user, "password": password}))
            .await
    }

    async fn login_device(&self, user: &str, password: &str, device: &str) -> Resp {
        self.login_with(json!({"username": user, "password": password, "deviceId": device}))
            .await
    }

    async fn login_with(&self, body: Value) -> Resp {
        let r = self.try_login(body).await;
        assert_eq!(r.status, StatusCode::OK, "login: {}", r.text);
        r
    }

    /// Log in with `body`, whatever the answer (the password is remembered for leak checks).
    async fn try_login(&self, body: Value) -> Resp {
        if let Some(p) = body["password"].as_str() {
            self.remember(p);
        }
        self.post("/api/auth/login", body, &[]).await
    }

    /// Log in from a given client address.
    async fn login_from(&self, addr: SocketAddr, user: &str, password: &str) -> Resp {
        self.remember(password);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/api/auth/login")
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"username": user, "password": password}).to_string(),
            ))
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        self.call(req).await
    }

    async fn refresh(&self, refresh_token: &str) -> Resp {
        self.post("/api/auth/refresh", json!({"refreshToken": refresh_token}), &[])
            .await
    }

    /// Both tokens of a login are refused as revoked.
    async fn assert_revoked(&self, login: &Resp) {
        self.me(&login.access())
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
        self.refresh(&login.refresh())
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    }

    async fn me(&self, access_token: &str) -> Resp {
        self.get("/api/auth/me", &[("authorization", &bearer(access_token))])
            .await
    }

    async fn revoke(&self, access_token: &str, body: Value) -> Resp {
        self.post(
            "/api/auth/revoke",
            body,
            &[("authorization", &bearer(access_token))],
        )
        .await
    }

    async fn introspect(&self, access_token: &str, token: &str) -> Resp {
        self.post(
            "/api/auth/introspect",
            json!({"token": token}),
            &[("authorization", &bearer(access_token))],
        )
        .await
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn cookie_header(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn secs_of(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Resp {
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The whole `Set-Cookie` line for `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    fn cookie_value(&self, name: &str) -> Option<String> {
        self.cookie(name)
            .map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_string())
    }

    fn access(&self) -> String {
        self.json["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("no accessToken in {}", self.text))
            .to_string()
    }

    fn refresh(&self) -> String {
        self.json["refreshToken"]
            .as_str()
            .unwrap_or_else(|| panic!("no refreshToken in {}", self.text))
            .to_string()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// An error answer: this status, JSON `{error, error_code}`, the `x-error-code` header.
    #[track_caller]
    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.json["error_code"], code, "{}", self.text);
        assert_eq!(self.header("x-error-code"), Some(code));
        let message = self.json["error"].as_str().expect("an error message");
        assert!(!message.is_empty());
        let keys: Vec<&String> = self.json.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["error", "error_code"], "{}", self.text);
        if status == StatusCode::UNAUTHORIZED {
            assert!(self.headers.contains_key(WWW_AUTHENTICATE));
        }
    }

    #[track_caller]
    fn assert_ok(&self) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
    }
}

// ---------------------------------------------------------------------------------------------
// Login

#[tokio::test]
async fn login_returns_an_oauth_token_and_an_http_only_access_cookie() {
    let api = Api::new();
    let r = api
        .login_with(json!({"username": "bob", "password": "bob", "clientId": "chat-web"}))
        .await;
    let j = &r.json;
    let access = r.access();
    let refresh = r.refresh();
    assert!(refresh.starts_with("rt1_"));
    assert_eq!(
        secs_of(j["accessTokenExpiresAt"].as_str().unwrap()),
        T0 + ACCESS_TTL
    );
    assert_eq!(
        secs_of(j["refreshTokenExpiresAt"].as_str().unwrap()),
        T0 + 30 * DAY
    );
    assert_eq!(j["scope"], "user");
    assert_eq!(j["userId"], "bob");
    assert_eq!(j["clientId"], "chat-web");

    let cookie = r.cookie("nats_token").expect("a nats_token cookie");
    assert_eq!(
        cookie,
        format!("nats_token={access}; Path=/; Max-Age={ACCESS_TTL}; HttpOnly; SameSite=Strict")
    );
    assert!(
        r.cookie("nats_refresh").is_none(),
        "a non-browser login keeps the refresh token in the body"
    );
}

#[tokio::test]
async fn login_without_client_id_answers_a_null_client_id_and_an_admin_gets_its_roles_as_scope() {
    let api = Api::new();
    let r = api.login("admin", "admin").await;
    assert_eq!(r.json["clientId"], Value::Null);
    let mut scope: Vec<&str> = r.json["scope"].as_str().unwrap().split(' ').collect();
    scope.sort_unstable();
    assert_eq!(scope, ["admin", "sysadmin"]);
}

#[tokio::test]
async fn the_access_token_from_login_verifies_and_names_session_token_and_device() {
    let api = Api::new();
    let r = api.login_device("bob", "bob", "laptop").await;
    let claims = api.state.tokens.verify_access(&r.access(), api.now()).unwrap();
    assert_eq!(claims.sub, "bob");
    assert_eq!(claims.did.as_deref(), Some("laptop"));
    assert!(!claims.sid.is_empty() && !claims.tid.is_empty());
    assert_eq!(claims.iat, T0);
    assert_eq!(claims.exp, T0 + ACCESS_TTL);
    // The token's session is the refresh token's session.
    let session = api
        .state
        .tokens
        .refresh()
        .session_for_token(&r.refresh())
        .unwrap();
    assert_eq!(session.id, claims.sid);
    assert_eq!(session.device.as_deref(), Some("laptop"));
}

#[tokio::test]
async fn cookies_are_marked_secure_when_secure_cookies_is_on() {
    let api = Api::with_settings(HttpSettings {
        secure_cookies: true,
        ..HttpSettings::default()
    });
    let r = api.login("bob", "bob").await;
    let c = r.cookie("nats_token").unwrap();
    assert!(c.ends_with("; HttpOnly; SameSite=Strict; Secure"), "{c}");

    let b = api
        .post(
            "/api/auth/login",
            json!({"username": "bob", "password": "bob", "cookie": true}),
            &[("origin", ORIGIN)],
        )
        .await;
    b.assert_ok();
    for name in ["nats_token", "nats_refresh"] {
        assert!(b.cookie(name).unwrap().contains("; Secure"), "{name}");
    }
    // Not secure by default.
    let plain = Api::new().login("bob", "bob").await;
    assert!(!plain.cookie("nats_token").unwrap().contains("Secure"));
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_invalid_credentials_and_no_secret_in_the_body() {
    let api = Api::new();
    let password = "Wrong-Pa55word-for-bob";
    api.remember(password);
    let r = api
        .try_login(json!({"username": "bob", "password": password}))
        .await;
    r.assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
    assert!(r.cookie("nats_token").is_none());
    assert!(!r.text.contains(password));
    assert!(!r.text.contains("$argon2"));
}

#[tokio::test]
async fn an_unknown_user_is_refused_exactly_like_a_wrong_password() {
    let api = Api::new();
    let password = "Secret-of-a-ghost";
    api.remember(password);
    let ghost = api
        .try_login(json!({"username": "ghost", "password": password}))
        .await;
    ghost.assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
    let wrong = api
        .try_login(json!({"username": "bob", "password": password}))
        .await;
    assert_eq!(
        ghost.text, wrong.text,
        "the answer does not tell which users exist"
    );
    assert!(!ghost.text.contains(password) && !ghost.text.contains("ghost"));
}

#[tokio::test]
async fn a_user_name_is_trimmed_at_login() {
    let api = Api::new();
    let r = api.login(" bob ", "bob").await;
    assert_eq!(r.json["userId"], "bob");
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// A failed login for `user` (each one costs a real password check).
async fn failed_login(api: &Api, user: &str) -> Resp {
    api.try_login(json!({"username": user, "password": "not-the-password"}))
        .await
}

#[tokio::test]
async fn the_eleventh_login_attempt_for_one_user_within_a_minute_is_rate_limited() {
    let api = Api::new();
    api.remember("not-the-password");
    for _ in 0..10 {
        failed_login(&api, "bob")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    api.advance(15);
    // Even the right password is not checked now.
    let r = api.try_login(json!({"username": "bob", "password": "bob"})).await;
    r.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(r.header(RETRY_AFTER.as_str()), Some("45"));
    // The user name is compared without case.
    failed_login(&api, "BOB")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate-limited");

    // Another user is not affected.
    api.login("alice", "alice").await;

    // A minute later bob may try again.
    api.advance(MINUTE);
    api.login("bob", "bob").await;
}

#[tokio::test]
async fn the_per_address_limit_stops_one_address_trying_many_user_names() {
    let api = Api::with_settings(HttpSettings {
        login_per_address_per_minute: 3,
        ..HttpSettings::default()
    });
    api.remember("not-the-password");
    let attacker: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    for user in ["u1", "u2", "u3"] {
        api.login_from(attacker, user, "not-the-password")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    // A fresh user name from the same address (any port) is refused before its password is looked at.
    let other_port: SocketAddr = "192.0.2.7:40001".parse().unwrap();
    let r = api.login_from(other_port, "bob", "bob").await;
    r.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(r.header(RETRY_AFTER.as_str()), Some("60"));

    // Another address is not affected.
    let friend: SocketAddr = "198.51.100.9:5000".parse().unwrap();
    api.login_from(friend, "bob", "bob").await.assert_ok();

    // The default allows 30 a minute.
    assert_eq!(HttpSettings::default().login_per_address_per_minute, 30);
    assert_eq!(HttpSettings::default().login_per_user_per_minute, 10);

    api.advance(MINUTE);
    api.login_from(attacker, "bob", "bob").await.assert_ok();
}

// ---------------------------------------------------------------------------------------------
// Malformed requests

#[tokio::test]
async fn malformed_login_bodies_are_refused_with_bad_request_and_a_clear_message() {
    let api = Api::new();
    let cases: [(&str, &str); 7] = [
        ("this is not json", "invalid request body"),
        (r#"{"username": "bob"}"#, "missing field `password`"),
        (r#"{"password": "bob"}"#, "missing field `username`"),
        (
            r#"{"username": "bob", "password": "bob", "admin": true}"#,
            "unknown field `admin`",
        ),
        (
            r#"{"username": "bob", "password": "bob", "deviceId": "a.b"}"#,
            "deviceId",
        ),
        (
            r#"{"username": "bob", "password": "bob", "deviceId": "a>"}"#,
            "deviceId",
        ),
        (
            r#"{"username": "bob", "password": "bob", "clientId": "x y"}"#,
            "clientId",
        ),
    ];
    for (body, expected) in cases {
        let r = api.post_raw("/api/auth/login", body, &[]).await;
        r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
        let msg = r.json["error"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "{body}: {msg:?} should mention {expected:?}"
        );
    }
    // Without a JSON content type.
    let r = api
        .request(
            Method::POST,
            "/api/auth/login",
            &[],
            Body::from(r#"{"username":"bob","password":"bob"}"#),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    assert!(
        r.json["error"].as_str().unwrap().contains("Content-Type"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn malformed_refresh_logout_revoke_and_introspect_bodies_are_bad_requests() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let auth = bearer(&admin);
    let auth = [("authorization", auth.as_str())];
    for path in ["/api/auth/refresh", "/api/auth/logout"] {
        let r = api.post_raw(path, "{not json", &[]).await;
        r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
        assert!(r.json["error"].as_str().unwrap().contains("invalid request body"));
        let r = api.post_raw(path, r#"{"token": "x"}"#, &[]).await;
        r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
        assert!(
            r.json["error"]
                .as_str()
                .unwrap()
                .contains("unknown field `token`")
        );
    }
    let r = api
        .post_raw("/api/auth/revoke", r#"{"user": "bob"}"#, &auth)
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    assert!(r.json["error"].as_str().unwrap().contains("unknown field `user`"));
    let r = api
        .post_raw("/api/auth/revoke", r#"{"before": true}"#, &auth)
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    assert!(r.json["error"].as_str().unwrap().contains("before"));
    let r = api
        .post_raw("/api/auth/revoke", r#"{"before": "yesterday"}"#, &auth)
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    let r = api.post_raw("/api/auth/introspect", "{}", &auth).await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    assert!(
        r.json["error"]
            .as_str()
            .unwrap()
            .contains("missing field `token`")
    );
}

// ---------------------------------------------------------------------------------------------
// Browser mode

#[tokio::test]
async fn a_browser_login_puts_both_tokens_in_cookies_and_none_in_the_body() {
    let api = Api::new();
    let r = api
        .post(
            "/api/auth/login",
            json!({"username": "bob", "password": "bob", "cookie": true}),
            &[("origin", ORIGIN)],
        )
        .await;
    r.assert_ok();
    let body = r.json.as_object().unwrap();
    assert!(
        !body.contains_key("accessToken") && !body.contains_key("refreshToken"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("rt1_") && !r.text.contains("eyJ"), "{}", r.text);
    assert_eq!(r.json["userId"], "bob");
    assert_eq!(
        secs_of(r.json["accessTokenExpiresAt"].as_str().unwrap()),
        T0 + ACCESS_TTL
    );
    assert_eq!(
        secs_of(r.json["refreshTokenExpiresAt"].as_str().unwrap()),
        T0 + 30 * DAY
    );

    assert_eq!(r.set_cookies().len(), 2);
    let access = r.cookie("nats_token").unwrap();
    assert!(
        access.contains("; Path=/;") && access.ends_with("; HttpOnly; SameSite=Strict"),
        "{access}"
    );
    let refresh = r.cookie("nats_refresh").unwrap();
    let value = r.cookie_value("nats_refresh").unwrap();
    assert!(value.starts_with("rt1_"));
    assert_eq!(
        refresh,
        format!(
            "nats_refresh={value}; Path=/api/auth; Max-Age={}; HttpOnly; SameSite=Strict",
            30 * DAY
        )
    );
    // The cookie is a working access token.
    api.me(&r.cookie_value("nats_token").unwrap()).await.assert_ok();
}

#[tokio::test]
async fn a_browser_login_without_origin_or_from_a_foreign_origin_is_forbidden() {
    let api = Api::new();
    let body = json!({"username": "bob", "password": "bob", "cookie": true});
    let none = api.post("/api/auth/login", body.clone(), &[]).await;
    none.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(none.set_cookies().is_empty());
    let foreign = api
        .post("/api/auth/login", body, &[("origin", FOREIGN_ORIGIN)])
        .await;
    foreign.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(foreign.set_cookies().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Refresh

#[tokio::test]
async fn refresh_with_the_token_in_the_body_returns_a_new_pair_and_uses_up_the_old_token() {
    let api = Api::new();
    let login = api.login_device("bob", "bob", "laptop").await;
    let (a1, r1) = (login.access(), login.refresh());
    api.advance(60);
    let r = api.refresh(&r1).await;
    r.assert_ok();
    let (a2, r2) = (r.access(), r.refresh());
    assert_ne!(a1, a2);
    assert_ne!(r1, r2);
    assert_eq!(r.json["userId"], "bob");
    assert_eq!(
        secs_of(r.json["accessTokenExpiresAt"].as_str().unwrap()),
        T0 + 60 + ACCESS_TTL
    );
    assert_eq!(
        secs_of(r.json["refreshTokenExpiresAt"].as_str().unwrap()),
        T0 + 60 + 30 * DAY
    );
    assert_eq!(r.cookie_value("nats_token").unwrap(), a2);
    // Same session, same device.
    let c1 = api.state.tokens.verify_access(&a1, api.now()).unwrap();
    let c2 = api.state.tokens.verify_access(&a2, api.now()).unwrap();
    assert_eq!(c1.sid, c2.sid);
    assert_eq!(c2.did.as_deref(), Some("laptop"));
    assert_ne!(c1.tid, c2.tid);

    // The chain goes on from the new token; the first one is used up: presenting it
    // (no longer the immediate predecessor) is a reuse.
    api.advance(60);
    let r3 = api.refresh(&r2).await.refresh();
    api.refresh(&r1)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-reused");
    api.refresh(&r3)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
}

#[tokio::test]
async fn refresh_with_the_cookie_renews_both_cookies_and_keeps_tokens_out_of_the_body() {
    let api = Api::new();
    let login = api
        .post(
            "/api/auth/login",
            json!({"username": "bob", "password": "bob", "cookie": true}),
            &[("origin", ORIGIN)],
        )
        .await;
    let old_refresh = login.cookie_value("nats_refresh").unwrap();
    let old_access = login.cookie_value("nats_token").unwrap();
    api.advance(120);
    let cookies = cookie_header(&[("nats_token", &old_access), ("nats_refresh", &old_refresh)]);
    let r = api
        .request(
            Method::POST,
            "/api/auth/refresh",
            &[("cookie", &cookies), ("origin", ORIGIN)],
            Body::empty(),
        )
        .await;
    r.assert_ok();
    let body = r.json.as_object().unwrap();
    assert!(
        !body.contains_key("accessToken") && !body.contains_key("refreshToken"),
        "{}",
        r.text
    );
    let new_refresh = r.cookie_value("nats_refresh").unwrap();
    let new_access = r.cookie_value("nats_token").unwrap();
    assert_ne!(new_refresh, old_refresh);
    assert_ne!(new_access, old_access);
    assert!(r.cookie("nats_refresh").unwrap().contains("; Path=/api/auth;"));
    assert!(r.cookie("nats_token").unwrap().contains("; Path=/;"));
    assert_eq!(
        secs_of(r.json["accessTokenExpiresAt"].as_str().unwrap()),
        T0 + 120 + ACCESS_TTL
    );
    api.me(&new_access).await.assert_ok();
    // The body token wins over the cookie (a native client), and then the answer carries tokens.
    let r2 = api
        .request(
            Method::POST,
            "/api/auth/refresh",
            &[("cookie", &cookies), ("content-type", "application/json")],
            Body::from(json!({"refreshToken": new_refresh}).to_string()),
        )
        .await;
    r2.assert_ok();
    assert!(r2.json["refreshToken"].as_str().unwrap().starts_with("rt1_"));
}

#[tokio::test]
async fn refresh_with_the_cookie_but_no_origin_or_a_foreign_origin_is_forbidden() {
    let api = Api::new();
    let login = api
        .post(
            "/api/auth/login",
            json!({"username": "bob", "password": "bob", "cookie": true}),
            &[("origin", ORIGIN)],
        )
        .await;
    let cookies = cookie_header(&[("nats_refresh", &login.cookie_value("nats_refresh").unwrap())]);
    for headers in [
        vec![("cookie", cookies.as_str())],
        vec![("cookie", cookies.as_str()), ("origin", FOREIGN_ORIGIN)],
    ] {
        let r = api
            .request(Method::POST, "/api/auth/refresh", &headers, Body::empty())
            .await;
        r.assert_error(StatusCode::FORBIDDEN, "forbidden");
        assert!(r.set_cookies().is_empty());
    }
    // The token was not spent by the refused attempts.
    let r = api
        .request(
            Method::POST,
            "/api/auth/refresh",
            &[("cookie", &cookies), ("origin", ORIGIN)],
            Body::empty(),
        )
        .await;
    r.assert_ok();
}

#[tokio::test]
async fn refresh_without_a_token_is_missing_token_and_an_unknown_token_is_invalid() {
    let api = Api::new();
    api.request(Method::POST, "/api/auth/refresh", &[], Body::empty())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
    api.post("/api/auth/refresh", json!({}), &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
    api.refresh("garbage")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-invalid");
    let well_formed_unknown = format!("rt1_{}", "A".repeat(43));
    api.refresh(&well_formed_unknown)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-invalid");
}

#[tokio::test]
async fn a_lost_answer_replayed_within_the_grace_window_returns_the_identical_pair() {
    let api = Api::new();
    let r1 = api.login("bob", "bob").await.refresh();
    api.advance(10);
    let first = api.refresh(&r1).await;
    first.assert_ok();
    api.advance(20); // exactly the 20 s grace after the rotation
    let again = api.refresh(&r1).await;
    again.assert_ok();
    assert_eq!(again.access(), first.access(), "byte-identical access token");
    assert_eq!(again.refresh(), first.refresh(), "byte-identical refresh token");
    assert_eq!(again.json, first.json);
    // The successor still works (the replay did not spend or revoke anything).
    api.advance(1);
    api.refresh(&first.refresh()).await.assert_ok();
}

#[tokio::test]
async fn a_reuse_after_the_grace_window_revokes_the_whole_family() {
    let api = Api::new();
    let r1 = api.login("bob", "bob").await.refresh();
    api.advance(10);
    let second = api.refresh(&r1).await;
    second.assert_ok();
    api.advance(21); // one second past the grace window
    api.refresh(&r1)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-reused");
    api.refresh(&second.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    // The family's access token (still within its 5 minutes) is refused too.
    api.me(&second.access())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
}

#[tokio::test]
async fn a_refresh_token_expires_after_thirty_idle_days() {
    let api = Api::new();
    let a = api.login("bob", "bob").await.refresh();
    let b = api.login("bob", "bob").await.refresh();
    api.advance(30 * DAY - 1);
    api.refresh(&a).await.assert_ok();
    api.advance(1);
    api.refresh(&b)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-expired");
}

#[tokio::test]
async fn a_session_ends_ninety_days_after_login_however_often_it_is_refreshed() {
    let api = Api::new();
    let mut token = api.login("bob", "bob").await.refresh();
    for _ in 0..3 {
        api.advance(29 * DAY);
        let r = api.refresh(&token).await;
        r.assert_ok();
        token = r.refresh();
    }
    // Rotated at day 87: the new token's expiry is capped at the session's end.
    assert_eq!(api.now(), T0 + 87 * DAY);
    api.advance(3 * DAY - 100);
    let r = api.refresh(&token).await;
    r.assert_ok();
    assert_eq!(
        secs_of(r.json["refreshTokenExpiresAt"].as_str().unwrap()),
        T0 + 90 * DAY
    );
    // The access token never outlives the session either.
    assert_eq!(
        secs_of(r.json["accessTokenExpiresAt"].as_str().unwrap()),
        T0 + 90 * DAY
    );
    api.advance(100);
    api.refresh(&r.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-expired");
}

// ---------------------------------------------------------------------------------------------
// /api/auth/me and /api/rooms

#[tokio::test]
async fn an_access_token_expires_after_five_minutes() {
    let api = Api::new();
    let access = api.login("bob", "bob").await.access();
    api.advance(ACCESS_TTL - 1);
    api.me(&access).await.assert_ok();
    api.advance(1);
    let r = api.me(&access).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "access-token-expired");
    assert_eq!(r.header("x-error-code"), Some("access-token-expired"));
    api.get("/api/rooms", &[("authorization", &bearer(&access))])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-expired");
}

#[tokio::test]
async fn me_without_any_token_is_missing_token() {
    let api = Api::new();
    api.get("/api/auth/me", &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
    api.get("/api/rooms", &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
    // A cookie header without our cookie is no token either.
    api.get("/api/auth/me", &[("cookie", "other=1")])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
}

#[tokio::test]
async fn forged_or_foreign_access_tokens_are_refused_with_a_reason() {
    let api = Api::new();
    let good = api.login("bob", "bob").await.access();
    api.me("not-a-jwt")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token-malformed");
    // Same claims, another key.
    let other = Api::new();
    let foreign = other.login("bob", "bob").await.access();
    api.remember(&foreign);
    api.me(&foreign)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token-unknown-key");
    // A flipped signature.
    let (head, sig) = good.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{head}.{flipped}{}", &sig[1..]);
    api.remember(&tampered);
    api.me(&tampered)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token-bad-signature");
    // A token from the future (the clock went back more than a minute).
    api.advance(-61);
    api.me(&good)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token-not-yet-valid");
}

#[tokio::test]
async fn me_with_a_bearer_token_returns_the_user_context() {
    let api = Api::new();
    let login = api
        .login_with(json!({"username": "bob", "password": "bob", "deviceId": "phone", "clientId": "chat"}))
        .await;
    let claims = api
        .state
        .tokens
        .verify_access(&login.access(), api.now())
        .unwrap();
    let r = api.me(&login.access()).await;
    r.assert_ok();
    assert_eq!(
        r.json,
        json!({
            "id": "bob",
            "clientId": "chat",
            "roles": ["user"],
            "data": {
                "sessionId": claims.sid,
                "deviceId": "phone",
                "tokenId": claims.tid,
                "expiresAt": T0 + ACCESS_TTL,
            }
        })
    );
    let admin = api.login("admin", "admin").await.access();
    let r = api.me(&admin).await;
    let mut roles: Vec<&str> = r.json["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["admin", "sysadmin"]);
    assert_eq!(r.json["clientId"], Value::Null);
    assert_eq!(r.json["data"]["deviceId"], Value::Null);
}

#[tokio::test]
async fn me_with_the_cookie_works_from_an_allowed_origin_and_not_from_a_foreign_one() {
    let api = Api::new();
    let access = api.login("bob", "bob").await.access();
    let cookie = cookie_header(&[("theme", "dark"), ("nats_token", &access)]);
    let r = api
        .get("/api/auth/me", &[("cookie", &cookie), ("origin", ORIGIN)])
        .await;
    r.assert_ok();
    assert_eq!(r.json["id"], "bob");
    // A plain navigation (a GET without Origin) is not state-changing: allowed.
    api.get("/api/auth/me", &[("cookie", &cookie)]).await.assert_ok();
    api.get("/api/auth/me", &[("cookie", &cookie), ("origin", FOREIGN_ORIGIN)])
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.get("/api/rooms", &[("cookie", &cookie), ("origin", FOREIGN_ORIGIN)])
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

fn room_names(rooms: &Value) -> Vec<&str> {
    rooms
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn rooms_lists_exactly_the_rooms_bob_may_join_with_their_access() {
    let api = Api::new();
    let access = api.login("bob", "bob").await.access();
    let r = api
        .get("/api/rooms", &[("authorization", &bearer(&access))])
        .await;
    r.assert_ok();
    assert_eq!(room_names(&r.json), ["all1", "all2", "all3", "bob1", "bob2"]);
    assert!(!r.text.contains("alice1"));
    for room in r.json.as_array().unwrap() {
        assert_eq!(room["read"], true, "{room}");
        assert_eq!(room["write"], true, "{room}");
    }
    // Alice sees hers, not bob's.
    let alice = api.login("alice", "alice").await.access();
    let r = api.get("/api/rooms", &[("authorization", &bearer(&alice))]).await;
    assert_eq!(room_names(&r.json), ["alice1", "alice2", "all1", "all2", "all3"]);
    // An admin sees every room.
    let admin = api.login("admin", "admin").await.access();
    let r = api.get("/api/rooms", &[("authorization", &bearer(&admin))]).await;
    assert_eq!(
        room_names(&r.json),
        ["alice1", "alice2", "all1", "all2", "all3", "bob1", "bob2"]
    );
}

#[tokio::test]
async fn rooms_shows_read_only_and_write_only_grants_as_such() {
    let perms = permissions_with(
        "[rooms.news]\nmembers = [\"bob\"]\naccess = \"read\"\n\n\
         [rooms.inbox]\nmembers = [\"bob\"]\naccess = \"write\"\n",
    );
    let api = Api::with(HttpSettings::default(), perms.path());
    let access = api.login("bob", "bob").await.access();
    let r = api
        .get("/api/rooms", &[("authorization", &bearer(&access))])
        .await;
    r.assert_ok();
    let find = |name: &str| {
        r.json
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing in {}", r.text))
    };
    assert_eq!(
        find("news"),
        json!({"name": "news", "read": true, "write": false})
    );
    assert_eq!(
        find("inbox"),
        json!({"name": "inbox", "read": false, "write": true})
    );
    assert_eq!(find("bob1"), json!({"name": "bob1", "read": true, "write": true}));
}

#[tokio::test]
async fn a_user_removed_from_the_permission_files_is_refused_as_unknown_user() {
    let api = Api::new();
    let access = api.login("bob", "bob").await.access();
    // The files change: bob is gone (alice and admin stay).
    let dir = tempfile::tempdir().unwrap();
    let users = std::fs::read_to_string(repo_permissions().join("users.toml")).unwrap();
    let (_, from_alice) = users.split_once("[users.alice]").unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        format!("[users.alice]{from_alice}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rooms.toml"),
        "[rooms.all1]\nmembers = [\"alice\"]\n",
    )
    .unwrap();
    api.state.snapshot.store(Arc::new(load(dir.path())));

    api.me(&access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unknown-user");
    api.get("/api/rooms", &[("authorization", &bearer(&access))])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unknown-user");
    api.revoke(&access, json!({"userId": "bob"}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    // And bob can no longer log in.
    api.remember("bob-was-here");
    api.try_login(json!({"username": "bob", "password": "bob"}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
}

#[tokio::test]
async fn healthz_answers_ok_and_unknown_paths_are_not_found() {
    let api = Api::new();
    let r = api.get("/healthz", &[]).await;
    r.assert_ok();
    assert_eq!(r.text, "ok");
    assert_eq!(api.get("/api/nothing", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.get("/api/auth/login", &[]).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

// ---------------------------------------------------------------------------------------------
// Logout

#[tokio::test]
async fn logout_with_the_refresh_token_ends_the_session_and_clears_both_cookies() {
    let api = Api::new();
    let login = api.login("bob", "bob").await;
    let (access, refresh) = (login.access(), login.refresh());
    let r = api
        .post("/api/auth/logout", json!({"refreshToken": refresh}), &[])
        .await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 1}));
    assert_eq!(
        r.cookie("nats_token").unwrap(),
        "nats_token=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    );
    assert_eq!(
        r.cookie("nats_refresh").unwrap(),
        "nats_refresh=; Path=/api/auth; Max-Age=0; HttpOnly; SameSite=Strict"
    );
    api.refresh(&refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    api.me(&access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
}

#[tokio::test]
async fn logout_with_only_a_bearer_token_ends_that_session() {
    let api = Api::new();
    let login = api.login("bob", "bob").await;
    let other = api.login("bob", "bob").await;
    let (access, refresh) = (login.access(), login.refresh());
    let r = api
        .request(
            Method::POST,
            "/api/auth/logout",
            &[("authorization", &bearer(&access))],
            Body::empty(),
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 1}));
    assert!(r.cookie("nats_token").unwrap().contains("Max-Age=0"));
    assert!(r.cookie("nats_refresh").unwrap().contains("Max-Age=0"));
    api.refresh(&refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    api.me(&access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
    // Only that session: bob's other login lives on.
    api.me(&other.access()).await.assert_ok();
    api.refresh(&other.refresh()).await.assert_ok();
}

#[tokio::test]
async fn a_browser_logs_out_with_its_cookies_from_an_allowed_origin() {
    let api = Api::new();
    let login = api
        .post(
            "/api/auth/login",
            json!({"username": "bob", "password": "bob", "cookie": true}),
            &[("origin", ORIGIN)],
        )
        .await;
    let access = login.cookie_value("nats_token").unwrap();
    let refresh = login.cookie_value("nats_refresh").unwrap();
    let cookies = cookie_header(&[("nats_token", &access), ("nats_refresh", &refresh)]);
    api.request(
        Method::POST,
        "/api/auth/logout",
        &[("cookie", &cookies), ("origin", FOREIGN_ORIGIN)],
        Body::empty(),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .request(
            Method::POST,
            "/api/auth/logout",
            &[("cookie", &cookies), ("origin", ORIGIN)],
            Body::empty(),
        )
        .await;
    r.assert_ok();
    assert_eq!(r.set_cookies().len(), 2);
    api.refresh(&refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    api.me(&access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
}

#[tokio::test]
async fn logout_without_any_token_is_missing_token() {
    let api = Api::new();
    api.request(Method::POST, "/api/auth/logout", &[], Body::empty())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
}

// ---------------------------------------------------------------------------------------------
// Revoke

#[tokio::test]
async fn a_plain_user_may_not_revoke_another_user() {
    let api = Api::new();
    let bob = api.login("bob", "bob").await.access();
    let alice = api.login_device("alice", "alice", "alice-phone").await;
    api.revoke(&bob, json!({"userId": "alice"}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.revoke(&bob, json!({"deviceId": "alice-phone"}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let alice_sid = api
        .state
        .tokens
        .verify_access(&alice.access(), api.now())
        .unwrap()
        .sid;
    api.revoke(&bob, json!({"sessionId": alice_sid}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.revoke(&bob, json!({"before": api.now()}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    // Alice is untouched.
    api.me(&alice.access()).await.assert_ok();
    api.refresh(&alice.refresh()).await.assert_ok();
}

#[tokio::test]
async fn revoke_needs_an_access_token() {
    let api = Api::new();
    api.post("/api/auth/revoke", json!({"userId": "bob"}), &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
    // By cookie it is state-changing: Origin is required.
    let access = api.login("bob", "bob").await.access();
    let cookie = cookie_header(&[("nats_token", &access)]);
    api.post(
        "/api/auth/revoke",
        json!({"userId": "bob"}),
        &[("cookie", &cookie)],
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .post(
            "/api/auth/revoke",
            json!({"userId": "bob"}),
            &[("cookie", &cookie), ("origin", ORIGIN)],
        )
        .await;
    r.assert_ok();
}

#[tokio::test]
async fn a_user_may_revoke_all_of_his_own_sessions() {
    let api = Api::new();
    let a = api.login_device("bob", "bob", "laptop").await;
    let b = api.login_device("bob", "bob", "phone").await;
    let alice = api.login("alice", "alice").await;
    let r = api.revoke(&a.access(), json!({"userId": "bob"})).await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 2}));
    for s in [&a, &b] {
        api.assert_revoked(s).await;
    }
    api.me(&alice.access()).await.assert_ok();
    // A new login works, even in the same second as the revocation (cutoffs are whole seconds).
    let again = api.login("bob", "bob").await;
    api.me(&again.access()).await.assert_ok();
    api.refresh(&again.refresh()).await.assert_ok();
    // The tokens minted before the revocation in that same second stay refused.
    api.me(&a.access())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
}

#[tokio::test]
async fn a_user_may_revoke_his_own_session_and_his_own_device() {
    let api = Api::new();
    let laptop = api.login_device("bob", "bob", "bob-laptop").await;
    let phone = api.login_device("bob", "bob", "bob-phone").await;
    let tablet = api.login_device("bob", "bob", "bob-tablet").await;
    let phone_sid = api
        .state
        .tokens
        .verify_access(&phone.access(), api.now())
        .unwrap()
        .sid;
    api.revoke(&laptop.access(), json!({"sessionId": phone_sid}))
        .await
        .assert_ok();
    api.refresh(&phone.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    // His own device: only the one his token names.
    api.revoke(&laptop.access(), json!({"deviceId": "bob-tablet"}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.revoke(&laptop.access(), json!({"deviceId": "bob-laptop"}))
        .await
        .assert_ok();
    api.refresh(&laptop.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    api.refresh(&tablet.refresh()).await.assert_ok();
}

#[tokio::test]
async fn a_user_revoking_his_own_device_does_not_touch_another_users_device_of_the_same_name() {
    // Device ids are chosen by clients, so two users can both call theirs "phone".
    let api = Api::new();
    let bob = api.login_device("bob", "bob", "phone").await;
    let alice = api.login_device("alice", "alice", "phone").await;
    api.revoke(&bob.access(), json!({"deviceId": "phone"}))
        .await
        .assert_ok();
    api.refresh(&bob.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    api.me(&alice.access()).await.assert_ok();
    api.refresh(&alice.refresh()).await.assert_ok();
}

#[tokio::test]
async fn an_admin_revokes_a_user_by_user_id() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let alice1 = api.login("alice", "alice").await;
    let alice2 = api.login("alice", "alice").await;
    let bob = api.login("bob", "bob").await;
    let r = api.revoke(&admin, json!({"userId": "alice"})).await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 2}));
    for s in [&alice1, &alice2] {
        api.assert_revoked(s).await;
    }
    api.me(&bob.access()).await.assert_ok();
    api.me(&admin).await.assert_ok();
    // Revoking again ends nothing more.
    let r = api.revoke(&admin, json!({"userId": "alice"})).await;
    assert_eq!(r.json, json!({"revokedSessions": 0}));
}

#[tokio::test]
async fn an_admin_revokes_one_session_by_session_id() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let one = api.login("bob", "bob").await;
    let two = api.login("bob", "bob").await;
    let sid = api
        .state
        .tokens
        .verify_access(&one.access(), api.now())
        .unwrap()
        .sid;
    let r = api.revoke(&admin, json!({"sessionId": sid})).await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 1}));
    api.assert_revoked(&one).await;
    api.me(&two.access()).await.assert_ok();
    api.refresh(&two.refresh()).await.assert_ok();
    // An unknown session id ends nothing.
    let r = api.revoke(&admin, json!({"sessionId": "nosuchsession"})).await;
    assert_eq!(r.json, json!({"revokedSessions": 0}));
}

#[tokio::test]
async fn an_admin_revokes_one_device_and_the_users_other_device_keeps_working() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let laptop = api.login_device("bob", "bob", "bob-laptop").await;
    let phone = api.login_device("bob", "bob", "bob-phone").await;
    let r = api.revoke(&admin, json!({"deviceId": "bob-phone"})).await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 1}));
    api.refresh(&phone.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    api.me(&phone.access())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
    api.me(&laptop.access()).await.assert_ok();
    api.refresh(&laptop.refresh()).await.assert_ok();
}

#[tokio::test]
async fn a_sysadmin_revokes_everything_issued_before_a_time() {
    let api = Api::new();
    let old_bob = api.login("bob", "bob").await;
    let old_alice = api.login("alice", "alice").await;
    api.advance(10);
    let cutoff = api.now();
    api.advance(10);
    let new_bob = api.login("bob", "bob").await;
    let admin = api.login("admin", "admin").await.access();
    let r = api.revoke(&admin, json!({"before": cutoff})).await;
    r.assert_ok();
    assert_eq!(r.json, json!({"revokedSessions": 2}));
    for s in [&old_bob, &old_alice] {
        api.assert_revoked(s).await;
    }
    api.me(&new_bob.access()).await.assert_ok();
    api.refresh(&new_bob.refresh()).await.assert_ok();
    // An RFC 3339 time works too.
    api.advance(10);
    let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(api.now() as u64));
    let r = api.revoke(&admin, json!({"before": when.to_string()})).await;
    r.assert_ok();
    // A time in the future would lock everyone out until then: refused, nothing revoked.
    api.advance(1);
    let admin = api.login("admin", "admin").await.access();
    let r = api.revoke(&admin, json!({"before": api.now() + 3600})).await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
    assert!(r.json["error"].as_str().unwrap().contains("future"), "{}", r.text);
    api.me(&admin).await.assert_ok();
    api.login("bob", "bob").await;
}

#[tokio::test]
async fn revoking_everything_before_a_time_is_for_sysadmins_only() {
    // The demo admin is also a sysadmin; an admin-only user is added here.
    let perms = permissions_with("[users.ops]\nroles = [\"admin\"]\n");
    let api = Api::with(HttpSettings::default(), perms.path());
    let snapshot = api.state.snapshot.load();
    assert!(
        snapshot
            .user("admin")
            .unwrap()
            .has_role(nats_callout::permissions::Role::Sysadmin)
    );
    // ops has no password: mint its pair through the token service.
    let ops = api.state.tokens.login("ops", None, None, api.now()).unwrap();
    api.remember(&ops.access_token);
    let r = api.revoke(&ops.access_token, json!({"before": api.now()})).await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(r.json["error"].as_str().unwrap().contains("sysadmin"));
    // ...while ops may revoke users, as an admin.
    let bob = api.login("bob", "bob").await;
    api.revoke(&ops.access_token, json!({"userId": "bob"}))
        .await
        .assert_ok();
    api.me(&bob.access())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
}

#[tokio::test]
async fn revoke_takes_exactly_one_target() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    for body in [
        json!({}),
        json!({"userId": "bob", "deviceId": "phone"}),
        json!({"sessionId": "s", "before": 1}),
        json!({"userId": "bob", "deviceId": "d", "sessionId": "s", "before": 1}),
    ] {
        let r = api.revoke(&admin, body.clone()).await;
        r.assert_error(StatusCode::BAD_REQUEST, "bad-request");
        assert!(
            r.json["error"].as_str().unwrap().contains("exactly one"),
            "{body}: {}",
            r.text
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Introspect

#[tokio::test]
async fn an_admin_introspects_an_active_access_token() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let bob = api.login_device("bob", "bob", "laptop").await;
    let claims = api.state.tokens.verify_access(&bob.access(), api.now()).unwrap();
    let r = api.introspect(&admin, &bob.access()).await;
    r.assert_ok();
    assert_eq!(
        r.json,
        json!({
            "active": true, "tokenType": "access_token", "sub": "bob", "sid": claims.sid,
            "did": "laptop", "tid": claims.tid, "iat": T0, "exp": T0 + ACCESS_TTL,
        })
    );
}

#[tokio::test]
async fn introspect_reports_expired_and_revoked_access_tokens_as_inactive_with_a_reason() {
    let api = Api::new();
    let expiring = api.login("bob", "bob").await.access();
    let revoked = api.login("alice", "alice").await;
    api.post(
        "/api/auth/logout",
        json!({"refreshToken": revoked.refresh()}),
        &[],
    )
    .await
    .assert_ok();
    api.advance(ACCESS_TTL);
    let admin = api.login("admin", "admin").await.access();
    let r = api.introspect(&admin, &expiring).await;
    r.assert_ok();
    assert_eq!(
        r.json,
        json!({"active": false, "tokenType": "access_token", "reason": "access-token-expired"})
    );
    api.advance(-1); // still within alice's 5 minutes
    let r = api.introspect(&admin, &revoked.access()).await;
    assert_eq!(
        r.json,
        json!({"active": false, "tokenType": "access_token", "reason": "access-token-revoked"})
    );
    let r = api.introspect(&admin, "garbage").await;
    assert_eq!(
        r.json,
        json!({"active": false, "tokenType": "access_token", "reason": "token-malformed"})
    );
}

#[tokio::test]
async fn introspect_reports_a_refresh_tokens_session_and_whether_it_is_active() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let live = api.login_device("bob", "bob", "laptop").await;
    let sid = api
        .state
        .tokens
        .verify_access(&live.access(), api.now())
        .unwrap()
        .sid;
    let r = api.introspect(&admin, &live.refresh()).await;
    r.assert_ok();
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["tokenType"], "refresh_token");
    assert_eq!(r.json["sub"], "bob");
    assert_eq!(r.json["sid"], sid.as_str());
    assert_eq!(r.json["did"], "laptop");

    let ended = api.login("alice", "alice").await.refresh();
    api.post("/api/auth/logout", json!({"refreshToken": ended}), &[])
        .await
        .assert_ok();
    let r = api.introspect(&admin, &ended).await;
    assert_eq!(r.json["active"], false);
    assert_eq!(r.json["reason"], "logout");
    assert!(r.json["revokedAt"].is_i64());

    let unknown = format!("rt1_{}", "A".repeat(43));
    let r = api.introspect(&admin, &unknown).await;
    assert_eq!(
        r.json,
        json!({"active": false, "tokenType": "refresh_token", "reason": "refresh-token-invalid"})
    );
}

#[tokio::test]
async fn introspect_reports_a_used_refresh_token_as_inactive() {
    let api = Api::new();
    let admin = api.login("admin", "admin").await.access();
    let old = api.login("bob", "bob").await.refresh();
    api.advance(60);
    api.refresh(&old).await.assert_ok();
    let r = api.introspect(&admin, &old).await;
    r.assert_ok();
    assert_eq!(
        r.json["active"], false,
        "a used refresh token cannot be used: {}",
        r.text
    );
}

#[tokio::test]
async fn introspect_reports_an_idle_expired_refresh_token_as_inactive() {
    let api = Api::new();
    let stale = api.login("bob", "bob").await.refresh();
    api.advance(30 * DAY);
    let admin = api.login("admin", "admin").await.access();
    api.refresh(&stale)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-expired");
    let r = api.introspect(&admin, &stale).await;
    r.assert_ok();
    assert_eq!(
        r.json["active"], false,
        "a refresh token past its idle expiry cannot be used: {}",
        r.text
    );
}

#[tokio::test]
async fn only_admins_may_introspect() {
    let api = Api::new();
    let bob = api.login("bob", "bob").await;
    let r = api.introspect(&bob.access(), &bob.access()).await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let r = api.introspect(&bob.access(), &bob.refresh()).await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.post("/api/auth/introspect", json!({"token": "x"}), &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing-token");
}
