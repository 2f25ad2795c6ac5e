//! The service's own NATS endpoints: `auth.v1.usercontext` for internal services (by token
//! or by user), `auth.v1.rooms.*` for app services, `auth.v1.tokenReset`,
//! `auth.v1.credentials` for connected clients (operator mode), and the admin subjects the
//! `revoke`, `status` and `explain --live` commands talk to.

use std::sync::Arc;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::callout::credentials::{CredentialsRequest, Minter};
use crate::clock::now_secs;
use crate::context::{user_context, user_context_of};
use crate::enforcement::Enforcement;
use crate::ops::Ops;
use crate::permissions::{Permissions, Snapshot};
use crate::rooms::RoomService;
use crate::tokens::revocation::RevokeRequest;
use crate::tokens::service::TokenService;
use crate::wire::{
    ACCESS_INVALIDATE_SUBJECT, ADMIN_EXPLAIN_SUBJECT, ADMIN_REVOKE_SUBJECT, ADMIN_STATUS_SUBJECT,
    AUTH_ERROR_SUBJECT, CREDENTIALS_SUBJECT, DISCOVERY_SUBJECTS, ROOMS_SUBJECTS, TOKEN_RESET_SUBJECT,
    TokenResetRequest, USER_CONTEXT_SUBJECT,
};

/// What precedes a room operation's name in its subject.
const ROOMS_PREFIX: &str = "auth.v1.rooms.";

/// `{"token": "..."}` or `{"userId": "..."}`; anything else is taken as a token.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContextRequest {
    token: Option<String>,
    user_id: Option<String>,
}

fn error_reply(error: &dyn std::fmt::Display, code: &str) -> serde_json::Value {
    json!({"error": error.to_string(), "error_code": code})
}

/// The reply to a user-context request: the context of a token (`{token}`, or the payload
/// itself) or of a user of the permission files (`{userId}`), or `{error, error_code}`.
pub async fn user_context_reply(
    tokens: &TokenService,
    snapshot: &Snapshot,
    payload: &[u8],
    now: i64,
) -> serde_json::Value {
    let token = match serde_json::from_slice::<ContextRequest>(payload) {
        Ok(ContextRequest {
            token: Some(_),
            user_id: Some(_),
        }) => return error_reply(&"name either token or userId, not both", "bad-request"),
        Ok(ContextRequest {
            user_id: Some(id), ..
        }) => {
            return match user_context_of(&id, snapshot) {
                Ok(ctx) => serde_json::to_value(ctx).unwrap_or_default(),
                Err(e) => error_reply(&e, e.code()),
            };
        }
        Ok(ContextRequest { token: Some(t), .. }) => t,
        _ => String::from_utf8_lossy(payload).trim().to_string(),
    };
    match tokens.verify_access(&token, now) {
        Ok(claims) => match user_context(&claims, snapshot, tokens.refresh()).await {
            Ok(ctx) => serde_json::to_value(ctx).unwrap_or_default(),
            Err(e) => error_reply(&e, e.code()),
        },
        Err(e) => error_reply(&e, e.code()),
    }
}

/// `auth.v1.credentials`: `{token, publicKey, rooms?}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CredentialsAsk {
    #[serde(default)]
    token: String,
    public_key: String,
    #[serde(default)]
    rooms: Vec<String>,
}

/// The largest `auth.v1.credentials` request read (as `POST /api/auth/nats-credentials`).
const CREDENTIALS_REQUEST_LIMIT: usize = 8 * 1024;

