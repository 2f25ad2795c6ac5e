//! Grant integrity against a real nats-server: every protocol trick we know of, tried with raw
//! protocol lines, and a seeded random walk checked against a model of the grants. The judge
//! is an observer in the app account subscribed to `>`: it sees every message anybody managed
//! to publish there. Each trick runs through both doors ([`Door`]): clients authorized by the
//! callout, and clients connected with NATS credentials in operator mode (a user JWT minted
//! for their own nkey, no callout on connect), which must get exactly the callout's grant;
//! and a JWT is useless without its key.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::support::operator::{CREDENTIALS_TTL, World};
use crate::support::raw::{Raw, hpub_line, matches, pub_line};
use crate::support::{CalloutHandle, EnvOptions, TestEnv, TokenIn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Users beside the demo's bob, alice and admin: read-only and write-only rooms, a service.
const EXTRA_USERS: &str = r#"
[users.carol]
[users.carol.rooms]
news = "read"
drop = "write"

[users.svc]
roles = ["service"]
[users.svc.rooms]
all1 = "readwrite"
"#;

/// Every room any test asks for, granted or not.
const ROOMS: &[&str] = &["all1", "alice1", "bob1", "news", "drop", "zzz"];

/// The grants as the book's client conventions describe them, written out independently of
/// the code under test: room access per user, and the subjects roles add.
fn access(user: &str, room: &str) -> (bool, bool) {
    let rw = (true, true);
    match (user, room) {
        ("admin", _) => rw,
        ("bob", "all1" | "all2" | "all3" | "bob1" | "bob2") => rw,
        ("alice", "all1" | "all2" | "all3" | "alice1" | "alice2") => rw,
        ("carol", "news") => (true, false),
        ("carol", "drop") => (false, true),
        ("svc", "all1") => rw,
        _ => (false, false),
    }
}

/// Publish and subscribe allow lists for `user` connected with `rooms`.
#[derive(Debug, Clone, Default)]
struct Grant {
    publish: Vec<String>,
    subscribe: Vec<String>,
}

fn grant(user: &str, rooms: &str) -> Grant {
    let mut g = Grant {
        publish: vec![],
        subscribe: vec![format!("_INBOX.{user}.>")],
    };
    for room in rooms.split(';').filter(|r| !r.is_empty()) {
        let (read, write) = access(user, room);
        if read {
            g.subscribe.push(format!("chat.{room}.>"));
        }
        if write {
            g.publish.push(format!("chat.{room}.{user}"));
        }
    }
    match user {
        // Token reset is not the service role's by default (least privilege).
        "svc" => g.publish.push("auth.v1.usercontext".into()),
        "admin" => g.publish.push("auth.v1.tokenReset".into()),
        _ => {}
    }
    g
}

impl Grant {
    fn may_publish(&self, subject: &str) -> bool {
        self.publish.iter().any(|p| matches(p, subject))
    }
    fn may_subscribe(&self, subject: &str) -> bool {
        self.subscribe.iter().any(|p| matches(p, subject))
    }
}

pub(crate) async fn env() -> TestEnv {
    let env = TestEnv::start(EnvOptions {
        jetstream: true,
        ..Default::default()
    })
    .await;
    std::fs::write(env.config.permissions.dir.join("escape.toml"), EXTRA_USERS).unwrap();
    env
}

/// A raw chat client of `user` asking for `rooms`.
pub(crate) async fn client(env: &TestEnv, user: &str, rooms: &str, echo: bool) -> Raw {
    client_via(env, user, rooms, echo, TokenIn::AuthToken).await
}

/// A raw chat client of `user` asking for `rooms`, its token where `how` says.
async fn client_via(env: &TestEnv, user: &str, rooms: &str, echo: bool, how: TokenIn) -> Raw {
    let body = Raw::connect_body_via(Some(&env.token(user)), rooms, echo, how);
    Raw::connect(env.server.port, &body)
        .await
        .unwrap_or_else(|e| panic!("{user} connects with {rooms:?}: {e}"))
}

/// How the suite's clients get in: through the callout (config mode, xkey on, JetStream),
/// or with NATS credentials minted over HTTP for a fresh nkey of theirs (operator mode, xkey
/// on): the same users, rooms and tricks, the same expected grant.
enum Door {
    /// The service first: stopped before its server.
    Callout {
        _service: CalloutHandle,
        env: Box<TestEnv>,
    },
    Credentials(Box<World>),
}

impl Door {
    async fn callout() -> Door {
        let env = env().await;
        Door::Callout {
            _service: env.start_callout().await,
            env: Box::new(env),
        }
    }

    async fn credentials() -> Door {
        let files = [("escape.toml", EXTRA_USERS)];
        let world = World::start_with_files(true, CREDENTIALS_TTL, &files, |_| {}).await;
        Door::Credentials(Box::new(world))
    }

    async fn client(&self, user: &str, rooms: &str, echo: bool) -> Raw {
        self.client_via(user, rooms, echo, TokenIn::AuthToken).await
    }

    /// A raw chat client of `user` asking for `rooms`: through the callout with its token
    /// where `how` says, or with credentials minted for `rooms` (`how` does not apply).
    async fn client_via(&self, user: &str, rooms: &str, echo: bool, how: TokenIn) -> Raw {
        match self {
            Door::Callout { env, .. } => client_via(env, user, rooms, echo, how).await,
            Door::Credentials(w) => w.raw_client(user, rooms, echo).await,
        }
    }

    async fn observer(&self) -> Raw {
        match self {
            Door::Callout { env, .. } => env.observer().await,
            Door::Credentials(w) => w.observer().await,
        }
    }

    fn token(&self, user: &str) -> String {
        match self {
            Door::Callout { env, .. } => env.token(user),
            Door::Credentials(w) => w.token(user),
        }
    }
}

/// The sender of a payload written by [`payload`].
fn sender_of(payload: &str) -> Option<&str> {
    payload.strip_prefix("from:")?.split(':').next()
}

fn payload(user: &str, n: usize) -> String {
    format!("from:{user}:{n}")
}

/// The observer's verdict: every message it saw that a test client sent lies in that
/// client's publish grant. Returns the messages seen since `from`.
fn judge(observer: &Raw, from: usize, grants: &HashMap<&str, Grant>) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for m in observer.since(from) {
        if let Some(user) = sender_of(&m.payload) {
            let g = &grants[user];
            assert!(
                g.may_publish(&m.subject),
                "{user} got a message onto {:?}, outside its publish grant {:?}",
                m.subject,
                g.publish
            );
        }
        seen.push((m.subject.clone(), m.payload.clone()));
    }
    seen
}

