//! Hostile or broken authorization requests sent straight to `$SYS.REQ.USER.AUTH`:
//! each gets an empty reply (an immediate deny), and the service goes on serving.
//!
//! nats-server forbids clients to publish on that subject when `auth_callout` is on,
//! so these tests run the service against a real server without the callout block
//! and play the server's part with a server key of their own.

use crate::support::{DEADLINE, EnvOptions, TestEnv};
use nkeys::{KeyPair, XKey};
use serde_json::{Value, json};

/// Send a raw request as the service user; return the reply payload.
async fn send(env: &TestEnv, payload: Vec<u8>, server_xkey: Option<&XKey>) -> Vec<u8> {
    let client = env.connect_auth_user().await;
    let mut headers = async_nats::HeaderMap::new();
    if let Some(x) = server_xkey {
        headers.insert("Nats-Server-Xkey", x.public_key().as_str());
    }
    let reply = tokio::time::timeout(
        DEADLINE,
        client.request_with_headers("$SYS.REQ.USER.AUTH", headers, payload.into()),
    )
    .await
    .expect("an answer, not silence")
    .expect("request");
    reply.payload.to_vec()
}

/// The service still answers a well-formed request with a JWT.
async fn still_serving(env: &TestEnv, good: &[u8], header: Option<&XKey>, what: &str) {
    let reply = send(env, good.to_vec(), header).await;
    assert!(!reply.is_empty(), "after {what}: the service stopped answering");
}

fn raw_env(xkey: bool) -> EnvOptions {
    EnvOptions {
        xkey,
        auth_callout: false,
        ..Default::default()
    }
}

#[tokio::test]
async fn broken_requests_get_an_empty_reply_with_xkey() {
    let env = TestEnv::start(raw_env(true)).await;
    let svc = env.start_callout().await;
    let now = nats_callout::clock::now_secs();
    let w = env.world();
    let sx = &w.server_xkey;
    let token = env.token("bob");
    let good = w.request_claims(&token, "all1", now);
    let seal = |jwt: &str| w.seal(jwt.as_bytes());

    // Control: a well-formed sealed request from our fake server gets a real (sealed) answer.
    let good_sealed = seal(&w.sign_request(&good));
    let reply = send(&env, good_sealed.clone(), Some(sx)).await;
    assert!(
        !reply.is_empty() && reply.starts_with(b"xkv1"),
        "sealed answer expected"
    );

    let mutated = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let signed = |v: &Value| w.sign_request(v);
    let cases: Vec<(&str, Vec<u8>, Option<&XKey>)> = vec![
        ("garbage", b"\x00\x01garbage".to_vec(), Some(sx)),
        ("unsealed while xkey is on", signed(&good).into_bytes(), None),
        ("unsealed with the header", signed(&good).into_bytes(), Some(sx)),
        ("sealed garbage", seal("not a jwt"), Some(sx)),
        (
            "wrong aud",
            seal(&signed(&mutated(&|v| v["aud"] = json!("someone")))),
            Some(sx),
        ),
        (
            "wrong iss",
            seal(&signed(&mutated(&|v| {
                v["nats"]["server_id"]["id"] = json!(KeyPair::new_server().public_key())
            }))),
            Some(sx),
        ),
        (
            "expired",
            seal(&signed(&mutated(&|v| v["exp"] = json!(now - 30)))),
            Some(sx),
        ),
        (
            "badly signed",
            seal(&nats_callout::claims::encode(&good, &KeyPair::new_server()).unwrap()),
            Some(sx),
        ),
        (
            "header key differs from the signed key",
            {
                let v = mutated(&|v| v["nats"]["server_id"]["xkey"] = json!(XKey::new().public_key()));
                seal(&signed(&v))
            },
            Some(sx),
        ),
    ];
    let before = svc.stats();
    for (what, payload, header) in &cases {
        let reply = send(&env, payload.clone(), *header).await;
        assert!(reply.is_empty(), "{what}: expected an empty reply");
        still_serving(&env, &good_sealed, Some(sx), what).await;
    }
    assert_eq!(svc.stats().refused, before.refused + cases.len() as u64);
    assert_eq!(svc.stats().allowed, before.allowed + cases.len() as u64);
    // Service discovery reports the refusals and the last one's reason, with its time.
    let stats = env
        .connect_auth_user()
        .await
        .request("$SRV.STATS.nats-callout", "".into())
        .await
        .unwrap();
    let stats: Value = serde_json::from_slice(&stats.payload).unwrap();
    let e = &stats["endpoints"][0];
    assert_eq!(e["num_errors"], cases.len() as u64, "{stats}");
    let last = e["last_error"].as_str().unwrap();
    assert!(last.ends_with(" request-xkey-mismatch"), "{last}");
    assert!(
        nats_callout::clock::parse_time(last.split(' ').next().unwrap()).is_ok(),
        "{last}"
    );
}

#[tokio::test]
async fn sealed_requests_are_refused_without_xkey() {
    let env = TestEnv::start(raw_env(false)).await;
    let _svc = env.start_callout().await;
    let now = nats_callout::clock::now_secs();
    let w = env.world();
    let sx = &w.server_xkey;
    let token = env.token("bob");
    let jwt = w.request_jwt(&token, "all1", now);
    let jwt_copy = jwt.clone();

    // Control: the plain request is answered with a JWT.
    let reply = send(&env, jwt.clone().into_bytes(), None).await;
    assert!(reply.starts_with(b"eyJ"));

    let some_key = XKey::new();
    let sealed = sx
        .seal(
            jwt.as_bytes(),
            &XKey::from_public_key(&some_key.public_key()).unwrap(),
        )
        .unwrap();
    assert!(
        send(&env, sealed.clone(), Some(sx)).await.is_empty(),
        "sealed with header"
    );
    assert!(send(&env, sealed, None).await.is_empty(), "sealed without header");
    assert!(
        send(&env, jwt.into_bytes(), Some(sx)).await.is_empty(),
        "plain but claiming a server xkey"
    );
    still_serving(&env, jwt_copy.as_bytes(), None, "sealed requests").await;
}

/// Requests beyond the concurrency bound wait instead of being denied.
#[tokio::test]
async fn overload_queues_instead_of_denying() {
    let env = TestEnv::start(EnvOptions {
        tweak: |c| c.callout.max_in_flight = 1,
        ..Default::default()
    })
    .await;
    let _svc = env.start_callout().await;
    let token = env.token("bob");
    let connects = (0..30).map(|_| env.connect(Some(&token), "all1;bob1"));
    let results = futures::future::join_all(connects).await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "no connection denied under load");
}
