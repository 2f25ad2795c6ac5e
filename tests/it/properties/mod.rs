//! Property test: whatever room list a client asks for, a decision grants only what the
//! permission files grant that user, and every grant is an explicit, wildcard-free subject
//! (but for the trailing `>` of `_INBOX.<user>.>` and `chat.<room>.>`).
//!
//! Permission sets are generated (direct grants, groups, rooms with user and group members,
//! patterns, admins, sysadmins, service users), written out as TOML, loaded, and checked
//! against an independent model of who may do what; room lists mix real and pattern-matching
//! names with separators, wildcards, whitespace, unicode, long names and long lists.

mod fuzz;

use std::collections::{BTreeMap, HashSet};

use nats_callout::callout::decision::{Deny, Grant, Inputs, Policy, decide};
use nats_callout::names::MAX_NAME_LEN;
use nats_callout::permissions::{Access, Snapshot};
use nats_callout::testing::{self, NOW, World};
use nats_callout::tokens::revocation::RevocationIndex;
use nats_callout::wire::{SERVICE_SUBJECTS, TOKEN_RESET_SUBJECT, notice_subject};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;

const GROUPS: usize = 3;
/// Exact room names the files use.
const ROOMS: &[&str] = &["r0", "r1", "team-a", "team-b", "a-ops", "all", "chat", "x"];
/// Patterns the files use (one `*`: one or more name characters).
const PATTERNS: &[&str] = &["team-*", "*-ops", "*", "r*", "*a"];
/// More names a client may ask for: matching a pattern only, or matching nothing.
const OTHER_ROOMS: &[&str] = &[
    "team-zz", "q-ops", "r99", "ba", "team-", "-ops", "nobody", "R0", "_",
];
const SEPARATORS: &[&str] = &[";", ",", ";;", ",;", " ", ".", "", "\n"];

#[derive(Debug, Clone)]
struct UserDef {
    /// `None`: no `roles` key (the default, `user`).
    roles: Option<Vec<&'static str>>,
    groups: Vec<usize>,
    grants: BTreeMap<&'static str, Access>,
}

#[derive(Debug, Clone)]
struct RoomDef {
    users: Vec<usize>,
    groups: Vec<usize>,
    access: Option<Access>,
}

#[derive(Debug, Clone)]
struct Model {
    users: Vec<UserDef>,
    /// Members of `g0`, `g1`, ... (user indices).
    groups: Vec<Vec<usize>>,
    rooms: BTreeMap<&'static str, RoomDef>,
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![Just(Access::Read), Just(Access::Write), Just(Access::ReadWrite)]
}

fn target() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => select(ROOMS), 1 => select(PATTERNS)]
}

fn roles() -> impl Strategy<Value = Option<Vec<&'static str>>> {
    prop_oneof![
        8 => Just(None),
        1 => Just(Some(vec!["admin"])),
        1 => Just(Some(vec!["sysadmin"])),
        1 => Just(Some(vec!["service"])),
        1 => Just(Some(vec!["user", "service"])),
        1 => Just(Some(vec![])),
    ]
}

fn user_def() -> impl Strategy<Value = UserDef> {
    (
        roles(),
        prop::collection::vec(0..GROUPS, 0..3),
        prop::collection::btree_map(target(), access(), 0..4),
    )
        .prop_map(|(roles, groups, grants)| UserDef {
            roles,
            groups,
            grants,
        })
}

fn room_def() -> impl Strategy<Value = RoomDef> {
    (
        prop::collection::vec(0..6usize, 0..3),
        prop::collection::vec(0..GROUPS, 0..2),
        prop::option::of(access()),
    )
        .prop_map(|(users, groups, access)| RoomDef {
            users,
            groups,
            access,
        })
}

fn model() -> impl Strategy<Value = Model> {
    (
        prop::collection::vec(user_def(), 1..=6),
        prop::collection::vec(prop::collection::vec(0..6usize, 0..4), GROUPS),
        prop::collection::btree_map(target(), room_def(), 0..6),
    )
        .prop_map(|(users, groups, rooms)| {
            let n = users.len();
            let keep = |v: &mut Vec<usize>| {
                v.retain(|&u| u < n);
                v.sort_unstable();
                v.dedup();
            };
            let mut m = Model { users, groups, rooms };
            m.groups.iter_mut().for_each(keep);
            for r in m.rooms.values_mut() {
                keep(&mut r.users);
                r.groups.sort_unstable();
                r.groups.dedup();
            }
            for u in &mut m.users {
                u.groups.sort_unstable();
                u.groups.dedup();
            }
            m
        })
}

