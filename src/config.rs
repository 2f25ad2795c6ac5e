//! Service configuration: `callout.toml`, overridden by `NATS_CALLOUT_<SECTION>__<KEY>` variables.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

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
    pub identity: crate::oidc::settings::IdentitySettings,
}

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
    pub accounts: std::collections::BTreeMap<String, TargetAccount>,
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
            accounts: std::collections::BTreeMap::new(),
            user_accounts: Vec::new(),
        }
    }
}

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
}

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
        }
    }
}

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

/// Where the permission set comes from.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PermissionSource {
    /// The files in `permissions.dir`, watched.
    #[default]
    Files,
    /// The set `nats-callout permissions push` published in JetStream KV, watched.
    Kv,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionSettings {
    /// The permission files (the source with `files`; what `permissions push` publishes).
    pub dir: PathBuf,
    pub source: PermissionSource,
}

impl Default for PermissionSettings {
    fn default() -> Self {
        PermissionSettings {
            dir: PathBuf::from("permissions"),
            source: PermissionSource::Files,
        }
    }
}

/// The HTTP API (login, refresh, revoke) and, later, the chat page.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Address of the public listener (chat page and user API); empty = none.
    pub listen: String,
    /// Address of the operations listener (`/metrics`, `/healthz`, `/readyz`,
    /// `/api/admin/*`); empty = none. Keep it off the public network.
    pub admin_listen: String,
    /// Mark cookies `Secure` (set this behind TLS).
    pub secure_cookies: bool,
    /// `Domain` of the cookies, so that a websocket on another host of the same site gets
    /// `nats_token` (e.g. `example.com` for `chat.example.com` and `ws.example.com`).
    pub cookie_domain: Option<String>,
    /// Peers (addresses or CIDR ranges) whose forwarding header names the client: the
    /// per-address limits, the logs and the sessions list use that address. From any other
    /// peer the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// The one header a trusted proxy names the client in: `x-forwarded-for` (default) or
    /// `forwarded`. Every line of it is read in order, and the client is the rightmost
    /// address that is not a trusted proxy; the other header is ignored.
    pub client_address_header: crate::forwarded::AddressHeader,
    /// The page's public origin (`https://chat.example.com`), for the URLs the service
    /// gives out (an identity provider's callback, the page to return to after logging out).
    /// Unset: `http://<listen>` for a loopback listener, else none.
    pub public_url: Option<String>,
    /// The websocket URL the chat page connects to, when it is not
    /// `ws(s)://<page host>:<websocket_port>` (a proxy on another host or path).
    pub websocket_url: Option<String>,
    /// Origins allowed to make cookie-authenticated requests.
    pub allowed_origins: Vec<String>,
    /// Login attempts per minute per user name.
    pub login_per_user_per_minute: u32,
    /// Login attempts per minute per client address.
    pub login_per_address_per_minute: u32,
    /// Port of nats-server's websocket listener, on the host the chat page was loaded from.
    pub websocket_port: u16,
    /// `POST /api/auth/guest` creates anonymous users with the rooms of the `guest` group.
    pub guests: bool,
    /// Guests created per minute per client address.
    pub guests_per_address_per_minute: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            secure_cookies: false,
            cookie_domain: None,
            trusted_proxies: Vec::new(),
            client_address_header: crate::forwarded::AddressHeader::XForwardedFor,
            public_url: None,
            websocket_url: None,
            allowed_origins: vec!["http://127.0.0.1:8080".into(), "http://localhost:8080".into()],
            login_per_user_per_minute: 10,
            login_per_address_per_minute: 30,
            websocket_port: 9222,
            guests: false,
            guests_per_address_per_minute: 5,
        }
    }
}

