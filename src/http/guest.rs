//! Guests (`http.guests`, off by default): `POST /api/auth/guest` creates an anonymous user
//! `guest-…` with the rooms of the `guest` group in the permission files and nothing else
//! (never a role), and opens a session for it like a login. Under
//! `tokens.guest_refresh = "never"` the session has no idle or absolute expiry, yet its
//! refresh tokens rotate and it can be revoked like any other.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ClientAddr, OptionalBody, check_origin};
use super::session::{LoginKind, application, open, optional_name, token_response};
use super::state::{LimitKey, SharedState};
use crate::config::GuestRefresh;
use crate::permissions::Asserted;
use crate::tokens::refresh::Opening;

/// The group whose rooms guests get.
pub const GUEST_GROUP: &str = "guest";
/// What marks a guest's assertion (in tokens and sessions); no provider may be named so.
pub const GUEST_IDP: &str = crate::config::identity::RESERVED_NAME;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct GuestRequest {
    device_id: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    cookie: bool,
}

/// What a guest is: the `guest` group's rooms, no role, absent from the files.
pub fn guest_assertion() -> Asserted {
    Asserted {
        idp: GUEST_IDP.into(),
        groups: vec![GUEST_GROUP.into()],
        roles: Vec::new(),
        groups_only: true,
        // Guest ids are `guest-…`, which no file user may be named; never one of them.
        file_users: false,
    }
}

/// A new guest id: `guest-` and 16 random base32 characters.
fn guest_id() -> String {
    let bytes: [u8; 10] = rand::random();
    format!(
        "{}{}",
        crate::names::GUEST_PREFIX,
        data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase()
    )
}

pub(super) async fn create(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    OptionalBody(body): OptionalBody<GuestRequest>,
) -> Result<Response, ApiError> {
    if !state.settings.guests {
        return Err(ApiError::not_found("guests-disabled", "guest access is off"));
    }
    let req = body.unwrap_or_default();
    check_origin(&state, &headers, req.cookie)?;
    let now = state.now();
    if let Some(ip) = addr {
        state.limit(LimitKey::Guests(ip), state.settings.guests_per_address_per_minute)?;
    }
    let device = optional_name("deviceId", req.device_id)?;
    let client_id = application(&state, req.client_id)?;
    let asserted = guest_assertion();
    let snapshot = state.permissions.load();
    // `guest-` names are reserved: the files cannot define one, providers cannot assert one.
    let user = guest_id();
    if snapshot.effective(&user, Some(&asserted)).is_none() {
        return Err(ApiError::unavailable(
            "no-guest-group",
            "the permission files define no guest group",
        ));
    }
    let opening = Opening {
        user: &user,
        device: device.as_deref(),
        client_id: client_id.as_deref(),
        asserted: Some(&asserted),
        address: addr.map(|a| a.to_string()),
        never_expires: state.guest_refresh == GuestRefresh::Never,
    };
    let kind = LoginKind {
        method: "guest",
        result: "guest",
        message: "logged in as guest",
    };
    let pair = open(&state, &opening, kind, now).await?;
    Ok(token_response(&state, &pair, req.cookie, kind.message))
}
