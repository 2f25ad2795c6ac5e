//! Explain: what a connection of a user asking for some rooms would get, room by room, and
//! why: which file and line granted it (or the room in data, the application's scope), or the
//! reason it is refused. The same rules as the decision ([`crate::callout::decision`]), read
//! without a token: `nats-callout explain` offline (files only), `--live` and the console
//! through the running service (rooms in data, sessions and revocations too).

use serde::{Deserialize, Serialize};

use crate::access::{Answer, Answers, Ask};
use crate::callout::decision::{Deny, Policy, parse_rooms};
use crate::names::validate_name;
use crate::permissions::{Access, Asserted, GrantSource, Role, Scope, Snapshot};
use crate::rooms::RoomIndex;

/// The most rooms one question may name (the decision's own bound is usually far lower).
pub const MAX_QUESTION_ROOMS: usize = 256;

/// A question: a user, the rooms a connection would ask for, and optionally its application.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Question {
    pub user_id: String,
    pub rooms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// Why a question cannot be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadQuestion {
    #[error("userId: {0}")]
    User(crate::names::NameError),
    #[error("{0} rooms named, at most {MAX_QUESTION_ROOMS}")]
    TooManyRooms(usize),
}

impl Question {
    /// The question, bounded before anything reads it.
    ///
    /// # Errors
    /// An invalid user name or too many rooms (room names are judged per room).
    pub fn check(&self) -> Result<(), BadQuestion> {
        validate_name(&self.user_id).map_err(BadQuestion::User)?;
        if self.rooms.len() > MAX_QUESTION_ROOMS {
            return Err(BadQuestion::TooManyRooms(self.rooms.len()));
        }
        Ok(())
    }
}

/// The answer: contract 14's `{user, rooms: [{room, access, reason, source}]}`, and when the
/// whole connection would be denied, why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub user: String,
    /// `"offline"` (permission files only) or `"live"` (the running service's view).
    pub mode: String,
    /// The deny code when no connection would be allowed at all (`unknown-user`,
    /// `too-many-rooms`, `account-not-served`, ...), with the rooms' reasons saying the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<String>,
    pub rooms: Vec<Verdict>,
    /// The user's sessions and whether a token of each would be refused (live only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<SessionVerdict>>,
    /// The revocations refusing every token of the user issued up to a time (the user's own
    /// and one for everyone), latest first (live only; empty when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocations: Vec<UserRevocation>,
    /// What the user may hold at once (`connections`, `subscriptions`), when the permission
    /// files limit it (see [`crate::limits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<crate::permissions::Limits>,
}

/// A revocation of every token of a user (or of everyone) issued at or before `before`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserRevocation {
    /// `user-revoked` or `all-revoked`.
    pub reason: String,
    /// Unix seconds: tokens issued at or before it are refused; later logins are not.
    pub before: i64,
}

/// One room's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Verdict {
    pub room: String,
    /// `none`, `read`, `write` or `readwrite`.
    pub access: String,
    /// `granted`, or why not: `no-grant`, `outside-application`, `unknown-application`,
    /// `bad-room-name`, `reserved-room-name`, or the connection's deny code.
    pub reason: String,
    /// Where the verdict comes from, in words: `permissions/rooms.toml:25: [rooms.all1]
    /// members "@everyone" (user bob is in group everyone)`, `room in data "x" (member)`, ...
    pub source: String,
    /// The definitions of the files that grant it, each with its file and line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<GrantSource>,
}

/// A live session of the user, and whether its access tokens would be refused now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionVerdict {
    pub session_id: String,
    pub client_id: Option<String>,
    pub device_id: Option<String>,
    pub expires_at: i64,
    /// The revocation that refuses its tokens (`session-revoked`, `user-revoked`, ...), if any.
    pub revoked: Option<String>,
}

/// What an explanation reads.
pub struct Inputs<'a> {
    pub snapshot: &'a Snapshot,
    /// Rooms in data (empty offline: the store is the running service's).
    pub rooms: &'a RoomIndex,
    pub policy: &'a Policy,
    /// Per asked room, the definitions of the files granting it ([`crate::permissions::grant_sources`]);
    /// empty when the files could not be read again.
    pub files: &'a [Vec<GrantSource>],
    /// What an identity provider asserts of the user (their latest session's), if anything.
    pub asserted: Option<&'a Asserted>,
    /// The delegates' answers for the delegated rooms (none offline: not asked).
    pub answers: &'a Answers,
    pub mode: &'static str,
}

