//! Tests for loading, validating and querying permission files.

use std::fmt::Write as _;

use super::*;
use crate::names::MAX_NAME_LEN;

fn load(sources: &[(&str, &str)]) -> Result<Snapshot, LoadErrors> {
    let owned: Vec<(String, String)> = sources
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    Snapshot::from_sources(&owned)
}

fn problems(sources: &[(&str, &str)]) -> Vec<String> {
    match load(sources) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// A stable text form of everything in a snapshot.
fn dump(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut users: Vec<&User> = s.users().collect();
    users.sort_by(|a, b| a.id().cmp(b.id()));
    for u in users {
        let mut grants: Vec<_> = u.grants.iter().collect();
        grants.sort();
        let _ = writeln!(
            out,
            "{} roles={:?} hash={:?} groups={:?} grants={grants:?} patterns={:?}",
            u.id(),
            u.roles().collect::<Vec<_>>(),
            u.password_hash(),
            u.groups(),
            u.patterns,
        );
    }
    let _ = writeln!(out, "rooms={:?}", s.rooms().collect::<Vec<_>>());
    for r in s.rooms() {
        let _ = writeln!(out, "{r}: {:?}", s.room_description(r));
    }
    out
}

const DEMO_USERS: &str = include_str!("../../permissions/users.toml");
const DEMO_ROOMS: &str = include_str!("../../permissions/rooms.toml");

#[test]
fn demo_files() {
    let s = load(&[("users.toml", DEMO_USERS), ("rooms.toml", DEMO_ROOMS)]).expect("demo");
    assert_eq!(s.user_count(), 3);
    assert_eq!(s.room_count(), 7);
    let bob = s.user("bob").expect("bob");
    let alice = s.user("alice").expect("alice");
    let admin = s.user("admin").expect("admin");
    assert_eq!(bob.roles().collect::<Vec<_>>(), [Role::User]);
    assert_eq!(admin.roles().collect::<Vec<_>>(), [Role::Admin, Role::Sysadmin]);
    assert!(admin.is_admin() && admin.has_role(Role::Sysadmin));
    assert!(!bob.is_admin() && !alice.is_admin());
    assert_eq!(bob.groups(), ["everyone"]);

    let rw = Some(Access::ReadWrite);
    let table: &[(&str, [Option<Access>; 3])] = &[
        ("all1", [rw, rw, rw]),
        ("all2", [rw, rw, rw]),
        ("all3", [rw, rw, rw]),
        ("alice1", [None, rw, rw]),
        ("alice2", [None, rw, rw]),
        ("bob1", [rw, None, rw]),
        ("bob2", [rw, None, rw]),
        ("other", [None, None, rw]),
    ];
    for (room, want) in table {
        let got = [bob, alice, admin].map(|u| s.access(u, room));
        assert_eq!(got, *want, "{room}");
    }
    let names = |u| s.rooms_for(u).into_iter().map(|(r, _)| r).collect::<Vec<_>>();
    assert_eq!(names(bob), ["all1", "all2", "all3", "bob1", "bob2"]);
    assert_eq!(names(alice), ["alice1", "alice2", "all1", "all2", "all3"]);
    assert_eq!(names(admin).len(), 7);
    assert_eq!(s.room_description("all1"), Some("Everyone's first room"));

    for u in [bob, alice, admin] {
        let hash = u.password_hash().expect("hash");
        assert!(crate::password::is_valid_hash(hash), "{}", u.id());
    }
    // One real verification (argon2 is slow in debug builds).
    assert!(crate::password::verify_password(
        bob.password_hash().expect("hash"),
        "bob"
    ));
}

#[test]
fn demo_directory_loads() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/permissions"));
    let s = Snapshot::load_dir(dir).expect("demo dir");
    assert_eq!((s.user_count(), s.room_count()), (3, 7));
}

const FIXTURE_TOML: &str = r#"
[users.bob]
groups = ["devs"]
[users.bob.rooms]
bob1 = "readwrite"
"team-*" = "read"
shared = "read"

