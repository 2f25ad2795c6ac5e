//! `[access]`: decisions delegated to app services (`[[access.delegate]]`): which rooms, the
//! subject they are asked on, how long an ask may take and how long answers are kept.

use serde::Deserialize;

use super::{ConfigError, Section, invalid};
pub use crate::access::{DelegateSettings, MAX_DELEGATE_TIMEOUT};

/// Delegated decisions.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSettings {
    /// One table per delegate, first match wins.
    pub delegate: Vec<DelegateSettings>,
    /// Asks in flight at once, every delegate together; more wait for a slot (within
    /// their budget), never refused for load.
    pub max_in_flight: usize,
    /// Answers kept at most (positive and negative, per user and room); the oldest go first.
    pub cache_entries: usize,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            delegate: Vec::new(),
            max_in_flight: 256,
            cache_entries: 10_000,
        }
    }
}

impl Section for AccessSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_in_flight == 0 {
            return invalid("access.max_in_flight", "must be at least 1".into());
        }
        if self.cache_entries == 0 {
            return invalid("access.cache_entries", "must be at least 1".into());
        }
        for (i, d) in self.delegate.iter().enumerate() {
            if let Err(reason) = crate::access::Route::from_settings(d) {
                return invalid(
                    "access.delegate",
                    format!("table {} (rooms {:?}): {reason}", i + 1, d.rooms),
                );
            }
        }
        Ok(())
    }
}
