//! `[callout]`: the callout itself: keys, the accounts users are placed in, bounds and the
//! subject templates of a grant.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Section, invalid};
use crate::subjects::{Kind, Template};

/// Connection types the callout can serve.
pub const CONNECTION_TYPES: [&str; 4] = ["nats", "websocket", "leafnode", "mqtt"];

/// The callout itself: keys, target account, bounds, subject templates.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct CalloutSettings {
    /// Seed (`SA...`) of the account nkey named as `auth_callout.issuer`.
    pub issuer_seed_file: PathBuf,
    /// Seed (`SX...`) of the curve key named as `auth_callout.xkey`; unset = no encryption.
    pub xkey_seed_file: Option<PathBuf>,
    /// During an issuer rotation: the previous issuer seed, still answered with for servers
    /// whose `auth_callout.issuer` names it.
    pub previous_issuer_seed_file: Option<PathBuf>,
    /// During an xkey rotation: the previous curve key, still opening requests sealed to it.
    pub previous_xkey_seed_file: Option<PathBuf>,
    /// Account the users are placed in (the user JWT `aud`).
    pub account: String,
    pub queue_group: String,
    /// Requests handled at once; more wait in a queue (never denied for load).
    pub max_in_flight: usize,
    /// Lifetime cap of the NATS user JWT (not tied to the access token).
    #[serde(with = "humantime_serde")]
    pub user_jwt_ttl: Duration,
    /// Most rooms one connection may ask for.
    pub max_rooms: usize,
    /// The server's `auth_users`: reserved, never accepted as room names.
    pub auth_users: Vec<String>,
    /// Connection types served: `nats`, `websocket`, `leafnode`, `mqtt`.
    pub connection_types: Vec<String>,
    /// Subscribe permission for a readable room.
    pub read_subject: String,
    /// Publish permission for a writable room.
    pub write_subject: String,
    /// Per-user inbox prefix (clients set it as their inbox prefix).
    pub inbox_prefix: String,
    /// `config`: the server's `authorization { auth_callout }`; `operator`: the callout is
    /// configured in the AUTH account's JWT (decentralized authentication).
    pub mode: CalloutMode,
    /// Operator mode: the AUTH account's public key (`A...`), which requests name; replies
    /// signed by one of its signing keys (`issuer_seed_file`) carry it as `issuer_account`.
    pub auth_account: Option<String>,
    /// Operator mode: the accounts users may be placed in (the AUTH account's
    /// `allowed_accounts`), by name; `account` names the default one.
    pub accounts: BTreeMap<String, TargetAccount>,
    /// Config mode: the accounts besides `account` that a user's `account` in the
    /// permission files may name (each defined in the server's `accounts {}`). Users
    /// naming any other are denied; live enforcement follows all of them.
    pub user_accounts: Vec<String>,
}

impl CalloutSettings {
    /// The accounts users may be placed in, as the files name them: `[callout.accounts]`
    /// in operator mode, `account` and `user_accounts` in config mode.
    pub fn placements(&self) -> Vec<String> {
        match self.mode {
            CalloutMode::Operator => self.accounts.keys().cloned().collect(),
            CalloutMode::Config => std::iter::once(&self.account)
                .chain(&self.user_accounts)
                .cloned()
                .collect(),
        }
    }
}

impl CalloutSettings {
    /// The accounts whose connections live enforcement follows, as the server names them:
    /// every account users may be placed in (by name in config mode, by public key in
    /// operator mode).
    pub fn enforced_accounts(&self) -> Vec<String> {
        match self.mode {
            CalloutMode::Config => self.placements(),
            CalloutMode::Operator => self.accounts.values().map(|a| a.public_key.clone()).collect(),
        }
    }
}

/// Where the callout is configured.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CalloutMode {
    /// `authorization { auth_callout { ... } }` in the server configuration.
    #[default]
    Config,
    /// In the AUTH account's JWT, with an operator and a resolver.
    Operator,
}

/// An account users are placed in (operator mode).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TargetAccount {
    /// The account's public key (`A...`).
    pub public_key: String,
    /// Seed of the account's signing key (or of the account itself) that signs user JWTs.
    pub signing_key_file: PathBuf,
    /// The account's JWT, to refuse a scoped signing key (whose users may carry no
    /// permissions of their own) at start.
    #[serde(default)]
    pub jwt_file: Option<PathBuf>,
}

