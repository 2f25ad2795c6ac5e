//! Key login cannot be used to lock a user out: public keys are public and anyone may ask
//! a challenge for any key, so a per-key limit let ten junk answers from one address lock
//! bob out for the minute. Key logins are limited per client address only (an ed25519
//! signature cannot be guessed).

use std::net::SocketAddr;

use axum::http::StatusCode;
use serde_json::json;

use crate::http::keylogin::{challenge, keyed, sign};

#[tokio::test]
async fn junk_answers_naming_bobs_key_do_not_lock_bob_out() {
    let k = keyed();
    let api = &k.api;
    let mallory_key = nkeys::KeyPair::new_user();
    let mallory: SocketAddr = "203.0.113.66:4000".parse().unwrap();
    let bob: SocketAddr = "198.51.100.7:5000".parse().unwrap();
    let answer = |c: &str, signature: &str| {
        json!({"challenge": c, "publicKey": k.bob.public_key(), "signature": signature}).to_string()
    };
    let c = challenge(api, &k.bob.public_key()).await;
    let junk = answer(&c, &sign(&mallory_key, &c));
    let mut limited = false;
    for _ in 0..40 {
        let r = api.post_via(mallory, "/api/auth/authenticate", &[], &junk).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
        r.assert_error(StatusCode::UNAUTHORIZED, "challenge-bad-signature");
    }
    assert!(limited, "mallory's address is limited");
    // Bob, from his own address, in the same minute: in.
    let c = challenge(api, &k.bob.public_key()).await;
    api.post_via(bob, "/api/auth/authenticate", &[], &answer(&c, &sign(&k.bob, &c)))
        .await
        .assert_ok();
}
