//! Service configuration: `callout.toml`, overridden by `NATS_CALLOUT_<SECTION>__<KEY>`
//! variables. One file per section (`Section`): its settings, defaults, the file paths it
//! holds (made relative to the configuration file) and its own checks; what spans sections
//! is checked here.

mod access;
mod audit;
mod callout;
mod enforcement;
mod http;
pub mod identity;
mod limits;
mod log;
mod nats;
mod permissions;
mod rooms;
mod store;
mod tokens;

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

pub use access::{AccessSettings, DelegateSettings, MAX_DELEGATE_TIMEOUT};
pub use audit::AuditSettings;
pub use callout::{CONNECTION_TYPES, CalloutMode, CalloutSettings, TargetAccount};
pub use enforcement::EnforcementSettings;
pub use http::HttpSettings;
pub use identity::{IdentitySettings, OidcSettings, UnknownUsers};
pub use limits::{ConnectRate, LimitsSettings};
pub use log::{LogFormat, LogSettings};
pub use nats::NatsSettings;
pub use permissions::{PermissionSettings, PermissionSource};
pub use rooms::RoomSettings;
pub use store::{StoreBackend, StoreSettings};
pub use tokens::{DEFAULT_MAX_TOKEN_TTL, GuestRefresh, TokenSettings};

/// A secret string (password): never printed by `Debug`.
#[derive(Clone, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("while reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The whole configuration.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub nats: NatsSettings,
    pub callout: CalloutSettings,
    pub tokens: TokenSettings,
    pub store: StoreSettings,
    pub permissions: PermissionSettings,
    pub http: HttpSettings,
    pub enforcement: EnforcementSettings,
    pub log: LogSettings,
    /// Identity providers (`[[identity.oidc]]`).
    pub identity: IdentitySettings,
    /// Rooms as data.
    pub rooms: RoomSettings,
    /// The audit trail.
    pub audit: AuditSettings,
    /// Decisions delegated to app services (`[[access.delegate]]`).
    pub access: AccessSettings,
    /// How per-user limits are enforced; the connect rate.
    pub limits: LimitsSettings,
}

/// One section of the configuration (`[nats]`, `[callout]`, ...).
trait Section {
    /// Every file path the section holds, so that [`Config::resolve_paths`] makes each
    /// relative to the configuration file (a path setting not listed here would be missed).
    fn paths(&mut self) -> Vec<&mut PathBuf> {
        Vec::new()
    }

    /// The section's own checks: values that would otherwise fail later, at a first request.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// A refused setting.
fn invalid<T>(key: &'static str, reason: String) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid { key, reason })
}

impl Config {
    /// How long minted NATS credentials live, when the service mints them: in operator mode,
    /// unless `tokens.credentials_ttl = "0s"`, and only with live enforcement (a system
    /// user), without which nothing could close a connection made with one before it expires.
    pub fn credentials(&self) -> Option<std::time::Duration> {
        let enforced = self.nats.system_user.is_some() || self.nats.system_credentials_file.is_some();
        let operator = self.callout.mode == CalloutMode::Operator;
        self.tokens.credentials().filter(|_| operator && enforced)
    }

    /// Load `path` (if it exists), then apply `NATS_CALLOUT_<SECTION>__<KEY>` variables.
    /// Relative paths are resolved against the directory of `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let figment = Figment::new().merge(Toml::file(path)).merge(
            Env::prefixed("NATS_CALLOUT_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let mut config: Config = figment.extract().map_err(Box::new)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    /// Every section, for what they all do.
    fn sections(&mut self) -> [&mut dyn Section; 10] {
        [
            &mut self.rooms,
            &mut self.nats,
            &mut self.callout,
            &mut self.tokens,
            &mut self.store,
            &mut self.permissions,
            &mut self.http,
            &mut self.enforcement,
            &mut self.log,
            &mut self.identity,
        ]
    }

    /// Make every relative file path relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        if base.as_os_str().is_empty() {
            return;
        }
        for section in self.sections() {
            for p in section.paths() {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
    }

    /// Check values that would otherwise fail later, at the first request: each section,
    /// then what spans sections.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sections: [&dyn Section; 13] = [
            &self.rooms,
            &self.nats,
            &self.callout,
            &self.tokens,
            &self.store,
            &self.permissions,
            &self.http,
            &self.enforcement,
            &self.log,
            &self.identity,
            &self.audit,
            &self.access,
            &self.limits,
        ];
        for s in sections {
            s.validate()?;
        }
        self.validate_callbacks()?;
        self.validate_delegates()
    }

