//! What each part the service depends on says of its own state (NATS connections,
//! subscriptions): readiness is built from it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::clock::now_secs;

/// The state of one part the service depends on, as last reported by the part itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    /// Why it is not ok (or what it is doing), for people.
    pub detail: String,
    /// Unix seconds of the last change.
    pub since: i64,
}

/// Parts that report their own state (the NATS connection, later others); each starts
/// not ready until it says otherwise.
#[derive(Debug, Default)]
pub struct Health {
    parts: Mutex<BTreeMap<&'static str, Check>>,
}

impl Health {
    /// Record `part`'s state (the time changes only when `ok` does).
    pub fn set(&self, part: &'static str, ok: bool, detail: impl Into<String>) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let since = match parts.get(part) {
            Some(c) if c.ok == ok => c.since,
            _ => now_secs(),
        };
        parts.insert(
            part,
            Check {
                ok,
                detail: detail.into(),
                since,
            },
        );
    }

    pub fn get(&self, part: &str) -> Option<Check> {
        self.parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(part)
            .cloned()
    }

    pub fn all(&self) -> Vec<(&'static str, Check)> {
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

/// Mark `part` ready once every command sent on `client` so far (subscriptions) has been
/// processed by the server: a flush waits for the server's answer, and for NATS itself
/// while it is away.
pub async fn ready_after_flush(
    client: async_nats::Client,
    health: std::sync::Arc<Health>,
    part: &'static str,
) {
    health.set(part, false, "subscribing");
    if client.flush().await.is_ok() {
        health.set(part, true, "subscribed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_keeps_its_since_until_its_state_changes() {
        let h = Health::default();
        assert!(h.get("nats").is_none());
        h.set("nats", false, "connecting");
        let first = h.get("nats").unwrap();
        h.set("nats", false, "connection refused");
        let again = h.get("nats").unwrap();
        assert_eq!(
            (again.since, again.detail.as_str()),
            (first.since, "connection refused")
        );
        h.set("nats", true, "connected");
        assert!(h.get("nats").unwrap().ok);
    }
}