impl Model {
    fn toml(&self) -> String {
        let list = |items: Vec<String>| {
            let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut out = String::new();
        for (i, u) in self.users.iter().enumerate() {
            out += &format!("[users.u{i}]\n");
            if let Some(roles) = &u.roles {
                out += &format!(
                    "roles = {}\n",
                    list(roles.iter().map(|r| r.to_string()).collect())
                );
            }
            out += &format!(
                "groups = {}\n",
                list(u.groups.iter().map(|g| format!("g{g}")).collect())
            );
            out += &format!("[users.u{i}.rooms]\n");
            for (room, a) in &u.grants {
                out += &format!("{room:?} = {:?}\n", a.as_str());
            }
        }
        for (g, members) in self.groups.iter().enumerate() {
            out += &format!(
                "[groups.g{g}]\nmembers = {}\n",
                list(members.iter().map(|u| format!("u{u}")).collect())
            );
        }
        for (room, r) in &self.rooms {
            let members = r
                .users
                .iter()
                .map(|u| format!("u{u}"))
                .chain(r.groups.iter().map(|g| format!("@g{g}")));
            out += &format!("[rooms.{room:?}]\nmembers = {}\n", list(members.collect()));
            if let Some(a) = r.access {
                out += &format!("access = {:?}\n", a.as_str());
            }
        }
        out
    }

    fn has_role(&self, user: usize, role: &str) -> bool {
        match &self.users[user].roles {
            None => role == "user",
            Some(roles) => roles.contains(&role),
        }
    }

    fn in_group(&self, user: usize, g: usize) -> bool {
        self.users[user].groups.contains(&g) || self.groups[g].contains(&user)
    }

    /// What `user` may do in `room`, worked out from the model alone.
    fn access(&self, user: usize, room: &str) -> Option<Access> {
        if !valid_name(room) {
            return None;
        }
        if self.has_role(user, "admin") || self.has_role(user, "sysadmin") {
            return Some(Access::ReadWrite);
        }
        let direct = self.users[user].grants.iter().map(|(t, a)| (*t, *a));
        let via_rooms = self.rooms.iter().filter_map(|(t, r)| {
            let member = r.users.contains(&user) || r.groups.iter().any(|&g| self.in_group(user, g));
            member.then_some((*t, r.access.unwrap_or(Access::ReadWrite)))
        });
        direct
            .chain(via_rooms)
            .filter(|(t, _)| matches(t, room))
            .map(|(_, a)| a)
            .reduce(|a, b| if a == b { a } else { Access::ReadWrite })
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A file's room name or pattern against a requested (valid) room.
fn matches(target: &str, room: &str) -> bool {
    match target.split_once('*') {
        None => target == room,
        Some((prefix, suffix)) => {
            room.len() > prefix.len() + suffix.len() && room.starts_with(prefix) && room.ends_with(suffix)
        }
    }
}

/// One requested room: a real or pattern-matching name, a pattern, or anything at all.
fn room_item() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(ROOMS).prop_map(str::to_string),
        3 => select(OTHER_ROOMS).prop_map(str::to_string),
        1 => select(PATTERNS).prop_map(str::to_string),
        1 => select(&["callout", "sys", ".", ">", "*", "chat.r0.>", "r0.*", " r0", "r0\t", "_INBOX.u0"][..])
            .prop_map(str::to_string),
        1 => "[a-z0-9_-]{60,70}",
        1 => "[.*> \t;,a-z0-9-]{0,6}",
        1 => "\\PC{0,6}",
        1 => any::<String>(),
    ]
}

/// The CONNECT `user` field: absent, a list of items with separators, one item repeated
/// many times, or many short names (around `max_rooms`).
fn room_list() -> impl Strategy<Value = Option<String>> {
    let list = prop::collection::vec((room_item(), select(SEPARATORS)), 0..12)
        .prop_map(|items| items.into_iter().map(|(r, s)| r + s).collect::<String>());
    let repeated = (room_item(), select(SEPARATORS), 0..400usize).prop_map(|(r, s, n)| (r + s).repeat(n));
    let many = prop::collection::vec("[a-z0-9_-]{1,4}", 40..70).prop_map(|v| v.join(";"));
    prop_oneof![
        1 => Just(None),
        8 => list.prop_map(Some),
        1 => repeated.prop_map(Some),
        1 => many.prop_map(Some),
    ]
}

/// The shared test world (keys, the default policy with its token-reset roles).
fn world() -> &'static (World, Policy) {
    static WORLD: std::sync::LazyLock<(World, Policy)> =
        std::sync::LazyLock::new(|| (World::random(), testing::policy()));
    &WORLD
}