impl HttpSettings {
    /// The page's public origin: `public_url` without a trailing `/`, or `http://<listen>`
    /// when the public listener is on a loopback address (the demo), else `None`.
    pub fn public_origin(&self) -> Option<String> {
        if let Some(u) = &self.public_url {
            return Some(u.trim_end_matches('/').to_string());
        }
        let addr: std::net::SocketAddr = self.listen.parse().ok()?;
        addr.ip().is_loopback().then(|| format!("http://{addr}"))
    }
}

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

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` (default) or `json`.
    pub format: crate::telemetry::LogFormat,
}

/// Connection types the callout can serve.
pub const CONNECTION_TYPES: [&str; 4] = ["nats", "websocket", "leafnode", "mqtt"];

impl Config {
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

    /// Make every relative file path relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !base.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.callout.issuer_seed_file);
        for p in [
            &mut self.callout.xkey_seed_file,
            &mut self.callout.previous_issuer_seed_file,
            &mut self.callout.previous_xkey_seed_file,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        if let Some(p) = self.nats.password_file.as_mut() {
            fix(p);
        }
        for p in [
            &mut self.nats.system_password_file,
            &mut self.nats.nkey_seed_file,
            &mut self.nats.credentials_file,
            &mut self.nats.system_credentials_file,
            &mut self.nats.tls_ca_file,
            &mut self.nats.tls_cert_file,
            &mut self.nats.tls_key_file,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        fix(&mut self.tokens.signing_key_file);
        fix(&mut self.tokens.store_path);
        fix(&mut self.tokens.refresh_secret_file);
        self.tokens.verify_key_files.iter_mut().for_each(fix);
        fix(&mut self.permissions.dir);
        for a in self.callout.accounts.values_mut() {
            fix(&mut a.signing_key_file);
            if let Some(p) = a.jwt_file.as_mut() {
                fix(p);
            }
        }
        for p in self
            .identity
            .oidc
            .iter_mut()
            .filter_map(|p| p.client_secret_file.as_mut())
        {
            fix(p);
        }
    }

    /// Check values that would otherwise fail later, at the first request.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.callout;
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if c.max_rooms == 0 {
            return invalid("callout.max_rooms", "must be at least 1".into());
        }
        if c.max_in_flight == 0 {
            return invalid("callout.max_in_flight", "must be at least 1".into());
        }
        if let Err(e) = crate::names::validate_name(&c.account) {
            return invalid("callout.account", e.to_string());
        }
        for t in &c.connection_types {
            if !CONNECTION_TYPES.contains(&t.as_str()) {
                return invalid(
                    "callout.connection_types",
                    format!("unknown type {t:?} (known: {CONNECTION_TYPES:?})"),
                );
            }
        }
        let e = &self.enforcement;
        if e.rate_per_second <= 0.0 || e.revocation_rate_per_second <= 0.0 || e.burst == 0 {
            return invalid(
                "enforcement.rate_per_second",
                "rates and burst must be positive".into(),
            );
        }
        if e.lease_ttl < Duration::from_secs(2) {
            return invalid("enforcement.lease_ttl", "must be at least 2s".into());
        }
        if c.user_jwt_ttl.as_secs() == 0 {
            return invalid("callout.user_jwt_ttl", "must be at least 1s".into());
        }
        for p in &self.http.trusted_proxies {
            if crate::forwarded::Cidr::parse(p).is_none() {
                return invalid(
                    "http.trusted_proxies",
                    format!("{p:?} is neither an IP address nor a CIDR range"),
                );
            }
        }
        if let Some(d) = &self.http.cookie_domain
            && (d.is_empty()
                || !d
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        {
            return invalid("http.cookie_domain", format!("{d:?} is not a domain name"));
        }
        let st = &self.store;
        if st.bucket_prefix.is_empty()
            || st.bucket_prefix.len() > 32
            || !st
                .bucket_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return invalid(
                "store.bucket_prefix",
                "1 to 32 letters, digits, '-' or '_'".into(),
            );
        }
        if !(1..=5).contains(&st.replicas) {
            return invalid("store.replicas", "JetStream allows 1 to 5 replicas".into());
        }
        if self.tokens.max_token_ttl < self.tokens.access_ttl {
            return invalid(
                "tokens.max_token_ttl",
                "must be at least tokens.access_ttl (revocations are kept this long)".into(),
            );
        }
        if c.mode == CalloutMode::Operator {
            let is_account = |k: &str| k.starts_with('A') && nkeys::KeyPair::from_public_key(k).is_ok();
            match &c.auth_account {
                Some(a) if is_account(a) => {}
                _ => {
                    return invalid(
                        "callout.auth_account",
                        "operator mode needs the AUTH account's public key (A...)".into(),
                    );
                }
            }
            if !c.accounts.contains_key(&c.account) {
                return invalid(
                    "callout.accounts",
                    format!(
                        "operator mode: callout.account {:?} must be one of [callout.accounts]",
                        c.account
                    ),
                );
            }
            for (name, a) in &c.accounts {
                if !is_account(&a.public_key) {
                    return invalid(
                        "callout.accounts",
                        format!("{name}: public_key is not an account public key (A...)"),
                    );
                }
            }
            if !c.user_accounts.is_empty() {
                return invalid(
                    "callout.user_accounts",
                    "config mode only: in operator mode users are placed in [callout.accounts]".into(),
                );
            }
        } else if !c.accounts.is_empty() {
            return invalid(
                "callout.accounts",
                "operator mode only: in config mode name further accounts in callout.user_accounts".into(),
            );
        }
        for a in &c.user_accounts {
            if let Err(e) = crate::names::validate_name(a) {
                return invalid("callout.user_accounts", format!("{a:?}: {e}"));
            }
        }
        if let Err(reason) = self.identity.validate() {
            return invalid("identity.oidc", reason);
        }
        use crate::subjects::{Kind, Template};
        let mut parsed = Vec::with_capacity(3);
        for (key, tpl, kind) in [
            ("callout.read_subject", &c.read_subject, Kind::Read),
            ("callout.write_subject", &c.write_subject, Kind::Write),
            ("callout.inbox_prefix", &c.inbox_prefix, Kind::Inbox),
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
                    c.write_subject, c.read_subject
                ),
            );
        }
        self.validate_http()
    }

    /// The HTTP settings, and the identity providers' callback addresses that depend on them.
    fn validate_http(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if let Some(u) = &self.http.public_url
            && let Err(reason) = check_public_url(u)
        {
            return invalid("http.public_url", reason);
        }
        for p in &self.identity.oidc {
            if p.client_id.is_none() || p.redirect_url.is_some() || self.http.public_url.is_some() {
                continue;
            }
            // The demo aside (a loopback provider, a loopback page): the callback address
            // never comes from a request's Host header.
            let loopback = crate::oidc::settings::is_loopback_url(&p.issuer);
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

/// `http.public_url`: an origin, `https://host[:port]` (plain `http://` for a loopback host).
fn check_public_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("{u:?} is not an http(s) URL"))?;
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("{u:?} is not an origin (scheme://host[:port], no path)"));
    }
    if u.starts_with("http://") && !crate::oidc::settings::is_loopback_url(u) {
        return Err(format!(
            "{u:?}: plain http is accepted only on a loopback host; use https"
        ));
    }
    Ok(())
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
        ] {
            let path = dir.path().join("c.toml");
            std::fs::write(&path, body).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains(key), "{body}: {err}");
        }
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
        let documented = documented_keys(include_str!("../docs/src/reference/configuration.md"));
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
        let page = include_str!("../docs/src/guides/deploying.md");
        let example = page
            .split("\n## A hardened production configuration\n")
            .nth(1)
            .and_then(|r| r.split("```toml\n").nth(1))
            .and_then(|r| r.split("```").next())
            .expect("the example block");
        assert_eq!(
            example,
            include_str!("../deploy/production/callout.toml"),
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
        assert_eq!(c.log.format, crate::telemetry::LogFormat::Json);
    }
}