    /// No user's grant may reach a delegate's subject, whatever the templates say.
    fn validate_delegates(&self) -> Result<(), ConfigError> {
        use crate::subjects::{Kind, Template};
        let c = &self.callout;
        let (Ok(read), Ok(write), Ok(inbox)) = (
            Template::parse(&c.read_subject, Kind::Read),
            Template::parse(&c.write_subject, Kind::Write),
            Template::parse(&c.inbox_prefix, Kind::Inbox),
        ) else {
            return Ok(()); // refused with its own key already
        };
        crate::access::Routes::from_settings(&self.access.delegate)
            .and_then(|r| r.check_private(&read, &write, &inbox))
            .or_else(|reason| invalid("access.delegate", reason))
    }

    /// A provider's browser login needs a callback address that never comes from a
    /// request: its `redirect_url` or `http.public_url` (a loopback provider for a loopback
    /// page, the demo, aside).
    fn validate_callbacks(&self) -> Result<(), ConfigError> {
        for p in &self.identity.oidc {
            if p.client_id.is_none() || p.redirect_url.is_some() || self.http.public_url.is_some() {
                continue;
            }
            let loopback = identity::is_loopback_url(&p.issuer);
            if !(loopback && self.http.public_origin().is_some()) {
                return invalid(
                    "identity.oidc",
                    format!(
                        "provider {:?} has a client_id: set its redirect_url or http.public_url \
                         (the callback address is never taken from a request)",
                        p.name
                    ),
                );
            }
        }
        Ok(())
    }

    /// The NATS password, from `password_file` or `password`.
    pub fn nats_password(&self) -> Result<Option<Secret>, ConfigError> {
        secret_from(&self.nats.password_file, &self.nats.password)
    }

    /// The system user's password, from `system_password_file` or `system_password`.
    pub fn system_password(&self) -> Result<Option<Secret>, ConfigError> {
        secret_from(&self.nats.system_password_file, &self.nats.system_password)
    }
}

