//! No cross-site request logs a browser in or out. Every endpoint that sets a cookie reads
//! only JSON bodies (a cross-site form can send `text/plain`, urlencoded or multipart, never
//! `application/json` without a CORS preflight we never grant) and refuses a foreign
//! `Origin` whenever one is sent. Before the fix a cross-site form posting an empty
//! `text/plain` body to `/api/auth/guest` got `Set-Cookie: nats_token=…`: the victim's
//! cookie replaced by a fresh guest's.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use nats_callout::config::HttpSettings;
use serde_json::json;

use super::with_guests;
use crate::http::{Api, FOREIGN_ORIGIN, ORIGIN, Resp, cookie_header};

fn api() -> (Api, tempfile::TempDir) {
    with_guests(HttpSettings {
        guests_per_address_per_minute: 1000,
        ..HttpSettings::default()
    })
}

/// A refusal that sets no cookie.
#[track_caller]
fn refused_without_cookie(r: &Resp, status: StatusCode, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    assert!(
        r.set_cookies().is_empty(),
        "{what} set a cookie: {:?}",
        r.set_cookies()
    );
}

/// What a cross-site `<form>` can send: its three content types, any body.
const FORM_TYPES: [&str; 3] = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
];

#[tokio::test]
async fn a_cross_site_form_cannot_create_a_guest_or_log_in() {
    let (api, _files) = api();
    for path in [
        "/api/auth/guest",
        "/api/auth/login",
        "/api/auth/authenticate",
        "/api/auth/refresh",
        "/api/auth/logout",
    ] {
        for ct in FORM_TYPES {
            for body in ["", r#"{"username":"bob","password":"bob","cookie":true}"#] {
                for origin in [None, Some(FOREIGN_ORIGIN)] {
                    let mut h = vec![("content-type", ct)];
                    if let Some(o) = origin {
                        h.push(("origin", o));
                    }
                    let r = api.request(Method::POST, path, &h, Body::from(body)).await;
                    let what = format!("{path} {ct} {body:?} {origin:?}");
                    assert!(
                        matches!(r.status, StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN),
                        "{what}: {} {}",
                        r.status,
                        r.text
                    );
                    refused_without_cookie(&r, r.status, &what);
                }
            }
        }
    }
}

#[tokio::test]
async fn a_foreign_origin_is_refused_whenever_it_is_sent() {
    let (api, _files) = api();
    let foreign = [("origin", FOREIGN_ORIGIN)];
    let bodies = [
        ("/api/auth/guest", json!({})),
        ("/api/auth/guest", json!({"cookie": true})),
        ("/api/auth/login", json!({"username": "bob", "password": "bob"})),
        (
            "/api/auth/login",
            json!({"username": "bob", "password": "bob", "cookie": true}),
        ),
        (
            "/api/auth/challenge",
            json!({"publicKey": nkeys::KeyPair::new_user().public_key()}),
        ),
        (
            "/api/auth/authenticate",
            json!({"challenge": "x", "publicKey": "U", "signature": "s"}),
        ),
    ];
    for (path, body) in &bodies {
        let r = api.post(path, body.clone(), &foreign).await;
        if *path == "/api/auth/challenge" {
            // Sets no cookie and proves nothing: a challenge is no login.
            r.assert_ok();
            continue;
        }
        r.assert_error(StatusCode::FORBIDDEN, "forbidden");
        refused_without_cookie(&r, StatusCode::FORBIDDEN, path);
    }
    // Refresh and logout with a token in the body, from a foreign page: refused too.
    let login = api.login("bob", "bob").await;
    for path in ["/api/auth/refresh", "/api/auth/logout"] {
        let r = api
            .post(path, json!({"refreshToken": login.refresh()}), &foreign)
            .await;
        r.assert_error(StatusCode::FORBIDDEN, "forbidden");
        refused_without_cookie(&r, StatusCode::FORBIDDEN, path);
    }
    api.refresh(&login.refresh()).await.assert_ok();
    // From the page's own origin, the browser flow works.
    let r = api
        .post("/api/auth/guest", json!({"cookie": true}), &[("origin", ORIGIN)])
        .await;
    r.assert_ok();
    assert!(r.cookie_value("nats_token").is_some());
}

/// An empty body is still fine where the endpoint takes none, as long as nothing says it is
/// a form: `curl -X POST` and `fetch(url, {method: "POST"})` with the page's cookie.
#[tokio::test]
async fn an_empty_body_without_a_content_type_still_works() {
    let (api, _files) = api();
    let r = api
        .request(Method::POST, "/api/auth/guest", &[], Body::empty())
        .await;
    r.assert_ok();
    let browser = api.browser_login("bob").await;
    let cookie = cookie_header(&[("nats_refresh", &browser.cookie_value("nats_refresh").unwrap())]);
    let r = api
        .request(
            Method::POST,
            "/api/auth/refresh",
            &[("cookie", &cookie), ("origin", ORIGIN)],
            Body::empty(),
        )
        .await;
    r.assert_ok();
    assert!(r.cookie_value("nats_token").is_some());
}