/// Explain `q` (checked). Pure: the same reading of the rules as the decision's.
#[must_use]
pub fn explain(q: &Question, inputs: &Inputs<'_>) -> Explanation {
    let Inputs { snapshot, policy, .. } = *inputs;
    let answer = |denied: Option<Deny>, rooms: Vec<Verdict>| Explanation {
        user: q.user_id.clone(),
        mode: inputs.mode.to_string(),
        denied: denied.map(|d| d.code().to_string()),
        rooms,
        sessions: None,
        revocations: Vec::new(),
        limits: None,
    };
    // A deny of the whole connection: every room says it.
    let denied = |deny: Deny| {
        let rooms = q
            .rooms
            .iter()
            .map(|room| refused(room, deny.code(), &deny.to_string()))
            .collect();
        answer(Some(deny), rooms)
    };
    let Some(user) = snapshot.effective(&q.user_id, inputs.asserted) else {
        return denied(match inputs.asserted {
            Some(a) if !a.file_users && snapshot.user(&q.user_id).is_some() => Deny::FileUserRefused {
                provider: a.idp.clone(),
                user: q.user_id.clone(),
            },
            _ => Deny::UnknownUser(q.user_id.clone()),
        });
    };
    let user = &*user;
    let account = user.account().unwrap_or(&policy.account);
    if !policy.placements.contains(account) {
        return denied(Deny::AccountNotServed(account.to_string()));
    }
    let list = q.rooms.join(";");
    if let Err(deny @ (Deny::TooManyRooms { .. } | Deny::RoomListTooLong { .. })) =
        parse_rooms(Some(&list), policy)
    {
        return denied(deny);
    }
    let scope = snapshot.scope(q.client_id.as_deref());
    let rooms = q
        .rooms
        .iter()
        .enumerate()
        .map(|(i, room)| {
            let files = inputs.files.get(i).cloned().unwrap_or_default();
            room_verdict(room, user, &scope, files, inputs)
        })
        .collect();
    let limits = Some(user.limits()).filter(|l| !l.is_none());
    Explanation {
        limits,
        ..answer(None, rooms)
    }
}

fn refused(room: &str, reason: &str, source: &str) -> Verdict {
    Verdict {
        room: room.to_string(),
        access: "none".to_string(),
        reason: reason.to_string(),
        source: source.to_string(),
        files: Vec::new(),
    }
}

fn room_verdict(
    room: &str,
    user: &crate::permissions::User,
    scope: &Scope<'_>,
    files: Vec<GrantSource>,
    inputs: &Inputs<'_>,
) -> Verdict {
    if let Err(deny) = parse_rooms(Some(room), inputs.policy) {
        return refused(room, deny.code(), &deny.to_string());
    }
    match scope {
        Scope::Nothing => {
            return refused(
                room,
                "unknown-application",
                "the application is not one of the permission files'",
            );
        }
        Scope::Within(app) if !app.reaches(room) => {
            let why = format!("application {:?} does not reach this room", app.name());
            return refused(room, "outside-application", &why);
        }
        _ => {}
    }
    if let Some(route) = inputs.policy.delegates.route(room) {
        return delegated_verdict(room, &route.subject, inputs.answers.get(room), scope);
    }
    let from_files = inputs.snapshot.access(user, room);
    let in_data = inputs.rooms.held(room, user.id());
    let Some(access) = Access::either(from_files, in_data.map(|(a, _)| a)) else {
        let source = match inputs.rooms.room(room) {
            Some(r) => {
                let join = if r.join == crate::rooms::JoinPolicy::Open {
                    "open"
                } else {
                    "invite-only"
                };
                format!("room in data {room:?} ({join}), and the user is not a member")
            }
            None => "no grant in the permission files and no room in data".to_string(),
        };
        return refused(room, "no-grant", &source);
    };
    let mut said: Vec<String> = files.iter().map(ToString::to_string).collect();
    if let Some(a) = inputs.asserted {
        for role in a
            .roles
            .iter()
            .filter(|r| matches!(r, Role::Admin | Role::Sysadmin))
        {
            said.push(format!(
                "role {:?} from provider {} (every room)",
                role.as_str(),
                a.idp
            ));
        }
    }
    if from_files.is_some() && said.is_empty() {
        said.push("the permission files".to_string());
    }
    if let Some((a, owner)) = in_data {
        let role = if owner { "owner" } else { "member" };
        said.push(format!("room in data {room:?} ({role}, {a})"));
    }
    if let Scope::Within(app) = scope {
        said.push(format!("within application {:?}", app.name()));
    }
    Verdict {
        room: room.to_string(),
        access: access.as_str().to_string(),
        reason: "granted".to_string(),
        source: said.join("; "),
        files,
    }
}