/// Every message a client received lies in its subscribe grant.
fn received_within(c: &Raw, user: &str, g: &Grant) {
    for m in &c.delivered {
        assert!(
            g.may_subscribe(&m.subject),
            "{user} received {:?} outside its subscribe grant {:?}",
            m.subject,
            g.subscribe
        );
    }
}

fn violation(c: &Raw, what: &str, subject: &str) -> bool {
    let needle = format!("Permissions Violation for {what} to \"{subject}\"");
    c.errors.iter().any(|e| e.contains(&needle))
}

/// The three-line exploit of issue 10 and its variants: a reply subject the attacker chose,
/// delivered back to himself, must never become a publish permission.
#[tokio::test]
async fn reply_subjects_are_never_a_way_out() {
    reply_subjects(&Door::callout().await).await;
}

#[tokio::test]
async fn reply_subjects_are_never_a_way_out_with_credentials() {
    reply_subjects(&Door::credentials().await).await;
}

async fn reply_subjects(door: &Door) {
    let mut observer = door.observer().await;
    let grants: HashMap<&str, Grant> = [
        ("bob", grant("bob", "all1;bob1")),
        ("alice", grant("alice", "all1;alice1")),
    ]
    .into();
    let mut alice = door.client("alice", "all1;alice1", true).await;
    alice.send("SUB chat.alice1.> 1\r\n").await;
    alice.sync().await.unwrap();

    // (name, echo, bait sent by a second connection of bob, the bait: a message whose reply
    // subject is the target, delivered back to bob)
    let rw = || pub_line("chat.all1.bob", Some("chat.alice1.alice"), "x");
    let rw_h = || {
        hpub_line(
            "chat.all1.bob",
            Some("chat.alice1.alice"),
            ("Nats-Msg-Id", "1"),
            "x",
        )
    };
    let inbox = || pub_line("_INBOX.bob.x", Some("chat.alice1.alice"), "x");
    let inbox_h = || hpub_line("_INBOX.bob.x", Some("chat.alice1.alice"), ("a", "b"), "x");
    // One subscription each: with two, the second delivery would use up a one-time response
    // permission before the attacker could.
    let (room_sub, queue_sub, inbox_sub) = (
        "SUB chat.all1.> 8\r\n",
        "SUB chat.all1.> q 8\r\n",
        "SUB _INBOX.bob.> 8\r\n",
    );
    let variants: Vec<(&str, bool, bool, &str, String)> = vec![
        ("read-write room, to himself", true, false, room_sub, rw()),
        ("read-write room, to himself, HPUB", true, false, room_sub, rw_h()),
        (
            "read-write room, queue subscription",
            true,
            false,
            queue_sub,
            rw(),
        ),
        ("read-write room, echo off", false, false, room_sub, rw()),
        (
            "read-write room, from his other connection",
            true,
            true,
            room_sub,
            rw(),
        ),
        (
            "read-write room, from his other connection, HPUB",
            false,
            true,
            queue_sub,
            rw_h(),
        ),
        ("own inbox, to himself", true, false, inbox_sub, inbox()),
        (
            "own inbox, from his other connection",
            true,
            true,
            inbox_sub,
            inbox(),
        ),
        (
            "own inbox, from his other connection, HPUB",
            true,
            true,
            inbox_sub,
            inbox_h(),
        ),
        (
            "request from alice into a shared room, reply subject a room of hers",
            true,
            false,
            room_sub,
            pub_line("chat.all1.alice", Some("chat.alice1.alice"), "x"),
        ),
    ];
    for (name, echo, other, sub, bait) in &variants {
        let mut bob = door.client("bob", "all1;bob1", *echo).await;
        bob.send(sub).await;
        bob.sync().await.unwrap();
        let mut second = door.client("bob", "all1;bob1", true).await;
        let from = observer.delivered.len();
        if *other {
            second.send(bait).await;
            second.sync().await.unwrap();
        } else if name.starts_with("request from alice") {
            alice.send(bait).await;
            alice.sync().await.unwrap();
        } else {
            bob.send(bait).await;
        }
        bob.sync().await.unwrap();
        // What a client would do with each reply subject it received: answer it.
        let replies: Vec<String> = bob.delivered.iter().filter_map(|m| m.reply.clone()).collect();
        for r in &replies {
            bob.send(&pub_line(r, None, "forged")).await;
            bob.send(&hpub_line(r, None, ("x", "y"), "forged")).await;
        }
        bob.send(&pub_line("chat.alice1.alice", None, "forged")).await;
        bob.sync().await.unwrap();
        alice.sync().await.unwrap();
        observer.sync().await.unwrap();
        judge(&observer, from, &grants);
        assert!(
            observer
                .since(from)
                .iter()
                .all(|m| m.subject != "chat.alice1.alice"),
            "{name}: bob reached alice1"
        );
        assert!(
            alice.delivered.iter().all(|m| m.payload != "forged"),
            "{name}: alice received the forgery"
        );
        assert!(
            violation(&bob, "Publish", "chat.alice1.alice"),
            "{name}: no violation reported: {:?}",
            bob.errors
        );
        received_within(&bob, "bob", &grants["bob"]);
    }

    // A request from alice into a shared room: bob sees her reply subject but may not answer.
    let mut bob = door.client("bob", "all1;bob1", true).await;
    bob.send("SUB chat.all1.> 8\r\n").await;
    bob.sync().await.unwrap();
    let from = observer.delivered.len();
    alice.send("SUB _INBOX.alice.> 2\r\n").await;
    alice
        .send(&pub_line("chat.all1.alice", Some("_INBOX.alice.r1"), "question"))
        .await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let reply = bob.delivered.last().and_then(|m| m.reply.clone());
    assert_eq!(reply.as_deref(), Some("_INBOX.alice.r1"));
    bob.send(&pub_line("_INBOX.alice.r1", None, "answer")).await;
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    observer.sync().await.unwrap();
    assert!(violation(&bob, "Publish", "_INBOX.alice.r1"), "{:?}", bob.errors);
    assert!(alice.delivered.iter().all(|m| m.payload != "answer"));
    judge(&observer, from, &grants);
}