impl Default for CalloutSettings {
    fn default() -> Self {
        CalloutSettings {
            issuer_seed_file: PathBuf::from(".demo/issuer.nk"),
            xkey_seed_file: None,
            previous_issuer_seed_file: None,
            previous_xkey_seed_file: None,
            account: "APP".into(),
            queue_group: "nats-callout".into(),
            max_in_flight: 256,
            user_jwt_ttl: Duration::from_secs(3600),
            max_rooms: 50,
            auth_users: vec!["callout".into(), "sys".into()],
            connection_types: vec!["nats".into(), "websocket".into()],
            read_subject: "chat.{room}.>".into(),
            write_subject: "chat.{room}.{user}".into(),
            inbox_prefix: "_INBOX.{user}".into(),
            mode: CalloutMode::Config,
            auth_account: None,
            accounts: BTreeMap::new(),
            user_accounts: Vec::new(),
        }
    }
}

impl Section for CalloutSettings {
    fn paths(&mut self) -> Vec<&mut PathBuf> {
        let mut out = vec![&mut self.issuer_seed_file];
        out.extend(
            [
                &mut self.xkey_seed_file,
                &mut self.previous_issuer_seed_file,
                &mut self.previous_xkey_seed_file,
            ]
            .into_iter()
            .flatten(),
        );
        for a in self.accounts.values_mut() {
            out.push(&mut a.signing_key_file);
            out.extend(a.jwt_file.as_mut());
        }
        out
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_rooms == 0 {
            return invalid("callout.max_rooms", "must be at least 1".into());
        }
        if self.max_in_flight == 0 {
            return invalid("callout.max_in_flight", "must be at least 1".into());
        }
        if let Err(e) = crate::names::validate_name(&self.account) {
            return invalid("callout.account", e.to_string());
        }
        if let Some(t) = self
            .connection_types
            .iter()
            .find(|t| !CONNECTION_TYPES.contains(&t.as_str()))
        {
            return invalid(
                "callout.connection_types",
                format!("unknown type {t:?} (known: {CONNECTION_TYPES:?})"),
            );
        }
        if self.user_jwt_ttl.as_secs() == 0 {
            return invalid("callout.user_jwt_ttl", "must be at least 1s".into());
        }
        self.validate_accounts()?;
        self.validate_templates()
    }
}

impl CalloutSettings {
    /// Where users may be placed: the AUTH account and `[callout.accounts]` in operator
    /// mode, `user_accounts` in config mode.
    fn validate_accounts(&self) -> Result<(), ConfigError> {
        if self.mode == CalloutMode::Operator {
            let is_account = |k: &str| k.starts_with('A') && nkeys::KeyPair::from_public_key(k).is_ok();
            if !self.auth_account.as_deref().is_some_and(is_account) {
                return invalid(
                    "callout.auth_account",
                    "operator mode needs the AUTH account's public key (A...)".into(),
                );
            }
            if !self.accounts.contains_key(&self.account) {
                return invalid(
                    "callout.accounts",
                    format!(
                        "operator mode: callout.account {:?} must be one of [callout.accounts]",
                        self.account
                    ),
                );
            }
            if let Some(name) = self
                .accounts
                .iter()
                .find_map(|(name, a)| (!is_account(&a.public_key)).then_some(name))
            {
                return invalid(
                    "callout.accounts",
                    format!("{name}: public_key is not an account public key (A...)"),
                );
            }
            if !self.user_accounts.is_empty() {
                return invalid(
                    "callout.user_accounts",
                    "config mode only: in operator mode users are placed in [callout.accounts]".into(),
                );
            }
        } else if !self.accounts.is_empty() {
            return invalid(
                "callout.accounts",
                "operator mode only: in config mode name further accounts in callout.user_accounts".into(),
            );
        }
        for a in &self.user_accounts {
            if let Err(e) = crate::names::validate_name(a) {
                return invalid("callout.user_accounts", format!("{a:?}: {e}"));
            }
        }
        Ok(())
    }

    /// The subject templates, each by its kind's rules, and the sender guarantee: the write
    /// subject lies inside the read subject of the same room.
    fn validate_templates(&self) -> Result<(), ConfigError> {
        let mut parsed = Vec::with_capacity(3);
        for (key, tpl, kind) in [
            ("callout.read_subject", &self.read_subject, Kind::Read),
            ("callout.write_subject", &self.write_subject, Kind::Write),
            ("callout.inbox_prefix", &self.inbox_prefix, Kind::Inbox),
        ] {
            match Template::parse(tpl, kind) {
                Ok(t) => parsed.push(t),
                Err(reason) => return invalid(key, reason),
            }
        }
        if !parsed[1].inside(&parsed[0]) {
            return invalid(
                "callout.write_subject",
                format!(
                    "{:?} is not inside {:?} for the same room (with {{user}} read as '*'): \
                     a post must reach exactly that room's readers",
                    self.write_subject, self.read_subject
                ),
            );
        }
        Ok(())
    }
}
