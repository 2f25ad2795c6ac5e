//! Reading one permission file (TOML or JSON) into the raw schema.
//!
//! Both formats share one serde schema. TOML is parsed into the `toml` crate's spanned
//! tree and each entry (`users.bob`, `rooms.all1`, …) is deserialized on its own, so every
//! bad entry is reported with the line from the parser. JSON is deserialized in one go
//! (the fast path for large generated sets); only if that fails on the data, not the
//! syntax, is the file read again entry by entry to collect every problem.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::locate::{Path, Seg, keys};

/// The format of a permission file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Toml,
    Json,
}

impl Format {
    /// `*.json` is JSON; anything else is read as TOML.
    pub(crate) fn of(name: &str) -> Self {
        Self::from_path(std::path::Path::new(name)).unwrap_or(Self::Toml)
    }

    /// The format of a `*.toml` or `*.json` file (any case), `None` for other files.
    pub(crate) fn from_path(path: &std::path::Path) -> Option<Self> {
        let ext = path.extension()?;
        if ext.eq_ignore_ascii_case("json") {
            Some(Self::Json)
        } else if ext.eq_ignore_ascii_case("toml") {
            Some(Self::Toml)
        } else {
            None
        }
    }
}

/// Where in a file a problem is.
#[derive(Debug, Clone)]
pub(crate) enum Loc {
    /// A known 1-based line.
    Line(usize),
    /// A byte offset into the file.
    Offset(usize),
    /// A path into the document, resolved to a line on the error path.
    Path(Path),
}

/// A problem whose line is not resolved yet.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Index of the file in the sources.
    pub(crate) file: usize,
    pub(crate) loc: Loc,
    pub(crate) reason: String,
    /// For duplicate definitions: where the first definition is.
    pub(crate) first: Option<(usize, Path)>,
}

impl Pending {
    pub(crate) fn at(file: usize, path: Path, reason: impl Into<String>) -> Self {
        Self {
            file,
            loc: Loc::Path(path),
            reason: reason.into(),
            first: None,
        }
    }
}

/// A string from a file, borrowed from the file's text where the parser allows it
/// (JSON strings without escapes), so that large generated files load without an
/// allocation per name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

/// Entries of a table, in file order, duplicates kept.
pub(crate) type Entries<'a, T> = Vec<(Text<'a>, T)>;

/// The contents of one file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "'de: 'a"))]
pub(crate) struct RawFile<'a> {
    #[serde(default, deserialize_with = "entries")]
    pub(crate) users: Entries<'a, RawUser<'a>>,
    #[serde(default, deserialize_with = "entries")]
    pub(crate) groups: Entries<'a, RawGroup<'a>>,
    #[serde(default, deserialize_with = "entries")]
    pub(crate) rooms: Entries<'a, RawRoom<'a>>,
    #[serde(default, deserialize_with = "entries")]
    pub(crate) applications: Entries<'a, RawApplication<'a>>,
}

/// `[users.NAME]`
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a user table",
    bound(deserialize = "'de: 'a")
)]
pub(crate) struct RawUser<'a> {
    #[serde(default)]
    pub(crate) password: Option<Text<'a>>,
    #[serde(default)]
    pub(crate) roles: Option<Vec<Text<'a>>>,
    #[serde(default)]
    pub(crate) groups: Vec<Text<'a>>,
    #[serde(default, deserialize_with = "entries")]
    pub(crate) rooms: Entries<'a, Text<'a>>,
    /// Public nkeys (`U…`) the user may log in with by signing a challenge.
    #[serde(default)]
    pub(crate) nkeys: Vec<Text<'a>>,
    /// The account the user's connections are placed in (default `callout.account`).
    #[serde(default)]
    pub(crate) account: Option<Text<'a>>,
    /// What the user may hold at once (`limits = { connections = N, subscriptions = N }`).
    #[serde(default)]
    pub(crate) limits: Option<RawLimits>,
}

/// `limits = { connections = N, subscriptions = N }` of a user or group, checked later.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a limits table")]
pub(crate) struct RawLimits {
    #[serde(default)]
    pub(crate) connections: Option<i64>,
    #[serde(default)]
    pub(crate) subscriptions: Option<i64>,
}

/// `[groups.NAME]`
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a group table",
    bound(deserialize = "'de: 'a")
)]
pub(crate) struct RawGroup<'a> {
    #[serde(default)]
    pub(crate) members: Vec<Text<'a>>,
    /// What each member may hold at once, unless the member sets its own.
    #[serde(default)]
    pub(crate) limits: Option<RawLimits>,
}

/// `[rooms.NAME]`
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a room table",
    bound(deserialize = "'de: 'a")
)]
pub(crate) struct RawRoom<'a> {
    #[serde(default)]
    pub(crate) members: Vec<Text<'a>>,
    #[serde(default)]
    pub(crate) access: Option<Text<'a>>,
    #[serde(default)]
    pub(crate) description: Option<Text<'a>>,
}

/// `[applications.NAME]`
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an application table",
    bound(deserialize = "'de: 'a")
)]
pub(crate) struct RawApplication<'a> {
    /// The rooms (names or patterns) the application may reach.
    #[serde(default)]
    pub(crate) rooms: Vec<Text<'a>>,
    #[serde(default)]
    pub(crate) description: Option<Text<'a>>,
}

/// Deserializes a map into its entries, in file order, keeping duplicate keys.
fn entries<'de, D, K, T>(deserializer: D) -> Result<Vec<(K, T)>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de>,
    T: Deserialize<'de>,
{
    struct EntriesVisitor<K, T>(PhantomData<(K, T)>);

    impl<'de, K: Deserialize<'de>, T: Deserialize<'de>> Visitor<'de> for EntriesVisitor<K, T> {
        type Value = Vec<(K, T)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_map(EntriesVisitor(PhantomData))
}

/// The top-level tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Users,
    Groups,
    Rooms,
    Applications,
}

