//! `[store]`: where sessions, refresh tokens and revocations live.

use serde::Deserialize;

use super::{ConfigError, Section, invalid};

/// Where sessions, refresh tokens and revocations live.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One redb file (`tokens.store_path`): one process.
    #[default]
    Redb,
    /// JetStream key-value buckets: every instance shares them.
    Jetstream,
}

/// The token store's backend and, for JetStream, its buckets.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// Bucket names start with this and `_` (`callout_sessions`, ...).
    pub bucket_prefix: String,
    /// JetStream replicas of each bucket: 1 on a single server, 3 on a cluster.
    pub replicas: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: StoreBackend::Redb,
            bucket_prefix: "callout".into(),
            replicas: 1,
        }
    }
}

impl Section for StoreSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.bucket_prefix;
        if p.is_empty()
            || p.len() > 32
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return invalid(
                "store.bucket_prefix",
                "1 to 32 letters, digits, '-' or '_'".into(),
            );
        }
        if !(1..=5).contains(&self.replicas) {
            return invalid("store.replicas", "JetStream allows 1 to 5 replicas".into());
        }
        Ok(())
    }
}
