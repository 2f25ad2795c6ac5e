//! Applications (`[applications.NAME]`): the rooms a client application may reach. A
//! session opened with `clientId` NAME carries the application in its tokens, and every
//! grant is the user's rooms intersected with the application's ([`Scope`]).

use foldhash::HashSet;
use std::sync::Arc;

use super::model::Pattern;

/// An application of the permission files: the rooms (exact names and patterns) its
/// sessions may reach, whatever their user may do elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub(crate) name: String,
    pub(crate) rooms: HashSet<Arc<str>>,
    pub(crate) patterns: Vec<Pattern>,
    pub(crate) description: Option<String>,
}

impl Application {
    /// The application's name (the `clientId` its sessions are opened with).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the application may reach `room` (a valid room name).
    #[must_use]
    pub fn reaches(&self, room: &str) -> bool {
        self.rooms.contains(room) || self.patterns.iter().any(|p| p.matches(room))
    }

    /// The description the files give, if any.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

/// What a token's application lets its connections reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// No application named, or the files define none (the demo): the user's rooms.
    Unscoped,
    /// The rooms of this application.
    Within(&'a Application),
    /// An application the files do not define (removed since the login): no room.
    Nothing,
}

impl Scope<'_> {
    /// Whether a connection under this scope may reach `room` (given the user may).
    #[must_use]
    pub fn reaches(&self, room: &str) -> bool {
        match self {
            Scope::Unscoped => true,
            Scope::Within(app) => app.reaches(room),
            Scope::Nothing => false,
        }
    }
}

/// A `clientId` refused at login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplicationError {
    /// The files define applications, and none of this name.
    #[error("clientId {0:?} is not an application of the permission files")]
    Unknown(String),
}

impl ApplicationError {
    /// A short stable code for logs, metrics and HTTP `x-error-code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApplicationError::Unknown(_) => "unknown-application",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_reaches_the_applications_rooms_and_patterns_only() {
        let app = Application {
            name: "mobile".into(),
            rooms: [Arc::from("all1")].into_iter().collect(),
            patterns: vec![Pattern::parse("team-*").unwrap()],
            description: None,
        };
        // (room, unscoped, within mobile, nothing)
        let cases = [
            ("all1", true, true, false),
            ("team-a", true, true, false),
            ("team-", true, false, false),
            ("all2", true, false, false),
            ("xteam-a", true, false, false),
        ];
        for (room, unscoped, within, nothing) in cases {
            assert_eq!(Scope::Unscoped.reaches(room), unscoped, "{room}");
            assert_eq!(Scope::Within(&app).reaches(room), within, "{room}");
            assert_eq!(Scope::Nothing.reaches(room), nothing, "{room}");
        }
    }
}
