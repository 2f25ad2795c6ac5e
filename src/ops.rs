//! What operators ask a running instance: readiness (each part's real state), status
//! (reloads, live connections, enforcement, request counts) and NATS service discovery
//! (`$SRV.PING|INFO|STATS`). Built once by `app` and shared by the HTTP listeners and the
//! NATS endpoints.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::callout::{Callout, Counters};
use crate::clock::{now_secs, rfc3339};
use crate::enforcement::Enforcement;
use crate::explain::{Explanation, Question, SessionVerdict, UserRevocation};
pub use crate::health::{Check, Health};
use crate::oidc::Providers;
use crate::permissions::GrantSource;
use crate::reload::Reloader;
use crate::tokens::revocation::RevocationKind;
use crate::tokens::service::TokenService;
use crate::wire::{AUTH_SUBJECT, SERVICE_NAME};

/// Who this instance is.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    /// Random id (`$SRV`).
    pub id: String,
    /// Unix seconds.
    pub started: i64,
    pub queue_group: String,
}

impl Instance {
    pub fn new(queue_group: &str) -> Self {
        Instance {
            id: nuid::next().to_string(),
            started: now_secs(),
            queue_group: queue_group.to_string(),
        }
    }
}

/// The parts of a running instance that readiness, status and discovery report on.
pub struct Ops {
    pub instance: Instance,
    pub health: Arc<Health>,
    pub reloader: Arc<Reloader>,
    pub tokens: Arc<TokenService>,
    pub counters: Arc<Counters>,
    /// The request handler (absent in router-only tests): `explain` reads its rules.
    pub callout: Option<Arc<Callout>>,
    /// The audit trail (off in router-only tests).
    pub audit: crate::audit::Audit,
    /// Absent without `nats.system_user`.
    pub enforcement: Option<Arc<Enforcement>>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Trusted identity providers (their keys' state is part of readiness's report).
    pub providers: Arc<Providers>,
}

impl Ops {
    /// The operational view of an instance with no callout or enforcement attached yet
    /// (`app` adds them with the `with_` methods; router-only tests use it as is).
    pub fn new(instance: Instance, reloader: Arc<Reloader>, tokens: Arc<TokenService>) -> Ops {
        let metrics = crate::telemetry::metrics();
        crate::version::record();
        Ops {
            instance,
            health: Arc::default(),
            reloader,
            tokens,
            counters: Arc::default(),
            callout: None,
            audit: crate::audit::Audit::off(),
            enforcement: None,
            metrics,
            providers: Arc::default(),
        }
    }

    /// What the service's connections and tasks report of their state.
    #[must_use]
    pub fn with_health(self, health: Arc<Health>) -> Ops {
        Ops { health, ..self }
    }

    /// The request handler: its counters, and its rules for `explain`.
    #[must_use]
    pub fn with_callout(self, callout: Arc<Callout>) -> Ops {
        Ops {
            counters: callout.counters(),
            callout: Some(callout),
            ..self
        }
    }

    /// Explain a question with the running service's view: its rules, permissions and rooms
    /// in data, the files' lines (read again), and the user's sessions with the revocations
    /// that would refuse their tokens.
    ///
    /// # Errors
    /// No callout in this instance, or the session store does not answer.
    pub async fn explain(&self, q: &Question, now: i64) -> Result<Explanation, String> {
        let callout = self.callout.as_ref().ok_or("this instance serves no callout")?;
        let sessions = self
            .tokens
            .refresh()
            .sessions_of(&q.user_id, now)
            .await
            .map_err(|e| format!("the session store: {e}"))?;
        // A provider's user is decided with what the provider asserted at their latest login.
        let asserted = sessions.first().and_then(|s| s.info.asserted.clone());
        let files = self.file_lines(q, asserted.clone()).await;
        let mut answer = crate::explain::live(callout, q, &files, asserted.as_ref()).await;
        let revoked = self.tokens.revocations().load();
        answer.revocations = revoked
            .of_user(&q.user_id)
            .into_iter()
            .map(|r| UserRevocation {
                reason: if r.kind == RevocationKind::All {
                    "all-revoked"
                } else {
                    "user-revoked"
                }
                .into(),
                before: r.cutoff,
            })
            .collect();
        answer.sessions = Some(
            sessions
                .into_iter()
                .map(|s| SessionVerdict {
                    revoked: revoked
                        .check_parts(
                            &s.info.user,
                            &s.info.id,
                            s.info.device.as_deref(),
                            s.current_issued_at,
                        )
                        .map(str::to_string),
                    session_id: s.info.id,
                    client_id: s.info.client_id,
                    device_id: s.info.device,
                    expires_at: s.info.expires_at,
                })
                .collect(),
        );
        Ok(answer)
    }

    /// The audit trail admin actions are recorded in.
    #[must_use]
    pub fn with_audit(self, audit: crate::audit::Audit) -> Ops {
        Ops { audit, ..self }
    }

    /// Live enforcement, when configured.
    #[must_use]
    pub fn with_enforcement(self, enforcement: Option<Arc<Enforcement>>) -> Ops {
        Ops { enforcement, ..self }
    }

