//! Operator mode (decentralized JWT authentication): the callout is configured in the AUTH
//! account's JWT, requests name the AUTH account, replies are signed by it (or a signing key
//! of it, with `issuer_account`), and users are placed in an allowed account by a user JWT
//! signed with that account's signing key. [`setup`] writes a whole operator set-up.

pub mod setup;

use std::collections::BTreeMap;
use std::path::Path;

use nkeys::KeyPair;

use crate::claims::decode_unverified;
use crate::config::{CalloutMode, CalloutSettings, TargetAccount};
use crate::keys::read_secret;

/// Why the operator-mode keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{0}")]
    Key(#[from] crate::keys::KeyError),
    #[error("account {name}: {path} does not hold an account or account signing key seed (SA...)")]
    BadSeed { name: String, path: String },
    #[error(
        "account {name}: the key in {path} is a scoped signing key of the account: nats-server \
         gives users it signs the scope's permissions and refuses any of their own, so it cannot \
         carry per-user room grants; give the account an unscoped signing key for the callout"
    )]
    Scoped { name: String, path: String },
    #[error(
        "account {name}: the key in {path} is neither the account ({account}) nor one of its signing keys"
    )]
    NotASigningKey {
        name: String,
        path: String,
        account: String,
    },
    #[error("account {name}: {path}: {reason}")]
    BadJwt {
        name: String,
        path: String,
        reason: String,
    },
}

/// An account users are placed in.
pub struct Target {
    /// The account's public key.
    pub account: String,
    /// The key that signs its users' JWTs, and its public key.
    pub signer: KeyPair,
    pub signer_public: String,
}

impl Target {
    /// `issuer_account` for the user JWTs: set when a signing key (not the account) signs.
    pub fn issuer_account(&self) -> Option<&str> {
        (self.signer_public != self.account).then_some(self.account.as_str())
    }
}

/// The operator-mode keys: the AUTH account and the accounts users may be placed in.
pub struct OperatorKeys {
    pub auth_account: String,
    targets: BTreeMap<String, Target>,
}

impl std::fmt::Debug for OperatorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorKeys")
            .field("auth_account", &self.auth_account)
            .field(
                "targets",
                &self
                    .targets
                    .iter()
                    .map(|(n, t)| (n, &t.account))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl OperatorKeys {
    /// The keys of operator mode, `None` in config mode.
    pub fn load(s: &CalloutSettings) -> Result<Option<OperatorKeys>, OperatorError> {
        if s.mode != CalloutMode::Operator {
            return Ok(None);
        }
        let mut targets = BTreeMap::new();
        for (name, t) in &s.accounts {
            targets.insert(name.clone(), load_target(name, t)?);
        }
        Ok(Some(OperatorKeys {
            auth_account: s.auth_account.clone().unwrap_or_default(),
            targets,
        }))
    }

    /// The account named `name`, if users may be placed in it.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.get(name)
    }

    /// The keys that sign the users of the accounts users may be placed in.
    pub fn signers(&self) -> impl Iterator<Item = &str> {
        self.targets.values().map(|t| t.signer_public.as_str())
    }

    /// The names of the accounts users may be placed in.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }
}

fn load_target(name: &str, t: &TargetAccount) -> Result<Target, OperatorError> {
    let path = t.signing_key_file.display().to_string();
    let signer = KeyPair::from_seed(&read_secret(&t.signing_key_file)?)
        .ok()
        .filter(|k| k.public_key().starts_with('A'))
        .ok_or_else(|| OperatorError::BadSeed {
            name: name.into(),
            path: path.clone(),
        })?;
    let signer_public = signer.public_key();
    if let Some(jwt_file) = &t.jwt_file {
        check_signing_key(name, &t.public_key, &signer_public, jwt_file, &path)?;
    }
    Ok(Target {
        account: t.public_key.clone(),
        signer,
        signer_public,
    })
}

