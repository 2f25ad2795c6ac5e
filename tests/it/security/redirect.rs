//! The identity provider's callback address never comes from a request: it is the
//! provider's `redirect_url`, or `http.public_url` and the callback path. Before the fix it
//! was built from the request's `Host`, so a request with a forged `Host` sent the provider
//! a callback on the attacker's host. A provider with a `client_id` and neither is refused
//! at start, a loopback provider for a loopback page (the demo) aside.

use std::collections::HashMap;

use nats_callout::config::Config;
use nats_callout::oidc::UnknownUsers;

use crate::support::idp::Idp;
use crate::support::{EnvOptions, TestEnv};

/// The `redirect_uri` the login sends the browser to the provider with, for a request
/// that claims `Host: evil.example`.
async fn redirect_uri(idp: &Idp, public_url: Option<&str>) -> String {
    let env = TestEnv::start(EnvOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "chat-secret").unwrap();
    let mut config = env.config.clone();
    config.http.listen = format!("127.0.0.1:{}", crate::support::free_port());
    config.http.public_url = public_url.map(str::to_string);
    let mut corp = idp.settings("corp", UnknownUsers::GroupsOnly);
    corp.client_id = Some("chat".into());
    corp.client_secret_file = Some(secret);
    config.identity.oidc = vec![corp];
    config.validate().expect("a valid configuration");
    let service = env.start_callout_with(config).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let begin = http
        .get(format!("{}/api/auth/oidc/corp/login", service.http_url()))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(begin.status(), 303);
    let to = reqwest::Url::parse(begin.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<_, _> = to.query_pairs().into_owned().collect();
    q["redirect_uri"].clone()
}

#[tokio::test]
async fn the_callback_address_is_never_the_requests_host() {
    let dir = tempfile::tempdir().unwrap();
    let idp = Idp::start(&dir.path().join("idp"), &[]).await;
    assert_eq!(
        redirect_uri(&idp, Some("https://chat.example.com")).await,
        "https://chat.example.com/api/auth/oidc/corp/callback"
    );
    // The demo: a loopback provider and page; the listener's own address.
    let uri = redirect_uri(&idp, None).await;
    assert!(
        uri.starts_with("http://127.0.0.1:") && uri.ends_with("/api/auth/oidc/corp/callback"),
        "{uri}"
    );
    assert!(!uri.contains("evil"), "{uri}");
}

#[test]
fn a_provider_login_without_a_callback_address_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "s").unwrap();
    let path = dir.path().join("callout.toml");
    let write = |http: &str, issuer: &str, redirect: &str| {
        std::fs::write(
            &path,
            format!(
                "[http]\n{http}\n[[identity.oidc]]\nname = \"corp\"\nissuer = \"{issuer}\"\naudience = \"nats\"\n\
                 client_id = \"chat\"\nclient_secret_file = \"secret\"\n{redirect}"
            ),
        )
        .unwrap();
        Config::load(&path)
    };
    let err = write("", "https://idp.example.com", "").unwrap_err().to_string();
    assert!(
        err.contains("identity.oidc") && err.contains("public_url"),
        "{err}"
    );
    // A public page on a loopback listener does not make a remote provider's callback ours.
    let err = write("listen = \"0.0.0.0:8080\"", "http://127.0.0.1:9000", "")
        .unwrap_err()
        .to_string();
    assert!(err.contains("redirect_url or http.public_url"), "{err}");
    write(
        "public_url = \"https://chat.example.com\"",
        "https://idp.example.com",
        "",
    )
    .unwrap();
    write(
        "",
        "https://idp.example.com",
        "redirect_url = \"https://chat.example.com/cb\"",
    )
    .unwrap();
    write("", "http://127.0.0.1:9000", "").expect("the demo: loopback provider and page");
    for bad in [
        "ftp://x",
        "https://chat.example.com/path",
        "http://chat.example.com",
        "https://",
    ] {
        let err = write(&format!("public_url = \"{bad}\""), "https://idp.example.com", "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.public_url"), "{bad}: {err}");
    }
}
