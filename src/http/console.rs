//! The admin console's data, on the public listener for admins only (the page's own view):
//! live connections, the permission set's reload status with each `file:line: reason`, the
//! latest denies, and the numbers behind the live chart. Revocations and token reset are the
//! same endpoints as everywhere (`/api/auth/revoke`, `/api/console/token-reset`).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{Admin, SharedState};
use crate::callout::recent::DenyEntry;
use crate::enforcement::LiveConnection;
use crate::reload::ReloadStatus;

/// Live connections (empty without live enforcement: `enforcement` says whether it runs).
pub(super) async fn connections(State(state): State<SharedState>, _admin: Admin) -> Json<Value> {
    let (on, list): (bool, Vec<LiveConnection>) = match &state.ops.enforcement {
        Some(e) => (true, e.connections()),
        None => (false, Vec::new()),
    };
    Json(json!({ "enforcement": on, "connections": list }))
}

/// The permission set: loaded when, how many users and rooms, reloads, the last problems.
pub(super) async fn permissions(State(state): State<SharedState>, _admin: Admin) -> Json<ReloadStatus> {
    Json(state.ops.reloader.status())
}

/// The latest denies of this instance, newest first.
pub(super) async fn denies(State(state): State<SharedState>, _admin: Admin) -> Json<Vec<DenyEntry>> {
    Json(state.ops.counters.recent.denies())
}

/// Authorization totals and the p99 decision time of this instance, now: the chart polls
/// this and draws rates from the differences.
pub(super) async fn metrics(State(state): State<SharedState>, _admin: Admin) -> Json<Value> {
    let s = state.ops.counters.stats();
    Json(json!({
        "at": state.now(),
        "allowed": s.allowed,
        "denied": s.denied,
        "refused": s.refused,
        "p99Ms": state.ops.counters.recent.p99_ms(),
    }))
}
