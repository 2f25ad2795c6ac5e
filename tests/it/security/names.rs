//! Names have one owner. Guest ids (`guest-…`) share the user namespace and are seen by
//! every member of a room, so no file and no provider may use that prefix (before the fix a
//! provider token with `preferred_username = guest-…` listed, impersonated and revoked that
//! guest). And a provider asserts users of the permission files only when configured to
//! (`file_users`; before, any trusted provider could be `admin`).

use std::path::Path;

use async_nats::ConnectErrorKind;
use nats_callout::config::Config;
use nats_callout::oidc::UnknownUsers;

use crate::support::idp::Idp;
use crate::support::{CalloutHandle, EnvOptions, TestEnv, talks};

/// A guest group with its room, besides the demo files.
const GUESTS: &str = "[groups.guest]\nmembers = []\n\n[rooms.lobby]\nmembers = [\"@guest\", \"@everyone\"]\n\n[groups.staff]\nmembers = []\n\n[rooms.staff1]\nmembers = [\"@staff\"]\n";

#[test]
fn the_files_cannot_define_a_guest_name() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::env::copy_demo_permissions(dir.path());
    std::fs::write(
        dir.path().join("guests.toml"),
        "# guest names are the guests'\n[users.guest-x7q2]\n\n[users.Guest-Admin]\nroles = [\"admin\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nats-callout"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    for (line, name) in [(2, "guest-x7q2"), (4, "Guest-Admin")] {
        assert!(
            text.contains(&format!("guests.toml:{line}:")) && text.contains(&format!("{name:?} is reserved")),
            "{name} at line {line}: {text}"
        );
    }
}

/// The service, trusting `idp` as `corp` with `file_users` as given.
async fn world(idp: &Idp, file_users: Option<bool>) -> (TestEnv, CalloutHandle) {
    let env = TestEnv::start(EnvOptions::default()).await;
    std::fs::write(env.config.permissions.dir.join("guests.toml"), GUESTS).unwrap();
    let mut config = env.config.clone();
    config.http.listen = "127.0.0.1:0".into();
    config.http.guests = true;
    let mut corp = idp.settings("corp", UnknownUsers::GroupsOnly);
    corp.file_users = file_users;
    config.identity.oidc = vec![corp];
    let service = env.start_callout_with(config).await;
    (env, service)
}

/// The reason of the latest deny of `service`.
fn last_deny(service: &CalloutHandle) -> (String, Option<String>) {
    let d = service.ops.counters.recent.denies();
    let d = d.first().expect("a deny");
    (d.reason.clone(), d.user.clone())
}

#[tokio::test]
async fn a_provider_cannot_assert_a_guest() {
    let dir = tempfile::tempdir().unwrap();
    let idp = Idp::start(&dir.path().join("idp"), &[]).await;
    let (env, service) = world(&idp, None).await;
    // A real guest, in the lobby.
    let (status, guest, _) = crate::support::api::post(
        &format!("{}/api/auth/guest", service.http_url()),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 200, "{guest}");
    let guest_id = crate::support::api::s(&guest, "userId");
    let real = env
        .connect(Some(&crate::support::api::s(&guest, "accessToken")), "lobby")
        .await
        .expect("the guest connects");
    talks(&real, "lobby", &guest_id).await;
    // The provider names the guest (in any case): refused with its reason.
    for name in [guest_id.clone(), guest_id.to_uppercase()] {
        let token = idp.sign(idp.claims(&name, &["staff"]), "current").await;
        let err = env.connect(Some(&token), "lobby").await.err().map(|e| e.kind());
        assert_eq!(err, Some(ConnectErrorKind::AuthorizationViolation), "{name}");
        assert_eq!(last_deny(&service).0, "reserved-user-name", "{name}");
    }
}

#[tokio::test]
async fn a_provider_without_file_users_cannot_be_a_file_user() {
    let dir = tempfile::tempdir().unwrap();
    let idp = Idp::start(&dir.path().join("idp"), &[]).await;
    let (env, service) = world(&idp, Some(false)).await;
    // admin is a file user (admin, sysadmin): refused, never taken.
    let token = idp.sign(idp.claims("admin", &["chat-admins"]), "current").await;
    let err = env.connect(Some(&token), "all1").await.err().map(|e| e.kind());
    assert_eq!(err, Some(ConnectErrorKind::AuthorizationViolation));
    assert_eq!(
        last_deny(&service),
        ("file-user-refused".into(), Some("admin".into()))
    );
    // Its own users get rooms through groups.
    let token = idp.sign(idp.claims("dana", &["staff"]), "current").await;
    let dana = env
        .connect(Some(&token), "staff1")
        .await
        .expect("a provider user");
    talks(&dana, "staff1", "dana").await;
}

#[tokio::test]
async fn a_provider_with_file_users_is_the_files_user() {
    let dir = tempfile::tempdir().unwrap();
    let idp = Idp::start(&dir.path().join("idp"), &[]).await;
    // One provider: file_users defaults to true (contract 9).
    let (env, _service) = world(&idp, None).await;
    let token = idp.sign(idp.claims("bob", &[]), "current").await;
    let bob = env
        .connect(Some(&token), "bob1")
        .await
        .expect("bob from the files");
    talks(&bob, "bob1", "bob").await;
}

/// Several providers: each must say whether it may assert the files' users.
#[test]
fn several_providers_must_each_say_file_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callout.toml");
    let provider = |name: &str, extra: &str| {
        format!(
            "[[identity.oidc]]\nname = \"{name}\"\nissuer = \"https://{name}.example\"\naudience = \"nats\"\n{extra}"
        )
    };
    std::fs::write(
        &path,
        provider("corp", "file_users = true\n") + &provider("partner", ""),
    )
    .unwrap();
    let err = Config::load(Path::new(&path)).unwrap_err().to_string();
    assert!(
        err.contains("identity.oidc") && err.contains("\"partner\"") && err.contains("file_users"),
        "{err}"
    );
    std::fs::write(
        &path,
        provider("corp", "file_users = true\n") + &provider("partner", "file_users = false\n"),
    )
    .unwrap();
    let c = Config::load(Path::new(&path)).unwrap();
    assert!(c.identity.oidc[0].asserts_file_users() && !c.identity.oidc[1].asserts_file_users());
}