/// What to tell whom for an `auth.v1.credentials` request: the user its token names, and
/// `{"type": "credentials", "publicKey", jwt, expiresAt, rooms, refused}` or `{"type":
/// "credentials", "publicKey"?, error, error_code}`. It goes on that user's notice subject,
/// never on the request's reply subject: nats-server delivers a service's answer to any
/// subject the requester names in its account (another user's room among them), and every
/// user may ask here. A request whose token names nobody is answered to nobody (logged).
pub async fn credentials_notice(
    minter: &Minter,
    payload: &[u8],
    now: i64,
) -> Option<(String, serde_json::Value)> {
    let tell = |user: Option<String>, key: Option<&str>, mut body: serde_json::Value| {
        body["type"] = "credentials".into();
        if let Some(key) = key {
            body["publicKey"] = key.into();
        }
        user.map(|u| (u, body))
    };
    if payload.len() > CREDENTIALS_REQUEST_LIMIT {
        info!(
            bytes = payload.len(),
            "auth.v1.credentials: request too large, not read"
        );
        return None;
    }
    let ask = match serde_json::from_slice::<CredentialsAsk>(payload) {
        Ok(a) => a,
        Err(e) => {
            // Its sender, if the token says who, is told (a malformed request is its own).
            #[derive(Deserialize)]
            struct TokenOnly {
                token: String,
            }
            let user = serde_json::from_slice::<TokenOnly>(payload)
                .ok()
                .and_then(|t| minter.user_of(&t.token, now));
            info!(known = user.is_some(), error = %e, "auth.v1.credentials: bad request");
            return tell(user, None, error_reply(&e, "bad-request"));
        }
    };
    let req = CredentialsRequest {
        public_key: ask.public_key,
        rooms: ask.rooms,
    };
    let key =
        crate::callout::credentials::user_public_key(&req.public_key).then_some(req.public_key.as_str());
    match minter.mint(&ask.token, &req, "nats", now).await {
        Ok((user, answer)) => tell(Some(user), key, answer),
        Err(e) => tell(minter.user_of(&ask.token, now), key, error_reply(&e, e.code())),
    }
}

/// What the endpoints need.
pub struct Endpoints {
    pub client: async_nats::Client,
    pub tokens: Arc<TokenService>,
    pub permissions: Permissions,
    pub rooms: Arc<RoomService>,
    pub ops: Arc<Ops>,
    /// Mints `auth.v1.credentials` (it answers `operator-mode-only` in config mode).
    pub credentials: Minter,
}

/// Room requests answered at once (each may wait for the store).
const ROOM_REQUESTS_AT_ONCE: usize = 16;
/// Credentials requests answered at once (each may wait for a delegate).
const CREDENTIAL_REQUESTS_AT_ONCE: usize = 64;

