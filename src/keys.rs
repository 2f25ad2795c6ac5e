//! Key material, one home for loading and generating it: the issuer account nkey, the
//! curve xkey, the token signing key (Ed25519 PEM), service passwords and the
//! refresh-token secret.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use nkeys::{KeyPair, XKey};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("while reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("while writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} does not hold a valid {what} seed")]
    BadSeed { path: PathBuf, what: &'static str },
    #[error("{path} already exists (use --force to replace the keys)")]
    Exists { path: PathBuf },
}

/// The keys the callout signs and seals with. During a key rotation it also holds the
/// previous issuer and xkey: it answers each server with the issuer that server names (the
/// request's `sub`) and opens requests sealed to either xkey.
pub struct CalloutKeys {
    /// The current issuer first, then the previous one.
    issuers: Vec<(KeyPair, String)>,
    /// The current xkey first, then the previous one; none: no encryption.
    xkeys: Vec<XKey>,
}

impl fmt::Debug for CalloutKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CalloutKeys")
            .field(
                "issuers",
                &self.issuers.iter().map(|(_, p)| p).collect::<Vec<_>>(),
            )
            .field(
                "xkeys",
                &self.xkeys.iter().map(XKey::public_key).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn issuer_from(path: &Path) -> Result<KeyPair, KeyError> {
    KeyPair::from_seed(&read_secret(path)?)
        .ok()
        .filter(|k| k.public_key().starts_with('A'))
        .ok_or_else(|| KeyError::BadSeed {
            path: path.into(),
            what: "account nkey",
        })
}

fn xkey_from(path: &Path) -> Result<XKey, KeyError> {
    XKey::from_seed(&read_secret(path)?).map_err(|_| KeyError::BadSeed {
        path: path.into(),
        what: "curve xkey",
    })
}

impl CalloutKeys {
    pub fn new(issuer: KeyPair, xkey: Option<XKey>) -> Self {
        let public = issuer.public_key();
        CalloutKeys {
            issuers: vec![(issuer, public)],
            xkeys: xkey.into_iter().collect(),
        }
    }

    /// Read the issuer seed and, if configured, the xkey seed.
    pub fn load(issuer_seed: &Path, xkey_seed: Option<&Path>) -> Result<Self, KeyError> {
        let xkey = xkey_seed.map(xkey_from).transpose()?;
        Ok(CalloutKeys::new(issuer_from(issuer_seed)?, xkey))
    }

    /// Also answer servers that still name the previous issuer, and open requests still
    /// sealed to the previous xkey (`callout.previous_*_seed_file`).
    pub fn with_previous(mut self, issuer: Option<&Path>, xkey: Option<&Path>) -> Result<Self, KeyError> {
        if let Some(p) = issuer {
            let k = issuer_from(p)?;
            let public = k.public_key();
            self.issuers.push((k, public));
        }
        if let Some(p) = xkey {
            self.xkeys.push(xkey_from(p)?);
        }
        Ok(self)
    }

    /// The current issuer.
    pub fn issuer(&self) -> &KeyPair {
        &self.issuers[0].0
    }
    pub fn issuer_public(&self) -> &str {
        &self.issuers[0].1
    }
    /// Every issuer a server may name (current first).
    pub fn issuer_publics(&self) -> Vec<&str> {
        self.issuers.iter().map(|(_, p)| p.as_str()).collect()
    }
    /// The issuer key whose public key is `public`.
    pub fn issuer_for(&self, public: &str) -> Option<&KeyPair> {
        self.issuers.iter().find(|(_, p)| p == public).map(|(k, _)| k)
    }
    /// The current xkey.
    pub fn xkey(&self) -> Option<&XKey> {
        self.xkeys.first()
    }
    /// Every xkey a request may be sealed to (current first).
    pub fn xkeys(&self) -> &[XKey] {
        &self.xkeys
    }
}

/// Read a secret file, trimmed; warn when others may read it.
pub fn read_secret(path: &Path) -> Result<String, KeyError> {
    let s = fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.into(),
        source,
    })?;
    #[cfg(unix)]
    if let Ok(meta) = fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "secret file is readable by group or others; chmod 600 it");
        }
    }
    Ok(s.trim().to_string())
}

/// Read a 32-byte secret stored as base64.
pub fn read_secret_key(path: &Path) -> Result<[u8; 32], KeyError> {
    let text = read_secret(path)?;
    data_encoding::BASE64
        .decode(text.as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| KeyError::BadSeed {
            path: path.into(),
            what: "32-byte base64 key",
        })
}

