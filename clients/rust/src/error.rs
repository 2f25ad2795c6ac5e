//! Typed errors: each carries a stable code, the service's own (`invalid-credentials`,
//! `rate-limited`, `refresh-token-expired`, ...) or the kit's (`refused`, `auth-expired`, ...).

/// What can go wrong; [`Error::code`] is the stable code to match on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service answered an HTTP call with an error: its status, its `error_code` and
    /// message, and `Retry-After` (seconds) when rate limited.
    #[error("the service answered {status}: {message} ({code})")]
    Api {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<u64>,
    },
    /// nats-server refused the room's subscription: the user may not read it.
    #[error("room {room:?} refused")]
    Refused { room: String },
    /// The session is over (the refresh token expired or was revoked, or only a token was
    /// given and it expired): log in again.
    #[error("the session expired: log in again")]
    AuthExpired,
    /// Not a room name (`[A-Za-z0-9_-]`, 1 to 64 characters).
    #[error("{0:?} is not a room name")]
    BadRoomName(String),
    /// More rooms than the service allows on one connection (`maxRooms`).
    #[error("at most {0} rooms per connection")]
    TooManyRooms(usize),
    /// The room is not joined.
    #[error("room {0:?} is not joined")]
    NotJoined(String),
    /// The HTTP API could not be reached or answered something else than JSON.
    #[error("the service cannot be reached: {0}")]
    Unreachable(String),
    /// NATS could not be reached, or refused the connection.
    #[error("NATS: {0}")]
    Nats(String),
    /// nats-server refused a publish to the room: it may be read, not written.
    #[error("room {0:?} is read only")]
    ReadOnly(String),
    /// A publish could not be handed to nats-server (the connection is gone).
    #[error("not sent: {0}")]
    NotSent(String),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

impl Error {
    /// The stable code: the service's `error_code` for [`Error::Api`], else the kit's, the
    /// same as the JavaScript kit's: `refused`, `read-only`, `auth-expired`, `bad-room-name`,
    /// `too-many-rooms`, `not-joined`, `network` (the service cannot be reached, or a publish
    /// failed), `connect-failed` (nats-server cannot be reached or refused the connection) or
    /// `closed`.
    #[must_use]
    pub fn code(&self) -> &str {
        match self {
            Error::Api { code, .. } => code,
            Error::Refused { .. } => "refused",
            Error::AuthExpired => "auth-expired",
            Error::BadRoomName(_) => "bad-room-name",
            Error::TooManyRooms(_) => "too-many-rooms",
            Error::NotJoined(_) => "not-joined",
            Error::Unreachable(_) | Error::NotSent(_) => "network",
            Error::Nats(_) => "connect-failed",
            Error::ReadOnly(_) => "read-only",
            Error::Closed => "closed",
        }
    }

    /// Whether logging in again is the only way on (the session ended).
    #[must_use]
    pub fn is_auth_expired(&self) -> bool {
        matches!(self, Error::AuthExpired)
            || matches!(
                self.code(),
                "refresh-token-expired" | "refresh-token-revoked" | "refresh-token-reused"
            )
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        // Without the URL: it could carry a query a caller put a secret in.
        Error::Unreachable(e.without_url().to_string())
    }
}

/// A result with the kit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let api = Error::Api {
            status: 401,
            code: "invalid-credentials".into(),
            message: "no".into(),
            retry_after: None,
        };
        assert_eq!(api.code(), "invalid-credentials");
        assert_eq!(Error::Refused { room: "x".into() }.code(), "refused");
        assert_eq!(Error::AuthExpired.code(), "auth-expired");
        let reused = Error::Api {
            status: 401,
            code: "refresh-token-reused".into(),
            message: String::new(),
            retry_after: None,
        };
        assert!(reused.is_auth_expired());
        assert!(!api.is_auth_expired());
    }
}