    /// The trusted identity providers.
    #[must_use]
    pub fn with_providers(self, providers: Arc<Providers>) -> Ops {
        Ops { providers, ..self }
    }

    /// The files' definitions granting each room of `q` with their lines, from the source
    /// read again (none, with a warning, when it cannot be read or no longer loads).
    async fn file_lines(
        &self,
        q: &Question,
        asserted: Option<crate::permissions::Asserted>,
    ) -> Vec<Vec<GrantSource>> {
        let (user, rooms) = (q.user_id.clone(), q.rooms.clone());
        let lines = match self.reloader.sources().await {
            Ok(sources) => tokio::task::spawn_blocking(move || {
                let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
                crate::permissions::grant_sources(&sources, &user, &rooms, asserted.as_ref())
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r),
            Err(e) => Err(e),
        };
        lines.unwrap_or_else(|error| {
            tracing::warn!(%error, "explain: the permission files cannot be read again: no lines");
            Vec::new()
        })
    }

    /// Ready = every reporting part ok (the NATS connection among them), permissions
    /// loaded, and the token store answering a read. The body says which part is not;
    /// each part is also the gauge `nats_callout_part_ready{part}`.
    pub async fn readiness(&self) -> (bool, Value) {
        let mut ready = true;
        let mut parts = serde_json::Map::new();
        let mut add = |name: &str, ok: bool, detail: String| {
            ready &= ok;
            metrics::gauge!("nats_callout_part_ready", "part" => name.to_string())
                .set(f64::from(u8::from(ok)));
            parts.insert(name.to_string(), json!({ "ok": ok, "detail": detail }));
        };
        for (name, c) in self.health.all() {
            add(name, c.ok, c.detail);
        }
        let p = self.reloader.status();
        let loaded = p.users > 0 || p.loaded_at > 0;
        add(
            "permissions",
            loaded,
            format!("{} users, {} rooms", p.users, p.rooms),
        );
        match self.tokens.refresh().check_store().await {
            Ok(()) => add("tokenStore", true, "ok".into()),
            Err(e) => add("tokenStore", false, e.to_string()),
        }
        // A provider that cannot be reached does not make the instance unready: its cached
        // keys keep working, and our own tokens do not need it. It is reported beside.
        let mut body = json!({ "ready": ready, "parts": parts });
        if !self.providers.is_empty() {
            body["identityProviders"] = self.providers.status();
        }
        (ready, body)
    }

    /// Everything an operator wants to see at once.
    pub async fn status(&self) -> Value {
        let (ready, readiness) = self.readiness().await;
        let enforcement = self.enforcement.as_ref().map(|s| {
            json!({
                "liveConnections": s.len(),
                "leader": s.is_leader(),
                "enforcerBy": match s.leadership() {
                    crate::enforcement::lease::Leadership::Solo => "solo",
                    crate::enforcement::lease::Leadership::Lease(_) => "lease",
                },
                "ldmSent": s.stats.ldm_sent.load(Ordering::Relaxed),
                "kicksSent": s.stats.kicks_sent.load(Ordering::Relaxed),
                "throttled": s.stats.throttled.load(Ordering::Relaxed),
                "lastLagMs": s.stats.last_lag_ms.load(Ordering::Relaxed),
                "reconciles": s.stats.reconciles.load(Ordering::Relaxed),
            })
        });
        let s = self.counters.stats();
        json!({
            "id": self.instance.id,
            "build": crate::version::json(),
            "ready": ready,
            "readiness": readiness,
            "permissions": self.reloader.status(),
            "enforcement": enforcement,
            "authorizations": {"allowed": s.allowed, "denied": s.denied, "refused": s.refused},
            "revocations": self.tokens.revocations().load().len(),
        })
    }

    fn service_base(&self, kind: &str) -> Value {
        json!({
            "name": SERVICE_NAME,
            "id": self.instance.id,
            "version": crate::version::VERSION,
            "metadata": {"commit": crate::version::COMMIT, "tree": crate::version::TREE},
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
            && id != self.instance.id
        {
            return None;
        }
        let endpoint =
            json!({"name": "authorize", "subject": AUTH_SUBJECT, "queue_group": self.instance.queue_group});
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
                let s = self.counters.stats();
                let n = s.allowed + s.denied + s.refused;
                let mut e = endpoint;
                e["num_requests"] = json!(n);
                e["num_errors"] = json!(s.refused);
                e["last_error"] = json!(self.counters.last_error());
                e["processing_time"] = json!(s.time_ns);
                e["average_processing_time"] = json!(s.time_ns.checked_div(n).unwrap_or(0));
                e["data"] = json!({"allowed": s.allowed, "denied": s.denied});
                v["endpoints"] = json!([e]);
                v["started"] = json!(rfc3339(self.instance.started));
                v
            }
            _ => return None,
        };
        Some(v)
    }
}

/// A plain `GET` of an `http://host:port/path` URL (the health check of a container image
/// without an HTTP client): the status code and the body.
pub async fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("only http:// URLs: {url}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let io = async {
        let mut s = tokio::net::TcpStream::connect(host).await?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(std::time::Duration::from_secs(5), io)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 5 s"))??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP answer"))?;
    Ok((status, body.to_string()))
}
