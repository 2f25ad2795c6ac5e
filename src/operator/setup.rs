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

/// Write the whole set-up into `opts.dir`.
pub fn generate(opts: &SetupOptions) -> Result<Generated, KeyError> {
    let dir = &opts.dir;
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.clone(),
        source,
    })?;
    let operator = Key::new(KeyPair::new_operator());
    let operator_signing = Key::new(KeyPair::new_operator());
    let auth = Account::new("AUTH");
    let sys = Account::new("SYS");
    let targets: Vec<Account> = TARGETS.iter().map(|n| Account::new(n)).collect();
    let service = Key::new(KeyPair::new_user());
    let system_user = Key::new(KeyPair::new_user());
    let sentinel = Key::new(KeyPair::new_user());
    let xkey = XKey::new();
    let xkey_seed = xkey.seed().expect("a fresh xkey has a seed");

    let operator_jwt = jwt(
        &operator.pair,
        "OP",
        &operator.public,
        json!({"signing_keys": [operator_signing.public], "system_account": sys.key.public,
               "type": "operator", "version": 2}),
    );
    let account_jwt = |a: &Account, extra: Value| {
        let mut nats = json!({"signing_keys": [a.signing.public], "limits": unlimited(),
                              "type": "account", "version": 2});
        if let (Some(n), Some(e)) = (nats.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                n.insert(k.clone(), v.clone());
            }
        }
        jwt(&operator_signing.pair, a.name, &a.key.public, nats)
    };
    let mut authorization = json!({
        "auth_users": [service.public],
        "allowed_accounts": targets.iter().map(|t| t.key.public.clone()).collect::<Vec<_>>(),
    });
    if opts.xkey {
        authorization["xkey"] = json!(xkey.public_key());
    }
    // The service's own endpoints (auth.v1.*): exported by AUTH, imported by every target.
    let auth_jwt = account_jwt(
        &auth,
        json!({"authorization": authorization,
               "exports": [{"name": "nats-callout endpoints", "subject": "auth.v1.>", "type": "service"}]}),
    );
    let target_jwts: Vec<String> = targets
        .iter()
        .map(|t| {
            account_jwt(
                t,
                json!({"imports": [{"name": "nats-callout endpoints", "subject": "auth.v1.>",
                                    "account": auth.key.public, "type": "service"}]}),
            )
        })
        .collect();
    let sys_jwt = account_jwt(&sys, json!({}));
    let sentinel_jwt = user_jwt(
        &auth,
        "sentinel",
        &sentinel.public,
        json!({"bearer_token": true, "pub": {"deny": [">"]}, "sub": {"deny": [">"]}}),
    );
    let service_jwt = user_jwt(&auth, "callout", &service.public, json!({}));
    let system_jwt = user_jwt(&sys, "sys", &system_user.public, json!({}));

    let mut preload = String::new();
    for (name, key, jwt) in std::iter::once(("AUTH", &auth.key.public, &auth_jwt))
        .chain(
            targets
                .iter()
                .zip(&target_jwts)
                .map(|(t, j)| (t.name, &t.key.public, j)),
        )
        .chain(std::iter::once(("SYS", &sys.key.public, &sys_jwt)))
    {
        preload.push_str(&format!("  # {name}\n  {key}: {jwt}\n"));
    }
    let origins = opts
        .allowed_origins
        .iter()
        .map(|o| format!("\"{o}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let server_conf = format!(
        "# nats-server in operator mode, generated by `nats-callout keys --operator`.\n\
         # The callout is configured in the AUTH account's JWT (auth_users, allowed_accounts,\n\
         # xkey); clients that bring no JWT get the sentinel and are decided by the callout.\n\
         server_name: operator-demo\n\
         listen: 127.0.0.1:{client}\n\
         http: 127.0.0.1:{http}\n\
         max_control_line: 8KB\n\n\
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
        sys_key = sys.key.public,
    );

    let tokens = absolute(&opts.tokens_dir);
    let permissions = absolute(&opts.permissions_dir);
    let path = |p: &Path| p.display().to_string().replace('\\', "/");
    let mut callout_toml = format!(
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
        auth = auth.key.public,
    );
    if opts.xkey {
        callout_toml.push_str("xkey_seed_file = \"xkey.xk\"\n");
    }
    callout_toml.push_str(&format!(
        "account = \"{}\"                              # the default; a user's `account` in the files picks another\n\
         auth_users = [\"callout\", \"sys\"]\n",
        TARGETS[0]
    ));
    for t in &targets {
        callout_toml.push_str(&format!(
            "\n[callout.accounts.{name}]\npublic_key = \"{key}\"\nsigning_key_file = \"{name}-signing.nk\"\njwt_file = \"{name}.jwt\"\n",
            name = t.name,
            key = t.key.public,
        ));
    }
    callout_toml.push_str(&format!(
        "\n[tokens]\n\
         signing_key_file = \"{tok}/token-signing.pem\"\n\
         refresh_secret_file = \"{tok}/refresh.key\"\n\
         store_path = \"tokens.redb\"\n\n\
         [permissions]\n\
         dir = \"{perm}\"\n\n\
         [http]\n\
         websocket_port = {ws}\n\
         allowed_origins = [{origins}]\n",
        tok = path(&tokens),
        perm = path(&permissions),
        ws = opts.websocket_port,
        origins = origins,
    ));

    let mut secrets: Vec<(String, String)> = vec![
        ("operator.nk".into(), operator.seed.clone()),
        ("operator-signing.nk".into(), operator_signing.seed.clone()),
        ("xkey.xk".into(), xkey_seed),
        ("service.creds".into(), creds(&service_jwt, &service.seed)),
        ("sys.creds".into(), creds(&system_jwt, &system_user.seed)),
    ];
    let mut public: Vec<(String, String)> = vec![
        ("operator.jwt".into(), operator_jwt.clone()),
        ("sentinel.jwt".into(), sentinel_jwt.clone()),
        ("AUTH.jwt".into(), auth_jwt),
        ("SYS.jwt".into(), sys_jwt),
        ("nats-server.conf".into(), server_conf),
        ("callout.toml".into(), callout_toml),
    ];
    for a in std::iter::once(&auth)
        .chain(&targets)
        .chain(std::iter::once(&sys))
    {
        secrets.push((format!("{}.nk", a.name), a.key.seed.clone()));
        secrets.push((format!("{}-signing.nk", a.name), a.signing.seed.clone()));
    }
    for (t, j) in targets.iter().zip(&target_jwts) {
        public.push((format!("{}.jwt", t.name), j.clone()));
    }
    if !opts.force {
        for (name, _) in secrets.iter().chain(&public) {
            let p = dir.join(name);
            if p.exists() {
                return Err(KeyError::Exists { path: p });
            }
        }
    }
    for (name, contents) in &secrets {
        write_secret(&dir.join(name), contents, opts.force)?;
    }
    for (name, contents) in &public {
        write_file(&dir.join(name), contents, opts.force)?;
    }
    Ok(Generated {
        dir: dir.clone(),
        operator: operator.public,
        auth: auth.key.public,
        system: sys.key.public,
        targets: targets
            .iter()
            .map(|t| (t.name.to_string(), t.key.public.clone()))
            .collect(),
        server_config: dir.join("nats-server.conf"),
        callout_config: dir.join("callout.toml"),
    })
}
