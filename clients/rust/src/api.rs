//! The service's HTTP API as the kit uses it: `GET /api/config`, the password login and the
//! refresh, and rooms as data (create, invite, remove, join an open room, list members).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// What `GET /api/config` tells clients: the subject templates, the inbox prefix, the room
/// limit and the notice subject (`{room}` and `{user}` are placeholders).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// Subscribe subject of a readable room (`chat.{room}.>`).
    pub read_subject: String,
    /// Publish subject of a writable room, ending in the sender (`chat.{room}.{user}`).
    pub write_subject: String,
    /// The inbox prefix the user's grant allows (`_INBOX.{user}`).
    pub inbox_prefix: String,
    /// Most rooms one connection may ask for.
    pub max_rooms: usize,
    /// The user's notices (`nats-callout.notice.{user}`).
    pub notice_subject: String,
    /// nats-server's websocket port (browsers).
    #[serde(default)]
    pub websocket_port: u16,
}

impl ServerConfig {
    /// `template` with `{room}` and `{user}` filled in.
    #[must_use]
    pub fn render(template: &str, room: &str, user: &str) -> String {
        template.replace("{room}", room).replace("{user}", user)
    }
}

/// A room as `GET /api/rooms` lists it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    pub name: String,
    #[serde(default)]
    pub read: bool,
    #[serde(default)]
    pub write: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// Data rooms: the owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// Data rooms: `invite` or `open`.
    #[serde(default)]
    pub join: Option<String>,
    /// Data rooms: whether the caller owns it.
    #[serde(default)]
    pub owned: Option<bool>,
}

/// A member of a data room.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: String,
    pub access: Access,
    #[serde(default)]
    pub owner: bool,
}

/// A member's access to a data room.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
    Readwrite,
}

/// Who may join a new data room.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JoinPolicy {
    /// Members are added by owners and admins.
    #[default]
    Invite,
    /// Anyone may join (`POST /api/rooms/{name}/join`).
    Open,
}

/// The tokens of a login or a refresh.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Tokens {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

/// What `POST /api/auth/nats-credentials` answers: a user JWT for the client's key.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NatsCredentials {
    pub(crate) jwt: String,
    /// Unix seconds.
    pub(crate) expires_at: i64,
}

impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsCredentials(expires_at: {}, ..)", self.expires_at)
    }
}

/// The HTTP API at one base URL (`http://127.0.0.1:8080`).
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// The API at `base` (scheme, host and port; a trailing `/` is ignored).
    #[must_use]
    pub fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// `GET /api/config`.
    pub async fn config(&self) -> Result<ServerConfig> {
        self.call(reqwest::Method::GET, "/api/config", None, None).await
    }

    pub(crate) async fn login(
        &self,
        username: &str,
        password: &str,
        client_id: Option<&str>,
    ) -> Result<Tokens> {
        let mut body = json!({"username": username, "password": password});
        if let Some(c) = client_id {
            body["clientId"] = c.into();
        }
        self.call(reqwest::Method::POST, "/api/auth/login", None, Some(body))
            .await
    }

    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<Tokens> {
        let body = json!({"refreshToken": refresh_token});
        self.call(reqwest::Method::POST, "/api/auth/refresh", None, Some(body))
            .await
    }

    /// `POST /api/auth/nats-credentials` (operator mode): a user JWT for `public_key` with the
    /// grant the callout would give `token` for `rooms`.
    pub(crate) async fn nats_credentials(
        &self,
        token: &str,
        public_key: &str,
        rooms: &[String],
    ) -> Result<NatsCredentials> {
        let body = json!({"publicKey": public_key, "rooms": rooms});
        self.call(
            reqwest::Method::POST,
            "/api/auth/nats-credentials",
            Some(token),
            Some(body),
        )
        .await
    }

    /// `GET /api/auth/me`: the user id the service reads from `token` (for an identity
    /// provider's token, not necessarily its `sub`).
    pub async fn user_id(&self, token: &str) -> Result<String> {
        #[derive(Deserialize)]
        struct Me {
            id: String,
        }
        let me: Me = self
            .call(reqwest::Method::GET, "/api/auth/me", Some(token), None)
            .await?;
        Ok(me.id)
    }

    /// `GET /api/rooms` (`open`: the open rooms not joined yet).
    pub async fn rooms(&self, token: &str, open: bool) -> Result<Vec<RoomInfo>> {
        let path = if open {
            "/api/rooms?open=true"
        } else {
            "/api/rooms"
        };
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    /// `POST /api/rooms`: a data room the caller owns.
    pub async fn create_room(
        &self,
        token: &str,
        name: &str,
        description: Option<&str>,
        join: JoinPolicy,
    ) -> Result<Value> {
        let mut body = json!({"name": name, "join": join});
        if let Some(d) = description {
            body["description"] = d.into();
        }
        self.call(reqwest::Method::POST, "/api/rooms", Some(token), Some(body))
            .await
    }

    /// `DELETE /api/rooms/{name}`.
    pub async fn delete_room(&self, token: &str, room: &str) -> Result<()> {
        let path = format!("/api/rooms/{}", segment(room)?);
        self.call::<Value>(reqwest::Method::DELETE, &path, Some(token), None)
            .await
            .map(drop)
    }

    /// `GET /api/rooms/{name}/members`.
    pub async fn members(&self, token: &str, room: &str) -> Result<Vec<Member>> {
        let path = format!("/api/rooms/{}/members", segment(room)?);
        self.call(reqwest::Method::GET, &path, Some(token), None).await
    }

    /// `POST /api/rooms/{name}/members`: add (invite) or change a member.
    pub async fn add_member(
        &self,
        token: &str,
        room: &str,
        user: &str,
        access: Access,
        owner: bool,
    ) -> Result<Member> {
        let path = format!("/api/rooms/{}/members", segment(room)?);
        let body = json!({"userId": user, "access": access, "owner": owner});
        self.call(reqwest::Method::POST, &path, Some(token), Some(body))
            .await
    }

    /// `DELETE /api/rooms/{name}/members/{userId}`.
    pub async fn remove_member(&self, token: &str, room: &str, user: &str) -> Result<()> {
        let path = format!("/api/rooms/{}/members/{}", segment(room)?, segment(user)?);
        self.call::<Value>(reqwest::Method::DELETE, &path, Some(token), None)
            .await
            .map(drop)
    }

    /// `POST /api/rooms/{name}/join`: become a member of an open room.
    pub async fn join_open(&self, token: &str, room: &str) -> Result<Member> {
        let path = format!("/api/rooms/{}/join", segment(room)?);
        self.call(reqwest::Method::POST, &path, Some(token), None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<T> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.json().await?);
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after").and_then(|v| v.parse().ok());
        let header_code = header("x-error-code");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let code = body["error_code"]
            .as_str()
            .map(str::to_string)
            .or(header_code)
            .unwrap_or_else(|| format!("http-{}", status.as_u16()));
        Err(Error::Api {
            status: status.as_u16(),
            code,
            message: body["error"].as_str().unwrap_or_default().to_string(),
            retry_after,
        })
    }
}

/// A room or user name as one path segment: the service's names only.
fn segment(name: &str) -> Result<&str> {
    crate::check_name(name)?;
    Ok(name)
}
