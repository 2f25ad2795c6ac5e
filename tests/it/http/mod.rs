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

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use nats_callout::config::{GuestRefresh, HttpSettings};
use nats_callout::http::{HttpState, admin_router, router};
use nats_callout::keys::generate_signing_pem;
use nats_callout::ops::{Instance, Ops};
use nats_callout::permissions::{Permissions, Snapshot};
use nats_callout::reload::{Reloader, Source};
use nats_callout::testing::Faulty;
use nats_callout::tokens::TokenKeys;
use nats_callout::tokens::refresh::{RefreshService, RefreshSettings};
use nats_callout::tokens::revocation::Revocations;
use nats_callout::tokens::service::TokenService;
use nats_callout::tokens::store::RedbStore;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

pub(crate) mod applications;
mod console;
mod guest;
mod introspect;
pub(crate) mod keylogin;
mod login;
mod logout;
mod malformed;
mod refresh;
mod revoke;
mod sessions;
mod store;
mod user;

/// A minute boundary, so rate-limit windows start with the test.
pub(crate) const T0: i64 = 1_800_000_000;
pub(crate) const MINUTE: i64 = 60;
pub(crate) const DAY: i64 = 24 * 60 * 60;
pub(crate) const ACCESS_TTL: i64 = 300;
pub(crate) const ORIGIN: &str = "http://127.0.0.1:8080";
pub(crate) const FOREIGN_ORIGIN: &str = "https://evil.example";

/// What may never appear in an error body, whatever the test.
pub(crate) const NEVER_IN_ERRORS: [&str; 4] = ["rt1_", "eyJ", "$argon2", "argon2id"];

pub(crate) fn repo_permissions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions")
}

/// A copy of the demo permission files plus `extra` (appended as another file).
pub(crate) fn permissions_with(extra: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_permissions()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("extra.toml"), extra).unwrap();
    dir
}

pub(crate) fn load(dir: &Path) -> Snapshot {
    Snapshot::load_dir(dir).unwrap_or_else(|e| panic!("permissions in {}: {e}", dir.display()))
}

/// One service under test: its state, its clock, its store directory.
pub(crate) struct Api {
    pub(crate) state: Arc<HttpState>,
    /// The public listener's router.
    pub(crate) app: Router,
    /// The operations listener's router.
    pub(crate) admin: Router,
    pub(crate) clock: Arc<AtomicI64>,
    /// Tokens and passwords seen so far: none may show up in an error body.
    secrets: Mutex<Vec<String>>,
    /// The real redb store, which a test may take down and bring back.
    pub(crate) store: Arc<Faulty<RedbStore>>,
    _store: TempDir,
}

/// A response, read whole.
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
    pub(crate) json: Value,
}

impl Api {
    pub(crate) fn new() -> Self {
        Self::with(HttpSettings::default(), &repo_permissions())
    }

    pub(crate) fn with_settings(settings: HttpSettings) -> Self {
        Self::with(settings, &repo_permissions())
    }

    pub(crate) fn with(settings: HttpSettings, permissions: &Path) -> Self {
        Self::with_guests(settings, permissions, GuestRefresh::Default)
    }

    pub(crate) fn with_guests(
        settings: HttpSettings,
        permissions: &Path,
        guest_refresh: GuestRefresh,
    ) -> Self {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Faulty::new(
            RedbStore::open(&store_dir.path().join("tokens.redb")).unwrap(),
        ));
        let refresh = RefreshService::new(store.clone(), rand::random(), RefreshSettings::default());
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
        let tokens = Arc::new(tokens);
        let perms = Permissions::new(load(permissions));
        let placements = nats_callout::config::CalloutSettings::default()
            .placements()
            .into_iter()
            .collect();
        let reloader = Reloader::new(
            Source::Dir(permissions.to_path_buf()),
            perms.clone(),
            placements,
            None,
        );
        let ops = Arc::new(Ops::new(Instance::new("test"), reloader, tokens.clone()));
        let state = Arc::new(
            HttpState::new(tokens, perms, settings, ops)
                .with_clock(Arc::new(move || c.load(Ordering::SeqCst)))
                .with_guest_refresh(guest_refresh),
        );
        Api {
            app: router(state.clone()),
            admin: admin_router(state.clone()),
            state,
            clock,
            secrets: Mutex::new(Vec::new()),
            store,
            _store: store_dir,
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    pub(crate) fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    pub(crate) fn remember(&self, secret: &str) {
        if !secret.is_empty() {
            self.secrets.lock().unwrap().push(secret.to_string());
        }
    }

    pub(crate) async fn call(&self, req: Request<Body>) -> Resp {
        self.call_on(&self.app, req).await
    }

    /// A request to the operations listener.
    pub(crate) async fn admin_get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = Request::builder().method(Method::GET).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.call_on(&self.admin, req.body(Body::empty()).unwrap()).await
    }

