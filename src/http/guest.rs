//! Guests (`http.guests`, off by default): `POST /api/auth/guest` creates an anonymous user
//! `guest-…` with the rooms of the `guest` group in the permission files and nothing else
//! (never a role), and opens a session for it like a login. Under
//! `tokens.guest_refresh = "never"` the session has no idle or absolute expiry, yet its
//! refresh tokens rotate and it can be revoked like any other.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::auth::{LoginKind, open_session, optional_body, optional_name};
use super::error::ApiError;
use super::{ClientAddr, SharedState, check_origin};
use crate::config::GuestRefresh;
use crate::permissions::Asserted;
use crate::tokens::refresh::Opening;

/// The group whose rooms guests get.
pub const GUEST_GROUP: &str = "guest";
/// What marks a guest's assertion (in tokens and sessions); no provider may be named so.
pub const GUEST_IDP: &str = crate::oidc::settings::RESERVED_NAME;

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
    }
}

/// A new guest id: `guest-` and 16 random base32 characters.
fn guest_id() -> String {
    let bytes: [u8; 10] = rand::random();
    format!(
        "guest-{}",
        data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase()
    )
}

pub(super) async fn create(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if !state.settings.guests {
        return Err(ApiError::not_found("guests-disabled", "guest access is off"));
    }
    let req: GuestRequest = optional_body(&body)?.unwrap_or_default();
    if req.cookie {
        check_origin(&state, &headers, true)?;
    }
    let now = state.now();
    if let Some(ip) = addr {
        state
            .limiter
            .hit(
                &format!("guest:{ip}"),
                state.settings.guests_per_address_per_minute,
                now,
            )
            .map_err(ApiError::rate_limited)?;
    }
    let device = optional_name("deviceId", req.device_id)?;
    let client_id = optional_name("clientId", req.client_id)?;
    let asserted = guest_assertion();
    let snapshot = state.permissions.load();
    let user = loop {
        let id = guest_id();
        // A name the files use is never taken (it would carry that user's grants).
        if snapshot.user(&id).is_none() {
            break id;
        }
    };
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
    open_session(&state, &opening, kind, req.cookie, now).await
}
