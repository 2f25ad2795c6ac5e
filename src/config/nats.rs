//! `[nats]`: how the service connects to NATS (as a user listed in `auth_users`).

use std::path::PathBuf;

use serde::Deserialize;

use super::{Secret, Section};

/// How the service connects to NATS (as a user listed in `auth_users`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSettings {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// Read the password from this file (takes precedence over `password`).
    pub password_file: Option<PathBuf>,
    /// Client name shown in CONNZ.
    pub name: String,
    /// A system-account user (listed in `auth_users`) for connect events, CONNZ, LDM
    /// and KICK. Unset: no live enforcement.
    pub system_user: Option<String>,
    pub system_password: Option<Secret>,
    pub system_password_file: Option<PathBuf>,
    /// Authenticate the service with an nkey seed file instead of user/password.
    pub nkey_seed_file: Option<PathBuf>,
    /// Authenticate the service with a `.creds` file (user JWT and seed; operator mode).
    pub credentials_file: Option<PathBuf>,
    /// The system user's `.creds` file (operator mode), instead of `system_user`.
    pub system_credentials_file: Option<PathBuf>,
    /// CA bundle for TLS to NATS (use a `tls://` URL); client certificate and key for mTLS.
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

impl NatsSettings {
    /// The servers `url` names: one URL, or several separated by commas (a cluster's
    /// seeds; the client learns the others from the servers).
    #[must_use]
    pub fn servers(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            url: "nats://127.0.0.1:4222".into(),
            user: Some("callout".into()),
            password: None,
            password_file: None,
            name: "nats-callout".into(),
            system_user: None,
            system_password: None,
            system_password_file: None,
            nkey_seed_file: None,
            credentials_file: None,
            system_credentials_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl Section for NatsSettings {
    fn paths(&mut self) -> Vec<&mut PathBuf> {
        [
            &mut self.password_file,
            &mut self.system_password_file,
            &mut self.nkey_seed_file,
            &mut self.credentials_file,
            &mut self.system_credentials_file,
            &mut self.tls_ca_file,
            &mut self.tls_cert_file,
            &mut self.tls_key_file,
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
