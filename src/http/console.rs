//! The admin console's data, on the public listener for admins only (the page's own view):
//! live connections, the permission set's reload status with each `file:line: reason`, the
//! latest denies, and the numbers behind the live chart. Revocations and token reset are the
//! same endpoints as everywhere (`/api/auth/revoke`, `/api/console/token-reset`). `explain`
//! answers what a user would get in some rooms, and why; `rooms` lists every room in data
//! with its members (removing them is the rooms API's, which admins may use on any room).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Serialize;

use super::error::ApiError;
use super::extract::{Admin, Body};
use super::state::SharedState;
use crate::callout::recent::DenyEntry;
use crate::enforcement::LiveConnection;
use crate::explain::{Explanation, Question};
use crate::reload::ReloadStatus;

/// The live connections an instance knows.
#[derive(Serialize)]
pub(super) struct Connections {
    /// Whether live enforcement runs (without it the list is empty).
    enforcement: bool,
    connections: Vec<LiveConnection>,
}

/// Live connections (empty without live enforcement: `enforcement` says whether it runs).
pub(super) async fn connections(State(state): State<SharedState>, _admin: Admin) -> Json<Connections> {
    Json(match &state.ops.enforcement {
        Some(e) => Connections {
            enforcement: true,
            connections: e.connections(),
        },
        None => Connections {
            enforcement: false,
            connections: Vec::new(),
        },
    })
}

/// The permission set: loaded when, how many users and rooms, reloads, the last problems.
pub(super) async fn permissions(State(state): State<SharedState>, _admin: Admin) -> Json<ReloadStatus> {
    Json(state.ops.reloader.status())
}

/// The latest denies of this instance, newest first.
pub(super) async fn denies(State(state): State<SharedState>, _admin: Admin) -> Json<Vec<DenyEntry>> {
    Json(state.ops.counters.recent.denies())
}

/// Authorization totals and the p99 decision time of this instance at a moment.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Totals {
    at: i64,
    allowed: u64,
    denied: u64,
    refused: u64,
    p99_ms: f64,
}

/// Authorization totals and the p99 decision time of this instance, now: the chart polls
/// this and draws rates from the differences.
pub(super) async fn metrics(State(state): State<SharedState>, _admin: Admin) -> Json<Totals> {
    let s = state.ops.counters.stats();
    Json(Totals {
        at: state.now(),
        allowed: s.allowed,
        denied: s.denied,
        refused: s.refused,
        p99_ms: state.ops.counters.recent.p99_ms(),
    })
}

/// What `userId` would get in `rooms` (optionally under `clientId`), room by room, and why.
pub(super) async fn explain(
    State(state): State<SharedState>,
    _admin: Admin,
    Body(q): Body<Question>,
) -> Result<Json<Explanation>, ApiError> {
    q.check().map_err(|e| ApiError::bad_request(e.to_string()))?;
    match state.ops.explain(&q, state.now()).await {
        Ok(answer) => Ok(Json(answer)),
        Err(e) => Err(ApiError::unavailable("unavailable", e)),
    }
}

/// The most rooms one page of the console lists.
const ROOMS_PAGE: usize = 200;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RoomsPage {
    /// Names after this one.
    after: Option<String>,
    limit: Option<usize>,
}

/// A room in data as the console shows it.
#[derive(Serialize)]
pub(super) struct DataRoom {
    #[serde(flatten)]
    room: crate::rooms::RoomView,
    members: Vec<crate::rooms::MemberView>,
}

/// Every room in data (paged by name: `after`, `limit` up to 200) with its members.
pub(super) async fn rooms(
    State(state): State<SharedState>,
    _admin: Admin,
    page: Result<Query<RoomsPage>, QueryRejection>,
) -> Result<Json<Vec<DataRoom>>, ApiError> {
    let Query(page) = page.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = page.limit.unwrap_or(ROOMS_PAGE).clamp(1, ROOMS_PAGE);
    Ok(Json(
        state
            .rooms
            .every_room(page.after.as_deref(), limit)
            .into_iter()
            .map(|(room, members)| DataRoom { room, members })
            .collect(),
    ))
}
