//! Asking the delegates: answers from the cache, the rest asked in parallel on the service's
//! own connection, each within its table's budget (waiting for a slot included: asks beyond
//! the bound on asks in flight wait, they are never refused for load); no answer or a bad one
//! in time refuses that room only. App services invalidate answers with
//! `auth.v1.access.invalidate {user?, room?}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::ask::{Answer, Answers, Ask, parse_answer};
use super::cache::Cache;
use super::{Route, Routes};
use crate::permissions::Access;

/// The delegates of a running service: their routes, the cache and the bound on asks.
pub struct Delegates {
    routes: Routes,
    client: Option<async_nats::Client>,
    slots: Arc<Semaphore>,
    cache: Cache,
}

impl std::fmt::Debug for Delegates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delegates")
            .field("routes", &self.routes)
            .field("connected", &self.client.is_some())
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Default for Delegates {
    fn default() -> Self {
        Delegates::new(Routes::default(), 1, 1)
    }
}

impl Delegates {
    /// `routes`, at most `max_in_flight` asks at once and `cache_entries` answers kept;
    /// nothing is asked until [`Delegates::with_client`] gives a connection.
    #[must_use]
    pub fn new(routes: Routes, max_in_flight: usize, cache_entries: usize) -> Delegates {
        Delegates {
            routes,
            client: None,
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
            cache: Cache::new(cache_entries),
        }
    }

    /// Ask on `client` (the service's own connection).
    #[must_use]
    pub fn with_client(mut self, client: async_nats::Client) -> Delegates {
        self.client = Some(client);
        self
    }

    #[must_use]
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The answers kept for `asks`; the rest are left out.
    pub fn cached(&self, asks: &[Ask]) -> Answers {
        let now = Instant::now();
        let mut answers = Answers::default();
        for ask in asks {
            if let Some(access) = self.cache.get(&ask.user, &ask.room, now) {
                answers.insert(ask.room.clone(), Answer::Access(access));
            }
        }
        answers
    }

    /// An answer for every ask: kept ones from the cache, the others asked at once, in
    /// parallel, each within its delegate's budget. Rooms no delegate decides are left out.
    pub async fn resolve(&self, asks: &[Ask]) -> Answers {
        let now = Instant::now();
        let mut answers = Answers::default();
        let mut pending = Vec::new();
        for ask in asks {
            let Some(route) = self.routes.route(&ask.room) else {
                continue;
            };
            match self.cache.get(&ask.user, &ask.room, now) {
                Some(access) => {
                    metrics::counter!("nats_callout_delegate_cache_hits_total", "delegate" => route.subject.clone())
                        .increment(1);
                    answers.insert(ask.room.clone(), Answer::Access(access));
                }
                None => pending.push(async move { (ask.room.clone(), self.ask(route, ask).await) }),
            }
        }
        for (room, answer) in futures::future::join_all(pending).await {
            answers.insert(room, answer);
        }
        answers
    }

    /// Ask `route`'s delegate about `ask` now (no cache read), keeping a good answer.
    pub async fn ask(&self, route: &Route, ask: &Ask) -> Answer {
        let delegate = route.subject.clone();
        metrics::counter!("nats_callout_delegate_asks_total", "delegate" => delegate.clone()).increment(1);
        let (started, generation) = (Instant::now(), self.cache.generation());
        let result = tokio::time::timeout(route.timeout, self.request(route, ask)).await;
        let took = started.elapsed();
        metrics::histogram!("nats_callout_delegate_seconds", "delegate" => delegate.clone())
            .record(took.as_secs_f64());
        match result {
            Err(_) => {
                metrics::counter!("nats_callout_delegate_timeouts_total", "delegate" => delegate.clone())
                    .increment(1);
                warn!(delegate = %route.subject, user = %ask.user, room = %ask.room,
                    timeout_ms = ms(route.timeout), "delegate did not answer in time: room refused");
                Answer::Unavailable
            }
            Ok(Err(why)) => {
                metrics::counter!("nats_callout_delegate_unavailable_total", "delegate" => delegate.clone())
                    .increment(1);
                warn!(delegate = %route.subject, user = %ask.user, room = %ask.room, error = %why,
                    "delegate unavailable: room refused");
                Answer::Unavailable
            }
            Ok(Ok(payload)) => match parse_answer(&payload) {
                Ok(access) => {
                    let now = Instant::now();
                    self.cache
                        .put(&ask.user, &ask.room, access, route.cache, now, generation);
                    debug!(delegate = %route.subject, user = %ask.user, room = %ask.room,
                        access = access.map_or("none", Access::as_str), took_ms = ms(took), "delegate answered");
                    Answer::Access(access)
                }
                Err(why) => {
                    metrics::counter!("nats_callout_delegate_bad_answers_total", "delegate" => delegate)
                        .increment(1);
                    warn!(delegate = %route.subject, user = %ask.user, room = %ask.room, reason = %why,
                        "delegate answered badly: room refused");
                    Answer::Bad
                }
            },
        }
    }

