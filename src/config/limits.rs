//! `[limits]`: how per-user limits of the permission files are enforced on live
//! connections, and the opt-in connect rate (`connect_rate`).

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Section, invalid};

/// How limits are enforced.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSettings {
    /// How long a user may hold one connection more than its cap when the newer one is of
    /// the same login session as an older one (a client kit's make-before-break join, a page
    /// reload): the old one is expected to close itself within this time.
    #[serde(with = "humantime_serde")]
    pub join_grace: Duration,
    /// How long a login session closed for a limit is refused when it reconnects (while the
    /// user still holds its cap of connections, for `too-many-connections`).
    #[serde(with = "humantime_serde")]
    pub closed_cooldown: Duration,
    /// How often subscriptions are counted (the server's connection list, only while some
    /// user or group has a `subscriptions` limit).
    #[serde(with = "humantime_serde")]
    pub subscriptions_interval: Duration,
    /// Refuse a user who connects too often (off unless set).
    pub connect_rate: Option<ConnectRate>,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        LimitsSettings {
            join_grace: Duration::from_secs(5),
            closed_cooldown: Duration::from_secs(60),
            subscriptions_interval: Duration::from_secs(10),
            connect_rate: None,
        }
    }
}

/// `connect_rate = { connects = 20, window = "10s", cooldown = "60s" }`: a user allowed more
/// than `connects` times within `window` is refused (`too-many-connects`) for `cooldown`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectRate {
    pub connects: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Connects to a server this long after it was first seen (a restarted server has a new
    /// id) are not counted.
    #[serde(with = "humantime_serde", default = "default_settle")]
    pub settle: Duration,
}

fn default_settle() -> Duration {
    Duration::from_secs(10)
}

impl Section for LimitsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.join_grace > Duration::from_secs(60) {
            return invalid("limits.join_grace", "at most 60s (a join takes seconds)".into());
        }
        if self.subscriptions_interval < Duration::from_secs(1) {
            return invalid("limits.subscriptions_interval", "must be at least 1s".into());
        }
        if let Some(r) = &self.connect_rate {
            if r.connects == 0 {
                return invalid("limits.connect_rate", "connects must be at least 1".into());
            }
            if r.window < Duration::from_secs(1) || r.window > Duration::from_secs(3600) {
                return invalid("limits.connect_rate", "window must be from 1s to 1h".into());
            }
            if r.cooldown < Duration::from_secs(1) || r.cooldown > Duration::from_secs(86_400) {
                return invalid("limits.connect_rate", "cooldown must be from 1s to 24h".into());
            }
        }
        Ok(())
    }
}
