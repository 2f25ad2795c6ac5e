//! `POST /api/auth/login`: the OAuthToken, cookies, wrong and unknown users, rate limits,
//! browser mode.

use super::*;

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
    assert_eq!(j["message"], "logged in");

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
        .await
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

    let b = api.browser_login("bob").await;
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

/// Behind a trusted proxy the per-address limit counts the address the proxy forwards;
/// from any other peer the forwarding headers are ignored (a client cannot pick its own
/// address to dodge the limit).
#[tokio::test]
async fn the_per_address_limit_uses_forwarded_addresses_only_from_trusted_proxies() {
    let api = Api::with_settings(HttpSettings {
        login_per_address_per_minute: 2,
        trusted_proxies: vec!["10.0.0.0/8".into()],
        ..HttpSettings::default()
    });
    api.remember("not-the-password");
    let proxy: SocketAddr = "10.1.2.3:443".parse().unwrap();
    let fail = |peer: SocketAddr, xff: &'static str| {
        let api = &api;
        async move {
            let headers: Vec<(&str, &str)> = if xff.is_empty() {
                vec![]
            } else {
                vec![("x-forwarded-for", xff)]
            };
            api.login_via(peer, &headers, "nobody", "not-the-password").await
        }
    };
    // Two clients behind the proxy: each has its own budget.
    for _ in 0..2 {
        fail(proxy, "198.51.100.1")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    fail(proxy, "198.51.100.1")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    fail(proxy, "198.51.100.2")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
    // A client that forges the header from the proxy's point of view: the proxy appends
    // the real address, which is what counts.
    fail(proxy, "198.51.100.2, 198.51.100.1")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    // An untrusted peer cannot choose its address by header.
    let direct: SocketAddr = "203.0.113.5:5000".parse().unwrap();
    for xff in ["1.1.1.1", "2.2.2.2"] {
        fail(direct, xff)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    fail(direct, "3.3.3.3")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
}

// ---------------------------------------------------------------------------------------------
// Browser mode

#[tokio::test]
async fn a_browser_login_puts_both_tokens_in_cookies_and_none_in_the_body() {
    let api = Api::new();
    let r = api.browser_login("bob").await;
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