fn decide_for(snapshot: &Snapshot, user: &str, rooms: Option<&str>) -> Result<Grant, Deny> {
    let (w, policy) = world();
    let token = w.token(user, NOW);
    let req = testing::auth_request(Some(&token), rooms, "Client", "nats");
    let revoked = RevocationIndex::default();
    let rooms = nats_callout::rooms::RoomIndex::default();
    let inputs = Inputs {
        tokens: &w.tokens,
        snapshot,
        rooms: &rooms,
        revoked: &revoked,
        policy,
    };
    decide(&req, &inputs, NOW).map_err(|d| d.deny)
}

/// The deny code a room list must get, or `None` when it is acceptable: the whole list
/// too long, then per segment in order an invalid or reserved name, or too many rooms.
fn expected_deny(list: &str, policy: &Policy) -> Option<&'static str> {
    if list.len() > policy.max_room_list_len() {
        return Some("room-list-too-long");
    }
    let mut seen = HashSet::new();
    for room in list.split([';', ',']).filter(|r| !r.is_empty()) {
        if !valid_name(room) {
            return Some("bad-room-name");
        }
        if policy.reserved.contains(room) {
            return Some("reserved-room-name");
        }
        seen.insert(room);
        if seen.len() > policy.max_rooms {
            return Some("too-many-rooms");
        }
    }
    None
}

/// Whether `s` is a subject without wildcards, but for a trailing `>` token.
fn wildcard_free(s: &str) -> bool {
    let tokens: Vec<&str> = s.split('.').collect();
    tokens.iter().enumerate().all(|(i, t)| {
        !t.is_empty()
            && !t.contains('*')
            && !t.chars().any(char::is_whitespace)
            && (!t.contains('>') || (*t == ">" && i + 1 == tokens.len()))
    })
}

/// The default `enforcement.token_reset_roles`: sysadmin only.
fn token_reset(model: &Model, ui: usize) -> bool {
    model.has_role(ui, "sysadmin")
}