/// A room an app service decides: its answer (when asked), or that it was not asked.
fn delegated_verdict(room: &str, subject: &str, answer: Option<Answer>, scope: &Scope<'_>) -> Verdict {
    let within = match scope {
        Scope::Within(app) => format!("; within application {:?}", app.name()),
        _ => String::new(),
    };
    let (access, reason, said) = match answer {
        Some(Answer::Access(Some(a))) => (a.as_str(), "granted", format!("answered {a}")),
        Some(a) => ("none", a.refusal().unwrap_or("no-grant"), "refused".to_string()),
        None => (
            "none",
            "delegated",
            format!("delegated to {subject} (not asked offline)"),
        ),
    };
    Verdict {
        room: room.to_string(),
        access: access.to_string(),
        reason: reason.to_string(),
        source: format!("delegate:{subject}: {said}{within}"),
        files: Vec::new(),
    }
}

/// What the delegates would be asked about the delegated rooms of `q` (none when the user
/// is unknown or the room is out of the question's scope). For `--live`, which asks.
#[must_use]
pub fn asks(q: &Question, snapshot: &Snapshot, policy: &Policy, asserted: Option<&Asserted>) -> Vec<Ask> {
    let Some(user) = snapshot.effective(&q.user_id, asserted) else {
        return Vec::new();
    };
    let scope = snapshot.scope(q.client_id.as_deref());
    q.rooms
        .iter()
        .filter(|r| validate_name(r).is_ok() && scope.reaches(r) && policy.delegates.route(r).is_some())
        .map(|room| {
            let account = user.account().unwrap_or(&policy.account);
            Ask::of(&user, room, account, q.client_id.clone(), None)
        })
        .collect()
}

/// Explain `q` with a running callout's rules, permissions and rooms in data; `files` are
/// the per-room file definitions ([`crate::permissions::grant_sources`]); the delegated
/// rooms are asked (or answered from the cache).
pub async fn live(
    callout: &crate::callout::Callout,
    q: &Question,
    files: &[Vec<GrantSource>],
    asserted: Option<&Asserted>,
) -> Explanation {
    let snapshot = callout.snapshot();
    let asks = asks(q, &snapshot, callout.policy(), asserted);
    let answers = callout.delegates().resolve(&asks).await;
    let inputs = Inputs {
        snapshot: &snapshot,
        rooms: callout.rooms(),
        policy: callout.policy(),
        files,
        asserted,
        answers: &answers,
        mode: "live",
    };
    explain(q, &inputs)
}

/// Explain `q` offline: the rules of `callout` and the permission files of `dir`, nothing else
/// (no keys, no server, no rooms in data).
///
/// # Errors
/// The rules do not build, or the files do not load (every problem, `file:line: reason`).
pub fn offline(
    callout: &crate::config::CalloutSettings,
    delegates: &[crate::access::DelegateSettings],
    dir: &std::path::Path,
    q: &Question,
) -> anyhow::Result<Explanation> {
    let policy = Policy::from_settings(callout)
        .map_err(anyhow::Error::msg)?
        .with_delegates(crate::access::Routes::from_settings(delegates).map_err(anyhow::Error::msg)?);
    let sources = crate::permissions::read_files(dir)?;
    let snapshot = Snapshot::from_sources(&sources)?;
    let rooms: Vec<&str> = q.rooms.iter().map(String::as_str).collect();
    let files = crate::permissions::grant_sources(&sources, &q.user_id, &rooms, None)?;
    let inputs = Inputs {
        snapshot: &snapshot,
        rooms: &RoomIndex::default(),
        policy: &policy,
        files: &files,
        asserted: None,
        answers: &Answers::default(),
        mode: "offline",
    };
    Ok(explain(q, &inputs))
}

