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

impl Template {
    /// Parse and check a template: non-empty tokens, `>` only last, placeholders as
    /// whole tokens, `{user}` present, and `{room}` present when `needs_room`.
    pub fn parse(s: &str, needs_room: bool) -> Result<Template, String> {
        let tokens: Vec<&str> = s.split('.').collect();
        let mut parts = Vec::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let part = match *t {
                "" => return Err(format!("{s:?} has an empty token")),
                "{room}" => Part::Room,
                "{user}" => Part::User,
                ">" if i + 1 != tokens.len() => return Err(format!("{s:?}: '>' must be last")),
                t if t.contains('{') || t.contains('}') => {
                    return Err(format!(
                        "{s:?}: placeholders must be whole tokens ({{room}}, {{user}})"
                    ));
                }
                t if t.chars().any(char::is_whitespace) => return Err(format!("{s:?} contains whitespace")),
                t => Part::Literal(t.to_string()),
            };
            parts.push(part);
        }
        let has = |p: &Part| parts.contains(p);
        if needs_room && !has(&Part::Room) {
            return Err(format!("{s:?} must contain {{room}}"));
        }
        if !needs_room && has(&Part::Room) {
            return Err(format!("{s:?} must not contain {{room}}"));
        }
        if !has(&Part::User) && !needs_room {
            return Err(format!("{s:?} must contain {{user}}"));
        }
        Ok(Template { parts })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_defaults() {
        let r = Template::parse("chat.{room}.>", true).unwrap();
        let w = Template::parse("chat.{room}.{user}", true).unwrap();
        let i = Template::parse("_INBOX.{user}", false).unwrap();
        assert_eq!(r.render("all1", "bob").unwrap(), "chat.all1.>");
        assert_eq!(w.render("all1", "bob").unwrap(), "chat.all1.bob");
        assert_eq!(i.render("", "bob").unwrap(), "_INBOX.bob");
    }

    #[test]
    fn values_cannot_widen_a_subject() {
        let w = Template::parse("chat.{room}.{user}", true).unwrap();
        for bad in ["a.b", "*", ">", "a b", "", "a\tb"] {
            assert_eq!(w.render(bad, "bob"), None, "room {bad:?}");
            assert_eq!(w.render("all1", bad), None, "user {bad:?}");
        }
    }

    #[test]
    fn bad_templates_are_refused() {
        for (t, room) in [
            ("chat..{room}", true),
            ("chat.{room}x", true),
            ("chat.>.{room}", true),
            ("chat.static", true),
            ("_INBOX", false),
            ("_INBOX.{room}.{user}", false),
            ("chat. {room}", true),
        ] {
            assert!(Template::parse(t, room).is_err(), "{t}");
        }
    }
}
