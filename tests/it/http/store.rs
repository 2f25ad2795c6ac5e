//! A token store that stops answering: readiness says so, every request that needs the
//! store gets a 503 `store-unavailable` (logged with its cause), nothing is half-done, and
//! everything works again once the store is back.

use std::io::Write;

use super::*;

/// Log lines written while `f` runs on this thread (the tests run on a current-thread runtime).
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || SharedWriter(sink.clone()))
            .finish();
        (Captured(buf), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_store_outage_is_a_logged_503_and_readiness_says_so() {
    let api = Api::new();
    let bob = api.login_device("bob", "bob", "phone").await;
    let ready = api.admin_get("/readyz", &[]).await;
    assert_eq!(ready.json["parts"]["tokenStore"]["ok"], true, "{}", ready.text);

    api.store.set_down(true);
    let (log, _guard) = Captured::start();
    let ready = api.admin_get("/readyz", &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json["parts"]["tokenStore"]["ok"], false, "{}", ready.text);
    assert!(
        ready.json["parts"]["tokenStore"]["detail"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{}",
        ready.text
    );
    api.try_login(json!({"username": "bob", "password": "bob"}))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable");
    api.refresh(&bob.refresh())
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable");
    api.me(&bob.access())
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable");
    let auth = bearer(&bob.access());
    api.post("/api/auth/logout", json!({"refreshToken": bob.refresh()}), &[])
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable");
    api.revoke(&bob.access(), json!({"sessionId": "whatever"}))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable");
    let text = log.text();
    assert!(
        text.matches("token store error").count() >= 5,
        "every 503 is logged with its cause:\n{text}"
    );
    assert!(text.contains("taken down by the test"), "{text}");
    // A store error is never passed off as a bad token.
    let rooms = api.get("/api/rooms", &[("authorization", &auth)]).await;
    assert_eq!(
        rooms.status,
        StatusCode::OK,
        "rooms need no store: {}",
        rooms.text
    );

    // Back up: the refresh token was not used up by the failed attempt, nothing half-done.
    api.store.set_down(false);
    let ready = api.admin_get("/readyz", &[]).await;
    assert_eq!(ready.json["parts"]["tokenStore"]["ok"], true, "{}", ready.text);
    let r = api.refresh(&bob.refresh()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(api.me(&r.access()).await.status, StatusCode::OK);
}