[users.alice]
password = "$argon2id$v=19$m=19456,t=2,p=1$6DagVw73dIuNptllUCkSOQ$ky3bsIdt02AJ84yAtu9IX48twRpyrUDA/b5RqzObzmc"

[users.carol]
roles = ["service"]

[users.root]
roles = ["sysadmin"]

[users.boss]
roles = ["admin", "user"]

[groups.devs]
members = ["alice"]

[groups.nobody]

[rooms.shared]
members = ["@devs"]
access = "write"

[rooms.alice-only]
members = ["alice"]
access = "read"
description = "Alice reads here"

[rooms."team-*"]
members = ["@devs"]
access = "write"
description = "Team rooms"

[rooms."*-ops"]
members = ["carol", "carol"]
access = "read"

[rooms."*"]
members = ["@nobody"]

[rooms.team-red]
"#;

const FIXTURE_JSON: &str = r#"{
  "users": {
    "bob": {
      "groups": ["devs"],
      "rooms": {"bob1": "readwrite", "team-*": "read", "shared": "read"}
    },
    "alice": {
      "password": "$argon2id$v=19$m=19456,t=2,p=1$6DagVw73dIuNptllUCkSOQ$ky3bsIdt02AJ84yAtu9IX48twRpyrUDA/b5RqzObzmc"
    },
    "carol": {"roles": ["service"]},
    "root": {"roles": ["sysadmin"]},
    "boss": {"roles": ["admin", "user"]}
  },
  "groups": {
    "devs": {"members": ["alice"]},
    "nobody": {}
  },
  "rooms": {
    "shared": {"members": ["@devs"], "access": "write"},
    "alice-only": {"members": ["alice"], "access": "read", "description": "Alice reads here"},
    "team-*": {"members": ["@devs"], "access": "write", "description": "Team rooms"},
    "*-ops": {"members": ["carol", "carol"], "access": "read"},
    "*": {"members": ["@nobody"]},
    "team-red": {}
  }
}"#;

#[test]
fn access_table() {
    use Access::{Read, ReadWrite, Write};
    let s = load(&[("fixture.toml", FIXTURE_TOML)]).expect("fixture");
    let too_long = "a".repeat(MAX_NAME_LEN + 1);
    let cases: &[(&str, &str, Option<Access>)] = &[
        ("bob", "bob1", Some(ReadWrite)),    // direct grant
        ("bob", "shared", Some(ReadWrite)),  // direct read ∪ write via @devs (own list)
        ("alice", "shared", Some(Write)),    // via group members list
        ("alice", "alice-only", Some(Read)), // room membership
        ("bob", "alice-only", None),         // not a member
        ("bob", "team-a", Some(ReadWrite)),  // direct pattern read ∪ room pattern write
        ("alice", "team-a", Some(Write)),    // room pattern via group
        ("alice", "team-", None),            // '*' matches one or more characters
        ("carol", "db-ops", Some(Read)),     // suffix pattern
        ("carol", "-ops", None),
        ("carol", "bob1", None),
        ("bob", "unknown", None),  // unknown room
        ("bob", "team-a.b", None), // invalid names never match patterns
        ("bob", "team-*", None),
        ("root", "anything", Some(ReadWrite)), // sysadmin
        ("boss", "anything", Some(ReadWrite)), // admin
        ("boss", "bob1", Some(ReadWrite)),
    ];
    for (user, room, want) in cases {
        let u = s.user(user).expect(user);
        assert_eq!(s.access(u, room), *want, "{user} in {room}");
    }
    for bad in ["all1.x", "*", ">", "a b", "", "all1.>", "chat.*", &too_long] {
        for user in ["root", "boss", "bob", "carol"] {
            let u = s.user(user).expect(user);
            assert_eq!(s.access(u, bad), None, "{user} in {bad:?}");
        }
    }
    assert!(s.user("nobody").is_none());
}

