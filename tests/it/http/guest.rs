//! `POST /api/auth/guest`: off by default, the guest group's rooms only, no role, rate
//! limited per address, sessions that never expire under `tokens.guest_refresh = "never"`
//! yet rotate and can be revoked.

use super::*;

const GUESTS: &str = "[groups.guest]\nmembers = []\n\n[rooms.lobby]\nmembers = [\"@guest\"]\n";

fn guests_on() -> HttpSettings {
    HttpSettings {
        guests: true,
        ..HttpSettings::default()
    }
}

/// A guest request from `addr`.
async fn guest_from(api: &Api, addr: SocketAddr) -> Resp {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/guest")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    api.call(req).await
}

#[tokio::test]
async fn guests_are_off_by_default() {
    let api = Api::new();
    api.post("/api/auth/guest", json!({}), &[])
        .await
        .assert_error(StatusCode::NOT_FOUND, "guests-disabled");
}

#[tokio::test]
async fn a_guest_gets_the_guest_rooms_no_role_and_a_session_like_a_login() {
    let files = permissions_with(GUESTS);
    let api = Api::with(guests_on(), files.path());
    let r = api
        .post("/api/auth/guest", json!({"deviceId": "tablet"}), &[])
        .await;
    r.assert_ok();
    assert_eq!(r.json["message"], "logged in as guest");
    assert_eq!(r.json["scope"], "", "a guest never has a role");
    let id = r.json["userId"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("guest-") && id.len() == "guest-".len() + 16,
        "{id}"
    );
    // Its rooms: the guest group's, nothing else.
    let rooms = api
        .get("/api/rooms", &[("authorization", &bearer(&r.access()))])
        .await;
    assert_eq!(
        rooms.json,
        json!([{"name": "lobby", "read": true, "write": true}])
    );
    let me = api.me(&r.access()).await;
    assert_eq!(me.json["user"]["roles"], json!([]));
    assert_eq!(me.json["user"]["groups"], json!(["guest"]));
    // Every guest is another user; the default lifetimes apply.
    let other = api.post("/api/auth/guest", json!({}), &[]).await;
    assert_ne!(other.json["userId"], r.json["userId"]);
    assert_eq!(
        secs_of(r.json["refreshTokenExpiresAt"].as_str().unwrap()),
        T0 + 30 * DAY
    );
    // Revoked like anyone.
    api.revoke(&r.access(), json!({"userId": id})).await.assert_ok();
    api.assert_revoked(&r).await;
}

#[tokio::test]
async fn under_never_a_guest_session_does_not_expire_but_rotates_and_can_be_revoked() {
    let files = permissions_with(GUESTS);
    let api = Api::with_guests(guests_on(), files.path(), GuestRefresh::Never);
    let r = api.post("/api/auth/guest", json!({}), &[]).await;
    r.assert_ok();
    assert_eq!(r.json["refreshTokenExpiresAt"], "9999-12-31T23:59:59Z");
    // A year later (far past refresh_idle and refresh_absolute) the token still rotates.
    api.advance(365 * DAY);
    let next = api.refresh(&r.refresh()).await;
    next.assert_ok();
    assert_eq!(next.json["refreshTokenExpiresAt"], "9999-12-31T23:59:59Z");
    api.advance(60); // past the grace that answers a replay with the same pair
    api.refresh(&r.refresh())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh-token-reused");
    // A password login is unaffected by the guest setting.
    let bob = api.login("bob", "bob").await;
    assert_eq!(
        secs_of(bob.json["refreshTokenExpiresAt"].as_str().unwrap()),
        api.now() + 30 * DAY
    );
}

#[tokio::test]
async fn guest_creation_is_rate_limited_per_address_and_needs_a_guest_group() {
    let files = permissions_with(GUESTS);
    let api = Api::with(guests_on(), files.path());
    let one: SocketAddr = "192.0.2.7:5000".parse().unwrap();
    let two: SocketAddr = "192.0.2.8:5000".parse().unwrap();
    for _ in 0..5 {
        guest_from(&api, one).await.assert_ok();
    }
    guest_from(&api, one)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    guest_from(&api, two).await.assert_ok();

    let api = Api::with(guests_on(), &repo_permissions());
    api.post("/api/auth/guest", json!({}), &[])
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "no-guest-group");
    api.post("/api/auth/guest", json!({"deviceId": "no spaces"}), &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-request");
    api.post_raw("/api/auth/guest", "{\"admin\": true}", &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-request");
}
