//! `[identity]`: the OpenID providers (`[[identity.oidc]]`) whose tokens are trusted, and
//! how their claims map onto the permission files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Section};
use crate::permissions::Role;

/// The algorithms a provider token may use (asymmetric only; `none` and HMAC never).
pub const ALGORITHMS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// A name no provider may take: guests' sessions carry it (see `http::guest`).
pub const RESERVED_NAME: &str = "guest";

/// `[identity]`: identity providers.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySettings {
    /// One table per provider.
    pub oidc: Vec<OidcSettings>,
}

/// What a user absent from the permission files may do with a provider token.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownUsers {
    /// Refused: only users in the files connect.
    #[default]
    Deny,
    /// Known by their mapped groups alone (a user with no known group is refused).
    GroupsOnly,
}

/// One OpenID provider.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// Shown on the login page, used in URLs (`/api/auth/oidc/{name}/...`) and logs.
    pub name: String,
    /// Exactly the `iss` of its tokens (and the base of discovery).
    pub issuer: String,
    /// Required in `aud`.
    pub audience: String,
    /// The claim that names the user (a permission-file user id); a name starting with `/`
    /// is a JSON pointer into the claims (`/ext/user`).
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim that lists the user's provider groups (an array of strings, or one string);
    /// `/realm_access/roles` style pointers work too.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Provider group → permission-file group, where the names differ; a provider group not
    /// listed here counts as the file group of the same name, if the files define one.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
    /// Provider group → role.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    #[serde(default)]
    pub unknown_users: UnknownUsers,
    /// Whether this provider may assert users of the permission files (its `user_claim`
    /// naming `admin` is then the files' `admin`). With one provider it defaults to true;
    /// with several, each must say, and only those saying true may: the others' users are
    /// their own (a name the files use is refused) and get rooms through groups.
    #[serde(default)]
    pub file_users: Option<bool>,
    /// Accepted `alg` values, a subset of RS256, PS256, ES256, EdDSA (default: all four).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Where the JWKS is, when discovery should not be used.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often keys are fetched again.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// The shortest time between two fetches (an unknown `kid` asks for one).
    #[serde(default = "default_min_refresh", with = "humantime_serde")]
    pub min_refresh_interval: Duration,
    /// Allowed clock difference for `exp`, `nbf` and `iat`.
    #[serde(default = "default_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// For "Log in with ...": our client id at the provider (none: no browser login).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The file holding our client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Our callback address as registered at the provider (default: this page's origin +
    /// `/api/auth/oidc/{name}/callback`).
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Scopes asked for at login (`openid` is always asked for).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The label of the login button (default: the name).
    #[serde(default)]
    pub display_name: Option<String>,
}

fn default_user_claim() -> String {
    "sub".into()
}
fn default_algorithms() -> Vec<String> {
    ALGORITHMS.iter().map(|a| a.to_string()).collect()
}
fn default_refresh() -> Duration {
    Duration::from_secs(600)
}
fn default_min_refresh() -> Duration {
    Duration::from_secs(10)
}
fn default_skew() -> Duration {
    Duration::from_secs(60)
}
fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into()]
}

impl OidcSettings {
    /// A provider with the defaults (tests and examples).
    #[must_use]
    pub fn new(name: &str, issuer: &str, audience: &str) -> Self {
        OidcSettings {
            name: name.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            user_claim: default_user_claim(),
            groups_claim: None,
            groups: BTreeMap::new(),
            roles: BTreeMap::new(),
            unknown_users: UnknownUsers::Deny,
            file_users: None,
            algorithms: default_algorithms(),
            jwks_url: None,
            refresh_interval: default_refresh(),
            min_refresh_interval: default_min_refresh(),
            clock_skew: default_skew(),
            client_id: None,
            client_secret_file: None,
            redirect_url: None,
            scopes: default_scopes(),
            display_name: None,
        }
    }

    /// Whether its users may be the permission files' users (validated: set whenever there
    /// are several providers).
    #[must_use]
    pub fn asserts_file_users(&self) -> bool {
        self.file_users.unwrap_or(true)
    }

    /// The discovery document's address.
    #[must_use]
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

impl Section for IdentitySettings {
    fn paths(&mut self) -> Vec<&mut PathBuf> {
        self.oidc
            .iter_mut()
            .filter_map(|p| p.client_secret_file.as_mut())
            .collect()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|reason| ConfigError::Invalid {
            key: "identity.oidc",
            reason,
        })
    }
}

