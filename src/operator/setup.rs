//! `nats-callout keys --operator`: a whole operator set-up in one directory. An operator
//! (with a signing key), the accounts AUTH (the callout's, its configuration in its JWT),
//! APP and APP2 (where users are placed) and SYS, each with a signing key; a sentinel user
//! for clients that bring no JWT (`default_sentinel`); the service's and the system user's
//! `.creds`; a nats-server configuration with the account JWTs preloaded; a matching
//! `callout.toml`. Seeds and credentials are 0600 files; nothing secret is printed.

use std::path::{Path, PathBuf};

use nkeys::{KeyPair, XKey};
use serde_json::{Value, json};

use crate::claims::{encode, new_jti};
use crate::keys::{KeyError, write_file, write_secret};
use crate::wire::NOTICE_SUBJECTS;

/// The accounts users may be placed in, the first the default.
pub const TARGETS: [&str; 2] = ["APP", "APP2"];

/// Where the generated server listens, and what the generated service uses.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    pub dir: PathBuf,
    pub force: bool,
    /// Client, monitoring and websocket ports of the generated nats-server.
    pub client_port: u16,
    pub http_port: u16,
    pub websocket_port: u16,
    /// Origins the websocket listener accepts (the chat page's).
    pub allowed_origins: Vec<String>,
    /// Encrypt requests and replies (an xkey in the AUTH account's JWT).
    pub xkey: bool,
    /// The access-token keys and refresh secret the service uses (those of `keys`), and the
    /// permission files.
    pub tokens_dir: PathBuf,
    pub permissions_dir: PathBuf,
}

impl SetupOptions {
    /// The demo's ports and files.
    pub fn demo(dir: PathBuf) -> Self {
        SetupOptions {
            dir,
            force: false,
            client_port: 4222,
            http_port: 8222,
            websocket_port: 9222,
            allowed_origins: vec!["http://127.0.0.1:8080".into(), "http://localhost:8080".into()],
            xkey: true,
            tokens_dir: PathBuf::from(".demo"),
            permissions_dir: PathBuf::from("permissions"),
        }
    }
}

/// What was written (public keys only).
#[derive(Debug, Clone)]
pub struct Generated {
    pub dir: PathBuf,
    pub operator: String,
    pub auth: String,
    pub system: String,
    /// Target account name → public key.
    pub targets: Vec<(String, String)>,
    pub server_config: PathBuf,
    pub callout_config: PathBuf,
}

/// An nkey pair and its seed.
struct Key {
    pair: KeyPair,
    public: String,
    seed: String,
}

impl Key {
    fn new(pair: KeyPair) -> Key {
        let public = pair.public_key();
        let seed = pair.seed().expect("a fresh key has a seed");
        Key { pair, public, seed }
    }
}

/// An account and its signing key.
struct Account {
    name: &'static str,
    key: Key,
    signing: Key,
}

impl Account {
    fn new(name: &'static str) -> Account {
        Account {
            name,
            key: Key::new(KeyPair::new_account()),
            signing: Key::new(KeyPair::new_account()),
        }
    }
}

fn now() -> i64 {
    crate::clock::now_secs()
}

/// A JWT with `claims` (the common fields added), signed by `by`.
fn jwt(by: &KeyPair, name: &str, sub: &str, nats: Value) -> String {
    let claims = json!({
        "jti": new_jti(),
        "iat": now(),
        "iss": by.public_key(),
        "name": name,
        "sub": sub,
        "nats": nats,
    });
    encode(&claims, by).expect("signing with a fresh key works")
}

/// Limits a JWT account needs written out (missing ones are zero to nats-server).
fn unlimited() -> Value {
    json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
           "wildcards": true, "conn": -1, "leaf": -1})
}