fn check(model: &Model, snapshot: &Snapshot, ui: usize, rooms: Option<&str>) -> Result<(), TestCaseError> {
    let user = format!("u{ui}");
    let policy = &world().1;
    let result = decide_for(snapshot, &user, rooms);
    let list = rooms.unwrap_or("");
    let want_deny = expected_deny(list, policy);
    let grant = match (result, want_deny) {
        (Err(d), Some(code)) => {
            prop_assert_eq!(d.code(), code, "{}", d);
            return Ok(());
        }
        (Err(d), None) => return Err(TestCaseError::fail(format!("denied {list:?}: {d}"))),
        (Ok(_), Some(code)) => return Err(TestCaseError::fail(format!("{list:?} allowed, want {code}"))),
        (Ok(g), None) => g,
    };
    let u = snapshot.user(&user).expect("generated user is loaded");
    let publish = &grant.permissions.publish.allow;
    let subscribe = &grant.permissions.subscribe.allow;
    // An empty allow list alone is allow-all: nothing allowed must come with a deny of all.
    for p in [&grant.permissions.publish, &grant.permissions.subscribe] {
        let want_deny: &[&str] = if p.allow.is_empty() { &[">"] } else { &[] };
        prop_assert_eq!(&p.deny, want_deny, "an empty allow list is allow-all");
    }
    prop_assert!(!subscribe.is_empty(), "the inbox is always readable");
    prop_assert_eq!(&grant.identity.sub, &user);

    let requested: Vec<&str> = list.split([';', ',']).filter(|r| !r.is_empty()).collect();
    let inbox = format!("_INBOX.{user}.>");
    let allowed = |room: &str, can: fn(Access) -> bool| {
        requested.contains(&room)
            && model.access(ui, room).is_some_and(can)
            && snapshot.access(u, room).is_some_and(can)
    };
    for s in publish.iter().chain(subscribe) {
        prop_assert!(wildcard_free(s), "subject {:?} has a wildcard", s);
    }
    for s in publish {
        let t: Vec<&str> = s.split('.').collect();
        let ok = (SERVICE_SUBJECTS.contains(&s.as_str()) && model.has_role(ui, "service"))
            || (s == TOKEN_RESET_SUBJECT && token_reset(model, ui))
            || matches!(t[..], ["chat", room, last] if last == user && allowed(room, Access::can_write));
        prop_assert!(
            ok,
            "publish {:?} is not granted to {} (requested {:?})",
            s,
            user,
            list
        );
    }
    for s in subscribe {
        let t: Vec<&str> = s.split('.').collect();
        let ok = *s == inbox
            || *s == notice_subject(&user)
            || matches!(t[..], ["chat", room, ">"] if allowed(room, Access::can_read));
        prop_assert!(
            ok,
            "subscribe {:?} is not granted to {} (requested {:?})",
            s,
            user,
            list
        );
    }

    // And nothing granted is left out, each subject once.
    let mut want_pub: Vec<String> = Vec::new();
    let mut want_sub = vec![inbox, notice_subject(&user)];
    let mut refused = Vec::new();
    let mut seen = HashSet::new();
    for room in requested.iter().filter(|r| seen.insert(**r)) {
        match model.access(ui, room) {
            None => refused.push(room.to_string()),
            Some(a) => {
                if a.can_read() {
                    want_sub.push(format!("chat.{room}.>"));
                }
                if a.can_write() {
                    want_pub.push(format!("chat.{room}.{user}"));
                }
            }
        }
    }
    if model.has_role(ui, "service") {
        want_pub.extend(SERVICE_SUBJECTS.iter().map(|s| s.to_string()));
    }
    if token_reset(model, ui) {
        want_pub.push(TOKEN_RESET_SUBJECT.to_string());
    }
    prop_assert_eq!(publish, &want_pub);
    prop_assert_eq!(subscribe, &want_sub);
    prop_assert_eq!(&grant.refused, &refused);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// Any room list, any user of any permission set: only the user's grants, as explicit
    /// wildcard-free subjects; a room list that must be refused is, with the right reason.
    #[test]
    fn decisions_grant_only_the_users_grants(model in model(), user in 0..6usize, rooms in room_list()) {
        let toml = model.toml();
        let snapshot = Snapshot::from_sources(&[("gen.toml".to_string(), toml.clone())])
            .map_err(|e| TestCaseError::fail(format!("generated files do not load: {e}\n{toml}")))?;
        let ui = user % model.users.len();
        check(&model, &snapshot, ui, rooms.as_deref())?;
    }

    /// Asking for every room and pattern-matching name the files could grant, in any order.
    #[test]
    fn asking_for_everything_grants_exactly_the_users_rooms(
        model in model(),
        user in 0..6usize,
        order in Just(ROOMS.iter().chain(OTHER_ROOMS).copied().collect::<Vec<_>>()).prop_shuffle(),
        sep in select(&[";", ",", ";;", ",;"][..]),
    ) {
        let snapshot = Snapshot::from_sources(&[("gen.toml".to_string(), model.toml())]).unwrap();
        let ui = user % model.users.len();
        let list = order.join(sep);
        check(&model, &snapshot, ui, Some(&list))?;
    }

    /// A user the files do not know is denied whatever the room list.
    #[test]
    fn unknown_users_are_denied(model in model(), rooms in room_list()) {
        let snapshot = Snapshot::from_sources(&[("gen.toml".to_string(), model.toml())]).unwrap();
        let err = decide_for(&snapshot, "ghost", rooms.as_deref()).unwrap_err();
        prop_assert_eq!(err.code(), "unknown-user");
    }
}
