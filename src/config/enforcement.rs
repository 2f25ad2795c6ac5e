//! `[enforcement]`: what happens to open connections when access is taken away.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Section, invalid};

/// Live enforcement: what happens to open connections when access is taken away.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct EnforcementSettings {
    /// Watch the permission directory and reload on change (SIGHUP reloads too).
    pub watch: bool,
    /// Time between the lame-duck notice and the kick of a connection still there.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Kicks and notices per second (token bucket) for permission changes...
    pub rate_per_second: f64,
    /// ...with this burst.
    pub burst: u32,
    /// Revocations (own, higher-priority bucket).
    pub revocation_rate_per_second: f64,
    /// How often the registry is reconciled with CONNZ.
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// Roles that may call `auth.v1.tokenReset` (NATS and HTTP); default `["sysadmin"]`.
    pub token_reset_roles: Vec<crate::permissions::Role>,
    /// With the JetStream store: the enforcer's lease; another instance takes over within
    /// about this long after the enforcer dies.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl Default for EnforcementSettings {
    fn default() -> Self {
        EnforcementSettings {
            watch: true,
            grace: Duration::from_secs(5),
            rate_per_second: 200.0,
            burst: 50,
            revocation_rate_per_second: 1000.0,
            reconcile_interval: Duration::from_secs(60),
            // Least privilege: an app service does not make users reconnect unless a
            // deployment grants it (`token_reset_roles = ["sysadmin", "service"]`).
            token_reset_roles: vec![crate::permissions::Role::Sysadmin],
            lease_ttl: Duration::from_secs(5),
        }
    }
}

impl Section for EnforcementSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.rate_per_second <= 0.0 || self.revocation_rate_per_second <= 0.0 || self.burst == 0 {
            return invalid(
                "enforcement.rate_per_second",
                "rates and burst must be positive".into(),
            );
        }
        if self.lease_ttl < Duration::from_secs(2) {
            return invalid("enforcement.lease_ttl", "must be at least 2s".into());
        }
        Ok(())
    }
}
