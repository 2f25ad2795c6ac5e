//! `POST /api/auth/refresh`: rotation, cookies, the grace window, reuse, idle and absolute
//! expiry.

use super::*;

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
    assert_eq!(r.json["message"], "refreshed");
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
    let login = api.browser_login("bob").await;
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
    let login = api.browser_login("bob").await;
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
