//! `[audit]`: the audit trail (every decision and change of access as a JSON event on
//! `nats-callout.audit.<kind>`), and the JetStream stream that may keep it.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Section, invalid};

/// The audit trail.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Publish the events (on by default: a core NATS publish, off the decision's path).
    pub enabled: bool,
    /// Keep the events in this JetStream stream (created when missing; one with other
    /// settings is refused by name). Empty: published only, nothing kept.
    pub stream: String,
    /// The stream drops events older than this.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// ... and the oldest events beyond this many bytes.
    pub max_bytes: i64,
    /// Stream replicas.
    pub replicas: usize,
    /// Events waiting to be published; beyond it new events are dropped and counted
    /// (`nats_callout_audit_dropped_total`): auditing never slows a decision.
    pub buffer: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            stream: String::new(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            replicas: 1,
            buffer: 10_000,
        }
    }
}

impl Section for AuditSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.stream.is_empty() && crate::names::validate_name(&self.stream).is_err() {
            return invalid("audit.stream", "letters, digits, '_' and '-' only".into());
        }
        if self.max_bytes <= 0 || self.max_age.is_zero() {
            return invalid("audit.max_bytes", "max_bytes and max_age must be positive".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return invalid("audit.replicas", "1 to 5".into());
        }
        if self.buffer == 0 {
            return invalid("audit.buffer", "must be positive".into());
        }
        Ok(())
    }
}