/// Subscriptions: wildcards, partial wildcards, queue groups and other users' inboxes get
/// nothing outside the grant; publishing to wildcards or system subjects gets nowhere.
#[tokio::test]
async fn wildcards_queues_inboxes_and_system_subjects_stay_closed() {
    wildcards_and_system_subjects(&Door::callout().await).await;
}

#[tokio::test]
async fn wildcards_queues_inboxes_and_system_subjects_stay_closed_with_credentials() {
    wildcards_and_system_subjects(&Door::credentials().await).await;
}

async fn wildcards_and_system_subjects(door: &Door) {
    let mut observer = door.observer().await;
    let bob_grant = grant("bob", "all1;bob1");
    let grants: HashMap<&str, Grant> = [("bob", bob_grant.clone())].into();
    let mut bob = door.client("bob", "all1;bob1", true).await;
    let refused_subs = [
        ">",
        "*",
        "chat.>",
        "chat.*",
        "chat.*.>",
        "chat.*.alice",
        "*.alice1.>",
        "chat.alice1.*",
        "chat.alice1.>",
        "_INBOX.>",
        "_INBOX.*.>",
        "_INBOX.alice.>",
        "$JS.API.>",
        "$SYS.>",
        "$SRV.>",
        "auth.v1.>",
        "_R_.>",
        "nats-callout.>",
        "nats-callout.audit.>",
        "nats-callout.admin.>",
        "nats-callout.notice.alice",
        "nats-callout.notice.*",
    ];
    for (i, s) in refused_subs.iter().enumerate() {
        bob.send(&format!("SUB {s} {i}\r\nSUB {s} grp {}\r\n", i + 100))
            .await;
    }
    // Inside the grant, also with wildcards that stay inside it.
    bob.send("SUB chat.all1.* 500\r\nSUB chat.all1.> grp 501\r\nSUB chat.bob1.bob 502\r\n")
        .await;
    bob.sync().await.unwrap();
    for s in refused_subs {
        assert!(
            violation(&bob, "Subscription", s),
            "SUB {s} was not refused: {:?}",
            bob.errors
        );
    }
    for s in ["chat.all1.*", "chat.bob1.bob"] {
        assert!(
            !violation(&bob, "Subscription", s),
            "SUB {s} inside the grant refused"
        );
    }

    let refused_pubs = [
        "chat.alice1.alice",
        "chat.all1.alice",
        "chat.all1",
        "chat.all1.bob.x",
        "chat.*.bob",
        "chat.all1.*",
        "chat.>",
        ">",
        "_INBOX.bob.x",
        "_INBOX.alice.x",
        "$JS.API.INFO",
        "$JS.API.STREAM.CREATE.x",
        "$SYS.REQ.SERVER.PING.CONNZ",
        "$SYS.REQ.ACCOUNT.PING.CONNZ",
        "$SYS.REQ.ACCOUNT.PING.STATZ",
        "$SYS.REQ.USER.INFO",
        "$SRV.PING",
        "auth.v1.usercontext",
        "auth.v1.tokenReset",
        "$KV.callout_revocations.user.vYm9i",
        "$JS.API.STREAM.INFO.KV_callout_sessions",
        "nats-callout.admin.explain",
        "nats-callout.admin.revoke",
        "nats-callout.audit.allowed",
        "nats-callout.notice.bob",
        "nats-callout.notice.alice",
    ];
    let from = observer.delivered.len();
    for (i, s) in refused_pubs.iter().enumerate() {
        bob.send(&pub_line(s, Some("_INBOX.bob.reply"), &payload("bob", i)))
            .await;
        bob.send(&hpub_line(
            s,
            Some("_INBOX.bob.reply"),
            ("k", "v"),
            &payload("bob", i),
        ))
        .await;
    }
    bob.send("SUB _INBOX.bob.> 600\r\n").await;
    bob.send(&pub_line("chat.all1.bob", None, &payload("bob", 999)))
        .await;
    bob.sync().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // room for a stray reply
    bob.sync().await.unwrap();
    observer.sync().await.unwrap();
    for s in refused_pubs {
        assert!(
            violation(&bob, "Publish", s),
            "PUB {s} was not refused: {:?}",
            bob.errors
        );
    }
    let seen = judge(&observer, from, &grants);
    assert_eq!(
        seen,
        vec![("chat.all1.bob".to_string(), payload("bob", 999))],
        "exactly the one message inside the grant got through"
    );
    assert!(
        bob.delivered.iter().all(|m| !m.subject.starts_with("_INBOX")),
        "no reply reached bob from a refused request: {:?}",
        bob.delivered
    );
    received_within(&bob, "bob", &bob_grant);
    // The wildcard subscription inside the grant works.
    assert!(
        bob.delivered
            .iter()
            .any(|m| m.sid == "500" && m.payload == payload("bob", 999))
    );
}

