//! Chat messages on the wire, as the JavaScript kit and the chat page send them: JSON
//! `{"id", "text"}` on the room's write subject; a payload that is not such JSON is its own
//! text (no id). Each id is heard once per room, although two connections hear it during a join.

use std::collections::{HashSet, VecDeque};

use rand::Rng;
use serde::Deserialize;

/// Longest message id kept for the once-only check.
const MAX_ID: usize = 64;
/// Ids remembered per room.
const SEEN: usize = 5000;

/// A message heard in a room: the sender is the write subject's last token, which the server
/// guarantees (nobody may publish under another's name).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    pub room: String,
    pub from: String,
    pub text: String,
    /// The sender's message id (`None` for a payload that is not the kits' JSON).
    #[serde(skip)]
    pub id: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    text: String,
    #[serde(default)]
    id: Option<String>,
}

/// The text and id of a payload.
pub(crate) fn parse(payload: &[u8]) -> (String, Option<String>) {
    match serde_json::from_slice::<Body>(payload) {
        Ok(b) => (b.text, b.id.filter(|id| !id.is_empty() && id.len() <= MAX_ID)),
        Err(_) => (String::from_utf8_lossy(payload).into_owned(), None),
    }
}

/// The payload the kits send: JSON `{"id", "text"}`.
pub(crate) fn encode(id: &str, text: &str) -> Vec<u8> {
    serde_json::json!({ "id": id, "text": text })
        .to_string()
        .into_bytes()
}

/// A fresh message id: 24 hex digits.
pub(crate) fn new_id() -> String {
    let bytes: [u8; 12] = rand::thread_rng().r#gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The (sender, id) pairs a room has heard lately, oldest first.
#[derive(Default)]
pub(crate) struct Seen {
    order: VecDeque<(String, String)>,
    set: HashSet<(String, String)>,
}

impl Seen {
    /// Whether this is the first time; remembers it (the oldest beyond the bound are forgotten).
    pub(crate) fn first(&mut self, from: &str, id: &str) -> bool {
        let key = (from.to_string(), id.to_string());
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > SEEN
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_the_kits_json_or_plain_text() {
        assert_eq!(parse(&encode("m1", "hi")), ("hi".into(), Some("m1".into())));
        assert_eq!(parse(b"plain words"), ("plain words".into(), None));
        assert_eq!(parse(br#"{"text": "no id"}"#), ("no id".into(), None));
        // An id too long to be a kit's is ignored, the text kept.
        let long = "x".repeat(65);
        assert_eq!(parse(&encode(&long, "t")), ("t".into(), None));
        // JSON without text is someone else's payload: shown as it is.
        assert_eq!(parse(br#"{"id": "a"}"#).0, r#"{"id": "a"}"#);
        assert_ne!(new_id(), new_id());
        assert_eq!(new_id().len(), 24);
    }

    #[test]
    fn each_id_is_heard_once_and_the_memory_is_bounded() {
        let mut seen = Seen::default();
        assert!(seen.first("bob", "1"));
        assert!(!seen.first("bob", "1"));
        assert!(seen.first("alice", "1"), "ids are per sender");
        for i in 0..SEEN {
            seen.first("carol", &i.to_string());
        }
        assert!(seen.order.len() <= SEEN && seen.set.len() == seen.order.len());
        assert!(seen.first("bob", "1"), "the oldest are forgotten");
    }
}