#[test]
fn rooms_for_lists_exact_rooms() {
    use Access::{Read, ReadWrite, Write};
    let s = load(&[("fixture.toml", FIXTURE_TOML)]).expect("fixture");
    let rooms = |u: &str| s.rooms_for(s.user(u).expect(u));
    let own = |list: &[(&str, Access)]| -> Vec<(String, Access)> {
        list.iter().map(|(r, a)| ((*r).to_owned(), *a)).collect()
    };
    assert_eq!(
        rooms("bob"),
        own(&[
            ("bob1", ReadWrite),
            ("shared", ReadWrite),
            ("team-red", ReadWrite)
        ])
    );
    assert_eq!(
        rooms("alice"),
        own(&[("alice-only", Read), ("shared", Write), ("team-red", Write)])
    );
    assert_eq!(rooms("carol"), own(&[]));
    let all = own(&[
        ("alice-only", ReadWrite),
        ("bob1", ReadWrite),
        ("shared", ReadWrite),
        ("team-red", ReadWrite),
    ]);
    assert_eq!(rooms("boss"), all);
    assert_eq!(rooms("root"), all);
    assert_eq!(s.room_count(), 4);
    assert_eq!(s.room_description("team-*"), Some("Team rooms"));
    assert_eq!(s.room_description("shared"), None);
}

#[test]
fn json_and_toml_give_the_same_snapshot() {
    let toml = load(&[("p.toml", FIXTURE_TOML)]).expect("toml");
    let json = load(&[("p.json", FIXTURE_JSON)]).expect("json");
    assert_eq!(dump(&toml), dump(&json));
    assert!(dump(&toml).contains("bob roles=[User] hash=None groups=[\"devs\"]"));
}

#[test]
fn definitions_may_be_split_across_files() {
    let users = r#"{"users": {"bob": {"groups": ["g"]}}}"#;
    let groups = "[groups.g]\n";
    let rooms = "[rooms.r]\nmembers = [\"@g\"]\naccess = \"read\"\n";
    let s = load(&[("u.json", users), ("g.toml", groups), ("r.toml", rooms)]).expect("split");
    let bob = s.user("bob").expect("bob");
    assert_eq!(s.access(bob, "r"), Some(Access::Read));
}

#[test]
fn user_from_an_older_snapshot_gets_current_grants() {
    let old = load(&[("a.toml", "[rooms.r]\nmembers = [\"bob\"]\n[users.bob]\n")]).expect("old");
    let new = load(&[("a.toml", "[rooms.r]\n[users.bob]\n")]).expect("new");
    let gone = load(&[("a.toml", "[rooms.r]\n")]).expect("gone");
    let bob = old.user("bob").expect("bob");
    assert_eq!(old.access(bob, "r"), Some(Access::ReadWrite));
    assert_eq!(new.access(bob, "r"), None);
    assert_eq!(gone.access(bob, "r"), None);
    assert!(gone.rooms_for(bob).is_empty());
}

#[test]
fn empty_sources_give_an_empty_snapshot() {
    let s = load(&[]).expect("empty");
    assert_eq!((s.user_count(), s.room_count()), (0, 0));
    let s = load(&[("a.toml", "# nothing\n"), ("b.json", "{}")]).expect("empty files");
    assert_eq!((s.user_count(), s.room_count()), (0, 0));
    assert_eq!(Snapshot::default().user_count(), 0);
}

