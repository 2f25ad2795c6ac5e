//! Rooms: the rooms a caller may join (`GET /api/rooms`: the files' and data's), and rooms
//! as data (contract 11): create, delete, members, join an open room. Who may do what is
//! [`crate::rooms::RoomService`]'s; every refusal has its code.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{Body, Caller};
use super::state::{HttpState, SharedState};
use crate::permissions::Access;
use crate::rooms::service::NewMember;
use crate::rooms::{Actor, JoinPolicy, MemberView, NewRoom, RoomError, RoomView};

/// The most open rooms one page lists.
const MAX_PAGE: usize = 1000;

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        let status = match e {
            RoomError::BadRoomName(_) | RoomError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RoomError::NotRoomOwner | RoomError::RoomNotOpen(_) | RoomError::NotCreator => {
                StatusCode::FORBIDDEN
            }
            RoomError::UnknownRoom(_) | RoomError::UnknownUser(_) => StatusCode::NOT_FOUND,
            RoomError::RoomExists(_) | RoomError::TooManyRooms { .. } => StatusCode::CONFLICT,
            RoomError::Store(ref cause) => {
                tracing::warn!(error = %cause, "room store error");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// The caller as the rooms' rules see them (a user the files or a provider know).
fn actor<'a>(state: &HttpState, caller: &'a Caller) -> Result<Actor<'a>, ApiError> {
    let snapshot = state.permissions.load();
    let user = caller
        .claims
        .user(&snapshot)
        .ok_or_else(|| ApiError::unauthorized("unknown-user", "user no longer exists"))?;
    let guest = caller
        .claims
        .ext
        .as_ref()
        .is_some_and(|a| a.idp == super::guest::GUEST_IDP);
    Ok(Actor {
        user: &caller.claims.sub,
        admin: user.is_admin(),
        may_create: state.rooms.settings().may_create(&user, guest),
    })
}

/// One room the caller may join. Data rooms say whose they are and who may join.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoomEntry {
    name: String,
    read: bool,
    write: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Data rooms: the creator.
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    /// Data rooms: `invite` or `open`.
    #[serde(skip_serializing_if = "Option::is_none")]
    join: Option<JoinPolicy>,
    /// Data rooms: whether the caller owns it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    owned: bool,
}

impl RoomEntry {
    fn data(r: RoomView, access: Option<Access>, owned: bool) -> RoomEntry {
        RoomEntry {
            name: r.name,
            read: access.is_some_and(Access::can_read),
            write: access.is_some_and(Access::can_write),
            description: r.description,
            owner: Some(r.owner),
            join: Some(r.join),
            owned,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Open rooms the caller has not joined, instead of the caller's rooms.
    #[serde(default)]
    open: bool,
    /// Paging of open rooms: names after this one.
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/rooms`: the rooms the caller may join, the files' and data's, by name; with
/// `?open=true`, open rooms not joined yet (paged: `after`, `limit`).
pub(super) async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<RoomEntry>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let snapshot = state.permissions.load();
    let user = caller
        .claims
        .user(&snapshot)
        .ok_or_else(|| ApiError::unauthorized("unknown-user", "user no longer exists"))?;
    // A token of an application lists only the rooms the application reaches.
    let scope = snapshot.scope(caller.claims.client_id.as_deref());
    if q.open {
        let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
        let rooms = state
            .rooms
            .open_rooms(&caller.claims.sub, q.after.as_deref(), limit);
        return Ok(Json(
            rooms
                .into_iter()
                .filter(|r| scope.reaches(&r.name))
                .map(|r| RoomEntry::data(r, None, false))
                .collect(),
        ));
    }
    let mut out: Vec<RoomEntry> = snapshot
        .rooms_for(&user)
        .into_iter()
        .filter(|(name, _)| scope.reaches(name))
        .map(|(name, access)| RoomEntry {
            description: snapshot.room_description(&name).map(str::to_string),
            name,
            read: access.can_read(),
            write: access.can_write(),
            owner: None,
            join: None,
            owned: false,
        })
        .collect();
    let data = state.rooms.rooms_of(&caller.claims.sub);
    for (room, access, owned) in data.into_iter().filter(|(r, _, _)| scope.reaches(&r.name)) {
        // A file pattern that covers a data room: both grants apply.
        let access =
            crate::rooms::access(&snapshot, state.rooms.index(), &user, &room.name).unwrap_or(access);
        out.retain(|e| e.name != room.name);
        out.push(RoomEntry::data(room, Some(access), owned));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

/// `POST /api/rooms`: 201 and the room, the caller its owner.
pub(super) async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    Body(new): Body<NewRoom>,
) -> Result<Response, ApiError> {
    let actor = actor(&state, &caller)?;
    let snapshot = state.permissions.load_full();
    let room = state.rooms.create(&actor, new, &snapshot, state.now()).await?;
    Ok((StatusCode::CREATED, Json(room)).into_response())
}

/// What a change did.
#[derive(Serialize)]
pub(super) struct Done {
    done: bool,
}

/// `DELETE /api/rooms/{name}` (owners, admins).
pub(super) async fn delete(
    State(state): State<SharedState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Done>, ApiError> {
    state.rooms.delete(&actor(&state, &caller)?, &name).await?;
    Ok(Json(Done { done: true }))
}

/// `GET /api/rooms/{name}/members` (its members, admins).
pub(super) async fn members(
    State(state): State<SharedState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    Ok(Json(state.rooms.members(&actor(&state, &caller)?, &name)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AddMember {
    user_id: String,
    access: Access,
    #[serde(default)]
    owner: bool,
}

/// `POST /api/rooms/{name}/members {userId, access, owner?}` (owners, admins).
pub(super) async fn add_member(
    State(state): State<SharedState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(req): Body<AddMember>,
) -> Result<Json<MemberView>, ApiError> {
    let actor = actor(&state, &caller)?;
    let snapshot = state.permissions.load_full();
    let known = state
        .rooms
        .is_known(&snapshot, &state.tokens, &req.user_id)
        .await?;
    let new = NewMember {
        user: &req.user_id,
        access: req.access,
        owner: req.owner,
        known,
    };
    let member = state.rooms.put_member(&actor, &name, new, state.now()).await?;
    Ok(Json(member))
}

/// `DELETE /api/rooms/{name}/members/{userId}` (owners, admins, the member leaving).
pub(super) async fn remove_member(
    State(state): State<SharedState>,
    caller: Caller,
    Path((name, user)): Path<(String, String)>,
) -> Result<Json<Done>, ApiError> {
    let actor = actor(&state, &caller)?;
    state
        .rooms
        .remove_member(&actor, &name, &user, state.now())
        .await?;
    Ok(Json(Done { done: true }))
}

/// `POST /api/rooms/{name}/join` (open rooms).
pub(super) async fn join(
    State(state): State<SharedState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<MemberView>, ApiError> {
    let actor = actor(&state, &caller)?;
    Ok(Json(state.rooms.join(&actor, &name, state.now()).await?))
}