impl Endpoints {
    /// Serve until `stop`.
    pub async fn serve(self, stop: CancellationToken) -> Result<(), async_nats::SubscribeError> {
        let Endpoints {
            client,
            tokens,
            permissions,
            rooms,
            ops,
            credentials,
        } = self;
        let queue = ops.instance.queue_group.clone();
        let mut contexts = client
            .queue_subscribe(USER_CONTEXT_SUBJECT, queue.clone())
            .await?;
        let mut resets = client.queue_subscribe(TOKEN_RESET_SUBJECT, queue.clone()).await?;
        let mut admin = client
            .queue_subscribe(ADMIN_REVOKE_SUBJECT, queue.clone())
            .await?;
        let mut status = client.subscribe(ADMIN_STATUS_SUBJECT).await?;
        let mut explains = client
            .queue_subscribe(ADMIN_EXPLAIN_SUBJECT, queue.clone())
            .await?;
        let mut discovery = client.subscribe(DISCOVERY_SUBJECTS).await?;
        let mut auth_errors = client.subscribe(AUTH_ERROR_SUBJECT).await?;
        let room_requests = client.queue_subscribe(ROOMS_SUBJECTS, queue.clone()).await?;
        // Every instance forgets its own cache: no queue group.
        let mut invalidations = client.subscribe(ACCESS_INVALIDATE_SUBJECT).await?;
        // Credentials beside the rest: a delegated room may wait for its delegate.
        let credential_requests = client.queue_subscribe(CREDENTIALS_SUBJECT, queue.clone()).await?;
        let credentials_served = credential_requests
            .take_until(stop.clone().cancelled_owned())
            .for_each_concurrent(CREDENTIAL_REQUESTS_AT_ONCE, |m| {
                let (client, credentials) = (&client, &credentials);
                async move {
                    if let Some((user, body)) = credentials_notice(credentials, &m.payload, now_secs()).await
                    {
                        let subject = crate::wire::notice_subject(&user);
                        if let Err(e) = client.publish(subject, body.to_string().into()).await {
                            warn!(error = %e, user, "could not send credentials");
                        }
                    }
                }
            });
        tokio::pin!(credentials_served);
        let mut credentials_done = false;
        // Room requests beside the rest: a change waits for its store.
        let rooms_served = room_requests
            .take_until(stop.clone().cancelled_owned())
            .for_each_concurrent(ROOM_REQUESTS_AT_ONCE, |m| {
                let (client, rooms, tokens, permissions) = (&client, &rooms, &tokens, &permissions);
                async move {
                    let operation = m.subject.as_str().strip_prefix(ROOMS_PREFIX).unwrap_or("");
                    let snapshot = permissions.load_full();
                    let reply = crate::rooms::requests::answer(
                        rooms,
                        &snapshot,
                        tokens,
                        operation,
                        &m.payload,
                        now_secs(),
                    )
                    .await;
                    respond(client, m.reply, reply).await;
                }
            });
        tokio::pin!(rooms_served);
        let mut rooms_done = false;
        // Ready once the subscriptions above reached the server (awaited beside the loop).
        let ready = crate::health::ready_after_flush(client.clone(), ops.health.clone(), "endpoints");
        tokio::pin!(ready);
        let mut readying = true;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                () = &mut rooms_served, if !rooms_done => rooms_done = true,
                () = &mut credentials_served, if !credentials_done => credentials_done = true,
                () = &mut ready, if readying => readying = false,
                Some(m) = contexts.next() => {
                    let snapshot = permissions.load_full();
                    let reply = user_context_reply(&tokens, &snapshot, &m.payload, now_secs()).await;
                    respond(&client, m.reply, reply).await;
                }
                Some(m) = resets.next() => {
                    let reply = token_reset_reply(ops.enforcement.as_deref(), &m.payload);
                    if reply.get("affected").is_some() {
                        let what = json!({"request": serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap_or_default(), "affected": reply["affected"]});
                        ops.audit.action("token-reset", TOKEN_RESET_SUBJECT, now_secs(), what);
                    }
                    respond(&client, m.reply, reply).await;
                }
                Some(m) = invalidations.next() => {
                    // Re-deciding live connections asks the delegates again: beside the loop.
                    let (client, ops) = (client.clone(), ops.clone());
                    tokio::spawn(async move {
                        if let Some(reply) = invalidate_reply(&ops, &m.payload).await {
                            respond(&client, m.reply, reply).await;
                        }
                    });
                }
                Some(m) = admin.next() => {
                    let reply = revoke_reply(&tokens, &ops.audit, &m.payload).await;
                    respond(&client, m.reply, reply).await;
                }
                Some(m) = status.next() => respond(&client, m.reply, ops.status().await).await,
                Some(m) = explains.next() => respond(&client, m.reply, explain_reply(&ops, &m.payload).await).await,
                Some(m) = discovery.next() => {
                    if let Some(reply) = ops.discovery(m.subject.as_str()) {
                        respond(&client, m.reply, reply).await;
                    }
                }
                Some(m) = auth_errors.next() => audit_auth_error(&m.payload),
                else => break,
            }
        }
        Ok(())
    }
}

/// `auth.v1.access.invalidate {user?, room?}`: forget the delegates' answers it names and
/// re-decide the live connections holding those rooms. Answered by the enforcing instance
/// (or every instance when none enforces): `{"forgotten": n, "reauthorized": m}`; the
/// others forget their answers silently.
async fn invalidate_reply(ops: &Ops, payload: &[u8]) -> Option<serde_json::Value> {
    let Some(callout) = ops.callout.as_ref() else {
        return Some(error_reply(&"this instance serves no callout", "unavailable"));
    };
    let req = match crate::access::Invalidate::parse(payload) {
        Ok(r) => r,
        Err(e) => return Some(error_reply(&e, "bad-request")),
    };
    let forgotten = callout.delegates().forget(&req);
    let (enforcing, reauthorized) = match ops.enforcement.as_deref() {
        Some(e) if e.is_leader() => (true, e.on_delegates_invalidated(&req).await),
        Some(_) => (false, 0),
        None => (true, 0),
    };
    info!(
        user = req.user.as_deref().unwrap_or("*"),
        room = req.room.as_deref().unwrap_or("*"),
        forgotten,
        reauthorized,
        "delegates' answers invalidated"
    );
    enforcing.then(|| json!({"forgotten": forgotten, "reauthorized": reauthorized}))
}