/// Role-derived subjects: the service endpoints only for `service`, token reset only for
/// the roles in `enforcement.token_reset_roles`; replies come back on the caller's inbox.
#[tokio::test]
async fn service_subjects_only_by_role() {
    service_subjects(&Door::callout().await).await;
}

/// In operator mode the service's subjects live in AUTH, imported by APP: the import opens
/// them to nobody the grant does not.
#[tokio::test]
async fn service_subjects_only_by_role_with_credentials() {
    service_subjects(&Door::credentials().await).await;
}

async fn service_subjects(door: &Door) {
    let ask = |subject: &str, reply: &str, body: &str| pub_line(subject, Some(reply), body);
    let context_req = json!({ "token": door.token("bob") }).to_string();
    let reset_req = json!({ "users": ["nobody"] }).to_string();
    // (user, rooms, subject, body, answered)
    let cases = [
        ("bob", "all1", "auth.v1.usercontext", &context_req, false),
        ("bob", "all1", "auth.v1.tokenReset", &reset_req, false),
        ("carol", "news;drop", "auth.v1.usercontext", &context_req, false),
        ("admin", "all1", "auth.v1.usercontext", &context_req, false),
        ("admin", "all1", "auth.v1.tokenReset", &reset_req, true),
        ("svc", "all1", "auth.v1.usercontext", &context_req, true),
        ("svc", "all1", "auth.v1.tokenReset", &reset_req, false),
    ];
    for (user, rooms, subject, body, answered) in cases {
        let mut c = door.client(user, rooms, true).await;
        c.send(&format!("SUB _INBOX.{user}.> 1\r\n")).await;
        c.send(&ask(subject, &format!("_INBOX.{user}.r1"), body)).await;
        c.sync().await.unwrap();
        assert_eq!(
            violation(&c, "Publish", subject),
            !answered,
            "{user} -> {subject}: {:?}",
            c.errors
        );
        // A refused request is never answered; an allowed one is, on the caller's inbox.
        let wait = if answered { 500 } else { 10 };
        for _ in 0..wait {
            if !c.delivered.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.sync().await.unwrap();
        }
        assert_eq!(
            !c.delivered.is_empty(),
            answered,
            "{user} -> {subject}: {:?}",
            c.delivered
        );
        if answered {
            let reply: serde_json::Value = serde_json::from_str(&c.delivered[0].payload).unwrap();
            assert!(reply.get("error").is_none(), "{user} -> {subject}: {reply}");
        }
    }
}

