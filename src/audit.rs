//! The audit trail: every decision (allowed, denied, refused, error) and every change of
//! access (revocations, kicks, token resets, rooms in data) as a JSON event on
//! `nats-callout.audit.<kind>` in the service's account, optionally kept in a JetStream
//! stream. Recording pushes the event into a bounded buffer under an uncontended lock and
//! wakes nobody (a task takes the whole buffer every [`PUBLISH_EVERY`]); when the buffer is
//! full the event is dropped and counted, so auditing never slows or blocks a decision.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, ErrorCode, context::GetStreamErrorKind, stream};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::AuditSettings;
use crate::wire::{AUDIT_SUBJECTS, audit_subject};

/// How often the publishing task takes the buffered events (the trail's added latency).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(20);

/// Where events go: cheap to clone; [`Audit::off`] records nothing.
#[derive(Clone, Debug, Default)]
pub struct Audit {
    buffer: Option<Arc<Buffer>>,
}

/// The events waiting to be published, at most `cap`.
#[derive(Debug)]
pub struct Buffer {
    events: Mutex<Vec<Event>>,
    cap: usize,
}

impl Buffer {
    /// Every event buffered so far, in order.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One event: its kind (the last token of its subject) and its body.
#[derive(Debug)]
pub struct Event {
    kind: &'static str,
    body: Body,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Body {
    Decision(Box<Decision>),
    Action(Action),
}

/// A decision, as the audit trail keeps it (`event: "decision"`).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub event: &'static str,
    /// Unix seconds.
    pub at: i64,
    /// `allowed`, `denied`, `refused` (the request could not be opened or verified) or
    /// `error` (no answer could be signed).
    pub result: &'static str,
    /// `granted` or the deny code.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub user: Option<String>,
    pub session: Option<String>,
    pub application: Option<String>,
    pub device: Option<String>,
    pub rooms: Rooms,
    /// How long the decision took, request in to answer out (microseconds).
    pub took_us: u64,
    pub server: Option<String>,
    pub client: Option<Client>,
}

/// The rooms of a decision: asked, granted (with access), refused (with why).
#[derive(Debug, Default, Serialize)]
pub struct Rooms {
    pub asked: Vec<String>,
    pub granted: Vec<GrantedRoom>,
    pub refused: Vec<RefusedRoom>,
}

#[derive(Debug, Serialize)]
pub struct GrantedRoom {
    pub room: String,
    pub access: &'static str,
    /// `delegate:<subject>` when an app service decided the room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RefusedRoom {
    pub room: String,
    pub reason: &'static str,
    /// `delegate:<subject>` when an app service decided the room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The connecting client as nats-server describes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    /// `Client` or `Leafnode`.
    pub kind: String,
    /// `nats`, `websocket`, `mqtt`, ...
    #[serde(rename = "type")]
    pub client_type: String,
    pub host: String,
    pub id: u64,
}

/// A change of access: who did what to whom (`event` is the kind).
#[derive(Debug, Serialize)]
pub struct Action {
    pub event: &'static str,
    pub at: i64,
    /// Who did it: a user, `operator` (the command line), or `service` (the service itself).
    pub by: String,
    /// What was done, and to whom.
    #[serde(flatten)]
    pub what: serde_json::Map<String, serde_json::Value>,
}

impl Audit {
    /// Records nothing.
    #[must_use]
    pub fn off() -> Audit {
        Audit { buffer: None }
    }

    /// Whether events are recorded (building one is skipped otherwise).
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.buffer.is_some()
    }

    /// A decision (on `nats-callout.audit.<result>`).
    pub fn decision(&self, d: Decision) {
        if self.is_on() {
            self.send(Event {
                kind: d.result,
                body: Body::Decision(Box::new(d)),
            });
        }
    }

    /// A change of access by `by` at `at`, on `nats-callout.audit.<event>`; `what` is a JSON
    /// object of what was done to whom (anything else is kept under `what`).
    pub fn action(&self, event: &'static str, by: &str, at: i64, what: serde_json::Value) {
        if !self.is_on() {
            return;
        }
        let what = match what {
            serde_json::Value::Object(map) => map,
            other => serde_json::Map::from_iter([("what".to_string(), other)]),
        };
        self.send(Event {
            kind: event,
            body: Body::Action(Action {
                event,
                at,
                by: by.to_string(),
                what,
            }),
        });
    }

    fn send(&self, event: Event) {
        let Some(buffer) = &self.buffer else { return };
        let mut events = buffer.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() < buffer.cap {
            events.push(event);
        } else {
            drop(events);
            metrics::counter!("nats_callout_audit_dropped_total").increment(1);
        }
    }

    /// The trail for `settings`: the stream checked or created first (when named); the
    /// events wait in the buffer until the [`Publisher`] runs (absent when auditing is off).
    ///
    /// # Errors
    /// The stream exists with other settings (named), or JetStream does not answer.
    pub async fn open(
        client: &async_nats::Client,
        settings: &AuditSettings,
    ) -> Result<(Audit, Option<Publisher>), AuditError> {
        if !settings.enabled {
            return Ok((Audit::off(), None));
        }
        if !settings.stream.is_empty() {
            ensure_stream(&crate::kv::context(client.clone()), settings).await?;
        }
        let (audit, events) = Audit::buffered(settings.buffer);
        let client = client.clone();
        Ok((audit, Some(Publisher { client, events })))
    }

