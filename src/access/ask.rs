//! The messages of a delegated decision: the ask (`{"user", "room", "groups", "roles",
//! "account", "clientId"?, "deviceId"?}`), the answer (`{"access": "none" | "read" | "write"
//! | "readwrite"}`) and what became of a room's ask ([`Answer`]).

use serde::{Deserialize, Serialize};

use crate::permissions::Access;

/// What the service asks a delegate about one user and one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ask {
    pub user: String,
    pub room: String,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

impl Ask {
    /// The ask about `user` (as the permission files, and a provider's assertion, make them)
    /// in `room`, for a connection placed in `account`.
    #[must_use]
    pub fn of(
        user: &crate::permissions::User,
        room: &str,
        account: &str,
        client_id: Option<String>,
        device_id: Option<String>,
    ) -> Ask {
        Ask {
            user: user.id().to_string(),
            room: room.to_string(),
            groups: user.groups().to_vec(),
            roles: user.roles().map(|r| r.as_str().to_string()).collect(),
            account: account.to_string(),
            client_id,
            device_id,
        }
    }
}

/// The longest answer read; anything longer is a bad answer.
pub const MAX_ANSWER_LEN: usize = 1024;

/// Read a delegate's answer: the access it grants (`None` for `"none"`).
///
/// # Errors
/// Anything but `{"access": "none" | "read" | "write" | "readwrite"}` (with a short reason,
/// never the payload itself).
pub fn parse_answer(payload: &[u8]) -> Result<Option<Access>, String> {
    if payload.len() > MAX_ANSWER_LEN {
        return Err(format!("{} bytes, at most {MAX_ANSWER_LEN}", payload.len()));
    }
    // An object with a string `access`; other fields (a reason, say) are ignored.
    let reply: serde_json::Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let access = reply
        .as_object()
        .and_then(|o| o.get("access"))
        .and_then(serde_json::Value::as_str)
        .ok_or("not {\"access\": \"...\"}")?;
    match access {
        "none" => Ok(None),
        other => other
            .parse::<Access>()
            .map(Some)
            .map_err(|_| "access is not none, read, write or readwrite".to_string()),
    }
}

/// What became of a delegated room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The delegate answered (`None`: `"none"`), now or from the cache.
    Access(Option<Access>),
    /// No answer within the budget (silent, gone, or no slot in time).
    Unavailable,
    /// An answer that is not one.
    Bad,
}

impl Answer {
    /// Why a delegated room was refused (`None` when it was granted).
    #[must_use]
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Answer::Access(Some(_)) => None,
            Answer::Access(None) => Some("delegate-none"),
            Answer::Unavailable => Some("delegate-unavailable"),
            Answer::Bad => Some("delegate-bad-answer"),
        }
    }
}

/// The answers a decision reads, by room (a handful per connection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers(Vec<(String, Answer)>);

impl Answers {
    #[must_use]
    pub fn get(&self, room: &str) -> Option<Answer> {
        self.0.iter().find(|(r, _)| r == room).map(|(_, a)| *a)
    }

    pub fn insert(&mut self, room: String, answer: Answer) {
        match self.0.iter_mut().find(|(r, _)| *r == room) {
            Some(slot) => slot.1 = answer,
            None => self.0.push((room, answer)),
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A delegated room in a decision: the delegate's subject and the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub room: String,
    pub subject: String,
    pub answer: Answer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_strictly() {
        let ok: &[(&str, Option<Access>)] = &[
            (r#"{"access":"none"}"#, None),
            (r#"{"access":"read"}"#, Some(Access::Read)),
            (r#"{"access":"write"}"#, Some(Access::Write)),
            (r#"{"access": "readwrite"}"#, Some(Access::ReadWrite)),
            (r#"{"access":"read","reason":"member"}"#, Some(Access::Read)),
        ];
        for (body, want) in ok {
            assert_eq!(parse_answer(body.as_bytes()).unwrap(), *want, "{body}");
        }
        let long = format!(r#"{{"access":"read","x":"{}"}}"#, "a".repeat(2000));
        for bad in [
            "",
            "read",
            "null",
            "{}",
            r#"{"access":"admin"}"#,
            r#"{"access":"READ"}"#,
            r#"{"access":1}"#,
            r#"["read"]"#,
            long.as_str(),
        ] {
            assert!(parse_answer(bad.as_bytes()).is_err(), "{bad:.40}");
        }
    }

    #[test]
    fn asks_carry_the_contract_fields() {
        let ask = Ask {
            user: "bob".into(),
            room: "team-a".into(),
            groups: vec!["everyone".into()],
            roles: vec!["user".into()],
            account: "APP".into(),
            client_id: None,
            device_id: Some("phone".into()),
        };
        let v = serde_json::to_value(&ask).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"user": "bob", "room": "team-a", "groups": ["everyone"],
                "roles": ["user"], "account": "APP", "deviceId": "phone"})
        );
    }
}
