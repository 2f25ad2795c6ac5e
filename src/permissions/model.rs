//! Permission model: access levels, roles, room patterns and users.

use foldhash::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::limits::Limits;
use crate::names::{MAX_NAME_LEN, NameError, is_name_char};

/// What a user may do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Subscribe only.
    Read,
    /// Publish only.
    Write,
    /// Subscribe and publish.
    ReadWrite,
}

impl Access {
    /// Whether this access allows reading (subscribing).
    #[must_use]
    pub const fn can_read(self) -> bool {
        matches!(self, Self::Read | Self::ReadWrite)
    }

    /// Whether this access allows writing (publishing).
    #[must_use]
    pub const fn can_write(self) -> bool {
        matches!(self, Self::Write | Self::ReadWrite)
    }

    /// Everything either access allows.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        if self == other { self } else { Self::ReadWrite }
    }

    /// Two grants that may be absent, together.
    #[must_use]
    pub fn either(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.union(b)),
            (a, b) => a.or(b),
        }
    }

    /// The lowercase name used in permission files.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::ReadWrite => "readwrite",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not `read`, `write` or `readwrite`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid access {0:?} (expected \"read\", \"write\" or \"readwrite\")")]
pub struct UnknownAccess(pub String);

impl FromStr for Access {
    type Err = UnknownAccess;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "readwrite" => Ok(Self::ReadWrite),
            _ => Err(UnknownAccess(s.to_owned())),
        }
    }
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary user: grants nothing by itself.
    User,
    /// Read and write in every room; manages other users' sessions.
    Admin,
    /// Everything an admin may do, plus system-wide operations.
    Sysadmin,
    /// May call the service's own endpoints.
    Service,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Self; 4] = [Self::User, Self::Admin, Self::Sysadmin, Self::Service];

    /// The lowercase name used in permission files.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
            Self::Sysadmin => "sysadmin",
            Self::Service => "service",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected \"user\", \"admin\", \"sysadmin\" or \"service\")")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// A small set of roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RoleSet(u8);

impl RoleSet {
    pub(crate) fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }

    pub(crate) const fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

/// A room pattern from a permission file: exactly one `*` standing for one or more name
/// characters (`team-*`, `*-ops`, or `*` for every room).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern {
    prefix: String,
    suffix: String,
}

/// Why a room pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// No `*` at all: this is a plain name, not a pattern.
    #[error("not a pattern (no '*')")]
    NoStar,
    /// More than one `*`.
    #[error("a pattern may contain only one '*'")]
    TooManyStars,
    /// The pattern without its `*` is not a valid name.
    #[error(transparent)]
    Name(#[from] NameError),
}

impl Pattern {
    /// Parses a pattern containing a `*`.
    ///
    /// # Errors
    /// No `*`, more than one `*`, a character outside `[A-Za-z0-9_-]`, or longer than
    /// [`MAX_NAME_LEN`].
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let Some((prefix, suffix)) = s.split_once('*') else {
            return Err(PatternError::NoStar);
        };
        if suffix.contains('*') {
            return Err(PatternError::TooManyStars);
        }
        if let Some(ch) = prefix.chars().chain(suffix.chars()).find(|&c| !is_name_char(c)) {
            return Err(NameError::BadChar { ch }.into());
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong {
                len: s.len(),
                max: MAX_NAME_LEN,
            }
            .into());
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        })
    }

    /// Whether `room` matches. `room` is expected to be a valid name already.
    #[must_use]
    pub fn matches(&self, room: &str) -> bool {
        room.len() > self.prefix.len() + self.suffix.len()
            && room.starts_with(&self.prefix)
            && room.ends_with(&self.suffix)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}*{}", self.prefix, self.suffix)
    }
}

/// A user from the permission store, with everything needed to answer access questions.
#[derive(Clone)]
pub struct User {
    pub(crate) id: String,
    pub(crate) roles: RoleSet,
    pub(crate) password_hash: Option<String>,
    /// Effective groups (listed by the user or listing the user), sorted, unique.
    pub(crate) groups: Vec<String>,
    /// Exact room grants, unions already applied.
    pub(crate) grants: HashMap<Arc<str>, Access>,
    /// Pattern grants, sorted and unique by pattern.
    pub(crate) patterns: Vec<(Pattern, Access)>,
    /// The id of the snapshot this user belongs to.
    pub(crate) snapshot: u64,
    /// The account the user's connections are placed in, when not the default.
    pub(crate) account: Option<String>,
    /// The limits the user's own entry sets (a group's, for a group).
    pub(crate) own_limits: Limits,
    /// The limits that apply: the user's own, else the smallest of its groups'.
    pub(crate) limits: Limits,
}