/// A client that reconnects with a new room list keeps nothing of its old grant, even
/// though its client library subscribes again to everything it had.
#[tokio::test]
async fn a_reconnect_with_fewer_rooms_keeps_nothing_of_the_old_grant() {
    use std::sync::{Arc, Mutex};
    let env = env().await;
    let _svc = env.start_callout().await;
    let mut observer = env.observer().await;
    let rooms = Arc::new(Mutex::new("all1;bob1".to_string()));
    let token = env.token("bob");
    let r = rooms.clone();
    let bob = async_nats::ConnectOptions::with_auth_callback(move |_| {
        let (rooms, token) = (r.lock().unwrap().clone(), token.clone());
        async move {
            let mut auth = async_nats::Auth::new();
            auth.username = Some(rooms);
            auth.password = Some(String::new());
            auth.token = Some(token);
            Ok(auth)
        }
    })
    .connect(env.server.url())
    .await
    .unwrap();
    let mut sub = bob.subscribe("chat.bob1.>").await.unwrap();
    bob.flush().await.unwrap();
    *rooms.lock().unwrap() = "all1".into();
    bob.force_reconnect().await.unwrap();
    // Wait until the new connection exists: its publish to all1 reaches the observer.
    let from = observer.delivered.len();
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    loop {
        bob.publish("chat.all1.bob", "probe".into()).await.unwrap();
        bob.flush().await.unwrap();
        observer.sync().await.unwrap();
        if observer.since(from).iter().any(|m| m.payload == "probe") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "bob did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let from = observer.delivered.len();
    bob.publish("chat.bob1.bob", "old-grant".into()).await.unwrap();
    bob.flush().await.unwrap();
    // The observer (unrestricted) writes into bob1: the re-sent subscription must not get it.
    observer.send(&pub_line("chat.bob1.bob", None, "to-bob1")).await;
    observer.sync().await.unwrap();
    let got = tokio::time::timeout(Duration::from_millis(500), futures::StreamExt::next(&mut sub)).await;
    assert!(
        got.is_err() || got.unwrap().is_none(),
        "the old subscription still delivers"
    );
    observer.sync().await.unwrap();
    assert!(
        observer.since(from).iter().all(|m| m.payload != "old-grant"),
        "bob still publishes into bob1"
    );
}

/// NATS credentials are not a bearer token: nats-server lets a JWT in only with the nonce of
/// this very connection signed by the key it was minted for. Another key's signature, no
/// signature, a garbage signature, a signature replayed from an earlier connection, a grant
/// edited into the JWT, and a JWT the client signed itself are all refused; the JWT with its own key connects.
#[tokio::test]
async fn credentials_are_useless_without_their_key() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let door = Door::credentials().await;
    let Door::Credentials(w) = &door else {
        unreachable!()
    };
    let port = w.server.port;
    let (key, jwt) = w.mint("bob", "all1;bob1").await;
    let refused = |what: &str, r: Result<Raw, String>| match r {
        Ok(_) => panic!("{what}: connected"),
        Err(e) => assert!(e.contains("Authorization Violation"), "{what}: {e}"),
    };

    // The control: the JWT with its own key's signature of this connection's nonce.
    let mut seen = String::new();
    let mut own = Raw::connect_answering(port, |nonce| {
        seen = nonce.to_string();
        Raw::jwt_body(&jwt, Some(&key.sign(nonce.as_bytes()).unwrap()), true)
    })
    .await
    .expect("the JWT with its own key connects");
    assert!(!seen.is_empty(), "the server sent a nonce");
    own.send(&pub_line("chat.all1.bob", None, "hi")).await;
    own.sync().await.unwrap();
    assert!(own.errors.is_empty(), "{:?}", own.errors);

    let thief = nkeys::KeyPair::new_user();
    refused(
        "another key's signature",
        Raw::connect_jwt(port, &jwt, &thief, true).await,
    );
    refused(
        "no signature",
        Raw::connect(port, &Raw::jwt_body(&jwt, None, true)).await,
    );
    let replayed = key.sign(seen.as_bytes()).unwrap();
    refused(
        "a signature of an earlier connection's nonce",
        Raw::connect(port, &Raw::jwt_body(&jwt, Some(&replayed), true)).await,
    );
    let mut garbage = Raw::jwt_body(&jwt, None, true);
    garbage["sig"] = "not a signature".into();
    refused("a signature that is not one", Raw::connect(port, &garbage).await);

    // A wider grant edited into the JWT: its signature no longer matches.
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["nats"]["pub"] = json!({"allow": [">"]});
    claims["nats"]["sub"] = json!({"allow": [">"]});
    let edited = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    refused(
        "a grant edited into the JWT",
        Raw::connect_jwt(port, &edited, &key, true).await,
    );
    // The same claims signed by the client's own key: not a signing key of any account.
    claims["iss"] = key.public_key().into();
    let self_signed = nats_callout::claims::encode(&claims, &key).unwrap();
    refused(
        "a JWT the client signed itself",
        Raw::connect_jwt(port, &self_signed, &key, true).await,
    );
    // The control connection is untouched by all of that.
    own.send(&pub_line("chat.all1.bob", None, "still here")).await;
    own.sync().await.unwrap();
    assert!(own.errors.is_empty(), "{:?}", own.errors);
}

