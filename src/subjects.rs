//! Subject templates such as `chat.{room}.>`: validated once, filled only with validated names.

use crate::names::validate_name;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Room,
    User,
}

/// A subject with `{room}` and `{user}` placeholders, each a whole token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template is for: each kind has its own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `callout.read_subject`: subscribe, per readable room. Needs `{room}`; may end in `>`.
    Read,
    /// `callout.write_subject`: publish, per writable room. Needs `{room}` and ends in
    /// `{user}`, so the subject names the sender and the server guarantees it.
    Write,
    /// `callout.inbox_prefix`: the user's inbox (`.>` is added). Needs `{user}`, no `{room}`.
    Inbox,
}

impl Template {
    /// Parse and check a template of `kind`: non-empty tokens, placeholders as whole
    /// tokens, no `*` anywhere (a wildcard would let a grant reach other subjects), `>` only
    /// as the read subject's last token, and the placeholders `kind` needs.
    pub fn parse(s: &str, kind: Kind) -> Result<Template, String> {
        let tokens: Vec<&str> = s.split('.').collect();
        let mut parts = Vec::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let last = i + 1 == tokens.len();
            let part = match *t {
                "" => return Err(format!("{s:?} has an empty token")),
                "{room}" => Part::Room,
                "{user}" => Part::User,
                ">" if last && kind == Kind::Read => Part::Literal(">".into()),
                ">" if kind == Kind::Read => return Err(format!("{s:?}: '>' must be last")),
                t if t.contains('>') => {
                    return Err(format!(
                        "{s:?}: '>' may only end the read subject (a grant must not reach further)"
                    ));
                }
                t if t.contains('*') => {
                    return Err(format!(
                        "{s:?}: '*' is not allowed (a grant must not reach further)"
                    ));
                }
                t if t.contains('{') || t.contains('}') => {
                    return Err(format!(
                        "{s:?}: placeholders must be whole tokens ({{room}}, {{user}})"
                    ));
                }
                t if t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                    return Err(format!("{s:?} contains whitespace"));
                }
                t => Part::Literal(t.to_string()),
            };
            parts.push(part);
        }
        let has = |p: &Part| parts.contains(p);
        match kind {
            Kind::Read | Kind::Write if !has(&Part::Room) => Err(format!("{s:?} must contain {{room}}")),
            Kind::Write if parts.last() != Some(&Part::User) => Err(format!(
                "{s:?} must end in {{user}}: the last token names the sender, so that nobody \
                 can post as someone else"
            )),
            Kind::Inbox if has(&Part::Room) => Err(format!("{s:?} must not contain {{room}}")),
            Kind::Inbox if !has(&Part::User) => Err(format!("{s:?} must contain {{user}}")),
            _ => Ok(Template { parts }),
        }
    }

    /// Whether every subject `self` renders for a room (whoever the user) is one that
    /// `read` lets the readers of that same room receive: `{room}` in the same place, the
    /// literals equal, and the sender's `{user}` covered by a trailing `>` of `read`.
    /// (`chat.{user}.{room}` against `chat.{room}.>` would let a user named `all1` reach
    /// every reader of room `all1`.)
    pub fn inside(&self, read: &Template) -> bool {
        for (i, r) in read.parts.iter().enumerate() {
            let Some(w) = self.parts.get(i) else { return false };
            match r {
                Part::Literal(l) if l == ">" => return true,
                _ if r == w && *w != Part::User => {}
                _ => return false,
            }
        }
        self.parts.len() == read.parts.len()
    }

    /// The template as a NATS pattern: each placeholder a `*` (any room, any user).
    fn as_pattern(&self) -> String {
        let parts: Vec<&str> = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.as_str(),
                Part::Room | Part::User => "*",
            })
            .collect();
        parts.join(".")
    }

    /// Whether a subject this template renders, for some room and user, covers `subject`
    /// (conservatively: any token stands for a placeholder).
    pub fn could_cover(&self, subject: &str) -> bool {
        covers(&self.as_pattern(), subject)
    }

    /// [`Template::could_cover`] for a prefix granted with `.>` below it (the inbox).
    pub fn could_cover_below(&self, subject: &str) -> bool {
        covers(&format!("{}.>", self.as_pattern()), subject)
    }

    /// Fill in the placeholders. Both values must be valid names; callers validated
    /// them already, and this checks again so no value can add a token or a wildcard.
    pub fn render(&self, room: &str, user: &str) -> Option<String> {
        if self.parts.contains(&Part::Room) && validate_name(room).is_err() {
            return None;
        }
        if self.parts.contains(&Part::User) && validate_name(user).is_err() {
            return None;
        }
        let mut out = String::with_capacity(64);
        for (i, p) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(match p {
                Part::Literal(l) => l,
                Part::Room => room,
                Part::User => user,
            });
        }
        Some(out)
    }
}