impl Section {
    fn of(key: &str) -> Option<Self> {
        match key {
            "users" => Some(Self::Users),
            "groups" => Some(Self::Groups),
            "rooms" => Some(Self::Rooms),
            "applications" => Some(Self::Applications),
            _ => None,
        }
    }

    const fn singular(self) -> &'static str {
        match self {
            Self::Users => "user",
            Self::Groups => "group",
            Self::Rooms => "room",
            Self::Applications => "application",
        }
    }
}

fn unknown_section(key: &str) -> String {
    format!("unknown table {key:?} (expected \"users\", \"groups\", \"rooms\" or \"applications\")")
}

fn not_a_table(key: &str) -> String {
    format!("{key:?} must be a table")
}

/// Parses one file; problems go to `out`, good entries are returned even when others are bad.
pub(crate) fn parse<'a>(file: usize, format: Format, text: &'a str, out: &mut Vec<Pending>) -> RawFile<'a> {
    match format {
        Format::Toml => parse_toml(file, text, out),
        Format::Json => parse_json(file, text, out),
    }
}

fn parse_toml<'a>(file: usize, text: &'a str, out: &mut Vec<Pending>) -> RawFile<'a> {
    let problem = |loc, reason| Pending {
        file,
        loc,
        reason,
        first: None,
    };
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let loc = e.span().map_or(Loc::Line(1), |s| Loc::Offset(s.start));
            out.push(problem(loc, e.message().trim_end().to_owned()));
            return RawFile::default();
        }
    };
    let mut raw = RawFile::default();
    for (key, value) in root.into_inner() {
        let key_offset = key.span().start;
        let Some(section) = Section::of(key.get_ref()) else {
            out.push(problem(Loc::Offset(key_offset), unknown_section(key.get_ref())));
            continue;
        };
        let DeValue::Table(table) = value.into_inner() else {
            out.push(problem(Loc::Offset(key_offset), not_a_table(key.get_ref())));
            continue;
        };
        for (name, entry) in table {
            let name_offset = name.span().start;
            let name = name.into_inner();
            let reason =
                |e: &toml::de::Error| format!("{} {:?}: {}", section.singular(), &*name, e.message());
            let text = Text(name.clone());
            let de = ValueDeserializer::from(entry);
            let result = match section {
                Section::Users => de_toml(de).map(|u| raw.users.push((text, u))),
                Section::Groups => de_toml(de).map(|g| raw.groups.push((text, g))),
                Section::Rooms => de_toml(de).map(|r| raw.rooms.push((text, r))),
                Section::Applications => de_toml(de).map(|a| raw.applications.push((text, a))),
            };
            if let Err(e) = result {
                let offset = e.span().map_or(name_offset, |s| s.start);
                let reason = reason(&e);
                out.push(problem(Loc::Offset(offset), reason));
            }
        }
    }
    raw
}

fn de_toml<'a, T: Deserialize<'a>>(de: ValueDeserializer<'a>) -> Result<T, toml::de::Error> {
    T::deserialize(de)
}

fn parse_json<'a>(file: usize, text: &'a str, out: &mut Vec<Pending>) -> RawFile<'a> {
    match serde_json::from_str::<RawFile>(text) {
        Ok(raw) => raw,
        Err(e) if e.is_data() => parse_json_slowly(file, text, out),
        Err(e) => {
            out.push(json_syntax(file, &e));
            RawFile::default()
        }
    }
}

fn json_syntax(file: usize, e: &serde_json::Error) -> Pending {
    let msg = e.to_string();
    let reason = match msg.rfind(" at line ") {
        Some(i) if e.line() > 0 => msg[..i].to_owned(),
        _ => msg,
    };
    Pending {
        file,
        loc: Loc::Line(e.line().max(1)),
        reason,
        first: None,
    }
}

/// The error path for JSON: every entry on its own, to report all problems.
fn parse_json_slowly<'a>(file: usize, text: &'a str, out: &mut Vec<Pending>) -> RawFile<'a> {
    use serde_json::Value;

    let top = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(top)) => top,
        Ok(_) => {
            out.push(Pending {
                file,
                loc: Loc::Line(1),
                reason: "expected an object with \"users\", \"groups\", \"rooms\" or \"applications\""
                    .to_owned(),
                first: None,
            });
            return RawFile::default();
        }
        Err(e) => {
            out.push(json_syntax(file, &e));
            return RawFile::default();
        }
    };
    let mut raw = RawFile::default();
    for (key, value) in top {
        let Some(section) = Section::of(&key) else {
            out.push(Pending::at(file, keys(&[&key]), unknown_section(&key)));
            continue;
        };
        let Value::Object(table) = value else {
            out.push(Pending::at(file, keys(&[&key]), not_a_table(&key)));
            continue;
        };
        for (name, entry) in table {
            let text = Text(Cow::Owned(name.clone()));
            let result = match section {
                Section::Users => RawUser::deserialize(entry).map(|u| raw.users.push((text, u))),
                Section::Groups => RawGroup::deserialize(entry).map(|g| raw.groups.push((text, g))),
                Section::Rooms => RawRoom::deserialize(entry).map(|r| raw.rooms.push((text, r))),
                Section::Applications => {
                    RawApplication::deserialize(entry).map(|a| raw.applications.push((text, a)))
                }
            };
            if let Err(e) = result {
                let reason = format!("{} {name:?}: {e}", section.singular());
                out.push(Pending::at(
                    file,
                    vec![Seg::Key(key.clone()), Seg::Key(name)],
                    reason,
                ));
            }
        }
    }
    raw
}