// ---- the model-based random walk ----

/// One client in the walk, as the model sees it.
struct Actor {
    user: &'static str,
    /// Unique to this connection in the walk.
    id: usize,
    rooms: String,
    echo: bool,
    conn: Raw,
    /// Accepted subscriptions: sid -> subject.
    subs: BTreeMap<String, String>,
    /// What the model says it must have received: (sid, payload), in order per batch.
    expect_delivered: Vec<(String, String)>,
    /// What the model says the server refused, as `(kind, subject)`.
    expect_refused: Vec<(&'static str, String)>,
    next_sid: usize,
}

impl Actor {
    async fn connect(door: &Door, user: &'static str, rng: &mut StdRng, how: TokenIn) -> Actor {
        let rooms: Vec<&str> = ROOMS.iter().copied().filter(|_| rng.gen_bool(0.5)).collect();
        let rooms = rooms.join(";");
        let echo = rng.gen_bool(0.7);
        static CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Actor {
            user,
            id: CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            conn: door.client_via(user, &rooms, echo, how).await,
            rooms,
            echo,
            subs: BTreeMap::new(),
            expect_delivered: Vec::new(),
            expect_refused: Vec::new(),
            next_sid: 1,
        }
    }

    fn grant(&self) -> Grant {
        grant(self.user, &self.rooms)
    }
}

const WALK_USERS: [&str; 4] = ["bob", "alice", "carol", "admin"];

/// Literal subjects to publish to, from every user's grants and from outside them.
fn publish_pool() -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for room in ROOMS {
        for user in WALK_USERS {
            v.push(format!("chat.{room}.{user}"));
        }
        v.push(format!("chat.{room}"));
        v.push(format!("chat.{room}.bob.x"));
    }
    for user in WALK_USERS {
        v.push(format!("_INBOX.{user}.x"));
    }
    v.extend(
        [
            "chat.*.bob",
            "chat.all1.>",
            "$JS.API.INFO",
            "$SYS.REQ.ACCOUNT.PING.CONNZ",
            "other.subject",
        ]
        .map(String::from),
    );
    v
}

