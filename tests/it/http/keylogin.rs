//! `POST /api/auth/challenge` and `/api/auth/authenticate`: a key from the files logs in by
//! signing a challenge; expired, replayed, foreign-key, badly signed, unknown-key and
//! malformed answers are each refused with their own `x-error-code`, and so is an answer
//! naming another application or device than its challenge binds (rate limits: the
//! security suite).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;

pub(crate) struct Keyed {
    pub(crate) api: Api,
    pub(crate) bob: nkeys::KeyPair,
    _files: TempDir,
}

/// The demo files with an nkey for bob.
pub(crate) fn keyed() -> Keyed {
    let bob = nkeys::KeyPair::new_user();
    let files = permissions_with(&format!(
        "[users.carol]\nnkeys = [\"{}\"]\n",
        nkeys::KeyPair::new_user().public_key()
    ));
    // bob's own entry lives in users.toml: add the key there.
    let users = files.path().join("users.toml");
    let text = std::fs::read_to_string(&users).unwrap().replacen(
        "[users.bob]\n",
        &format!("[users.bob]\nnkeys = [\"{}\"]\n", bob.public_key()),
        1,
    );
    std::fs::write(&users, text).unwrap();
    Keyed {
        api: Api::with(HttpSettings::default(), files.path()),
        bob,
        _files: files,
    }
}

pub(crate) async fn challenge(api: &Api, public_key: &str) -> String {
    let r = api
        .post("/api/auth/challenge", json!({"publicKey": public_key}), &[])
        .await;
    r.assert_ok();
    assert_eq!(secs_of(r.json["expiresAt"].as_str().unwrap()), api.now() + 60);
    r.json["challenge"].as_str().unwrap().to_string()
}

pub(crate) fn sign(kp: &nkeys::KeyPair, text: &str) -> String {
    URL_SAFE_NO_PAD.encode(kp.sign(text.as_bytes()).unwrap())
}

pub(crate) async fn answer(api: &Api, c: &str, kp: &nkeys::KeyPair, signature: &str) -> Resp {
    api.post(
        "/api/auth/authenticate",
        json!({"challenge": c, "publicKey": kp.public_key(), "signature": signature, "deviceId": "cli"}),
        &[],
    )
    .await
}

#[tokio::test]
async fn a_signed_challenge_logs_the_keys_user_in_once() {
    let Keyed { api, bob, .. } = keyed();
    let c = challenge(&api, &bob.public_key()).await;
    let r = answer(&api, &c, &bob, &sign(&bob, &c)).await;
    r.assert_ok();
    assert_eq!(
        (r.json["userId"].as_str(), r.json["message"].as_str()),
        (Some("bob"), Some("logged in"))
    );
    api.me(&r.access()).await.assert_ok();
    // The same answer again: refused, even within the minute.
    answer(&api, &c, &bob, &sign(&bob, &c))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "challenge-replayed");
}

#[tokio::test]
async fn every_bad_answer_has_its_own_code() {
    let Keyed { api, bob, .. } = keyed();
    let mallory = nkeys::KeyPair::new_user();
    let c = challenge(&api, &bob.public_key()).await;
    // Signed by another key, for bob's key.
    answer(&api, &c, &bob, &sign(&mallory, &c))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "challenge-bad-signature");
    answer(&api, &c, &bob, "%%%")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "challenge-bad-signature");
    // Bob's challenge answered by another key.
    answer(&api, &c, &mallory, &sign(&mallory, &c))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "challenge-foreign-key");
    // A key nobody logs in with: its own challenge, well signed, still no user.
    let m = challenge(&api, &mallory.public_key()).await;
    answer(&api, &m, &mallory, &sign(&mallory, &m))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unknown-key");
    // Not our challenge; a tampered one.
    answer(&api, "a.b.c", &bob, &sign(&bob, "a.b.c"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "challenge-invalid");
    let tampered = format!("{}x", c);
    answer(&api, &tampered, &bob, &sign(&bob, &tampered))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "challenge-invalid");
    // Past its minute.
    api.advance(61);
    answer(&api, &c, &bob, &sign(&bob, &c))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "challenge-expired");
    // Malformed requests.
    api.post("/api/auth/challenge", json!({"publicKey": "SUAseed"}), &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-public-key");
    api.post(
        "/api/auth/challenge",
        json!({"publicKey": nkeys::KeyPair::new_account().public_key()}),
        &[],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad-public-key");
    api.post("/api/auth/authenticate", json!({"challenge": c}), &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad-request");
}

/// A challenge asked with `clientId` and `deviceId` binds them: an answer naming others is
/// refused (`challenge-binding-mismatch`) without using the challenge up; the right answer
/// logs in with them.
#[tokio::test]
async fn a_bound_challenge_is_answered_for_its_application_and_device_only() {
    let Keyed { api, bob, .. } = keyed();
    let r = api
        .post(
            "/api/auth/challenge",
            json!({"publicKey": bob.public_key(), "clientId": "cli", "deviceId": "phone"}),
            &[],
        )
        .await;
    r.assert_ok();
    let c = r.json["challenge"].as_str().unwrap().to_string();
    let with = |client_id: Value, device_id: Value| {
        json!({"challenge": c, "publicKey": bob.public_key(), "signature": sign(&bob, &c),
               "clientId": client_id, "deviceId": device_id})
    };
    let mismatch = [
        with(json!("cli"), json!("laptop")),
        with(json!("cli"), Value::Null),
        with(json!("web"), json!("phone")),
        with(Value::Null, json!("phone")),
    ];
    for body in mismatch {
        api.post("/api/auth/authenticate", body.clone(), &[])
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "challenge-binding-mismatch");
    }
    let r = api
        .post("/api/auth/authenticate", with(json!("cli"), json!("phone")), &[])
        .await;
    r.assert_ok();
    assert_eq!(r.json["clientId"], "cli");
    let me = api.me(&r.access()).await;
    assert_eq!(me.json["data"]["deviceId"], "phone");
    // Used now, whoever answers.
    api.post("/api/auth/authenticate", with(json!("cli"), json!("phone")), &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "challenge-replayed");
    // Bad names in the challenge request are refused before anything is signed.
    for bad in [
        json!({"publicKey": bob.public_key(), "deviceId": "a b"}),
        json!({"publicKey": bob.public_key(), "clientId": "a.b"}),
        json!({"publicKey": bob.public_key(), "other": 1}),
    ] {
        api.post("/api/auth/challenge", bad, &[])
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad-request");
    }
}
