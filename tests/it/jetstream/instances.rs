//! Instances sharing one JetStream store on one nats-server: revocations every instance
//! applies (running, or started later), sessions any instance continues, and buckets that
//! exist with other settings refused by name.

use nats_callout::clock::now_secs;
use nats_callout::tokens::revocation::RevokeTarget;

use crate::support::api::{assert_nats_denied, login, refresh, s};
use crate::support::{EnvOptions, TestEnv, wait_until};

/// A revocation made on one instance is applied by the other running one and by one
/// started after it, before that one's first authorization.
#[tokio::test]
async fn a_revocation_reaches_running_instances_and_one_started_later() {
    let env = TestEnv::start(EnvOptions::shared()).await;
    let a = env.start_callout().await;
    let b = env.start_callout().await;
    let bob = login(&a.http_url(), "bob", Some("phone")).await;
    let access = s(&bob, "accessToken");
    env.connect(Some(&access), "all1")
        .await
        .expect("connects before the revoke");

    b.tokens
        .revoke(&RevokeTarget::User("bob".into()), "admin", now_secs())
        .await
        .unwrap();
    let revoked_on = |h: &crate::support::CalloutHandle| !h.tokens.revocations().load().is_empty();
    wait_until("the other instance applies it", || revoked_on(&a)).await;
    for _ in 0..4 {
        assert_nats_denied(&env, &access, "either running instance").await;
    }
    let (status, body) = refresh(&a.http_url(), &s(&bob, "refreshToken")).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("refresh-token-revoked")),
        "{body}"
    );

    a.stop().await;
    b.stop().await;
    let c = env.start_callout().await;
    assert!(revoked_on(&c), "loaded before it was ready");
    assert_nats_denied(&env, &access, "an instance started after the revoke").await;
    let alice = env.token("alice");
    env.connect(Some(&alice), "all1")
        .await
        .expect("others are untouched");
}

/// A session lives in the shared store: login on A, refresh on B, the old token
/// presented again on A is a reuse (and revokes the family on both).
#[tokio::test]
async fn login_on_one_instance_refresh_on_another_reuse_detected_on_the_first() {
    let env = TestEnv::start(EnvOptions::shared()).await;
    let a = env.start_callout().await;
    let b = env.start_callout().await;
    let first = login(&a.http_url(), "bob", Some("laptop")).await;
    let (status, second) = refresh(&b.http_url(), &s(&first, "refreshToken")).await;
    assert_eq!(status, 200, "{second}");
    env.connect(Some(&s(&second, "accessToken")), "all1")
        .await
        .expect("the refreshed token connects");
    let (status, third) = refresh(&a.http_url(), &s(&second, "refreshToken")).await;
    assert_eq!(status, 200, "{third}");
    // The first token is two generations old: a reuse, seen by A though B rotated it.
    let (status, err) = refresh(&a.http_url(), &s(&first, "refreshToken")).await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (401, Some("refresh-token-reused"))
    );
    let (status, err) = refresh(&b.http_url(), &s(&third, "refreshToken")).await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (401, Some("refresh-token-revoked"))
    );
    wait_until("both instances refuse the family's access tokens", || {
        !a.tokens.revocations().load().is_empty() && !b.tokens.revocations().load().is_empty()
    })
    .await;
    assert_nats_denied(&env, &s(&third, "accessToken"), "the revoked family").await;
}

/// A bucket that exists with other settings is refused, naming the bucket and the
/// setting, not silently reused; readiness says so.
#[tokio::test]
async fn a_bucket_with_other_settings_is_refused_by_name() {
    let env = TestEnv::start(EnvOptions::shared()).await;
    let js = async_nats::jetstream::new(env.connect_auth_user().await);
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: "callout_sessions".into(),
        history: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    let a = env.launch_callout(env.config.clone()).await;
    let e = a.tokens.refresh().check_store().await.unwrap_err().to_string();
    assert!(e.contains("bucket callout_sessions exists with"), "{e}");
    let (ready, why) = a.ops.readiness().await;
    let detail = why["parts"]["tokenStore"]["detail"].as_str().unwrap();
    assert!(!ready && detail.contains("misconfigured"), "{why}");
}