/// Write `contents` to a new 0600 file.
pub(crate) fn write_secret(path: &Path, contents: &str, force: bool) -> Result<(), KeyError> {
    if path.exists() && !force {
        return Err(KeyError::Exists { path: path.into() });
    }
    let werr = |source| KeyError::Write {
        path: path.into(),
        source,
    };
    let _ = fs::remove_file(path);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(werr)?;
    f.write_all(contents.as_bytes()).map_err(werr)?;
    f.write_all(b"\n").map_err(werr)
}

/// A fresh Ed25519 signing key as PKCS#8 PEM (what `nats-callout keys` writes).
pub fn generate_signing_pem() -> String {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    key.to_pkcs8_pem(LineEnding::LF)
        .expect("an ed25519 key always encodes")
        .to_string()
}

/// The public half of a signing key as SPKI PEM (to hand to other verifiers).
pub fn public_pem_of(private_pem: &str) -> Result<String, String> {
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(private_pem).map_err(|e| e.to_string())?;
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())
}

/// What `nats-callout keys` produced.
pub struct Generated {
    pub dir: PathBuf,
    pub issuer_public: String,
    pub xkey_public: String,
    /// The nats-server.conf snippet for an existing server.
    pub snippet: String,
    /// The complete nats-server configuration written beside the keys.
    pub server_config: PathBuf,
}

/// File names inside the key directory.
pub const ISSUER_FILE: &str = "issuer.nk";
pub const XKEY_FILE: &str = "xkey.xk";
/// The service user's nkey seed (`nats.nkey_seed_file`), for servers that know it by key.
pub const SERVICE_NKEY_FILE: &str = "callout.nk";
pub const TOKEN_KEY_FILE: &str = "token-signing.pem";
pub const CALLOUT_PASSWORD_FILE: &str = "callout.pass";
pub const SYS_PASSWORD_FILE: &str = "sys.pass";
pub const REFRESH_SECRET_FILE: &str = "refresh.key";
/// Variables for nats-server.conf's `include`.
pub const SERVER_VARS_FILE: &str = "nats-keys.conf";
/// The same variables with the service user's nkey (`CALLOUT_NKEY`) instead of its password.
pub const SERVER_NKEY_VARS_FILE: &str = "nats-keys-nkey.conf";
/// A complete nats-server configuration that includes [`SERVER_VARS_FILE`] (not a key:
/// `--keep` does not look for it).
pub const SERVER_CONFIG_FILE: &str = "nats-server.conf";

fn random_password() -> String {
    let bytes: [u8; 24] = rand::random();
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

/// Whether `dir` holds every file [`generate`] writes.
pub fn complete(dir: &Path) -> bool {
    KEY_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Every file [`generate`] writes.
pub const KEY_FILES: [&str; 9] = [
    ISSUER_FILE,
    XKEY_FILE,
    SERVICE_NKEY_FILE,
    TOKEN_KEY_FILE,
    CALLOUT_PASSWORD_FILE,
    SYS_PASSWORD_FILE,
    REFRESH_SECRET_FILE,
    SERVER_VARS_FILE,
    SERVER_NKEY_VARS_FILE,
];

/// Generate every key into `dir` (0600 files) and return the server snippet.
/// Refuses to overwrite existing keys unless `force`.
pub fn generate(dir: &Path, force: bool) -> Result<Generated, KeyError> {
    fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.into(),
        source,
    })?;
    let issuer = KeyPair::new_account();
    let xkey = XKey::new();
    // The service user's nkey, for servers that authenticate it by key (production).
    let service = KeyPair::new_user();
    let callout_pw = random_password();
    let sys_pw = random_password();
    let seed = |r: Result<String, nkeys::error::Error>| r.expect("fresh keys always have a seed");
    let files = [
        (ISSUER_FILE, seed(issuer.seed())),
        (XKEY_FILE, seed(xkey.seed())),
        (SERVICE_NKEY_FILE, seed(service.seed())),
        (TOKEN_KEY_FILE, generate_signing_pem().trim_end().to_string()),
        (CALLOUT_PASSWORD_FILE, callout_pw.clone()),
        (SYS_PASSWORD_FILE, sys_pw.clone()),
        (
            REFRESH_SECRET_FILE,
            data_encoding::BASE64.encode(&rand::random::<[u8; 32]>()),
        ),
        // nats-server refuses a variable it does not use: one file for each way the
        // service user logs in.
        (
            SERVER_VARS_FILE,
            format!(
                "# generated by `nats-callout keys`; included by nats-server.conf\n\
                 CALLOUT_ISSUER: \"{}\"\nCALLOUT_XKEY: \"{}\"\n\
                 CALLOUT_PASSWORD: \"{callout_pw}\"\nSYS_PASSWORD: \"{sys_pw}\"",
                issuer.public_key(),
                xkey.public_key(),
            ),
        ),
        (
            SERVER_NKEY_VARS_FILE,
            format!(
                "# generated by `nats-callout keys`; included by a nats-server.conf that knows\n\
                 # the service user by its nkey\n\
                 CALLOUT_ISSUER: \"{}\"\nCALLOUT_XKEY: \"{}\"\nCALLOUT_NKEY: \"{}\"\n\
                 SYS_PASSWORD: \"{sys_pw}\"",
                issuer.public_key(),
                xkey.public_key(),
                service.public_key()
            ),
        ),
    ];
    let server_config = dir.join(SERVER_CONFIG_FILE);
    if !force {
        for path in files
            .iter()
            .map(|(name, _)| dir.join(name))
            .chain([server_config.clone()])
        {
            if path.exists() {
                return Err(KeyError::Exists { path });
            }
        }
    }
    for (name, contents) in &files {
        write_secret(&dir.join(name), contents, force)?;
    }
    let (issuer_public, xkey_public) = (issuer.public_key(), xkey.public_key());
    write_file(
        &server_config,
        &server_config_file(&issuer_public, &xkey_public, dir),
        force,
    )?;
    Ok(Generated {
        dir: dir.into(),
        snippet: server_snippet(&issuer_public, &xkey_public, dir),
        issuer_public,
        xkey_public,
        server_config,
    })
}

