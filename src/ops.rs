//! What operators ask a running instance: readiness, status (reloads, live connections,
//! enforcement, request counts) and NATS service discovery (`$SRV.PING|INFO|STATS`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::callout::{AUTH_SUBJECT, Callout};
use crate::reload::Reloader;
use crate::sessions::Sessions;

/// Service name in `$SRV` discovery.
pub const SERVICE_NAME: &str = "nats-callout";

/// The parts of a running service that status and readiness report on.
#[derive(Default, Clone)]
pub struct Ops {
    pub reloader: Option<Arc<Reloader>>,
    pub sessions: Option<Arc<Sessions>>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub token_reset_roles: Vec<crate::permissions::Role>,
    pub nats: Option<async_nats::Client>,
    pub callout: Option<Arc<Callout>>,
    /// This instance's id (`$SRV`) and start time (unix seconds).
    pub id: String,
    pub started: i64,
    pub queue_group: String,
}

impl Ops {
    /// Ready = connected to NATS and permissions loaded (the token store opened at build).
    pub fn readiness(&self) -> (bool, Value) {
        let nats = self
            .nats
            .as_ref()
            .map(|c| c.connection_state() == async_nats::connection::State::Connected)
            .unwrap_or(false);
        let permissions = self
            .reloader
            .as_ref()
            .map(|r| r.status().users > 0 || r.status().loaded_at > 0);
        let ready = nats && permissions.unwrap_or(false);
        (
            ready,
            json!({ "ready": ready, "nats": nats, "permissions": permissions, "tokenStore": true }),
        )
    }

    /// Everything an operator wants to see at once.
    pub fn status(&self) -> Value {
        let (ready, readiness) = self.readiness();
        let enforcement = self.sessions.as_ref().map(|s| {
            json!({
                "liveConnections": s.len(),
                "leader": s.is_leader(),
                "instances": s.instances(),
                "ldmSent": s.stats.ldm_sent.load(Ordering::Relaxed),
                "kicksSent": s.stats.kicks_sent.load(Ordering::Relaxed),
                "throttled": s.stats.throttled.load(Ordering::Relaxed),
                "lastLagMs": s.stats.last_lag_ms.load(Ordering::Relaxed),
            })
        });
        let requests = self.callout.as_ref().map(|c| {
            let s = c.stats();
            json!({"allowed": s.allowed, "denied": s.denied, "refused": s.refused})
        });
        json!({
            "id": self.id,
            "ready": ready,
            "readiness": readiness,
            "permissions": self.reloader.as_ref().map(|r| r.status()),
            "enforcement": enforcement,
            "authorizations": requests,
        })
    }

    fn service_base(&self, kind: &str) -> Value {
        json!({
            "name": SERVICE_NAME,
            "id": self.id,
            "version": env!("CARGO_PKG_VERSION"),
            "metadata": {},
            "type": format!("io.nats.micro.v1.{kind}_response"),
        })
    }

    /// Answer a `$SRV.<VERB>[.<name>[.<id>]]` request, or `None` if it is not for us.
    pub fn discovery(&self, subject: &str) -> Option<Value> {
        let mut parts = subject.split('.').skip(1);
        let verb = parts.next()?;
        if let Some(name) = parts.next()
            && name != SERVICE_NAME
        {
            return None;
        }
        if let Some(id) = parts.next()
            && id != self.id
        {
            return None;
        }
        let endpoint = json!({"name": "authorize", "subject": AUTH_SUBJECT, "queue_group": self.queue_group});
        let v = match verb {
            "PING" => self.service_base("ping"),
            "INFO" => {
                let mut v = self.service_base("info");
                v["description"] = json!("NATS auth callout: access tokens in, room permissions out");
                v["endpoints"] = json!([endpoint]);
                v
            }
            "STATS" => {
                let mut v = self.service_base("stats");
                let s = self.callout.as_ref().map(|c| c.stats()).unwrap_or_default();
                let n = s.allowed + s.denied + s.refused;
                let mut e = endpoint;
                e["num_requests"] = json!(n);
                e["num_errors"] = json!(s.refused);
                e["last_error"] = json!("");
                e["processing_time"] = json!(s.time_ns);
                e["average_processing_time"] = json!(s.time_ns.checked_div(n).unwrap_or(0));
                e["data"] = json!({"allowed": s.allowed, "denied": s.denied});
                v["endpoints"] = json!([e]);
                v["started"] = json!(
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.started.max(0) as u64)
                    )
                    .to_string()
                );
                v
            }
            _ => return None,
        };
        Some(v)
    }
}