impl IdentitySettings {
    /// Problems that would otherwise show at the first token: `Err(reason)`.
    pub fn check(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for p in &self.oidc {
            let at = |what: String| format!("provider {:?}: {what}", p.name);
            crate::names::validate_name(&p.name).map_err(|e| at(format!("name: {e}")))?;
            if !names.insert(p.name.as_str()) {
                return Err(at("defined twice".into()));
            }
            if p.name == RESERVED_NAME {
                return Err(at(format!("{RESERVED_NAME:?} names the guest login")));
            }
            check_url(&p.issuer).map_err(|e| at(format!("issuer: {e}")))?;
            for (key, url) in [("jwks_url", &p.jwks_url), ("redirect_url", &p.redirect_url)] {
                if let Some(u) = url {
                    check_url(u).map_err(|e| at(format!("{key}: {e}")))?;
                }
            }
            if p.audience.is_empty() {
                return Err(at("audience is empty".into()));
            }
            if p.user_claim.is_empty() {
                return Err(at("user_claim is empty".into()));
            }
            if p.algorithms.is_empty() {
                return Err(at("algorithms is empty".into()));
            }
            if let Some(a) = p.algorithms.iter().find(|a| !ALGORITHMS.contains(&a.as_str())) {
                return Err(at(format!(
                    "algorithm {a:?} is not accepted (only {ALGORITHMS:?}: never none or HMAC)"
                )));
            }
            for g in p.groups.values() {
                crate::names::validate_name(g).map_err(|e| at(format!("groups: {g:?}: {e}")))?;
            }
            if p.client_id.is_some() != p.client_secret_file.is_some() {
                return Err(at("client_id and client_secret_file go together".into()));
            }
            if p.min_refresh_interval.is_zero() || p.refresh_interval < p.min_refresh_interval {
                return Err(at(
                    "refresh_interval must be at least min_refresh_interval, which must be positive".into(),
                ));
            }
        }
        if self.oidc.len() > 1
            && let Some(p) = self.oidc.iter().find(|p| p.file_users.is_none())
        {
            return Err(format!(
                "provider {:?}: with several providers each must say file_users = true or false \
                 (whether it may assert the permission files' users)",
                p.name
            ));
        }
        Ok(())
    }
}

/// `https://`, or `http://` on a loopback host (a provider beside the service in tests).
fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") || is_loopback_url(url) {
        return Ok(());
    }
    if url.starts_with("http://") {
        return Err(format!(
            "{url:?}: plain http is accepted only on a loopback host; use https"
        ));
    }
    Err(format!("{url:?} is not an https:// URL"))
}

/// Whether `url` is `http://` on a loopback host (`127.0.0.1`, `localhost`, `[::1]`).
#[must_use]
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.find(']') {
        Some(end) if authority.starts_with('[') => &authority[..=end],
        _ => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(p: OidcSettings) -> Result<(), String> {
        IdentitySettings { oidc: vec![p] }.check()
    }

    #[test]
    fn bad_provider_settings_are_refused_with_their_reason() {
        let ok = OidcSettings::new("corp", "https://idp.example.com/realms/chat", "nats");
        one(ok.clone()).unwrap();
        one(OidcSettings::new("corp", "http://127.0.0.1:9000", "nats")).unwrap();
        let cases: Vec<(OidcSettings, &str)> = vec![
            (OidcSettings::new("co rp", "https://x", "nats"), "name"),
            (
                OidcSettings::new("corp", "http://idp.example.com", "nats"),
                "plain http",
            ),
            (OidcSettings::new("corp", "ftp://x", "nats"), "not an https"),
            (OidcSettings::new("corp", "https://x", ""), "audience"),
            (OidcSettings::new("guest", "https://x", "nats"), "guest login"),
            (
                OidcSettings {
                    redirect_url: Some("http://chat.example.com/cb".into()),
                    ..ok.clone()
                },
                "redirect_url",
            ),
            (
                OidcSettings {
                    algorithms: vec!["HS256".into()],
                    ..ok.clone()
                },
                "never none or HMAC",
            ),
            (
                OidcSettings {
                    algorithms: vec!["none".into()],
                    ..ok.clone()
                },
                "never none or HMAC",
            ),
            (
                OidcSettings {
                    client_id: Some("chat".into()),
                    ..ok.clone()
                },
                "go together",
            ),
            (
                OidcSettings {
                    groups: [("/staff".to_string(), "not a name!".to_string())].into(),
                    ..ok.clone()
                },
                "groups",
            ),
        ];
        for (p, want) in cases {
            let e = one(p).unwrap_err();
            assert!(e.contains(want), "{e:?} should mention {want:?}");
        }
        let twice = IdentitySettings {
            oidc: vec![ok.clone(), ok.clone()],
        };
        assert!(twice.check().unwrap_err().contains("defined twice"));
        // Several providers: each says whether it may assert the files' users.
        let other = OidcSettings::new("partner", "https://idp.partner.example", "nats");
        let unsaid = IdentitySettings {
            oidc: vec![ok.clone(), other.clone()],
        };
        assert!(unsaid.check().unwrap_err().contains("file_users"));
        let said = IdentitySettings {
            oidc: vec![
                OidcSettings {
                    file_users: Some(true),
                    ..ok.clone()
                },
                OidcSettings {
                    file_users: Some(false),
                    ..other
                },
            ],
        };
        said.check().unwrap();
        assert!(said.oidc[0].asserts_file_users() && !said.oidc[1].asserts_file_users());
        assert!(
            ok.asserts_file_users(),
            "one provider: true unless it says otherwise"
        );
    }

    #[test]
    fn a_provider_table_reads_from_toml() {
        let s: IdentitySettings = toml::from_str(
            r#"
[[oidc]]
name = "corp"
issuer = "https://idp.example.com/realms/chat"
audience = "nats"
user_claim = "preferred_username"
groups_claim = "groups"
roles = { "chat-admins" = "admin" }
unknown_users = "groups-only"
"#,
        )
        .unwrap();
        let p = &s.oidc[0];
        assert_eq!(p.unknown_users, UnknownUsers::GroupsOnly);
        assert_eq!(p.roles["chat-admins"], Role::Admin);
        assert_eq!(p.algorithms.len(), 4);
        assert_eq!(
            p.discovery_url(),
            "https://idp.example.com/realms/chat/.well-known/openid-configuration"
        );
        s.check().unwrap();
    }
}