/// Subjects to subscribe to, wildcards included.
fn subscribe_pool() -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for room in ROOMS {
        v.push(format!("chat.{room}.>"));
        v.push(format!("chat.{room}.*"));
        v.push(format!("chat.{room}.bob"));
    }
    for user in WALK_USERS {
        v.push(format!("_INBOX.{user}.>"));
        v.push(format!("chat.*.{user}"));
    }
    v.extend(["chat.>", "chat.*.>", ">", "_INBOX.>", "$JS.API.>", "other.>"].map(String::from));
    v
}

/// Send one random operation and record what the model expects of it.
async fn random_op(
    actors: &mut [Actor],
    i: usize,
    rng: &mut StdRng,
    pools: &(Vec<String>, Vec<String>),
    n: &mut usize,
    expect_observed: &mut Vec<(String, String)>,
) {
    let (pubs, subs) = pools;
    let roll = rng.gen_range(0..100);
    if roll < 35 {
        let subject = subs[rng.gen_range(0..subs.len())].clone();
        let a = &mut actors[i];
        let sid = format!("{}", a.next_sid);
        a.next_sid += 1;
        // Queue groups are unique per subscription (across clients and their reconnects:
        // two clients' `q4` would share a group and split its messages), so every one gets
        // its copy.
        let queue = rng.gen_bool(0.3).then(|| format!("q{}-{sid}", a.id));
        let line = match &queue {
            Some(q) => format!("SUB {subject} {q} {sid}\r\n"),
            None => format!("SUB {subject} {sid}\r\n"),
        };
        a.conn.send(&line).await;
        if a.grant().may_subscribe(&subject) {
            a.subs.insert(sid, subject);
        } else {
            a.expect_refused.push(("Subscription", subject));
        }
    } else if roll < 42 {
        let a = &mut actors[i];
        if let Some(sid) = a.subs.keys().nth(rng.gen_range(0..a.subs.len().max(1))).cloned() {
            a.conn.send(&format!("UNSUB {sid}\r\n")).await;
            a.subs.remove(&sid);
        }
    } else {
        // Mostly a subject from the pool; sometimes an answer to a reply subject received.
        let answer = rng
            .gen_bool(0.35)
            .then(|| {
                let got = &actors[i].conn.delivered;
                got.iter().rev().take(20).filter_map(|m| m.reply.clone()).next()
            })
            .flatten();
        let subject = answer.unwrap_or_else(|| pubs[rng.gen_range(0..pubs.len())].clone());
        let reply = rng
            .gen_bool(0.5)
            .then(|| pubs[rng.gen_range(0..pubs.len())].clone());
        *n += 1;
        let body = payload(actors[i].user, *n);
        let line = if rng.gen_bool(0.5) {
            pub_line(&subject, reply.as_deref(), &body)
        } else {
            hpub_line(&subject, reply.as_deref(), ("Nats-Msg-Id", &n.to_string()), &body)
        };
        actors[i].conn.send(&line).await;
        if !actors[i].grant().may_publish(&subject) {
            actors[i].expect_refused.push(("Publish", subject));
            return;
        }
        expect_observed.push((subject.clone(), body.clone()));
        for (j, a) in actors.iter_mut().enumerate() {
            if j == i && !a.echo {
                continue;
            }
            for (sid, pattern) in &a.subs {
                if matches(pattern, &subject) {
                    a.expect_delivered.push((sid.clone(), body.clone()));
                }
            }
        }
    }
}

/// Several users do random SUB/UNSUB/PUB/HPUB with subjects and reply subjects from inside
/// and outside every grant, and sometimes reconnect with other rooms. After every batch the
/// observer must have seen exactly the messages the model allows, each client must have
/// received exactly what its accepted subscriptions match, and the server must have refused
/// exactly what the model refuses. Seeded: `ESCAPE_SEED=n` replays a run.
#[tokio::test]
async fn random_protocol_walk_matches_the_grant_model() {
    protocol_walk(&Door::callout().await, TokenIn::AuthToken).await;
}