#[test]
fn debug_does_not_show_password_hashes() {
    let s = load(&[("fixture.toml", FIXTURE_TOML)]).expect("fixture");
    let alice = s.user("alice").expect("alice");
    let hash = alice.password_hash().expect("hash");
    let debug = format!("{alice:?} {alice:#?} {s:?}");
    assert!(!debug.contains(hash), "{debug}");
    assert!(!debug.contains("argon2"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

/// Files, then the expected problems. A want ending in "..." is a prefix.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn validation_problems() {
    let long = "x".repeat(MAX_NAME_LEN + 1);
    let long_user = format!("[users.{long}]\n");
    let cases: &[Case<'_>] = &[
        // Syntax errors, with the parser's line.
        (
            &[("u.toml", "[users.bob]\nroles = [\"user\"\n\n[rooms.x]\n")],
            &["u.toml:4: missing comma between array elements, expected `,`"],
        ),
        (&[("u.toml", "\n\n[users.bob\nroles = []\n")], &["u.toml:3: ..."]),
        (
            &[("u.json", "{\n  \"users\": {\n    \"bob\": }\n}")],
            &["u.json:3: expected value"],
        ),
        (&[("u.json", "")], &["u.json:1: EOF while parsing a value"]),
        // Schema errors.
        (
            &[("u.toml", "[users.bob]\npasword = \"x\"\n")],
            &[
                "u.toml:2: user \"bob\": unknown field `pasword`, expected one of `password`, `roles`, `groups`, `rooms`, `nkeys`, `account`, `limits`",
            ],
        ),
        // Limits: whole numbers from 1, known fields only, at the line of the value.
        (
            &[(
                "l.toml",
                "[users.bob]\nlimits = { connections = 0 }\n[groups.g]\nmembers = []\nlimits = { subscriptions = -5 }\n",
            )],
            &[
                "l.toml:2: user \"bob\": limits.connections = 0: must be a whole number from 1 to 1000000",
                "l.toml:5: group \"g\": limits.subscriptions = -5: must be a whole number from 1 to 1000000",
            ],
        ),
        (
            &[("l.toml", "[users.bob]\n\nlimits = { connection = 2 }\n")],
            &[
                "l.toml:3: user \"bob\": unknown field `connection`, expected `connections` or `subscriptions`",
            ],
        ),
        (
            &[("l.toml", "[users.bob]\nlimits = { connections = \"2\" }\n")],
            &["l.toml:2: user \"bob\": invalid type: string \"2\", expected i64"],
        ),
        (
            &[(
                "l.json",
                "{\"users\": {\n  \"bob\": {\"limits\": {\"connections\": 2000000}}\n}}",
            )],
            &[
                "l.json:2: user \"bob\": limits.connections = 2000000: must be a whole number from 1 to 1000000",
            ],
        ),
        (
            &[("u.toml", "[users.bob]\nroles = \"admin\"\n")],
            &["u.toml:2: user \"bob\": invalid type: string \"admin\", expected a sequence"],
        ),
        (
            &[("u.toml", "[user.bob]\n")],
            &[
                "u.toml:1: unknown table \"user\" (expected \"users\", \"groups\", \"rooms\" or \"applications\")",
            ],
        ),
        (
            &[("u.toml", "\nusers = 5\n")],
            &["u.toml:2: \"users\" must be a table"],
        ),
        (
            &[("r.toml", "[rooms.a]\nmembers = []\nowner = \"bob\"\n")],
            &[
                "r.toml:3: room \"a\": unknown field `owner`, expected one of `members`, `access`, `description`",
            ],
        ),
        // Names.
        (
            &[("u.toml", "\n[users.\"b.ob\"]\n")],
            &["u.toml:2: invalid user name \"b.ob\": invalid character '.'"],
        ),
        (
            &[("u.toml", &long_user)],
            &[
                "u.toml:1: invalid user name \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\": longer than 64 characters",
            ],
        ),
        (
            &[("g.toml", "[groups.\"a b\"]\n")],
            &["g.toml:1: invalid group name \"a b\": invalid character ' '"],
        ),
        (
            &[("r.toml", "[rooms.\">\"]\n[rooms.\"a**\"]\n")],
            &[
                "r.toml:1: invalid room name \">\": invalid character '>'",
                "r.toml:2: invalid room pattern \"a**\": a pattern may contain only one '*'",
            ],
        ),
        // Roles, access, passwords.
        (
            &[("u.toml", "[users.bob]\nroles = [\n  \"user\",\n  \"root\",\n]\n")],
            &[
                "u.toml:4: user \"bob\": unknown role \"root\" (expected \"user\", \"admin\", \"sysadmin\" or \"service\")",
            ],
        ),
        (
            &[("r.toml", "[rooms.a]\nmembers = []\naccess = \"rw\"\n")],
            &["r.toml:3: room \"a\": invalid access \"rw\" (expected \"read\", \"write\" or \"readwrite\")"],
        ),
        (
            &[("u.toml", "[users.bob]\n[users.bob.rooms]\nbob1 = \"all\"\n")],
            &[
                "u.toml:3: user \"bob\": room \"bob1\": invalid access \"all\" (expected \"read\", \"write\" or \"readwrite\")",
            ],
        ),
        (
            &[("u.toml", "[users.bob]\n\npassword = \"hunter2\"\n")],
            &[
                "u.toml:3: user \"bob\": password is not an argon2id PHC hash (make one with `nats-callout hash-password`)",
            ],
        ),
        // Direct grants to invalid rooms.
        (
            &[(
                "u.toml",
                "[users.bob.rooms]\n\"all1.x\" = \"read\"\n\">\" = \"read\"\n",
            )],
            &[
                "u.toml:2: user \"bob\": invalid room name \"all1.x\": invalid character '.'",
                "u.toml:3: user \"bob\": invalid room name \">\": invalid character '>'",
            ],
        ),
        // References.
        (
            &[(
                "g.toml",
                "[groups.g]\nmembers = [\"carol\", \"@h\"]\n[groups.h]\n",
            )],
            &[
                "g.toml:2: group \"g\": unknown user \"carol\"",
                "g.toml:2: group \"g\": a group cannot contain groups (\"@h\")",
            ],
        ),
        (
            &[(
                "r.toml",
                "[users.bob]\n[rooms.a]\nmembers = [\n  \"bob\",\n  \"carol\",\n  \"@devs\",\n]\n",
            )],
            &[
                "r.toml:5: room \"a\": unknown user \"carol\"",
                "r.toml:6: room \"a\": unknown group \"@devs\"",
            ],
        ),
        (
            &[("u.toml", "[users.bob]\ngroups = [\"devs\"]\n")],
            &["u.toml:2: user \"bob\": unknown group \"devs\""],
        ),
        // Duplicates across files (and formats).
        (
            &[
                ("a.toml", "[users.bob]\n[rooms.r]\n"),
                ("b.toml", "\n\n[users.bob]\n[rooms.r]\n"),
                ("c.json", "{\n\"rooms\": {\n  \"r\": {}\n}}"),
            ],
            &[
                "b.toml:3: user \"bob\" is defined more than once (first at a.toml:1)",
                "b.toml:4: room \"r\" is defined more than once (first at a.toml:2)",
                "c.json:3: room \"r\" is defined more than once (first at a.toml:2)",
            ],
        ),
        // JSON: semantic problems on the fast path, schema problems on the slow path.
        (
            &[(
                "p.json",
                "{\n  \"users\": {\"bob\": {}},\n  \"rooms\": {\n    \"a\": {\n      \"members\": [\"bob\",\n        \"carol\"]\n    }\n  }\n}",
            )],
            &["p.json:6: room \"a\": unknown user \"carol\""],
        ),
        (
            &[(
                "p.json",
                "{\n  \"users\": {\n    \"bob\": {\"roles\": [\"root\"]},\n    \"carol\": {\"pasword\": \"x\"},\n    \"dave\": {\"roles\": 5}\n  },\n  \"user\": {}\n}",
            )],
            &[
                "p.json:3: user \"bob\": unknown role \"root\" (expected \"user\", \"admin\", \"sysadmin\" or \"service\")",
                "p.json:4: user \"carol\": unknown field `pasword`, expected one of `password`, `roles`, `groups`, `rooms`, `nkeys`, `account`, `limits`",
                "p.json:5: user \"dave\": invalid type: integer `5`, expected a sequence",
                "p.json:7: unknown table \"user\" (expected \"users\", \"groups\", \"rooms\" or \"applications\")",
            ],
        ),
        // Applications: names, rooms and patterns checked like any other; no field but
        // rooms and description; defined once.
        (
            &[(
                "a.toml",
                "[applications.\"mo bile\"]\nrooms = [\n  \"all1\",\n  \"a.b\",\n  \"x**\",\n]\n",
            )],
            &[
                "a.toml:1: invalid application name \"mo bile\": invalid character ' '",
                "a.toml:4: application \"mo bile\": invalid room name \"a.b\": invalid character '.'",
                "a.toml:5: application \"mo bile\": invalid room pattern \"x**\": a pattern may contain only one '*'",
            ],
        ),
        (
            &[("a.toml", "[applications.web]\nrooms = \"all1\"\n")],
            &["a.toml:2: application \"web\": invalid type: string \"all1\", expected a sequence"],
        ),
        (
            &[("a.toml", "[applications.web]\nroles = [\"admin\"]\n")],
            &["a.toml:2: application \"web\": unknown field `roles`, expected `rooms` or `description`"],
        ),
        (
            &[
                ("a.toml", "[applications.web]\n"),
                (
                    "b.json",
                    "{\"applications\": {\n  \"web\": {\"rooms\": [\"all1\"]}\n}}",
                ),
            ],
            &["b.json:2: application \"web\" is defined more than once (first at a.toml:1)"],
        ),
        (
            &[("p.json", "[1, 2]")],
            &["p.json:1: expected an object with \"users\", \"groups\", \"rooms\" or \"applications\""],
        ),
    ];
    for (sources, want) in cases {
        let got = problems(sources);
        assert_eq!(got.len(), want.len(), "{sources:?}\n got: {got:#?}");
        for (g, w) in got.iter().zip(want.iter()) {
            match w.strip_suffix("...") {
                Some(prefix) => assert!(g.starts_with(prefix), "{g:?} !~ {w:?}"),
                None => assert_eq!(g, w, "{sources:?}"),
            }
        }
    }
}

#[test]
fn all_problems_are_reported_in_file_and_line_order() {
    let a = "\
[users.bob]
roles = [\"root\"]
password = \"plain\"
groups = [\"nope\"]

[rooms.\"a.b\"]
members = [\"zed\"]
";
    let b = "[users.\"x y\"]\n[groups.g]\nmembers = [\"bob\", \"ghost\"]\n";
    let got = problems(&[("a.toml", a), ("b.toml", b)]);
    let lines: Vec<&str> = got
        .iter()
        .map(|p| p.split(": ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        lines,
        [
            "a.toml:2", "a.toml:3", "a.toml:4", "a.toml:6", "a.toml:7", "b.toml:1", "b.toml:3"
        ],
        "{got:#?}"
    );
    let err = load(&[("a.toml", a), ("b.toml", b)]).expect_err("invalid");
    assert_eq!(err.to_string().lines().count(), 7);
    assert_eq!(err.to_string(), got.join("\n"));
    assert!(
        !err.to_string().contains("plain"),
        "the password value is not echoed"
    );
}

#[test]
fn many_files_parsed_at_once_keep_every_entry_and_the_problem_order() {
    // More files than cores: each parser thread takes several, and the results are put back in order.
    let names: Vec<String> = (0..9)
        .map(|i| format!("f{i}.{}", if i % 2 == 0 { "toml" } else { "json" }))
        .collect();
    let texts: Vec<String> = (0..9)
        .map(|i| match (i, i % 2) {
            (4, _) => "[users.u4\n".to_owned(),
            (7, _) => r#"{"users": {"u7": {"roles": 3}}}"#.to_owned(),
            (_, 0) => format!("[users.u{i}]\n"),
            _ => format!(r#"{{"users": {{"u{i}": {{}}}}}}"#),
        })
        .collect();
    let sources: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(texts.iter().map(String::as_str))
        .collect();
    let got = problems(&sources);
    let files: Vec<&str> = got
        .iter()
        .map(|p| p.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(files, ["f4.toml", "f7.json"], "{got:#?}");
    let good: Vec<(&str, &str)> = sources
        .iter()
        .copied()
        .filter(|(n, _)| !["f4.toml", "f7.json"].contains(n))
        .collect();
    let s = load(&good).expect("the good files");
    assert_eq!(s.user_count(), 7);
    assert!(
        (0..9)
            .filter(|i| ![4, 7].contains(i))
            .all(|i| s.user(&format!("u{i}")).is_some())
    );
}

#[test]
fn problem_display() {
    let p = |line| Problem {
        file: "permissions/users.toml".to_owned(),
        line,
        reason: "bad".to_owned(),
    };
    assert_eq!(p(3).to_string(), "permissions/users.toml:3: bad");
    assert_eq!(p(0).to_string(), "permissions/users.toml: bad");
}

#[test]
fn load_dir_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    // Empty directory: valid, empty.
    let s = Snapshot::load_dir(path).expect("empty dir");
    assert_eq!(s.user_count(), 0);

    // Other extensions, hidden files and subdirectories are ignored.
    std::fs::write(path.join("notes.txt"), "not toml [").expect("write");
    std::fs::write(path.join(".users.toml.swp"), "junk [").expect("write");
    std::fs::write(path.join(".hidden.toml"), "junk [").expect("write");
    std::fs::create_dir(path.join("sub.toml")).expect("mkdir");
    std::fs::write(path.join("users.toml"), "[users.bob]\n").expect("write");
    std::fs::write(
        path.join("rooms.json"),
        r#"{"rooms": {"r": {"members": ["bob"]}}}"#,
    )
    .expect("write");
    let s = Snapshot::load_dir(path).expect("dir");
    let bob = s.user("bob").expect("bob");
    assert_eq!(s.access(bob, "r"), Some(Access::ReadWrite));

    // Problems carry the path as given.
    std::fs::write(path.join("bad.toml"), [0xff, 0xfe, b'\n']).expect("write");
    std::fs::write(path.join("more.toml"), "[users.bob]\n").expect("write");
    let err = Snapshot::load_dir(path).expect_err("bad");
    let shown = |name: &str| path.join(name).display().to_string();
    assert_eq!(err.0.len(), 2, "{err}");
    assert_eq!(err.0[0].file, shown("bad.toml"));
    assert_eq!(err.0[0].line, 0);
    assert!(err.0[0].reason.starts_with("cannot read file: "), "{err}");
    assert_eq!(
        err.0[1].to_string(),
        format!(
            "{}:1: user \"bob\" is defined more than once (first at {}:1)",
            shown("users.toml"),
            shown("more.toml")
        )
    );

    // A directory that does not exist.
    let missing = path.join("missing");
    let err = Snapshot::load_dir(&missing).expect_err("missing");
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].file, missing.display().to_string());
    assert!(
        err.0[0].to_string().contains(": cannot read directory: "),
        "{err}"
    );
}

#[test]
fn nkeys_name_their_user_once_and_bad_ones_are_reported_where_they_are() {
    let k1 = nkeys::KeyPair::new_user().public_key();
    let k2 = nkeys::KeyPair::new_user().public_key();
    let s = load(&[(
        "u.toml",
        &format!("[users.bob]\nnkeys = [\"{k1}\", \"{k2}\"]\n[users.alice]\n"),
    )])
    .unwrap();
    assert_eq!(s.user_by_nkey(&k1).map(User::id), Some("bob"));
    assert_eq!(s.user_by_nkey(&k2).map(User::id), Some("bob"));
    assert!(s.user_by_nkey("UNKNOWN").is_none());
    let account = nkeys::KeyPair::new_account().public_key();
    let got = problems(&[
        (
            "a.toml",
            &format!("[users.bob]\nnkeys = [\n  \"{k1}\",\n  \"not-a-key\",\n  \"{account}\",\n]\n"),
        ),
        ("b.toml", &format!("[users.alice]\nnkeys = [\"{k1}\"]\n")),
    ]);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with("a.toml:4:") && got[0].contains("not a public user nkey"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("a.toml:5:") && got[1].contains("not a public user nkey"),
        "{got:?}"
    );
    assert!(
        got[2].starts_with("b.toml:2:") && got[2].contains("is also user \"bob\"'s"),
        "{got:?}"
    );
}

#[test]
fn users_placed_outside_the_served_accounts_are_named() {
    let s = load(&[(
        "p.toml",
        "[users.carol]\naccount = \"APP2\"\n[users.dave]\naccount = \"APP3\"\n[users.erin]\n\
         [users.bob]\naccount = \"APP\"\n",
    )])
    .unwrap();
    let served = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        s.placed_outside(&served(&["APP"])),
        [("carol", "APP2"), ("dave", "APP3")]
    );
    assert_eq!(s.placed_outside(&served(&["APP", "APP2"])), [("dave", "APP3")]);
    assert!(s.placed_outside(&served(&["APP", "APP2", "APP3"])).is_empty());
}

#[test]
fn applications_scope_rooms_and_name_the_client_ids_a_login_may_use() {
    let files = "[users.bob]\n[users.bob.rooms]\nall1 = \"readwrite\"\nteam-a = \"read\"\n\
                 [applications.mobile]\nrooms = [\"all1\", \"team-*\", \"nowhere\"]\ndescription = \"Phones\"\n\
                 [applications.kiosk]\n";
    let s = load(&[("p.toml", files)]).expect("valid");
    let mobile = s.application("mobile").expect("mobile");
    assert_eq!((mobile.name(), mobile.description()), ("mobile", Some("Phones")));
    // An application names rooms it may reach; it does not make them exist.
    assert_eq!(s.rooms().collect::<Vec<_>>(), ["all1", "team-a"]);
    // (clientId, room, reached)
    let cases = [
        (None, "all1", true),
        (None, "bob1", true),
        (Some("mobile"), "all1", true),
        (Some("mobile"), "team-a", true),
        (Some("mobile"), "nowhere", true),
        (Some("mobile"), "bob1", false),
        (Some("kiosk"), "all1", false),
        (Some("gone"), "all1", false),
    ];
    for (app, room, want) in cases {
        assert_eq!(s.scope(app).reaches(room), want, "{app:?} {room}");
    }
    assert_eq!(s.check_application(None), Ok(()));
    assert_eq!(s.check_application(Some("kiosk")), Ok(()));
    let err = s.check_application(Some("gone")).unwrap_err();
    assert_eq!(err.code(), "unknown-application");
    // Without applications (the demo), any clientId is free-form and scopes nothing.
    let demo = load(&[("users.toml", DEMO_USERS), ("rooms.toml", DEMO_ROOMS)]).expect("demo");
    assert!(!demo.has_applications());
    assert_eq!(demo.check_application(Some("anything")), Ok(()));
    assert_eq!(demo.scope(Some("anything")), Scope::Unscoped);
}

#[test]
fn limits_a_users_own_wins_otherwise_the_smallest_of_its_groups() {
    let files = r#"
[users.bob]
groups = ["a", "b"]
[users.carol]
groups = ["a", "b"]
limits = { connections = 9 }
[users.dave]
[groups.a]
members = []
limits = { connections = 5, subscriptions = 100 }
[groups.b]
members = ["dave"]
limits = { connections = 3 }
"#;
    let s = load(&[("l.toml", files)]).expect("valid");
    let limits = |u: &str| s.user(u).expect(u).limits();
    let l = |c, sub| crate::permissions::Limits {
        connections: c,
        subscriptions: sub,
    };
    assert_eq!(limits("bob"), l(Some(3), Some(100)));
    assert_eq!(limits("carol"), l(Some(9), Some(100)));
    assert_eq!(limits("dave"), l(Some(3), None));
    assert_eq!(s.smallest_limits(), l(Some(3), Some(100)));
    // A provider's groups count like the files' (the user's own value still wins).
    let asserted = crate::permissions::Asserted {
        groups: vec!["a".into()],
        file_users: true,
        ..Default::default()
    };
    let dave = s.effective("dave", Some(&asserted)).expect("dave");
    assert_eq!(dave.limits(), l(Some(3), Some(100)));
    let none = load(&[("n.toml", "[users.x]\n")]).expect("valid");
    assert!(none.smallest_limits().is_none());
}
