//! No user JWT may subscribe to a delegate's subject, publish on it, or answer an ask: whoever
//! answers there grants rooms. With the app account's export the subject lives where users
//! are placed; the templates are checked against it at start, and here a user granted a
//! delegated room tries, in raw protocol, every way to the subject and to an ask's reply.

use std::time::Duration;

use crate::delegation::{AppService, Decisions, Reply, app_account_client, app_world, delegate, serve};
use crate::support::raw::{Raw, pub_line};
use crate::support::wait_until;

#[tokio::test]
async fn a_user_cannot_subscribe_to_a_delegate_subject_nor_answer_an_ask() {
    let env = app_world().await;
    let _svc = serve(
        &env,
        vec![
            delegate("team-*", "apps.teams", 250),
            delegate("quiet-*", "apps.quiet", 1000),
        ],
    )
    .await;
    let app = app_account_client(&env).await;
    let _teams = AppService::start(app.clone(), "apps.teams", Reply::access("readwrite")).await;
    let quiet = AppService::start(app, "apps.quiet", Reply::Silent).await;
    let mut decisions = Decisions::watch(&env).await;

    let body = Raw::connect_body(Some(&env.token("bob")), "all1;team-a", false);
    let mut bob = Raw::connect(env.server.port, &body).await.unwrap();
    let e = decisions.next("bob").await;
    assert_eq!(e["rooms"]["granted"][1]["room"], "team-a", "{e}");
    for (i, subject) in ["apps.teams", "apps.>", "apps.*", ">", "_R_.>", "$SYS.>"]
        .iter()
        .enumerate()
    {
        bob.send(&format!("SUB {subject} s{i}\r\n")).await;
    }
    bob.send(&pub_line(
        "apps.teams",
        Some("_INBOX.bob.x"),
        r#"{"user":"bob","room":"team-z"}"#,
    ))
    .await;
    bob.sync().await.unwrap();
    for subject in ["apps.teams", "apps.>", "apps.*", ">", "_R_.>", "$SYS.>"] {
        let needle = format!("Permissions Violation for Subscription to \"{subject}\"");
        assert!(
            bob.errors.iter().any(|e| e.contains(&needle)),
            "{needle}: {:?}",
            bob.errors
        );
    }
    assert!(
        bob.errors
            .iter()
            .any(|e| e.contains("Permissions Violation for Publish to \"apps.teams\"")),
        "{:?}",
        bob.errors
    );

    // An ask waiting for its answer: bob tries to answer it himself.
    let token = env.token("bob");
    let port = env.server.port;
    let connecting =
        tokio::spawn(
            async move { Raw::connect(port, &Raw::connect_body(Some(&token), "quiet-1", false)).await },
        );
    wait_until("the ask about quiet-1", || {
        !quiet.replies.lock().unwrap().is_empty()
    })
    .await;
    let reply_to = quiet.replies.lock().unwrap()[0].clone();
    bob.send(&pub_line(&reply_to, None, r#"{"access":"readwrite"}"#))
        .await;
    bob.sync().await.unwrap();
    let needle = format!("Permissions Violation for Publish to \"{reply_to}\"");
    assert!(
        bob.errors.iter().any(|e| e.contains(&needle)),
        "{needle}: {:?}",
        bob.errors
    );
    let _late = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .unwrap();
    let e = decisions.next("bob").await;
    assert_eq!(e["rooms"]["granted"], serde_json::json!([]), "{e}");
    assert_eq!(e["rooms"]["refused"][0]["reason"], "delegate-unavailable", "{e}");
}