    /// A trail into a buffer of at most `cap` events, and the buffer (tests and benchmarks
    /// take the events out of it).
    #[must_use]
    pub fn buffered(cap: usize) -> (Audit, Arc<Buffer>) {
        let buffer = Arc::new(Buffer {
            events: Mutex::new(Vec::with_capacity(cap.min(1024))),
            cap,
        });
        (
            Audit {
                buffer: Some(buffer.clone()),
            },
            buffer,
        )
    }
}

impl Event {
    /// The subject the event is published on.
    #[must_use]
    pub fn subject(&self) -> String {
        audit_subject(self.kind)
    }

    /// The JSON body.
    #[must_use]
    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

/// Publishes the buffered events.
pub struct Publisher {
    client: async_nats::Client,
    events: Arc<Buffer>,
}

impl Publisher {
    /// Publish until `stop`, then what is still buffered.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        publish(self.client, self.events, stop).await;
        Ok(())
    }
}

async fn publish(client: async_nats::Client, buffer: Arc<Buffer>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            () = stop.cancelled() => true,
        };
        for event in buffer.take() {
            metrics::counter!("nats_callout_audit_events_total", "kind" => event.kind).increment(1);
            if let Err(e) = client.publish(event.subject(), event.json().into()).await {
                metrics::counter!("nats_callout_audit_dropped_total").increment(1);
                tracing::warn!(error = %e, kind = event.kind, "could not publish an audit event");
            }
        }
        if stopping {
            break;
        }
    }
    let _ = client.flush().await;
}

/// Why the audit trail could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("JetStream unavailable for the audit stream {stream}: {error}")]
    Unavailable { stream: String, error: String },
    #[error(
        "audit stream {stream} exists with {setting} {found}, configured {wanted}: change \
         [audit], or the stream (nats stream edit), or remove it"
    )]
    Mismatch {
        stream: String,
        setting: &'static str,
        found: String,
        wanted: String,
    },
}

/// The stream `settings.stream`: created when missing, checked when it exists.
async fn ensure_stream(js: &jetstream::Context, settings: &AuditSettings) -> Result<(), AuditError> {
    let name = settings.stream.clone();
    let unavailable = |e: &dyn std::fmt::Display| AuditError::Unavailable {
        stream: name.clone(),
        error: e.to_string(),
    };
    let wanted = stream::Config {
        name: name.clone(),
        description: Some("nats-callout audit trail".into()),
        subjects: vec![AUDIT_SUBJECTS.into()],
        max_age: settings.max_age,
        max_bytes: settings.max_bytes,
        num_replicas: settings.replicas,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    };
    for _ in 0..2 {
        match js.get_stream(&name).await {
            Ok(s) => return check_stream(&wanted, &s.cached_info().config),
            Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) => {
                match js.create_stream(wanted.clone()).await {
                    Ok(_) => {
                        tracing::info!(stream = %name, "created the audit stream");
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::debug!(stream = %name, error = %e, "audit stream creation lost a race or failed; looking again")
                    }
                }
            }
            Err(e) => return Err(unavailable(&e)),
        }
    }
    Err(unavailable(&"could neither be found nor created"))
}

fn check_stream(wanted: &stream::Config, found: &stream::Config) -> Result<(), AuditError> {
    let mismatch = |setting, found: String, want: String| AuditError::Mismatch {
        stream: wanted.name.clone(),
        setting,
        found,
        wanted: want,
    };
    if found.subjects != wanted.subjects {
        return Err(mismatch(
            "subjects",
            format!("{:?}", found.subjects),
            format!("{:?}", wanted.subjects),
        ));
    }
    if found.max_age != wanted.max_age {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        return Err(mismatch("max_age", d(found.max_age), d(wanted.max_age)));
    }
    if found.max_bytes != wanted.max_bytes {
        return Err(mismatch(
            "max_bytes",
            found.max_bytes.to_string(),
            wanted.max_bytes.to_string(),
        ));
    }
    if found.num_replicas.max(1) != wanted.num_replicas.max(1) {
        return Err(mismatch(
            "replicas",
            found.num_replicas.to_string(),
            wanted.num_replicas.to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_buffer_drops_events_instead_of_waiting() {
        let (audit, buffer) = Audit::buffered(2);
        for i in 0..5 {
            audit.action("kick", "service", i, serde_json::json!({"user": "bob"}));
        }
        let got = buffer.take();
        assert_eq!(got.len(), 2, "two fit, three were dropped without waiting");
        assert_eq!(got[0].subject(), "nats-callout.audit.kick");
        let body: serde_json::Value = serde_json::from_slice(&got[0].json()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"event": "kick", "at": 0, "by": "service", "user": "bob"})
        );
        Audit::off().action("kick", "service", 0, serde_json::json!({}));
    }
}
