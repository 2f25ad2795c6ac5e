//! The service's own NATS endpoints: revocation broadcasts, `auth.v1.usercontext` for
//! internal services, and the admin subject the `revoke` command talks to.

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::callout::now_secs;
use crate::http::user_context;
use crate::permissions::Snapshot;
use crate::sessions::{Sessions, TOKEN_RESET_SUBJECT, TokenResetRequest};
use crate::tokens::service::{REVOCATION_SUBJECT, RevokeTarget, TokenService};

/// Internal services ask who a token belongs to (exported to the app account).
pub const USER_CONTEXT_SUBJECT: &str = "auth.v1.usercontext";
/// Operators (service credentials, AUTH account only) revoke through the running service.
pub const ADMIN_REVOKE_SUBJECT: &str = "nats-callout.admin.revoke";

#[derive(Deserialize)]
struct TokenRequest {
    token: String,
}

/// The reply to a user-context request: the context, or `{error, error_code}`.
pub fn user_context_reply(
    tokens: &TokenService,
    snapshot: &Snapshot,
    payload: &[u8],
    now: i64,
) -> serde_json::Value {
    let token = match serde_json::from_slice::<TokenRequest>(payload) {
        Ok(r) => r.token,
        Err(_) => String::from_utf8_lossy(payload).trim().to_string(),
    };
    match tokens.verify_access(&token, now) {
        Ok(claims) => {
            let client_id = tokens
                .refresh()
                .session(&claims.sid)
                .ok()
                .flatten()
                .and_then(|s| s.client_id);
            match user_context(&claims, snapshot, client_id) {
                Some(ctx) => serde_json::to_value(ctx).unwrap_or_default(),
                None => json!({"error": "user no longer exists", "error_code": "unknown-user"}),
            }
        }
        Err(e) => json!({"error": e.to_string(), "error_code": e.code()}),
    }
}

/// Serve the endpoints until `stop`.
pub async fn serve(
    client: async_nats::Client,
    queue: String,
    tokens: Arc<TokenService>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    sessions: Option<Arc<Sessions>>,
    stop: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let mut broadcasts = client.subscribe(REVOCATION_SUBJECT).await?;
    let mut contexts = client
        .queue_subscribe(USER_CONTEXT_SUBJECT, queue.clone())
        .await?;
    let mut resets = client.queue_subscribe(TOKEN_RESET_SUBJECT, queue.clone()).await?;
    let mut admin = client.queue_subscribe(ADMIN_REVOKE_SUBJECT, queue).await?;
    let _ = client.flush().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(m) = broadcasts.next() => tokens.accept_broadcast(&m.payload),
            Some(m) = contexts.next() => {
                let reply = user_context_reply(&tokens, &snapshot.load(), &m.payload, now_secs());
                respond(&client, m.reply, reply).await;
            }
            Some(m) = resets.next() => {
                let reply = token_reset_reply(sessions.as_deref(), &m.payload);
                respond(&client, m.reply, reply).await;
            }
            Some(m) = admin.next() => {
                let reply = match serde_json::from_slice::<RevokeTarget>(&m.payload) {
                    Ok(target) => match tokens.revoke(&target, "revoked by operator", now_secs()).await {
                        Ok(n) => {
                            info!(?target, sessions = n, "operator revocation");
                            json!({"revokedSessions": n})
                        }
                        Err(e) => json!({"error": e.to_string(), "error_code": e.code()}),
                    },
                    Err(e) => json!({"error": format!("invalid revoke request: {e}"), "error_code": "bad-request"}),
                };
                respond(&client, m.reply, reply).await;
            }
            else => break,
        }
    }
    Ok(())
}

/// Answer `auth.v1.tokenReset {tids, reason}` with `{affected}`. Who may publish it is
/// decided by the publish permissions the callout grants (`enforcement.token_reset_roles`).
pub fn token_reset_reply(sessions: Option<&Sessions>, payload: &[u8]) -> serde_json::Value {
    let Some(sessions) = sessions else {
        return json!({"error": "live enforcement is off (no nats.system_user)", "error_code": "unavailable"});
    };
    match serde_json::from_slice::<TokenResetRequest>(payload) {
        Ok(r) if !r.tids.is_empty() => json!({"affected": sessions.token_reset(&r.tids, &r.reason)}),
        Ok(_) => json!({"error": "tids is empty", "error_code": "bad-request"}),
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
