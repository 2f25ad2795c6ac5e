//! `POST /api/auth/logout`: by refresh token, by bearer token, from a browser.

use super::*;

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
    let login = api.browser_login("bob").await;
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
