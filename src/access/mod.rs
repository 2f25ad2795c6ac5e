//! Delegated decisions (contract 13): the rooms matching an `[[access.delegate]]` table are
//! decided by an app service answering on a private NATS subject, as resgate lets the service
//! owning a resource answer who may get it.
//!
//! - [`Routes`] (here): which delegate decides a room, read by the pure decision;
//! - [`ask`]: the messages, `{"user", "room", ...}` out and `{"access"}` back, and what a
//!   room's answer was ([`Answer`]);
//! - [`cache`]: answers kept per user and room, bounded, each for its table's `cache`;
//! - [`delegates`]: asking, in parallel within the budget, with a bound on asks in flight,
//!   and invalidation (`auth.v1.access.invalidate`).

pub mod ask;
pub mod cache;
pub mod delegates;

use std::fmt;
use std::time::Duration;

pub use ask::{Answer, Answers, Ask, Outcome};
pub use delegates::{Delegates, Invalidate};

use serde::Deserialize;

use crate::permissions::Pattern;
use crate::subjects::{Template, covers};

/// The longest budget an ask may have. nats-server waits `authorization.timeout` (2 s by
/// default) for the whole callout answer, and a connect must never wait for its delegates
/// longer than half of that.
pub const MAX_DELEGATE_TIMEOUT: Duration = Duration::from_secs(1);

/// `[[access.delegate]]`: the rooms matching `rooms` are decided by the app service answering
/// on `subject`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DelegateSettings {
    /// A room name or a pattern as in the permission files (`team-*`, `*`).
    pub rooms: String,
    /// The subject the service asks on (no wildcard); private to the service and the app.
    pub subject: String,
    /// The budget of one ask (at most [`MAX_DELEGATE_TIMEOUT`]).
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
    /// How long an answer is kept (0 keeps none).
    #[serde(with = "humantime_serde", default = "default_cache")]
    pub cache: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_millis(250)
}

fn default_cache() -> Duration {
    Duration::from_secs(30)
}

/// The rooms a delegate decides: one name, or a pattern as in the permission files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rooms {
    Name(String),
    Pattern(Pattern),
}

impl Rooms {
    /// Whether `room` (a valid name) is one of these.
    #[must_use]
    pub fn matches(&self, room: &str) -> bool {
        match self {
            Rooms::Name(n) => n == room,
            Rooms::Pattern(p) => p.matches(room),
        }
    }
}

impl fmt::Display for Rooms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rooms::Name(n) => f.write_str(n),
            Rooms::Pattern(p) => p.fmt(f),
        }
    }
}

/// One `[[access.delegate]]` table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub rooms: Rooms,
    pub subject: String,
    pub timeout: Duration,
    pub cache: Duration,
}

/// Subject prefixes a delegate may never use: the server's, the inboxes' and replies', the
/// service's own and its exported endpoints.
const FORBIDDEN_PREFIXES: &[&str] = &["$", "_INBOX.", "_R_.", "nats-callout.", "auth.v1."];

impl Route {
    /// Check a table on its own (the subject against the grant's templates is
    /// [`Routes::check_private`]).
    ///
    /// # Errors
    /// A bad pattern or name, a subject with a wildcard or an empty token, a reserved
    /// subject, or a timeout of zero or over [`MAX_DELEGATE_TIMEOUT`].
    pub fn from_settings(s: &DelegateSettings) -> Result<Route, String> {
        let rooms = if s.rooms.contains('*') {
            Rooms::Pattern(Pattern::parse(&s.rooms).map_err(|e| format!("rooms: {e}"))?)
        } else {
            crate::names::validate_name(&s.rooms).map_err(|e| format!("rooms: {e}"))?;
            Rooms::Name(s.rooms.clone())
        };
        check_subject(&s.subject)?;
        if s.timeout.is_zero() {
            return Err("timeout: must be more than 0".into());
        }
        if s.timeout > MAX_DELEGATE_TIMEOUT {
            return Err(format!(
                "timeout: {} is over {}: nats-server waits authorization.timeout (2s by default) \
                 for the whole answer, and a connect waits for its delegates at most half of that",
                humantime::format_duration(s.timeout),
                humantime::format_duration(MAX_DELEGATE_TIMEOUT),
            ));
        }
        Ok(Route {
            rooms,
            subject: s.subject.clone(),
            timeout: s.timeout,
            cache: s.cache,
        })
    }

    /// How a decision names this delegate as a room's source: `delegate:<subject>`.
    #[must_use]
    pub fn source(&self) -> String {
        format!("delegate:{}", self.subject)
    }
}

/// A literal subject of non-empty tokens, no wildcard, outside the reserved namespaces.
fn check_subject(subject: &str) -> Result<(), String> {
    let bad = subject.is_empty()
        || subject.len() > 256
        || subject.split('.').any(|t| {
            t.is_empty() || t.contains(['*', '>']) || t.chars().any(|c| c.is_whitespace() || c.is_control())
        });
    if bad {
        return Err(format!(
            "subject {subject:?}: a literal subject of non-empty tokens (no '*', '>' or whitespace)"
        ));
    }
    if let Some(p) = FORBIDDEN_PREFIXES.iter().find(|p| subject.starts_with(**p)) {
        return Err(format!(
            "subject {subject:?}: {p}... is reserved (the server's, inboxes and the service's own subjects)"
        ));
    }
    Ok(())
}