    pub(crate) async fn call_on(&self, router: &Router, req: Request<Body>) -> Resp {
        let resp = router.clone().oneshot(req).await.unwrap();
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

    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.call(b.body(body).unwrap()).await
    }

    /// POST a JSON body.
    pub(crate) async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Resp {
        self.post_raw(path, &body.to_string(), headers).await
    }

    /// POST raw bytes as JSON.
    pub(crate) async fn post_raw(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        self.request(Method::POST, path, &h, Body::from(body.to_string()))
            .await
    }

    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request(Method::GET, path, headers, Body::empty()).await
    }

    /// Log in (a non-browser client) and insist on success.
    pub(crate) async fn login(&self, user: &str, password: &str) -> Resp {
        self.login_with(json!({"username": user, "password": password}))
            .await
    }

    pub(crate) async fn login_device(&self, user: &str, password: &str, device: &str) -> Resp {
        self.login_with(json!({"username": user, "password": password, "deviceId": device}))
            .await
    }

    pub(crate) async fn login_with(&self, body: Value) -> Resp {
        let r = self.try_login(body).await;
        assert_eq!(r.status, StatusCode::OK, "login: {}", r.text);
        r
    }

    /// Log `user` in in browser mode (tokens in cookies) from the allowed origin.
    pub(crate) async fn browser_login(&self, user: &str) -> Resp {
        let body = json!({"username": user, "password": user, "cookie": true});
        let r = self.post("/api/auth/login", body, &[("origin", ORIGIN)]).await;
        assert_eq!(r.status, StatusCode::OK, "browser login: {}", r.text);
        r
    }

    /// Log in with `body`, whatever the answer (the password is remembered for leak checks).
    pub(crate) async fn try_login(&self, body: Value) -> Resp {
        if let Some(p) = body["password"].as_str() {
            self.remember(p);
        }
        self.post("/api/auth/login", body, &[]).await
    }

    /// Log in from a given client address.
    pub(crate) async fn login_from(&self, addr: SocketAddr, user: &str, password: &str) -> Resp {
        self.login_via(addr, &[], user, password).await
    }

    /// Log in from peer `addr` with extra headers (a proxy's `X-Forwarded-For`, ...).
    pub(crate) async fn login_via(
        &self,
        addr: SocketAddr,
        headers: &[(&str, &str)],
        user: &str,
        password: &str,
    ) -> Resp {
        self.remember(password);
        let body = json!({"username": user, "password": password});
        self.post_via(addr, "/api/auth/login", headers, &body.to_string())
            .await
    }

    /// POST a JSON body from peer `addr` with extra headers (a header named twice is sent
    /// as two lines, as proxies do).
    pub(crate) async fn post_via(
        &self,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Resp {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(CONTENT_TYPE, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from(body.to_string())).unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        self.call(req).await
    }

    pub(crate) async fn refresh(&self, refresh_token: &str) -> Resp {
        self.post("/api/auth/refresh", json!({"refreshToken": refresh_token}), &[])
            .await
    }

    /// Both tokens of a login are refused as revoked.
    pub(crate) async fn assert_revoked(&self, login: &Resp) {
        self.me(&login.access())
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "access-token-revoked");
        self.refresh(&login.refresh())
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-revoked");
    }

    pub(crate) async fn me(&self, access_token: &str) -> Resp {
        self.get("/api/auth/me", &[("authorization", &bearer(access_token))])
            .await
    }

    pub(crate) async fn revoke(&self, access_token: &str, body: Value) -> Resp {
        self.post(
            "/api/auth/revoke",
            body,
            &[("authorization", &bearer(access_token))],
        )
        .await
    }

    pub(crate) async fn introspect(&self, access_token: &str, token: &str) -> Resp {
        self.post(
            "/api/auth/introspect",
            json!({"token": token}),
            &[("authorization", &bearer(access_token))],
        )
        .await
    }
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub(crate) fn cookie_header(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn secs_of(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Resp {
    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The whole `Set-Cookie` line for `name`.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    pub(crate) fn cookie_value(&self, name: &str) -> Option<String> {
        self.cookie(name)
            .map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_string())
    }

    pub(crate) fn access(&self) -> String {
        self.json["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("no accessToken in {}", self.text))
            .to_string()
    }

    pub(crate) fn refresh(&self) -> String {
        self.json["refreshToken"]
            .as_str()
            .unwrap_or_else(|| panic!("no refreshToken in {}", self.text))
            .to_string()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// An error answer: this status, JSON `{error, error_code}`, the `x-error-code` header.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: StatusCode, code: &str) {
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
    pub(crate) fn assert_ok(&self) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
    }
}
