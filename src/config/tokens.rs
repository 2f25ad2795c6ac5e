//! `[tokens]`: our access tokens, refresh tokens and their store file.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Section, invalid};

/// The default of `tokens.max_token_ttl`.
pub const DEFAULT_MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Access tokens.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    /// PKCS#8 PEM Ed25519 key that signs new access tokens.
    pub signing_key_file: PathBuf,
    /// Further keys (public or private PEM) whose tokens are still accepted.
    pub verify_key_files: Vec<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// The longest access token minted (`nats-callout token --ttl`) or accepted; revocation
    /// entries are kept this long so that no revoked token is accepted again.
    #[serde(with = "humantime_serde")]
    pub max_token_ttl: Duration,
    /// redb file holding sessions, refresh-token hashes and revocations.
    pub store_path: PathBuf,
    /// 32-byte key (base64) that derives refresh-token successors.
    pub refresh_secret_file: PathBuf,
    /// A refresh token expires this long after it was issued...
    #[serde(with = "humantime_serde")]
    pub refresh_idle: Duration,
    /// ...and never after the session is this old.
    #[serde(with = "humantime_serde")]
    pub refresh_absolute: Duration,
    /// A replay of the immediate predecessor within this window returns the same new pair.
    #[serde(with = "humantime_serde")]
    pub refresh_grace: Duration,
    /// How often the janitor removes expired and revoked records.
    #[serde(with = "humantime_serde")]
    pub janitor_interval: Duration,
    pub janitor_batch: usize,
    /// Guest sessions: `default` (the refresh lifetimes above) or `never` (no idle or
    /// absolute expiry; tokens still rotate and can be revoked).
    pub guest_refresh: GuestRefresh,
    /// Operator mode: the longest life of the NATS credentials `POST
    /// /api/auth/nats-credentials` mints (a user JWT for the client's own key); one hour by
    /// default, like the callout's user JWTs. `"0s"` mints none.
    #[serde(with = "humantime_serde")]
    pub credentials_ttl: Option<Duration>,
}

/// The default `tokens.credentials_ttl`.
pub const DEFAULT_CREDENTIALS_TTL: Duration = Duration::from_secs(3600);

/// The longest `tokens.credentials_ttl`: a user JWT lives until it expires unless the enforcer
/// closes its connection.
pub const MAX_CREDENTIALS_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a guest's session lives.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GuestRefresh {
    /// Like any session: `tokens.refresh_idle` and `tokens.refresh_absolute`.
    #[default]
    Default,
    /// Never expires (the split-token design's exception for guests).
    Never,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            issuer: "nats-callout".into(),
            audience: "nats".into(),
            signing_key_file: PathBuf::from(".demo/token-signing.pem"),
            verify_key_files: vec![],
            access_ttl: Duration::from_secs(300),
            max_token_ttl: DEFAULT_MAX_TOKEN_TTL,
            store_path: PathBuf::from(".demo/tokens.redb"),
            refresh_secret_file: PathBuf::from(".demo/refresh.key"),
            refresh_idle: Duration::from_secs(30 * 86400),
            refresh_absolute: Duration::from_secs(90 * 86400),
            refresh_grace: Duration::from_secs(20),
            janitor_interval: Duration::from_secs(600),
            janitor_batch: 1000,
            guest_refresh: GuestRefresh::Default,
            credentials_ttl: Some(DEFAULT_CREDENTIALS_TTL),
        }
    }
}

impl Section for TokenSettings {
    fn paths(&mut self) -> Vec<&mut PathBuf> {
        let mut out = vec![
            &mut self.signing_key_file,
            &mut self.store_path,
            &mut self.refresh_secret_file,
        ];
        out.extend(self.verify_key_files.iter_mut());
        out
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_token_ttl < self.access_ttl {
            return invalid(
                "tokens.max_token_ttl",
                "must be at least tokens.access_ttl (revocations are kept this long)".into(),
            );
        }
        if let Some(ttl) = self.credentials() {
            if !(Duration::from_secs(1)..=MAX_CREDENTIALS_TTL).contains(&ttl) {
                return invalid(
                    "tokens.credentials_ttl",
                    "must be between 1s and 24h (\"0s\" mints none)".into(),
                );
            }
            // Revocations are kept this long: a JWT living longer could outlive the one that
            // should close its connections.
            if ttl > self.max_token_ttl {
                return invalid(
                    "tokens.credentials_ttl",
                    "must be at most tokens.max_token_ttl (revocations are kept this long)".into(),
                );
            }
        }
        Ok(())
    }
}

impl TokenSettings {
    /// The longest life of minted NATS credentials; `None` when none are minted.
    pub fn credentials(&self) -> Option<Duration> {
        self.credentials_ttl.filter(|t| !t.is_zero())
    }
}