/// Every delegate, in the order of the tables (the first whose rooms match decides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// No delegate.
    pub const EMPTY: Routes = Routes(Vec::new());

    /// # Errors
    /// The first table that does not check, named by its position.
    pub fn from_settings(tables: &[DelegateSettings]) -> Result<Routes, String> {
        tables
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Route::from_settings(d).map_err(|e| format!("table {} (rooms {:?}): {e}", i + 1, d.rooms))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Routes)
    }

    /// The delegate deciding `room`, if any.
    #[must_use]
    pub fn route(&self, room: &str) -> Option<&Route> {
        self.0.iter().find(|r| r.rooms.matches(room))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.0.iter()
    }

    /// No user JWT may ever subscribe to a delegate's subject, nor publish on it: with the
    /// app account's export the subject lives where users are placed, and whoever answers
    /// there grants rooms. Checked against every subject a grant can hold: the read and write
    /// templates (any room, any user), the inbox and the notices.
    ///
    /// # Errors
    /// The first subject some grant could cover, with the template that would.
    pub fn check_private(&self, read: &Template, write: &Template, inbox: &Template) -> Result<(), String> {
        let notices = crate::wire::NOTICE_SUBJECTS;
        for (i, r) in self.0.iter().enumerate() {
            let s = r.subject.as_str();
            let hit = [
                (read.could_cover(s), "callout.read_subject"),
                (write.could_cover(s), "callout.write_subject"),
                (inbox.could_cover_below(s), "callout.inbox_prefix"),
                (covers(notices, s), "the users' notices (nats-callout.notice.>)"),
            ]
            .into_iter()
            .find_map(|(hit, what)| hit.then_some(what));
            if let Some(what) = hit {
                return Err(format!(
                    "table {} (rooms {:?}): subject {s:?}: a user's grant could reach it ({what}); \
                     whoever may subscribe there could answer and grant rooms",
                    i + 1,
                    r.rooms.to_string()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subjects::Kind;

    fn table(rooms: &str, subject: &str, timeout_ms: u64) -> DelegateSettings {
        DelegateSettings {
            rooms: rooms.into(),
            subject: subject.into(),
            timeout: Duration::from_millis(timeout_ms),
            cache: Duration::from_secs(30),
        }
    }

    #[test]
    fn tables_are_checked() {
        let good = [("team-*", "apps.access"), ("*", "x"), ("lounge", "a.b.c")];
        for (rooms, subject) in good {
            Route::from_settings(&table(rooms, subject, 250))
                .unwrap_or_else(|e| panic!("{rooms} {subject}: {e}"));
        }
        let bad = [
            ("team-**", "apps.access", 250, "rooms"),
            ("a.b", "apps.access", 250, "rooms"),
            ("", "apps.access", 250, "rooms"),
            ("team-*", "apps.*", 250, "literal subject"),
            ("team-*", "apps.>", 250, "literal subject"),
            ("team-*", "apps..x", 250, "literal subject"),
            ("team-*", "", 250, "literal subject"),
            ("team-*", "a b", 250, "literal subject"),
            ("team-*", "$SYS.x", 250, "reserved"),
            ("team-*", "_INBOX.x", 250, "reserved"),
            ("team-*", "auth.v1.access", 250, "reserved"),
            ("team-*", "nats-callout.decisions", 250, "reserved"),
            ("team-*", "apps.access", 0, "timeout"),
            ("team-*", "apps.access", 1500, "authorization.timeout"),
        ];
        for (rooms, subject, ms, needle) in bad {
            let e = Route::from_settings(&table(rooms, subject, ms)).unwrap_err();
            assert!(e.contains(needle), "{rooms} {subject} {ms}: {e}");
        }
    }

    #[test]
    fn the_first_matching_table_decides() {
        let routes =
            Routes::from_settings(&[table("team-a", "one", 250), table("team-*", "two", 250)]).unwrap();
        assert_eq!(routes.route("team-a").unwrap().subject, "one");
        assert_eq!(routes.route("team-b").unwrap().subject, "two");
        assert!(routes.route("team-").is_none());
        assert!(routes.route("all1").is_none());
        assert_eq!(routes.route("team-b").unwrap().source(), "delegate:two");
    }

    #[test]
    fn a_subject_a_grant_could_reach_is_refused() {
        let t = |s: &str, k| Template::parse(s, k).unwrap();
        let (read, write, inbox) = (
            t("chat.{room}.>", Kind::Read),
            t("chat.{room}.{user}", Kind::Write),
            t("_INBOX.{user}", Kind::Inbox),
        );
        let check = |subject: &str| {
            Routes::from_settings(&[table("team-*", subject, 250)])
                .unwrap()
                .check_private(&read, &write, &inbox)
        };
        for ok in ["apps.access", "chat", "chat.x", "access.chat.x.y", "_INBOXES.x"] {
            check(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, what) in [
            ("chat.x.y", "read_subject"),
            ("chat.delegate.ask.more", "read_subject"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains(what), "{bad}: {e}");
        }
        // Other templates: each kind is checked.
        let read2 = t("rooms.{room}.msgs.>", Kind::Read);
        let write2 = t("rooms.{room}.msgs.{user}", Kind::Write);
        let inbox2 = t("replies.{user}", Kind::Inbox);
        let check2 = |subject: &str| {
            Routes::from_settings(&[table("team-*", subject, 250)])
                .unwrap()
                .check_private(&read2, &write2, &inbox2)
        };
        check2("rooms.x.ask").unwrap();
        assert!(check2("rooms.x.msgs.y").unwrap_err().contains("read_subject"));
        assert!(check2("replies.bob.x").unwrap_err().contains("inbox_prefix"));
        assert!(
            check2("replies.bob").is_ok(),
            "the inbox grant is replies.<user>.>"
        );
    }

    #[test]
    fn patterns_cover_subjects() {
        for (p, s, want) in [
            ("a.*.>", "a.b.c", true),
            ("a.*.>", "a.b", false),
            ("a.*", "a.b", true),
            ("a.*", "a.b.c", false),
            (">", "a", true),
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
        ] {
            assert_eq!(covers(p, s), want, "{p} {s}");
        }
    }
}