/// With the account's JWT at hand: the key is the account's own or an unscoped signing key.
fn check_signing_key(
    name: &str,
    account: &str,
    signer: &str,
    jwt_file: &Path,
    key_path: &str,
) -> Result<(), OperatorError> {
    let path = jwt_file.display().to_string();
    let bad = |reason: String| OperatorError::BadJwt {
        name: name.into(),
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(jwt_file).map_err(|e| bad(e.to_string()))?;
    let jwt = decode_unverified::<serde_json::Value>(text.trim()).map_err(|e| bad(e.to_string()))?;
    let claims = jwt.claims;
    if claims["sub"].as_str() != Some(account) {
        return Err(bad(format!(
            "it is the JWT of {}, not of {account}",
            claims["sub"]
        )));
    }
    if signer == account {
        return Ok(());
    }
    let keys = claims["nats"]["signing_keys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for k in keys {
        match &k {
            serde_json::Value::String(s) if s == signer => return Ok(()),
            serde_json::Value::Object(o) if o.get("key").and_then(|v| v.as_str()) == Some(signer) => {
                return Err(OperatorError::Scoped {
                    name: name.into(),
                    path: key_path.into(),
                });
            }
            _ => {}
        }
    }
    Err(OperatorError::NotASigningKey {
        name: name.into(),
        path: jwt_file.display().to_string(),
        account: account.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An account JWT listing `keys` as signing keys (strings, or scoped objects).
    fn account_jwt(account: &KeyPair, keys: serde_json::Value) -> String {
        let claims = json!({"sub": account.public_key(), "iss": account.public_key(),
                            "nats": {"signing_keys": keys, "type": "account", "version": 2}});
        crate::claims::encode(&claims, account).unwrap()
    }

    fn target(dir: &Path, account: &KeyPair, signer: &KeyPair, jwt: &str) -> TargetAccount {
        let seed = dir.join("signer.nk");
        std::fs::write(&seed, signer.seed().unwrap()).unwrap();
        let jwt_file = dir.join("APP.jwt");
        std::fs::write(&jwt_file, jwt).unwrap();
        TargetAccount {
            public_key: account.public_key(),
            signing_key_file: seed,
            jwt_file: Some(jwt_file),
        }
    }

    #[test]
    fn a_scoped_or_foreign_signing_key_is_refused_with_its_reason_and_a_plain_one_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let app = KeyPair::new_account();
        let signer = KeyPair::new_account();
        let plain = account_jwt(&app, json!([signer.public_key()]));
        let t = load_target("APP", &target(dir.path(), &app, &signer, &plain)).unwrap();
        assert_eq!(t.issuer_account(), Some(app.public_key().as_str()));
        // The account's own key signs without issuer_account.
        let own = load_target("APP", &target(dir.path(), &app, &app, &plain)).unwrap();
        assert_eq!(own.issuer_account(), None);

        let scoped = account_jwt(
            &app,
            json!([{"key": signer.public_key(), "kind": "user_scope", "role": "chat",
                    "template": {"pub": {"allow": ["chat.>"]}}}]),
        );
        let e = load_target("APP", &target(dir.path(), &app, &signer, &scoped))
            .err()
            .unwrap();
        assert!(matches!(e, OperatorError::Scoped { .. }), "{e}");
        assert!(e.to_string().contains("scoped signing key"), "{e}");

        let other = KeyPair::new_account();
        let e = load_target("APP", &target(dir.path(), &app, &other, &plain))
            .err()
            .unwrap();
        assert!(matches!(e, OperatorError::NotASigningKey { .. }), "{e}");

        let user = KeyPair::new_user();
        let seed = dir.path().join("user.nk");
        std::fs::write(&seed, user.seed().unwrap()).unwrap();
        let bad = TargetAccount {
            public_key: app.public_key(),
            signing_key_file: seed,
            jwt_file: None,
        };
        assert!(matches!(
            load_target("APP", &bad),
            Err(OperatorError::BadSeed { .. })
        ));
        let wrong_jwt = account_jwt(&other, json!([]));
        let e = load_target("APP", &target(dir.path(), &app, &signer, &wrong_jwt))
            .err()
            .unwrap();
        assert!(e.to_string().contains("is the JWT of"), "{e}");
    }
}