/// A user of `account`, signed by its signing key.
fn user_jwt(account: &Account, name: &str, user: &str, extra: Value) -> String {
    let mut nats = json!({"issuer_account": account.key.public, "type": "user", "version": 2,
                          "subs": -1, "data": -1, "payload": -1});
    if let (Some(n), Some(e)) = (nats.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            n.insert(k.clone(), v.clone());
        }
    }
    jwt(&account.signing.pair, name, user, nats)
}

/// The `.creds` format nats tools read: the user JWT and its seed.
fn creds(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| std::env::current_dir().unwrap_or_default().join(p))
}

/// Every key of a set-up, made fresh.
struct Keys {
    operator: Key,
    operator_signing: Key,
    auth: Account,
    sys: Account,
    targets: Vec<Account>,
    service: Key,
    system_user: Key,
    sentinel: Key,
    xkey: XKey,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            operator: Key::new(KeyPair::new_operator()),
            operator_signing: Key::new(KeyPair::new_operator()),
            auth: Account::new("AUTH"),
            sys: Account::new("SYS"),
            targets: TARGETS.iter().map(|n| Account::new(n)).collect(),
            service: Key::new(KeyPair::new_user()),
            system_user: Key::new(KeyPair::new_user()),
            sentinel: Key::new(KeyPair::new_user()),
            xkey: XKey::new(),
        }
    }

    /// AUTH, the targets and SYS, in that order.
    fn accounts(&self) -> impl Iterator<Item = &Account> {
        std::iter::once(&self.auth)
            .chain(&self.targets)
            .chain(std::iter::once(&self.sys))
    }
}

/// The JWTs of a set-up: operator, accounts, and the users it needs.
struct Jwts {
    operator: String,
    auth: String,
    targets: Vec<String>,
    sys: String,
    sentinel: String,
    service: String,
    system_user: String,
}

impl Jwts {
    fn new(k: &Keys, xkey: bool) -> Jwts {
        let operator = jwt(
            &k.operator.pair,
            "OP",
            &k.operator.public,
            json!({"signing_keys": [k.operator_signing.public], "system_account": k.sys.key.public,
                   "type": "operator", "version": 2}),
        );
        let account_jwt = |a: &Account, extra: Value| {
            let mut nats = json!({"signing_keys": [a.signing.public], "limits": unlimited(),
                                  "type": "account", "version": 2});
            if let (Some(n), Some(e)) = (nats.as_object_mut(), extra.as_object()) {
                for (key, v) in e {
                    n.insert(key.clone(), v.clone());
                }
            }
            jwt(&k.operator_signing.pair, a.name, &a.key.public, nats)
        };
        let mut authorization = json!({
            "auth_users": [k.service.public],
            "allowed_accounts": k.targets.iter().map(|t| t.key.public.clone()).collect::<Vec<_>>(),
        });
        if xkey {
            authorization["xkey"] = json!(k.xkey.public_key());
        }
        // The service's own endpoints (auth.v1.*) and the users' notices: exported by AUTH,
        // imported by every target.
        let auth = account_jwt(
            &k.auth,
            json!({"authorization": authorization,
                   "exports": [{"name": "nats-callout endpoints", "subject": "auth.v1.>", "type": "service"},
                               {"name": "nats-callout notices", "subject": NOTICE_SUBJECTS, "type": "stream"}]}),
        );
        let targets = k
            .targets
            .iter()
            .map(|t| {
                account_jwt(
                    t,
                    json!({"imports": [{"name": "nats-callout endpoints", "subject": "auth.v1.>",
                                        "account": k.auth.key.public, "type": "service"},
                                       {"name": "nats-callout notices", "subject": NOTICE_SUBJECTS,
                                        "account": k.auth.key.public, "type": "stream"}]}),
                )
            })
            .collect();
        Jwts {
            operator,
            auth,
            targets,
            sys: account_jwt(&k.sys, json!({})),
            sentinel: user_jwt(
                &k.auth,
                "sentinel",
                &k.sentinel.public,
                json!({"bearer_token": true, "pub": {"deny": [">"]}, "sub": {"deny": [">"]}}),
            ),
            service: user_jwt(&k.auth, "callout", &k.service.public, json!({})),
            system_user: user_jwt(&k.sys, "sys", &k.system_user.public, json!({})),
        }
    }
}