/// The `authorization { auth_callout { … } }` block of nats-server.conf that hands every
/// connection not made by an `auth_users` user to this service (in account `AUTH`).
pub fn authorization_block(
    issuer: &str,
    xkey: Option<&str>,
    auth_users: &[&str],
    timeout_secs: u64,
) -> String {
    let xkey = xkey.map(|x| format!("    xkey: {x}\n")).unwrap_or_default();
    format!(
        "authorization {{\n  timeout: {timeout_secs}s\n  auth_callout {{\n    issuer: {issuer}\n{xkey}    \
         account: AUTH\n    auth_users: [ {} ]\n  }}\n}}\n",
        auth_users.join(", ")
    )
}

/// What nats-server needs to hand connections to this service: the variables file (relative:
/// nats-server resolves an include against the including file's directory), the accounts,
/// the system account, the control line and the callout. It uses every variable the file
/// defines, since nats-server refuses one that is defined and not used.
fn server_settings(issuer: &str, xkey: &str) -> String {
    format!(
        r#"include "{SERVER_VARS_FILE}"   # $CALLOUT_ISSUER, $CALLOUT_XKEY, $CALLOUT_PASSWORD, $SYS_PASSWORD
accounts {{
  AUTH {{
    users: [ {{ user: callout, password: $CALLOUT_PASSWORD }} ]
    exports: [ {{ service: "auth.v1.>" }}, {{ stream: "nats-callout.notice.>" }} ]
    # Delegated decisions ([[access.delegate]] in callout.toml): an app service in APP
    # answers on its subject, which APP exports and AUTH imports (the reverse of auth.v1):
    # imports: [ {{ service: {{ account: APP, subject: "apps.access" }} }} ]
  }}
  APP {{
    imports: [
      {{ service: {{ account: AUTH, subject: "auth.v1.>" }} }}
      {{ stream: {{ account: AUTH, subject: "nats-callout.notice.>" }} }}
    ]
    # exports: [ {{ service: "apps.access", accounts: [ AUTH ] }} ]   # the delegate's, AUTH only
  }}
  SYS {{ users: [ {{ user: sys, password: $SYS_PASSWORD }} ] }}
}}
system_account: SYS
max_control_line: 8KB   # a CONNECT with 50 rooms and a token (docs: Limits)
# $CALLOUT_ISSUER is {issuer} (the issuer nats-callout signs with),
# $CALLOUT_XKEY is {xkey} (the curve key requests are sealed to)
{authorization}"#,
        authorization = authorization_block("$CALLOUT_ISSUER", Some("$CALLOUT_XKEY"), &["callout", "sys"], 2)
    )
}

