//! Least privilege: token reset (making any user's connections reconnect) belongs to
//! sysadmins by default. Before the fix the `service` role had it by default and the demo
//! granted it too, so any app service could disconnect every user.

use std::path::Path;

use nats_callout::config::{Config, EnforcementSettings};
use nats_callout::permissions::Role;

use crate::callout::escape::{client, env};
use crate::support::raw::pub_line;

#[test]
fn token_reset_is_sysadmins_by_default_and_in_the_demo() {
    assert_eq!(EnforcementSettings::default().token_reset_roles, [Role::Sysadmin]);
    let demo = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("callout.toml")).unwrap();
    assert!(
        !demo.enforcement.token_reset_roles.contains(&Role::Service),
        "the demo's callout.toml grants token reset to services"
    );
}

/// On a real server: a user with the `service` role may ask `auth.v1.usercontext` but its
/// `auth.v1.tokenReset` is refused by the server itself.
#[tokio::test]
async fn a_service_user_cannot_reset_tokens_by_default() {
    let env = env().await;
    let _svc = env.start_callout().await;
    let mut c = client(&env, "svc", "all1", true).await;
    c.send(&pub_line(
        "auth.v1.tokenReset",
        Some("_INBOX.svc.r1"),
        r#"{"users":["bob"]}"#,
    ))
    .await;
    c.sync().await.unwrap();
    assert!(
        c.errors
            .iter()
            .any(|e| e.contains("Permissions Violation for Publish to \"auth.v1.tokenReset\"")),
        "{:?}",
        c.errors
    );
}