fn secret_from(file: &Option<PathBuf>, inline: &Option<Secret>) -> Result<Option<Secret>, ConfigError> {
    match file {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| Some(Secret::new(s.trim())))
            .map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            }),
        None => Ok(inline.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn operator_mode_needs_the_auth_account_and_its_target_accounts() {
        let mut c = Config::default();
        c.callout.mode = CalloutMode::Operator;
        let err = |c: &Config| c.validate().unwrap_err().to_string();
        assert!(err(&c).contains("callout.auth_account"), "{}", err(&c));
        c.callout.auth_account = Some("not-a-key".into());
        assert!(err(&c).contains("callout.auth_account"));
        c.callout.auth_account = Some(nkeys::KeyPair::new_account().public_key());
        assert!(
            err(&c).contains("must be one of [callout.accounts]"),
            "{}",
            err(&c)
        );
        c.callout.accounts.insert(
            "APP".into(),
            TargetAccount {
                public_key: nkeys::KeyPair::new_user().public_key(),
                signing_key_file: "APP-signing.nk".into(),
                jwt_file: None,
            },
        );
        assert!(err(&c).contains("APP: public_key"), "{}", err(&c));
        c.callout.accounts.get_mut("APP").unwrap().public_key = nkeys::KeyPair::new_account().public_key();
        c.validate().unwrap();
        assert_eq!(c.callout.placements(), ["APP"]);
        // Config mode's list does not apply: the accounts are the placements.
        c.callout.user_accounts = vec!["APP2".into()];
        assert!(err(&c).contains("callout.user_accounts"), "{}", err(&c));
    }

    #[test]
    fn config_mode_places_users_only_in_the_accounts_it_names() {
        let mut c = Config::default();
        assert_eq!(c.callout.placements(), ["APP"]);
        c.callout.user_accounts = vec!["APP2".into(), "CHAT".into()];
        c.validate().unwrap();
        assert_eq!(c.callout.placements(), ["APP", "APP2", "CHAT"]);
        c.callout.user_accounts = vec!["$SYS".into()];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("callout.user_accounts")
        );
        // Operator mode's table is refused rather than ignored.
        c.callout.user_accounts.clear();
        c.callout.accounts.insert(
            "APP2".into(),
            TargetAccount {
                public_key: nkeys::KeyPair::new_account().public_key(),
                signing_key_file: "APP2-signing.nk".into(),
                jwt_file: None,
            },
        );
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("callout.accounts") && e.contains("operator mode only"),
            "{e}"
        );
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn credentials_live_an_hour_unless_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.tokens.credentials(), Some(Duration::from_secs(3600)));
        std::fs::write(&path, "[tokens]\ncredentials_ttl = \"0s\"\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().tokens.credentials(), None);
        std::fs::write(&path, "[tokens]\ncredentials_ttl = \"10m\"\n").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.tokens.credentials(), Some(Duration::from_secs(600)));
        // Minted only in operator mode, and only where live enforcement can close them.
        assert_eq!(c.credentials(), None, "config mode");
        let mut c = c;
        c.callout.mode = CalloutMode::Operator;
        assert_eq!(c.credentials(), None, "no system user");
        c.nats.system_credentials_file = Some("sys.creds".into());
        assert_eq!(c.credentials(), Some(Duration::from_secs(600)));
    }

    #[test]
    fn a_url_may_name_several_servers() {
        let n = NatsSettings {
            url: "nats://a:4222, nats://b:4223,".into(),
            ..Default::default()
        };
        assert_eq!(n.servers(), ["nats://a:4222", "nats://b:4223"]);
    }

    #[test]
    fn file_values_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[callout]\naccount = \"CHAT\"\nuser_jwt_ttl = \"10m\"\nissuer_seed_file = \"k/issuer.nk\"\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.callout.account, "CHAT");
        assert_eq!(c.callout.user_jwt_ttl, Duration::from_secs(600));
        assert_eq!(c.callout.issuer_seed_file, dir.path().join("k/issuer.nk"));
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for (body, key) in [
            ("[callout]\nmax_rooms = 0\n", "callout.max_rooms"),
            (
                "[callout]\nconnection_types = [\"carrier-pigeon\"]\n",
                "callout.connection_types",
            ),
            (
                "[callout]\nread_subject = \"chat..{room}\"\n",
                "callout.read_subject",
            ),
            (
                "[callout]\nwrite_subject = \"chat.static\"\n",
                "callout.write_subject",
            ),
            ("[callout]\naccount = \"A.B\"\n", "callout.account"),
            ("[store]\nreplicas = 0\n", "store.replicas"),
            ("[enforcement]\nlease_ttl = \"1s\"\n", "enforcement.lease_ttl"),
            ("[store]\nreplicas = 7\n", "store.replicas"),
            ("[store]\nbucket_prefix = \"a.b\"\n", "store.bucket_prefix"),
            ("[store]\nbucket_prefix = \"\"\n", "store.bucket_prefix"),
            ("[store]\nbackend = \"etcd\"\n", "backend"),
            (
                "[limits]\nconnect_rate = { connects = 0, window = \"10s\", cooldown = \"1m\" }\n",
                "limits.connect_rate",
            ),
            (
                "[limits]\nconnect_rate = { connects = 5, window = \"0s\", cooldown = \"1m\" }\n",
                "limits.connect_rate",
            ),
            (
                "[limits]\nconnect_rate = { connects = 5, window = \"10s\" }\n",
                "cooldown",
            ),
            (
                "[limits]\nconnect_rate = { connects = 5, window = \"ten\", cooldown = \"1m\" }\n",
                "window",
            ),
            ("[limits]\njoin_grace = \"5m\"\n", "limits.join_grace"),
            ("[tokens]\ncredentials_ttl = \"25h\"\n", "tokens.credentials_ttl"),
            (
                "[tokens]\ncredentials_ttl = \"500ms\"\n",
                "tokens.credentials_ttl",
            ),
            (
                "[limits]\nsubscriptions_interval = \"10ms\"\n",
                "limits.subscriptions_interval",
            ),
        ] {
            let path = dir.path().join("c.toml");
            std::fs::write(&path, body).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains(key), "{body}: {err}");
        }
    }

    #[test]
    fn delegate_tables_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        // Appended to a configuration as the demo's callout.toml would be.
        std::fs::write(
            &path,
            "[[access.delegate]]\nrooms = \"team-*\"\nsubject = \"apps.access\"\n\
             [[access.delegate]]\nrooms = \"lounge\"\nsubject = \"svc.lounge\"\ntimeout = \"100ms\"\ncache = \"0s\"\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        let d = &c.access.delegate;
        assert_eq!(
            (d[0].rooms.as_str(), d[0].subject.as_str()),
            ("team-*", "apps.access")
        );
        assert_eq!(
            (d[0].timeout, d[0].cache),
            (Duration::from_millis(250), Duration::from_secs(30))
        );
        assert_eq!(
            (d[1].timeout, d[1].cache),
            (Duration::from_millis(100), Duration::ZERO)
        );
        // Each refusal names the table and says what is wrong.
        for (table, needle) in [
            ("rooms = \"team-**\"\nsubject = \"apps.access\"", "only one '*'"),
            ("rooms = \"a.b\"\nsubject = \"apps.access\"", "rooms"),
            ("rooms = \"team-*\"\nsubject = \"apps.>\"", "literal subject"),
            (
                "rooms = \"team-*\"\nsubject = \"apps.access\"\ntimeout = \"3s\"",
                "authorization.timeout",
            ),
            (
                "rooms = \"team-*\"\nsubject = \"apps.access\"\ntimeout = \"soon\"",
                "timeout",
            ),
            (
                "rooms = \"team-*\"\nsubject = \"chat.team-a.ask\"",
                "callout.read_subject",
            ),
            ("rooms = \"team-*\"\nsubject = \"_INBOX.bob.x\"", "reserved"),
            ("rooms = \"team-*\"\nsubject = \"auth.v1.x\"", "reserved"),
            ("rooms = \"team-*\"", "subject"),
            ("rooms = \"team-*\"\nsubject = \"a\"\nanswer = 1", "answer"),
        ] {
            std::fs::write(
                &path,
                format!(
                    "[[access.delegate]]\nrooms = \"x\"\nsubject = \"ok.x\"\n[[access.delegate]]\n{table}\n"
                ),
            )
            .unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{table}: {err}");
            if !err.contains("unknown field") && !err.contains("missing field") && !err.contains("soon") {
                assert!(
                    err.contains("access.delegate") && err.contains("table 2"),
                    "{table}: {err}"
                );
            }
        }
        // A subject the grant's own templates could reach, with other templates.
        std::fs::write(
            &path,
            "[callout]\nread_subject = \"rooms.{room}.>\"\nwrite_subject = \"rooms.{room}.{user}\"\n\
             inbox_prefix = \"replies.{user}\"\n[[access.delegate]]\nrooms = \"*\"\nsubject = \"replies.svc.ask\"\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("callout.inbox_prefix"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[callout]\nmax_romos = 3\n").unwrap();
        assert!(Config::load(&path).unwrap_err().to_string().contains("max_romos"));
    }

    #[test]
    fn secrets_do_not_print() {
        let mut c = Config::default();
        c.nats.password = Some(Secret::new("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    /// The settings a TOML text would be allowed to name: read from the deserializer's own
    /// "unknown field, expected one of ..." answer, so no list is kept by hand.
    fn accepted_fields(dir: &Path, section: Option<&str>) -> Vec<String> {
        let path = dir.join("probe.toml");
        let body = match section {
            Some(s) => format!("[{s}]\nnot_a_setting = 1\n"),
            None => "not_a_setting = 1\n".to_owned(),
        };
        std::fs::write(&path, body).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        let list = err
            .split("expected `")
            .nth(1)
            .and_then(|r| r.split("` for key").next());
        let list = list.unwrap_or_else(|| panic!("no field list in {err:?}"));
        let list = list.strip_prefix("one of ").unwrap_or(list);
        // serde: "`a` or `b`" for two fields, "one of `a`, `b`, `c`" for more.
        list.split(", ")
            .flat_map(|f| f.split("` or `"))
            .map(|f| f.trim_matches('`').to_owned())
            .collect()
    }

    /// The keys named in the first column of the book's settings table (Reference,
    /// Configuration): `a.b` / `c` means `a.b` and `a.c`; `x(_file)` means `x` and `x_file`.
    fn documented_keys(page: &str) -> std::collections::BTreeSet<String> {
        let table = page
            .split("\n## Settings\n")
            .nth(1)
            .expect("the configuration page has a section \"Settings\"")
            .split("\n## ")
            .next()
            .unwrap();
        let mut keys = std::collections::BTreeSet::new();
        for row in table.lines().filter(|l| l.starts_with("| `")) {
            let first = row.split('|').nth(1).unwrap();
            let mut section = "";
            for name in first.split(" / ").map(|n| n.trim().trim_matches('`')) {
                let full = match name.split_once('.') {
                    Some((s, _)) => {
                        section = s;
                        name.to_owned()
                    }
                    None => format!("{section}.{name}"),
                };
                match full.split_once("(_file)") {
                    Some((base, _)) => keys.extend([base.to_owned(), format!("{base}_file")]),
                    None => {
                        keys.insert(full);
                    }
                }
            }
        }
        keys
    }

    /// Every path setting, written relative, is made relative to the configuration file: the
    /// settings come from the deserializer's own list, so a new one cannot be missed.
    #[test]
    fn every_path_setting_is_relative_to_the_configuration_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = String::new();
        let mut named = 0;
        for section in accepted_fields(dir.path(), None) {
            let paths: Vec<String> = accepted_fields(dir.path(), Some(&section))
                .into_iter()
                .filter(|f| {
                    f.ends_with("_file") || f.ends_with("_path") || f == "dir" || f.ends_with("_files")
                })
                .collect();
            if paths.is_empty() {
                continue;
            }
            toml.push_str(&format!("[{section}]\n"));
            for f in paths {
                named += 1;
                let v = if f.ends_with("_files") {
                    "[\"rel/x\"]"
                } else {
                    "\"rel/x\""
                };
                toml.push_str(&format!("{f} = {v}\n"));
            }
        }
        assert!(named > 15, "{toml}");
        // Nested tables hold paths too.
        let key = nkeys::KeyPair::new_account().public_key();
        toml.push_str(&format!(
            "[[identity.oidc]]\nname = \"corp\"\nissuer = \"https://idp.example\"\naudience = \"nats\"\n\
             client_id = \"c\"\nclient_secret_file = \"rel/x\"\nredirect_url = \"https://chat.example/cb\"\n\
             [callout.accounts.APP]\npublic_key = \"{key}\"\nsigning_key_file = \"rel/x\"\njwt_file = \"rel/x\"\n"
        ));
        let path = dir.path().join("c.toml");
        std::fs::write(&path, &toml).unwrap();
        let figment = Figment::new().merge(Toml::file(&path));
        let mut c: Config = figment.extract().unwrap();
        c.resolve_paths(dir.path());
        let shown = format!("{c:?}");
        assert!(!shown.contains("\"rel/x\""), "a path left relative: {shown}");
        assert!(shown.matches("/rel/x").count() >= named + 3, "{shown}");
    }

    #[test]
    fn the_book_documents_every_setting_and_only_real_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut real = std::collections::BTreeSet::new();
        for section in accepted_fields(dir.path(), None) {
            for field in accepted_fields(dir.path(), Some(&section)) {
                real.insert(format!("{section}.{field}"));
            }
        }
        assert!(real.len() > 40, "{real:?}");
        let documented = documented_keys(include_str!("../../docs/src/reference/configuration.md"));
        let missing: Vec<_> = real.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&real).collect();
        assert!(
            missing.is_empty(),
            "settings missing from docs/src/reference/configuration.md: {missing:?}"
        );
        assert!(
            unknown.is_empty(),
            "docs/src/reference/configuration.md names settings that do not exist: {unknown:?}"
        );
    }

    #[test]
    fn the_books_production_example_is_a_valid_configuration() {
        let page = include_str!("../../docs/src/guides/deploying.md");
        let example = page
            .split("\n## A hardened production configuration\n")
            .nth(1)
            .and_then(|r| r.split("```toml\n").nth(1))
            .and_then(|r| r.split("```").next())
            .expect("the example block");
        assert_eq!(
            example,
            include_str!("../../deploy/production/callout.toml"),
            "docs/src/guides/deploying.md shows deploy/production/callout.toml as it is"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callout.toml");
        std::fs::write(&path, example).unwrap();
        let c = Config::load(&path).unwrap();
        assert!(c.callout.xkey_seed_file.is_some(), "xkey on");
        assert!(c.nats.tls_ca_file.is_some() && c.nats.nkey_seed_file.is_some());
        assert!(c.nats.url.starts_with("tls://"));
        assert!(c.http.secure_cookies);
        assert_eq!(c.log.format, LogFormat::Json);
    }
}