    /// One request, after waiting for a slot.
    async fn request(&self, route: &Route, ask: &Ask) -> Result<bytes::Bytes, String> {
        let client = self.client.as_ref().ok_or("no connection to ask on")?;
        let _slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(ask).map_err(|e| e.to_string())?;
        // The budget bounds this request (the caller's timeout); the client's own is longer.
        let request = async_nats::Request::new()
            .payload(body.into())
            .timeout(Some(route.timeout + Duration::from_secs(1)));
        client
            .send_request(route.subject.clone(), request)
            .await
            .map(|m| m.payload)
            .map_err(|e| e.to_string())
    }

    /// Forget the answers `req` names; how many were kept.
    pub fn forget(&self, req: &Invalidate) -> usize {
        self.cache.forget(req.user.as_deref(), req.room.as_deref())
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `auth.v1.access.invalidate`: forget the answers for a user, a room, both, or (neither)
/// every answer, and decide the affected live connections again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invalidate {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub room: Option<String>,
}

impl Invalidate {
    /// Read and check a request (names validated before anything uses them).
    ///
    /// # Errors
    /// Not such an object, or a name that is not one.
    pub fn parse(payload: &[u8]) -> Result<Invalidate, String> {
        let req: Invalidate = if payload.iter().all(u8::is_ascii_whitespace) {
            Invalidate::default()
        } else {
            serde_json::from_slice(payload).map_err(|e| format!("invalid invalidate request: {e}"))?
        };
        for (what, v) in [("user", &req.user), ("room", &req.room)] {
            if let Some(v) = v {
                crate::names::validate_name(v).map_err(|e| format!("{what}: {e}"))?;
            }
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidate_requests_are_checked() {
        assert_eq!(Invalidate::parse(b"").unwrap(), Invalidate::default());
        assert_eq!(Invalidate::parse(b"{}").unwrap(), Invalidate::default());
        let both = Invalidate::parse(br#"{"user":"bob","room":"team-a"}"#).unwrap();
        assert_eq!(
            (both.user.as_deref(), both.room.as_deref()),
            (Some("bob"), Some("team-a"))
        );
        for bad in [
            &br#"{"user":"a.b"}"#[..],
            br#"{"room":">"}"#,
            b"nope",
            br#"{"users":["bob"]}"#,
        ] {
            assert!(
                Invalidate::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn without_a_connection_every_ask_is_unavailable() {
        let settings = crate::access::DelegateSettings {
            rooms: "team-*".into(),
            subject: "apps.access".into(),
            timeout: Duration::from_millis(50),
            cache: Duration::from_secs(30),
        };
        let d = Delegates::new(Routes::from_settings(&[settings]).unwrap(), 4, 10);
        let ask = |room: &str| Ask {
            user: "bob".into(),
            room: room.into(),
            groups: vec![],
            roles: vec![],
            account: "APP".into(),
            client_id: None,
            device_id: None,
        };
        let answers = d.resolve(&[ask("team-a"), ask("all1")]).await;
        assert_eq!(answers.get("team-a"), Some(Answer::Unavailable));
        assert_eq!(answers.get("all1"), None, "not delegated");
        assert!(d.cached(&[ask("team-a")]).is_empty(), "failures are not kept");
    }
}