/// The websocket listener's allowed origins, as a quoted list.
fn quoted(origins: &[String]) -> String {
    origins
        .iter()
        .map(|o| format!("\"{o}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// nats-server's configuration: operator, resolver with the accounts preloaded, sentinel.
fn server_conf(opts: &SetupOptions, k: &Keys, j: &Jwts) -> String {
    let mut preload = String::new();
    let account_jwts = std::iter::once(&j.auth)
        .chain(&j.targets)
        .chain(std::iter::once(&j.sys));
    for (a, jwt) in k.accounts().zip(account_jwts) {
        preload.push_str(&format!("  # {}\n  {}: {jwt}\n", a.name, a.key.public));
    }
    format!(
        "# nats-server in operator mode, generated by `nats-callout keys --operator`.\n\
         # The callout is configured in the AUTH account's JWT (auth_users, allowed_accounts,\n\
         # xkey); clients that bring no JWT get the sentinel and are decided by the callout.\n\
         server_name: operator-demo\n\
         listen: 127.0.0.1:{client}\n\
         http: 127.0.0.1:{http}\n\
         # A CONNECT with a minted user JWT for many rooms (NATS credentials) is larger than\n\
         # one with a token: docs, Limits.\n\
         max_control_line: 32KB\n\n\
         operator: {operator_jwt}\n\
         system_account: {sys_key}\n\n\
         resolver: MEMORY\n\
         resolver_preload: {{\n{preload}}}\n\n\
         default_sentinel: {sentinel_jwt}\n\n\
         authorization {{\n  timeout: 2s\n}}\n\n\
         websocket {{\n  listen: \"127.0.0.1:{ws}\"\n  no_tls: true\n  token_cookie: nats_token\n  allowed_origins: [ {origins} ]\n}}\n",
        client = opts.client_port,
        http = opts.http_port,
        ws = opts.websocket_port,
        operator_jwt = j.operator,
        sys_key = k.sys.key.public,
        sentinel_jwt = j.sentinel,
        origins = quoted(&opts.allowed_origins),
    )
}

/// The service's configuration for that server.
fn callout_toml(opts: &SetupOptions, k: &Keys) -> String {
    let path = |p: &Path| absolute(p).display().to_string().replace('\\', "/");
    let mut toml = format!(
        "# nats-callout for the operator-mode nats-server beside it, generated by\n\
         # `nats-callout keys --operator`. Relative paths are relative to this file.\n\n\
         [nats]\n\
         url = \"nats://127.0.0.1:{client}\"\n\
         credentials_file = \"service.creds\"          # a user of AUTH, in its auth_users\n\
         system_credentials_file = \"sys.creds\"       # SYS: events, CONNZ, LDM, KICK\n\
         user = \"callout\"                            # (not used with credentials_file)\n\n\
         [callout]\n\
         mode = \"operator\"\n\
         auth_account = \"{auth}\"\n\
         issuer_seed_file = \"AUTH-signing.nk\"       # a signing key of AUTH signs the replies\n",
        client = opts.client_port,
        auth = k.auth.key.public,
    );
    if opts.xkey {
        toml.push_str("xkey_seed_file = \"xkey.xk\"\n");
    }
    toml.push_str(&format!(
        "account = \"{}\"                              # the default; a user's `account` in the files picks another\n\
         auth_users = [\"callout\", \"sys\"]\n",
        TARGETS[0]
    ));
    for t in &k.targets {
        toml.push_str(&format!(
            "\n[callout.accounts.{name}]\npublic_key = \"{key}\"\nsigning_key_file = \"{name}-signing.nk\"\njwt_file = \"{name}.jwt\"\n",
            name = t.name,
            key = t.key.public,
        ));
    }
    toml.push_str(
        "\n# Rooms an app service decides (docs: Delegating decisions to app services). Its\n\
         # subject is exported as a service by APP's JWT and imported by AUTH's:\n\
         #   nsc add export --account APP --service --subject apps.access --private\n\
         #   nsc add import --account AUTH --src-account APP --remote-subject apps.access --service\n\
         # [[access.delegate]]\n\
         # rooms = \"team-*\"\n\
         # subject = \"apps.access\"\n",
    );
    toml.push_str(&format!(
        "\n[tokens]\n\
         signing_key_file = \"{tok}/token-signing.pem\"\n\
         refresh_secret_file = \"{tok}/refresh.key\"\n\
         store_path = \"tokens.redb\"\n\n\
         [permissions]\n\
         dir = \"{perm}\"\n\n\
         [http]\n\
         websocket_port = {ws}\n\
         allowed_origins = [{origins}]\n",
        tok = path(&opts.tokens_dir),
        perm = path(&opts.permissions_dir),
        ws = opts.websocket_port,
        origins = quoted(&opts.allowed_origins),
    ));
    toml
}

/// The files of a set-up: secrets (0600) and the rest, by name.
type Files = (Vec<(String, String)>, Vec<(String, String)>);

fn files(opts: &SetupOptions, k: &Keys, j: &Jwts) -> Files {
    let xkey_seed = k.xkey.seed().expect("a fresh xkey has a seed");
    let mut secrets: Vec<(String, String)> = vec![
        ("operator.nk".into(), k.operator.seed.clone()),
        ("operator-signing.nk".into(), k.operator_signing.seed.clone()),
        ("xkey.xk".into(), xkey_seed),
        ("service.creds".into(), creds(&j.service, &k.service.seed)),
        ("sys.creds".into(), creds(&j.system_user, &k.system_user.seed)),
    ];
    let mut public: Vec<(String, String)> = vec![
        ("operator.jwt".into(), j.operator.clone()),
        ("sentinel.jwt".into(), j.sentinel.clone()),
        ("AUTH.jwt".into(), j.auth.clone()),
        ("SYS.jwt".into(), j.sys.clone()),
        ("nats-server.conf".into(), server_conf(opts, k, j)),
        ("callout.toml".into(), callout_toml(opts, k)),
    ];
    for a in k.accounts() {
        secrets.push((format!("{}.nk", a.name), a.key.seed.clone()));
        secrets.push((format!("{}-signing.nk", a.name), a.signing.seed.clone()));
    }
    for (t, jwt) in k.targets.iter().zip(&j.targets) {
        public.push((format!("{}.jwt", t.name), jwt.clone()));
    }
    (secrets, public)
}

/// Write every file, refusing (before writing any) to replace one unless `force`.
fn write_all(dir: &Path, (secrets, public): &Files, force: bool) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.into(),
        source,
    })?;
    if !force
        && let Some(p) = secrets
            .iter()
            .chain(public)
            .map(|(name, _)| dir.join(name))
            .find(|p| p.exists())
    {
        return Err(KeyError::Exists { path: p });
    }
    for (name, contents) in secrets {
        write_secret(&dir.join(name), contents, force)?;
    }
    for (name, contents) in public {
        write_file(&dir.join(name), contents, force)?;
    }
    Ok(())
}

/// Write the whole set-up into `opts.dir`.
pub fn generate(opts: &SetupOptions) -> Result<Generated, KeyError> {
    let keys = Keys::new();
    let jwts = Jwts::new(&keys, opts.xkey);
    write_all(&opts.dir, &files(opts, &keys, &jwts), opts.force)?;
    Ok(Generated {
        dir: opts.dir.clone(),
        operator: keys.operator.public,
        auth: keys.auth.key.public.clone(),
        system: keys.sys.key.public.clone(),
        targets: keys
            .targets
            .iter()
            .map(|t| (t.name.to_string(), t.key.public.clone()))
            .collect(),
        server_config: opts.dir.join("nats-server.conf"),
        callout_config: opts.dir.join("callout.toml"),
    })
}
