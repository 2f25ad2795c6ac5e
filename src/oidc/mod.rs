//! OpenID Connect providers: their access tokens are accepted beside ours (see
//! [`crate::tokens::access::TrustedIssuers`]) and their users may log in through them
//! ([`login`]).
//!
//! Each provider's keys are fetched at start and then in the background ([`fetch`]): every
//! `refresh_interval`, and soon after a token names an unknown `kid` (no sooner than
//! `min_refresh_interval` after the last fetch). The request path never waits on HTTP: it
//! reads the cached keys, and an unknown key is a deny that asks for a refresh. When the
//! provider is unreachable the cached keys keep working and the status says so.

pub mod fetch;
pub mod keys;
pub mod login;
pub mod verify;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::Notify;

pub use crate::config::identity::{IdentitySettings, OidcSettings, UnknownUsers};
use crate::tokens::access::TrustedIssuers;
use crate::tokens::{AccessClaims, TokenError};
use crate::verified::VerifiedCache;
use keys::KeySet;
use verify::{Refusal, Rules};

/// What the provider's discovery document says (the parts we use).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Endpoints {
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
}

/// How a provider's keys are doing, for `/readyz`, status and metrics.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// The last fetch worked.
    pub ok: bool,
    /// Keys in use (from the last fetch that worked).
    pub keys: usize,
    pub kids: Vec<String>,
    /// Unix seconds of the last fetch that worked.
    pub fetched_at: Option<i64>,
    /// Why the last fetch failed.
    pub error: Option<String>,
}

/// The keys in use and the tokens they verified (dropped together when the keys change).
#[derive(Default)]
pub struct Current {
    keys: KeySet,
    verified: VerifiedCache<AccessClaims>,
}

/// One trusted provider.
pub struct Provider {
    pub settings: OidcSettings,
    pub rules: Rules,
    current: ArcSwap<Current>,
    endpoints: ArcSwap<Option<Endpoints>>,
    status: Mutex<KeyStatus>,
    /// A token named an unknown `kid`: the refresher fetches soon.
    wanted: Notify,
}

impl std::ops::Deref for Current {
    type Target = KeySet;
    fn deref(&self) -> &KeySet {
        &self.keys
    }
}

impl Provider {
    pub fn new(settings: OidcSettings, max_lifetime: Duration) -> Provider {
        Provider {
            rules: Rules::new(&settings, max_lifetime),
            settings,
            current: ArcSwap::default(),
            endpoints: ArcSwap::default(),
            status: Mutex::default(),
            wanted: Notify::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Verify one of its tokens against the cached keys (no I/O).
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let current = self.current.load();
        if let Some(c) = current.verified.get(token) {
            return self.rules.check_clock(c, now);
        }
        match self.rules.check_signed(&current.keys, token, now) {
            Ok(c) => {
                current.verified.insert(token, &c);
                Ok(c)
            }
            Err(Refusal::UnknownKey(e)) => {
                self.wanted.notify_one();
                Err(e)
            }
            Err(Refusal::Invalid(e)) => Err(e),
        }
    }

    /// Use these keys from now on (tokens verified with the old ones are checked again).
    pub fn set_keys(&self, keys: KeySet, now: i64) {
        let mut s = self.status();
        s.ok = true;
        s.keys = keys.len();
        s.kids = keys.kids();
        s.fetched_at = Some(now);
        s.error = None;
        self.current.store(Arc::new(Current {
            keys,
            verified: VerifiedCache::default(),
        }));
        self.publish(&s);
    }

    /// A fetch failed: the cached keys stay.
    pub fn set_failed(&self, error: String) {
        let mut s = self.status();
        s.ok = false;
        s.error = Some(error);
        self.publish(&s);
    }

    fn publish(&self, s: &KeyStatus) {
        let name = self.name().to_string();
        metrics::gauge!("nats_callout_oidc_provider_up", "provider" => name.clone())
            .set(f64::from(u8::from(s.ok)));
        metrics::gauge!("nats_callout_oidc_keys", "provider" => name).set(s.keys as f64);
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = s.clone();
    }

    pub fn status(&self) -> KeyStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The keys in use.
    pub fn keys(&self) -> arc_swap::Guard<Arc<Current>> {
        self.current.load()
    }

    /// The endpoints discovery found, once it has.
    pub fn endpoints(&self) -> Option<Endpoints> {
        self.endpoints.load().as_ref().clone()
    }

    pub fn set_endpoints(&self, e: Endpoints) {
        self.endpoints.store(Arc::new(Some(e)));
    }

    /// Wait until a token asks for fresh keys.
    pub async fn wanted(&self) {
        self.wanted.notified().await;
    }
}

/// Every trusted provider.
#[derive(Default)]
pub struct Providers {
    list: Vec<Arc<Provider>>,
}

impl Providers {
    /// The providers of the settings; tokens may live at most `max_lifetime`.
    pub fn new(settings: &IdentitySettings, max_lifetime: Duration) -> Providers {
        Providers {
            list: settings
                .oidc
                .iter()
                .map(|s| Arc::new(Provider::new(s.clone(), max_lifetime)))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.list.iter()
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Provider>> {
        self.list.iter().find(|p| p.name() == name)
    }

    /// Each provider's key status, by name.
    pub fn status(&self) -> serde_json::Value {
        self.list
            .iter()
            .map(|p| (p.name().to_string(), serde_json::json!(p.status())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

impl TrustedIssuers for Providers {
    fn verify(&self, iss: &str, token: &str, now: i64) -> Option<Result<AccessClaims, TokenError>> {
        let p = self.list.iter().find(|p| p.rules.issuer == iss)?;
        Some(p.verify(token, now))
    }
}