/// The same walk with every client's token in `pass` (no `auth_token`), as clients that
/// cannot send both send it.
#[tokio::test]
async fn random_protocol_walk_with_the_token_in_pass() {
    protocol_walk(&Door::callout().await, TokenIn::Pass).await;
}

/// The same walk with every client connected with NATS credentials minted for its rooms (a
/// reconnect mints new ones): the JWT's grant is the model's, as the callout's is.
#[tokio::test]
async fn random_protocol_walk_with_credentials() {
    protocol_walk(&Door::credentials().await, TokenIn::AuthToken).await;
}

async fn protocol_walk(door: &Door, how: TokenIn) {
    let seed: u64 = std::env::var("ESCAPE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let door_name = match door {
        Door::Callout { .. } => format!("callout, token in {how:?}"),
        Door::Credentials(_) => "NATS credentials".to_string(),
    };
    eprintln!("random walk seed {seed}, {door_name} (replay with ESCAPE_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut observer = door.observer().await;
    let mut actors = Vec::new();
    for user in WALK_USERS {
        actors.push(Actor::connect(door, user, &mut rng, how).await);
    }
    let pools = (publish_pool(), subscribe_pool());
    let mut n = 0;
    const BATCHES: usize = 20;
    const OPS: usize = 25;
    for batch in 0..BATCHES {
        let ctx = |what: &str| format!("seed {seed} (ESCAPE_SEED={seed}), batch {batch}: {what}");
        let mut expect_observed = Vec::new();
        let observed_from = observer.delivered.len();
        let marks: Vec<(usize, usize)> = actors
            .iter()
            .map(|a| (a.conn.delivered.len(), a.conn.errors.len()))
            .collect();
        for a in &mut actors {
            a.expect_delivered.clear();
            a.expect_refused.clear();
        }
        for _ in 0..OPS {
            let i = rng.gen_range(0..actors.len());
            random_op(&mut actors, i, &mut rng, &pools, &mut n, &mut expect_observed).await;
            // The server orders commands per connection only: wait for this one, so the
            // model's order is the server's.
            actors[i]
                .conn
                .sync()
                .await
                .unwrap_or_else(|e| panic!("{}", ctx(&e)));
        }
        // Round one: every command processed (deliveries queued); round two: all read.
        for _ in 0..2 {
            for a in &mut actors {
                a.conn.sync().await.unwrap_or_else(|e| panic!("{}", ctx(&e)));
            }
        }
        observer.sync().await.unwrap();

        let grants: HashMap<&str, Grant> = actors.iter().map(|a| (a.user, a.grant())).collect();
        let seen = judge(&observer, observed_from, &grants);
        let seen: Vec<_> = seen.into_iter().filter(|(_, p)| sender_of(p).is_some()).collect();
        let mut want = expect_observed.clone();
        let mut got = seen.clone();
        want.sort();
        got.sort();
        assert_eq!(
            got,
            want,
            "{}",
            ctx("the observer saw other messages than the model allows")
        );
        for (a, (d0, e0)) in actors.iter().zip(&marks) {
            received_within(&a.conn, a.user, &a.grant());
            let mut got: Vec<(String, String)> = a.conn.delivered[*d0..]
                .iter()
                .map(|m| (m.sid.clone(), m.payload.clone()))
                .collect();
            let mut want = a.expect_delivered.clone();
            got.sort();
            want.sort();
            assert_eq!(
                got,
                want,
                "{}",
                ctx(&format!("{} ({}) received", a.user, a.rooms))
            );
            let errors = &a.conn.errors[*e0..];
            assert_eq!(
                errors.len(),
                a.expect_refused.len(),
                "{}",
                ctx(&format!(
                    "{} refusals {errors:?} vs {:?}",
                    a.user, a.expect_refused
                ))
            );
            for ((kind, subject), e) in a.expect_refused.iter().zip(errors) {
                assert!(
                    e.contains(&format!("Permissions Violation for {kind} to \"{subject}\"")),
                    "{}",
                    ctx(&format!("{} expected {kind} {subject}, server said {e}", a.user))
                );
            }
        }
        // Now and then a client reconnects with another room list.
        if rng.gen_bool(0.3) {
            let i = rng.gen_range(0..actors.len());
            let user = actors[i].user;
            actors[i] = Actor::connect(door, user, &mut rng, how).await;
        }
    }
}