/// An explanation as a table for people: one line per room, then the sessions (live).
#[must_use]
pub fn render(e: &Explanation) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let scope = if e.mode == "live" {
        "the running service"
    } else {
        "offline: the permission files only, no rooms in data or sessions"
    };
    let _ = writeln!(out, "user {} ({scope})", e.user);
    if let Some(code) = &e.denied {
        let _ = writeln!(out, "every connection is denied: {code}");
    }
    if let Some(l) = &e.limits {
        let n = |v: Option<u32>| v.map_or("unlimited".to_string(), |n| n.to_string());
        let (c, s) = (n(l.connections), n(l.subscriptions));
        let _ = writeln!(out, "limits: {c} connections, {s} subscriptions per connection");
    }
    for r in &e.revocations {
        let at = crate::clock::rfc3339(r.before);
        let _ = writeln!(out, "tokens issued at or before {at} are refused: {}", r.reason);
    }
    let width = e.rooms.iter().map(|r| r.room.len()).max().unwrap_or(0);
    for r in &e.rooms {
        let _ = writeln!(
            out,
            "  {:width$}  {:9}  {:19}  {}",
            r.room, r.access, r.reason, r.source
        );
    }
    for s in e.sessions.iter().flatten() {
        let _ = writeln!(
            out,
            "  session {} (client {}, device {}): {}",
            s.session_id,
            s.client_id.as_deref().unwrap_or("-"),
            s.device_id.as_deref().unwrap_or("-"),
            s.revoked.as_deref().unwrap_or("usable"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callout::decision::{self, decide};
    use crate::permissions::grant_sources;
    use crate::rooms::JoinPolicy;
    use crate::testing::{self, NOW, PERMISSIONS, World, auth_request, member_event, room_event};
    use crate::tokens::revocation::RevocationIndex;

    const WITH_APPS: &str = "[applications.mobile]\nrooms = [\"all1\", \"team-*\"]\n";

    fn question(user: &str, rooms: &[&str], client: Option<&str>) -> Question {
        Question {
            user_id: user.into(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            client_id: client.map(str::to_string),
        }
    }

    /// Explain `rooms` for `user` on `text` (one file, `test.toml`) and the rooms in `data`.
    fn ask(text: &str, data: &RoomIndex, q: &Question) -> Explanation {
        ask_asserted(text, data, q, None)
    }

    /// [`ask`] for a user a provider asserts groups and roles of.
    fn ask_asserted(text: &str, data: &RoomIndex, q: &Question, asserted: Option<&Asserted>) -> Explanation {
        let sources = vec![("test.toml".to_string(), text.to_string())];
        let rooms: Vec<&str> = q.rooms.iter().map(String::as_str).collect();
        let files = grant_sources(&sources, &q.user_id, &rooms, asserted).unwrap();
        let inputs = Inputs {
            snapshot: &testing::snapshot(text),
            rooms: data,
            policy: &testing::policy(),
            files: &files,
            asserted,
            answers: &Answers::default(),
            mode: "offline",
        };
        explain(q, &inputs)
    }

    #[test]
    fn the_users_limits_are_shown_when_the_files_set_them() {
        let text = "[users.bob]\ngroups = [\"g\"]\n[groups.g]\nlimits = { connections = 2 }\n[users.carol]\n";
        let data = RoomIndex::default();
        let e = ask(text, &data, &question("bob", &["all1"], None));
        let limits = e.limits.expect("limits shown");
        assert_eq!((limits.connections, limits.subscriptions), (Some(2), None));
        assert!(render(&e).contains("limits: 2 connections, unlimited subscriptions per connection"));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["limits"], serde_json::json!({"connections": 2}));
        assert!(
            ask(text, &data, &question("carol", &["all1"], None))
                .limits
                .is_none()
        );
    }

    /// The line of the first line of `text` containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn explain_reads_the_rules_as_the_decision_does() {
        let w = World::random();
        let snapshot = testing::snapshot(PERMISSIONS);
        let data = RoomIndex::default();
        data.apply(&[
            room_event("lounge", "r1", "alice", JoinPolicy::Open),
            member_event("lounge", "r1", "bob", Access::Read, false),
        ]);
        let policy = testing::policy();
        let rooms = [
            "all1", "bob1", "news", "drop", "alice1", "team-a", "dev", "xzy", "xy", "ops", "lounge",
            "nowhere",
        ];
        for user in ["bob", "alice", "root", "sysop", "svc"] {
            let token = w.token(user, NOW);
            for room in rooms {
                let inputs = decision::Inputs {
                    tokens: &w.tokens,
                    snapshot: &snapshot,
                    rooms: &data,
                    revoked: &RevocationIndex::default(),
                    policy: &policy,
                };
                let grant = decide(
                    &auth_request(Some(&token), Some(room), "Client", "nats"),
                    &inputs,
                    NOW,
                )
                .unwrap();
                let decided = grant.rooms.first().map_or("none", |r| r.access.as_str());
                let said = ask(PERMISSIONS, &data, &question(user, &[room], None));
                assert_eq!(said.rooms[0].access, decided, "{user} in {room}: {said:?}");
                assert_eq!(
                    said.rooms[0].reason == "granted",
                    decided != "none",
                    "{user} in {room}"
                );
            }
        }
    }

    #[test]
    fn a_grant_names_each_definition_with_its_file_and_line() {
        let data = RoomIndex::default();
        let said = ask(
            PERMISSIONS,
            &data,
            &question("alice", &["dev", "team-x", "all1"], None),
        );
        let [dev, team, all1] = &said.rooms[..] else {
            panic!("{said:?}")
        };
        assert_eq!((dev.access.as_str(), dev.reason.as_str()), ("read", "granted"));
        let line = line_of(PERMISSIONS, "[rooms.dev]") + 1;
        assert_eq!(
            dev.source,
            format!("test.toml:{line}: [rooms.dev] members \"@devs\" (user alice is in group devs)")
        );
        assert_eq!(dev.files[0].line, line);
        assert_eq!(team.access, "read");
        let line = line_of(PERMISSIONS, "\"team-*\" = \"read\"");
        assert_eq!(
            team.source,
            format!("test.toml:{line}: [users.alice.rooms] \"team-*\" = \"read\"")
        );
        assert_eq!(all1.files.len(), 1, "{all1:?}");
        // Two grants of one room are both named, and their union is the access.
        let said = ask(PERMISSIONS, &data, &question("bob", &["xzy"], None));
        assert_eq!(said.rooms[0].access, "write");
        assert!(
            said.rooms[0].source.contains("[rooms.x*y] members \"bob\""),
            "{said:?}"
        );
        // An admin's every room comes from the role.
        let said = ask(PERMISSIONS, &data, &question("root", &["anything"], None));
        let line = line_of(PERMISSIONS, "roles = [\"admin\"]");
        assert_eq!(
            said.rooms[0].source,
            format!("test.toml:{line}: [users.root] roles \"admin\" (every room)")
        );
    }

    #[test]
    fn rooms_in_data_are_a_source_and_a_reason() {
        let data = RoomIndex::default();
        data.apply(&[
            room_event("lounge", "r1", "alice", JoinPolicy::Open),
            member_event("lounge", "r1", "bob", Access::Read, false),
            room_event("secret", "r2", "alice", JoinPolicy::Invite),
        ]);
        let said = ask(PERMISSIONS, &data, &question("bob", &["lounge", "secret"], None));
        assert_eq!(said.rooms[0].access, "read");
        assert_eq!(said.rooms[0].source, "room in data \"lounge\" (member, read)");
        assert_eq!(said.rooms[1].reason, "no-grant");
        assert_eq!(
            said.rooms[1].source,
            "room in data \"secret\" (invite-only), and the user is not a member"
        );
        let said = ask(PERMISSIONS, &data, &question("alice", &["secret"], None));
        assert_eq!(said.rooms[0].source, "room in data \"secret\" (owner, readwrite)");
    }

    #[test]
    fn every_refusal_says_why() {
        let data = RoomIndex::default();
        let said = ask(
            PERMISSIONS,
            &data,
            &question("bob", &["nowhere", "bad.name", "alice1"], None),
        );
        let reasons: Vec<&str> = said.rooms.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(reasons, ["no-grant", "bad-room-name", "no-grant"]);
        assert!(said.rooms.iter().all(|r| r.access == "none"));
        assert_eq!(said.denied, None);

        let said = ask(PERMISSIONS, &data, &question("nobody", &["all1"], None));
        assert_eq!(said.denied.as_deref(), Some("unknown-user"));
        assert_eq!(
            (said.rooms[0].access.as_str(), said.rooms[0].reason.as_str()),
            ("none", "unknown-user")
        );

        let many: Vec<String> = (0..=testing::policy().max_rooms)
            .map(|i| format!("r{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let said = ask(PERMISSIONS, &data, &question("bob", &many, None));
        assert_eq!(said.denied.as_deref(), Some("too-many-rooms"));
        assert!(said.rooms.iter().all(|r| r.reason == "too-many-rooms"));

        let text = format!("{PERMISSIONS}{WITH_APPS}");
        let said = ask(
            &text,
            &data,
            &question("alice", &["all1", "alice1", "team-a"], Some("mobile")),
        );
        let reasons: Vec<&str> = said.rooms.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(reasons, ["granted", "outside-application", "granted"]);
        assert_eq!(
            said.rooms[1].source,
            "application \"mobile\" does not reach this room"
        );
        assert!(
            said.rooms[0].source.ends_with("; within application \"mobile\""),
            "{said:?}"
        );
        let said = ask(&text, &data, &question("alice", &["all1"], Some("desktop")));
        assert_eq!(said.rooms[0].reason, "unknown-application");
    }

    #[test]
    fn a_providers_groups_and_roles_are_sources() {
        let data = RoomIndex::default();
        let says = |groups: &[&str], roles: &[Role], groups_only: bool, file_users: bool| Asserted {
            idp: "corp".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            roles: roles.to_vec(),
            groups_only,
            file_users,
        };
        // A user the files do not know, known by the provider's group alone.
        let corp = says(&["devs"], &[], true, true);
        let said = ask_asserted(
            PERMISSIONS,
            &data,
            &question("carol", &["dev", "all1"], None),
            Some(&corp),
        );
        assert_eq!(
            (said.rooms[0].access.as_str(), said.rooms[0].reason.as_str()),
            ("read", "granted")
        );
        let line = line_of(PERMISSIONS, "[rooms.dev]") + 1;
        assert_eq!(
            said.rooms[0].source,
            format!(
                "test.toml:{line}: [rooms.dev] members \"@devs\" (provider corp places user carol in group devs)"
            )
        );
        assert_eq!(said.rooms[1].reason, "no-grant");
        // A file user gains the asserted group beside their own.
        let said = ask_asserted(PERMISSIONS, &data, &question("bob", &["dev"], None), Some(&corp));
        assert_eq!(said.rooms[0].access, "read", "{said:?}");
        // Without groups_only, a user absent from the files stays unknown.
        let said = ask_asserted(
            PERMISSIONS,
            &data,
            &question("carol", &["dev"], None),
            Some(&says(&["devs"], &[], false, true)),
        );
        assert_eq!(said.denied.as_deref(), Some("unknown-user"));
        // A provider not trusted with the files' users cannot speak for bob.
        let said = ask_asserted(
            PERMISSIONS,
            &data,
            &question("bob", &["all1"], None),
            Some(&says(&[], &[], true, false)),
        );
        assert_eq!(said.denied.as_deref(), Some("file-user-refused"));
        // An admin role from the provider's role table.
        let said = ask_asserted(
            PERMISSIONS,
            &data,
            &question("bob", &["anywhere"], None),
            Some(&says(&[], &[Role::Admin], true, true)),
        );
        assert_eq!(said.rooms[0].access, "readwrite");
        assert_eq!(
            said.rooms[0].source,
            "role \"admin\" from provider corp (every room)"
        );
    }

    #[test]
    fn questions_are_bounded_before_they_are_read() {
        assert!(question("bob", &["all1"], None).check().is_ok());
        assert!(matches!(
            question("bo b", &[], None).check(),
            Err(BadQuestion::User(_))
        ));
        let many = vec!["r"; MAX_QUESTION_ROOMS + 1];
        assert_eq!(
            question("bob", &many, None).check(),
            Err(BadQuestion::TooManyRooms(MAX_QUESTION_ROOMS + 1))
        );
        assert!(serde_json::from_str::<Question>(r#"{"userId":"bob","rooms":[],"extra":1}"#).is_err());
    }
}