/// `explain --live`: a [`crate::explain::Question`] answered with the running service's
/// explanation, or `{error, error_code}`.
async fn explain_reply(ops: &Ops, payload: &[u8]) -> serde_json::Value {
    let q = match serde_json::from_slice::<crate::explain::Question>(payload) {
        Ok(q) => q,
        Err(e) => return error_reply(&format!("invalid explain request: {e}"), "bad-request"),
    };
    if let Err(e) = q.check() {
        return error_reply(&e, "bad-request");
    }
    match ops.explain(&q, now_secs()).await {
        Ok(answer) => serde_json::to_value(answer).unwrap_or_default(),
        Err(e) => error_reply(&e, "unavailable"),
    }
}

/// Operators revoke through the running service: a [`RevokeRequest`], any target.
async fn revoke_reply(
    tokens: &TokenService,
    audit: &crate::audit::Audit,
    payload: &[u8],
) -> serde_json::Value {
    let target = serde_json::from_slice::<RevokeRequest>(payload)
        .map_err(|e| format!("invalid revoke request: {e}"))
        .and_then(|r| r.target().map_err(|e| e.to_string()));
    match target {
        Ok(target) => match tokens.revoke(&target, "revoked by operator", now_secs()).await {
            Ok(n) => {
                info!(?target, sessions = n, "operator revocation");
                audit.action(
                    "revocation",
                    "operator",
                    now_secs(),
                    json!({"target": target, "sessions": n}),
                );
                json!({"revokedSessions": n})
            }
            Err(e) => json!({"error": e.to_string(), "error_code": e.code()}),
        },
        Err(e) => json!({"error": e, "error_code": "bad-request"}),
    }
}

/// Count and log an authorization failure nats-server reported (no secrets in it:
/// the server redacts tokens).
fn audit_auth_error(payload: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
    let reason = v["reason"].as_str().unwrap_or("");
    let timeout = reason.is_empty();
    metrics::counter!("nats_callout_server_auth_errors_total", "timeout" => if timeout { "true" } else { "false" })
        .increment(1);
    warn!(
        audit = "server-auth-error",
        reason = if timeout {
            "no reply in time (timeout)"
        } else {
            reason
        },
        client_id = v["client"]["id"].as_u64().unwrap_or(0),
        host = v["client"]["host"].as_str().unwrap_or(""),
        server = v["server"]["name"].as_str().unwrap_or(""),
        "nats-server refused a connection"
    );
}

/// Answer `auth.v1.tokenReset {tids?, users?, sessions?, reason?}` with `{affected}`. Who may publish it is
/// decided by the publish permissions the callout grants (`enforcement.token_reset_roles`).
pub fn token_reset_reply(enforcement: Option<&Enforcement>, payload: &[u8]) -> serde_json::Value {
    let Some(enforcement) = enforcement else {
        return json!({"error": "live enforcement is off (no nats.system_user)", "error_code": "unavailable"});
    };
    match serde_json::from_slice::<TokenResetRequest>(payload) {
        Ok(r) => match r.problem() {
            None => json!({"affected": enforcement.token_reset(&r)}),
            Some(p) => json!({"error": p, "error_code": "bad-request"}),
        },
        Err(e) => json!({"error": format!("invalid token reset request: {e}"), "error_code": "bad-request"}),
    }
}

async fn respond(client: &async_nats::Client, reply: Option<async_nats::Subject>, body: serde_json::Value) {
    if let Some(r) = reply
        && let Err(e) = client.publish(r, body.to_string().into()).await
    {
        warn!(error = %e, "could not answer an endpoint request");
    }
}