/// Whether the NATS pattern `pattern` (with `*` and a trailing `>`) covers the literal `subject`.
#[must_use]
pub fn covers(pattern: &str, subject: &str) -> bool {
    let mut s = subject.split('.');
    for p in pattern.split('.') {
        match (p, s.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    s.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_defaults() {
        let r = Template::parse("chat.{room}.>", Kind::Read).unwrap();
        let w = Template::parse("chat.{room}.{user}", Kind::Write).unwrap();
        let i = Template::parse("_INBOX.{user}", Kind::Inbox).unwrap();
        assert_eq!(r.render("all1", "bob").unwrap(), "chat.all1.>");
        assert_eq!(w.render("all1", "bob").unwrap(), "chat.all1.bob");
        assert_eq!(i.render("", "bob").unwrap(), "_INBOX.bob");
        assert!(w.inside(&r));
    }

    #[test]
    fn values_cannot_widen_a_subject() {
        let w = Template::parse("chat.{room}.{user}", Kind::Write).unwrap();
        for bad in ["a.b", "*", ">", "a b", "", "a\tb"] {
            assert_eq!(w.render(bad, "bob"), None, "room {bad:?}");
            assert_eq!(w.render("all1", bad), None, "user {bad:?}");
        }
    }

    #[test]
    fn bad_templates_are_refused() {
        use Kind::*;
        for (t, kind) in [
            ("chat..{room}", Read),
            ("chat.{room}x", Read),
            ("chat.>.{room}", Read),
            ("chat.static", Read),
            ("chat.{room}.*", Read),
            ("chat.*.{room}", Read),
            ("chat.{room}.a*", Read),
            ("chat.{room}.a>", Read),
            ("_INBOX", Inbox),
            ("_INBOX.{room}.{user}", Inbox),
            ("_INBOX.{user}.>", Inbox),
            ("_INBOX.*.{user}", Inbox),
            ("chat. {room}", Read),
            // The sender guarantee: the write subject ends in the sender's name.
            ("chat.{room}.>", Write),
            ("chat.{room}", Write),
            ("chat.{room}.{user}.x", Write),
            ("chat.{user}.{room}", Write),
            ("chat.{room}.*", Write),
            ("chat.{room}.{user}.>", Write),
        ] {
            assert!(Template::parse(t, kind).is_err(), "{t} as {kind:?}");
        }
    }

    #[test]
    fn a_write_subject_must_be_inside_the_read_subject_of_its_room() {
        let t = |s: &str, k| Template::parse(s, k).unwrap();
        use Kind::*;
        // (read, write, inside)
        let cases = [
            ("chat.{room}.>", "chat.{room}.{user}", true),
            ("chat.{room}.>", "chat.{room}.msg.{user}", true),
            ("rooms.{room}.>", "rooms.{room}.{user}", true),
            ("chat.{room}.>", "other.{room}.{user}", false),
            ("chat.{room}.>", "chat.x.{room}.{user}", false),
            ("chat.x.{room}.>", "chat.{room}.{user}", false),
            // Exact read subjects cannot cover a sender's name.
            ("chat.{room}", "chat.{room}.{user}", false),
            ("chat.{room}.{user}", "chat.{room}.{user}", false),
            ("chat.{room}.all", "chat.{room}.{user}", false),
        ];
        for (read, write, want) in cases {
            assert_eq!(t(write, Write).inside(&t(read, Read)), want, "{write} in {read}");
        }
    }
}