/// The nats-server.conf fragment that points an existing server at this service, with how
/// to use the complete configuration written beside the keys instead.
pub fn server_snippet(issuer: &str, xkey: &str, dir: &Path) -> String {
    format!(
        r#"# nats-server.conf: hand new connections to nats-callout.
# A complete configuration is in {dir}/{SERVER_CONFIG_FILE}: edit its `listen`, then run
#   nats-server -c {dir}/{SERVER_CONFIG_FILE}
# Or merge the lines below into your own nats-server.conf (their accounts into yours, the
# auth_callout into your authorization block) and copy {dir}/{SERVER_VARS_FILE}
# beside it, 0600 and readable by nats-server: an include is resolved against the directory
# of the file that includes it (an absolute path is not found).
{settings}"#,
        dir = dir.display(),
        settings = server_settings(issuer, xkey)
    )
}

/// The complete nats-server configuration `keys` writes as [`SERVER_CONFIG_FILE`].
fn server_config_file(issuer: &str, xkey: &str, dir: &Path) -> String {
    format!(
        r#"# nats-server for nats-callout, generated by `nats-callout keys`. The keys and passwords come
# from {SERVER_VARS_FILE} beside this file. Edit `listen` (where clients connect), then
#   nats-server -c {dir}/{SERVER_CONFIG_FILE}
listen: 127.0.0.1:4222
{settings}"#,
        dir = dir.display(),
        settings = server_settings(issuer, xkey)
    )
}

/// Write a file that holds nothing secret; an existing one only with `force`.
pub(crate) fn write_file(path: &Path, contents: &str, force: bool) -> Result<(), KeyError> {
    if path.exists() && !force {
        return Err(KeyError::Exists { path: path.into() });
    }
    fs::write(path, contents).map_err(|source| KeyError::Write {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_writes_private_files_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path(), false).unwrap();
        assert!(g.snippet.contains(&g.issuer_public) && g.snippet.contains(&g.xkey_public));
        for name in [ISSUER_FILE, XKEY_FILE, TOKEN_KEY_FILE, CALLOUT_PASSWORD_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let keys =
            CalloutKeys::load(&dir.path().join(ISSUER_FILE), Some(&dir.path().join(XKEY_FILE))).unwrap();
        assert_eq!(keys.issuer_public(), g.issuer_public);
        assert_eq!(keys.xkey().unwrap().public_key(), g.xkey_public);
        let dbg = format!("{keys:?}");
        let seed = fs::read_to_string(dir.path().join(ISSUER_FILE)).unwrap();
        assert!(!dbg.contains(seed.trim()));
    }

    /// nats-server refuses a variable that is defined and not used: the snippet and the
    /// written configuration use every one `nats-keys.conf` defines, and include it by a
    /// relative path (an absolute one is joined to the including file's directory).
    #[test]
    fn the_server_configuration_uses_every_variable_it_includes() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path(), false).unwrap();
        let vars = fs::read_to_string(dir.path().join(SERVER_VARS_FILE)).unwrap();
        let names: Vec<&str> = vars
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
            .collect();
        assert_eq!(names.len(), 4, "{vars}");
        let written = fs::read_to_string(&g.server_config).unwrap();
        for text in [&g.snippet, &written] {
            assert!(
                text.contains(&format!("include \"{SERVER_VARS_FILE}\"")),
                "{text}"
            );
            for name in &names {
                let uses = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .any(|l| l.split('#').next().unwrap().contains(&format!("${name}")));
                assert!(uses, "${name} is not used in:\n{text}");
            }
        }
        // An operator's edited configuration is not replaced without --force either.
        for f in KEY_FILES {
            fs::remove_file(dir.path().join(f)).unwrap();
        }
        match generate(dir.path(), false) {
            Err(KeyError::Exists { path }) => assert_eq!(path, g.server_config),
            other => panic!("{:?}", other.map(|g| g.dir)),
        }
    }

    #[test]
    fn generate_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), false).unwrap();
        assert!(matches!(
            generate(dir.path(), false),
            Err(KeyError::Exists { .. })
        ));
        let keys = CalloutKeys::load(&dir.path().join(ISSUER_FILE), None).unwrap();
        assert_eq!(keys.issuer_public(), first.issuer_public);
        let second = generate(dir.path(), true).unwrap();
        assert_ne!(second.issuer_public, first.issuer_public);
    }

    #[test]
    fn a_user_seed_is_not_an_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.nk");
        fs::write(&p, KeyPair::new_user().seed().unwrap()).unwrap();
        assert!(matches!(
            CalloutKeys::load(&p, None),
            Err(KeyError::BadSeed { .. })
        ));
        fs::write(&p, "garbage").unwrap();
        assert!(matches!(
            CalloutKeys::load(&p, None),
            Err(KeyError::BadSeed { .. })
        ));
    }
}