impl User {
    /// A user (or a group's grants) with no role, password or grant yet.
    pub(crate) fn empty(id: String, snapshot: u64) -> Self {
        User {
            id,
            roles: RoleSet::default(),
            password_hash: None,
            groups: Vec::new(),
            grants: HashMap::default(),
            patterns: Vec::new(),
            snapshot,
            account: None,
            own_limits: Limits::default(),
            limits: Limits::default(),
        }
    }

    /// What the user may hold at once (see [`Limits`]).
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The account the user's connections are placed in, when the files name one.
    #[must_use]
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// The stable user id (the name in the permission files).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the user has exactly this role (a sysadmin does not implicitly have `Admin`;
    /// use [`User::is_admin`] for that).
    #[must_use]
    pub const fn has_role(&self, role: Role) -> bool {
        self.roles.contains(role)
    }

    /// Whether the user is an admin or a sysadmin.
    #[must_use]
    pub const fn is_admin(&self) -> bool {
        self.roles.contains(Role::Admin) || self.roles.contains(Role::Sysadmin)
    }

    /// The argon2id PHC hash of the user's password, if the user may log in with one.
    #[must_use]
    pub fn password_hash(&self) -> Option<&str> {
        self.password_hash.as_deref()
    }

    /// The user's roles, in [`Role::ALL`] order.
    pub fn roles(&self) -> impl Iterator<Item = Role> + use<> {
        self.roles.iter()
    }

    /// The groups the user belongs to, sorted.
    #[must_use]
    pub fn groups(&self) -> &[String] {
        &self.groups
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("roles", &self.roles().collect::<Vec<_>>())
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("groups", &self.groups)
            .field("grants", &self.grants.len())
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_union_and_flags() {
        use Access::{Read, ReadWrite, Write};
        let cases = [
            (Read, Read, Read),
            (Write, Write, Write),
            (Read, Write, ReadWrite),
            (Write, Read, ReadWrite),
            (Read, ReadWrite, ReadWrite),
            (ReadWrite, Write, ReadWrite),
            (ReadWrite, ReadWrite, ReadWrite),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.union(b), want, "{a} ∪ {b}");
        }
        assert!(Read.can_read() && !Read.can_write());
        assert!(!Write.can_read() && Write.can_write());
        assert!(ReadWrite.can_read() && ReadWrite.can_write());
    }

    #[test]
    fn access_strings() {
        for a in [Access::Read, Access::Write, Access::ReadWrite] {
            assert_eq!(a.as_str().parse::<Access>(), Ok(a));
            let json = serde_json::to_string(&a).expect("serialize");
            assert_eq!(json, format!("\"{a}\""));
        }
        for bad in ["", "Read", "rw", "read-write", "read_write"] {
            assert!(bad.parse::<Access>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn role_strings() {
        for r in Role::ALL {
            assert_eq!(r.to_string().parse::<Role>(), Ok(r));
        }
        assert_eq!(
            "root".parse::<Role>().map_err(|e| e.to_string()),
            Err(
                "unknown role \"root\" (expected \"user\", \"admin\", \"sysadmin\" or \"service\")"
                    .to_owned()
            )
        );
        let mut set = RoleSet::default();
        set.insert(Role::Service);
        set.insert(Role::User);
        assert_eq!(set.iter().collect::<Vec<_>>(), [Role::User, Role::Service]);
    }

    #[test]
    fn patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("team-*", "team-a", true),
            ("team-*", "team-", false),
            ("team-*", "team", false),
            ("team-*", "xteam-a", false),
            ("*-ops", "db-ops", true),
            ("*-ops", "-ops", false),
            ("a*z", "abz", true),
            ("a*z", "az", false),
            ("*", "x", true),
            ("*", "all1", true),
        ];
        for (pat, room, want) in cases {
            let p = Pattern::parse(pat).expect(pat);
            assert_eq!(p.matches(room), *want, "{pat} ~ {room}");
            assert_eq!(p.to_string(), *pat);
        }
    }

    #[test]
    fn bad_patterns() {
        let long = format!("{}*", "a".repeat(MAX_NAME_LEN));
        let cases: &[(&str, &str)] = &[
            ("abc", "not a pattern (no '*')"),
            ("a**", "a pattern may contain only one '*'"),
            ("*a*", "a pattern may contain only one '*'"),
            ("a.*", "invalid character '.'"),
            ("*>", "invalid character '>'"),
            ("a *", "invalid character ' '"),
            (&long, "longer than 64 characters"),
        ];
        for (pat, want) in cases {
            let err = Pattern::parse(pat).expect_err(pat);
            assert_eq!(err.to_string(), *want, "{pat}");
        }
    }
}
