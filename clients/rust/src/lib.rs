//! Client kit for nats-callout: log in over the service's HTTP API,
//! connect to nats-server with the rooms in the CONNECT `user` field and the access token in
//! `auth_token`, join and leave rooms without a gap (make-before-break), refresh the token
//! before it expires, and survive lame-duck notices, kicks and grant changes.
//!
//! ```no_run
//! use futures::StreamExt;
//! use nats_callout_client::{ChatClient, Options};
//!
//! # async fn run() -> Result<(), nats_callout_client::Error> {
//! let chat = ChatClient::connect(
//!     Options::password("http://127.0.0.1:8080", "nats://127.0.0.1:4222", "bob", "bob"),
//! ).await?;
//! chat.join("all1").await?;
//! let mut heard = chat.messages("all1");
//! chat.send("all1", "hello").await?;
//! while let Some(m) = heard.next().await {
//!     println!("{}: {}", m.from, m.text);
//! }
//! # Ok(()) }
//! ```
//!
//! A join opens a second connection with the new room list, subscribes every room there and
//! checks the grant (nats-server answers each refused subscription with a permission error, in
//! order; a last probe subscription that no grant allows, below the user's notice subject,
//! closes the check), and only then closes the old connection: for that moment the user holds
//! two connections. Both hear the room; a message with an id (every message the kits and the
//! chat page send) is delivered once, one without an id may be delivered twice.

pub mod api;
mod backoff;
mod credentials;
mod error;
mod message;
mod session;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_nats::{Auth, AuthError, Client, ClientError, ConnectErrorKind, ConnectOptions, ServerError};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

pub use api::{Access, Api, JoinPolicy, Member, RoomInfo, ServerConfig};
pub use backoff::Backoff;
pub use credentials::Via;
pub use error::{Error, Result};
pub use message::Message;

/// Longest room or user name the service accepts.
const MAX_NAME: usize = 64;
/// Messages kept per room for a slow reader before the oldest are skipped.
const ROOM_BUFFER: usize = 1024;
/// The last token of the probe subscription (below the user's notice subject, which no
/// grant allows): its permission error closes the check of a new connection.
const PROBE: &str = "kit-probe";
/// How long a new connection waits for the probe's permission error (a lost error, or a
/// server that allows the probe).
const PROBE_WAIT: Duration = Duration::from_secs(5);
/// How long closing an old connection may take before it is dropped.
const DRAIN: Duration = Duration::from_secs(5);

/// How to log in.
#[derive(Clone)]
pub enum Login {
    /// `POST /api/auth/login` with a user name and password; the session is refreshed.
    Password { username: String, password: String },
    /// An access token the application already holds (ours or an identity provider's): it
    /// cannot be refreshed, so the client ends with `auth-expired` when it expires.
    Token(String),
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::Password { username, .. } => write!(f, "Password({username:?}, ..)"),
            Login::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// Where the service and nats-server are, who logs in, and the first rooms.
#[derive(Debug, Clone)]
pub struct Options {
    /// The HTTP API's base URL (`http://127.0.0.1:8080`).
    pub api: String,
    /// nats-server's URL (`nats://127.0.0.1:4222`).
    pub nats: String,
    pub login: Login,
    /// Rooms to connect with (each checked as a join is).
    pub rooms: Vec<String>,
    /// The application (`clientId`) the session is for, if any.
    pub client_id: Option<String>,
    /// Delays between reconnection attempts.
    pub backoff: Backoff,
    /// Connect with NATS credentials where the service mints them (operator mode; default
    /// true): a user JWT for a key of this client's own instead of the callout, which
    /// decides whenever credentials are refused or not offered.
    pub nats_credentials: bool,
}

impl Options {
    /// Log in with a password.
    #[must_use]
    pub fn password(api: &str, nats: &str, username: &str, password: &str) -> Options {
        Options::new(
            api,
            nats,
            Login::Password {
                username: username.into(),
                password: password.into(),
            },
        )
    }

    /// Use an access token the application already holds.
    #[must_use]
    pub fn token(api: &str, nats: &str, token: &str) -> Options {
        Options::new(api, nats, Login::Token(token.into()))
    }

    fn new(api: &str, nats: &str, login: Login) -> Options {
        Options {
            api: api.into(),
            nats: nats.into(),
            login,
            rooms: Vec::new(),
            client_id: None,
            backoff: Backoff::default(),
            nats_credentials: true,
        }
    }

    /// Whether to connect with NATS credentials where the service offers them (default
    /// true; false: the callout decides every connect).
    #[must_use]
    pub fn nats_credentials(mut self, on: bool) -> Options {
        self.nats_credentials = on;
        self
    }

    /// Connect with these rooms.
    #[must_use]
    pub fn rooms<I: IntoIterator<Item = S>, S: Into<String>>(mut self, rooms: I) -> Options {
        self.rooms = rooms.into_iter().map(Into::into).collect();
        self
    }
}

/// What happens to the client on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A room held is no longer granted (removed, deleted, permissions edited): it was left.
    RoomLost { room: String },
    /// The service says a grant of `room` changed (`none`, `read`, `write`, `readwrite`):
    /// a room granted anew may now be joined; a held room was re-checked by reconnecting.
    GrantsChanged {
        room: String,
        access: String,
        previous: String,
    },
    /// nats-server asked the connection to move (lame-duck notice): it reconnected.
    LameDuck,
    /// The connection is up (again).
    Connected,
    /// The connection was lost; it is being re-established with backoff.
    Disconnected,
    /// The session ended (refresh token expired or revoked): log in again.
    AuthExpired,
    /// nats-server refused a publish to `room`: it may be read, not written. `send` says
    /// `read-only` from now on (until a notice grants write).
    PublishRefused { room: String },
}

impl Event {
    /// The event's name: `room-lost`, `grants-changed`, `lame-duck`, `connected`,
    /// `disconnected`, `auth-expired`, `publish-refused`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Event::RoomLost { .. } => "room-lost",
            Event::GrantsChanged { .. } => "grants-changed",
            Event::LameDuck => "lame-duck",
            Event::Connected => "connected",
            Event::Disconnected => "disconnected",
            Event::AuthExpired => "auth-expired",
            Event::PublishRefused { .. } => "publish-refused",
        }
    }
}

/// A notice on the user's notice subject.
#[derive(Deserialize)]
struct Notice {
    #[serde(rename = "type")]
    kind: String,
    room: String,
    #[serde(default)]
    access: String,
    #[serde(default)]
    previous: String,
}

/// A room or user name as the service accepts it: `[A-Za-z0-9_-]`, 1 to 64 characters.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::BadRoomName(name.into()))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The subject nats-server names in `Permissions Violation for Subscription to "S"`.
fn refused_subject(error: &str) -> Option<&str> {
    violation_subject(error, "permissions violation for subscription")
}

/// The subject nats-server names in `Permissions Violation for Publish to "S"`.
fn refused_publish(error: &str) -> Option<&str> {
    violation_subject(error, "permissions violation for publish")
}

fn violation_subject<'a>(error: &'a str, kind: &str) -> Option<&'a str> {
    if !error.to_ascii_lowercase().contains(kind) {
        return None;
    }
    let start = error.find('"')? + 1;
    let end = error.rfind('"')?;
    (end > start).then(|| &error[start..end])
}

/// One connection and what runs for it.
struct Live {
    /// Which connection of the client this is (its generation).
    id: u64,
    client: Client,
    /// How it authenticates, and the NATS credentials it holds.
    auth: credentials::Shared,
    /// The rooms it holds (the auth callback's room list on every reconnect).
    rooms: Arc<Mutex<Vec<String>>>,
    /// Each room's forwarder (dropping it unsubscribes).
    forwarders: Arc<Mutex<HashMap<String, JoinHandle<()>>>>,
    /// The event watcher and the notice reader.
    tasks: Vec<JoinHandle<()>>,
}

impl Live {
    fn view(&self) -> View {
        View {
            client: self.client.clone(),
            rooms: self.rooms.clone(),
            auth: self.auth.clone(),
        }
    }

    /// Stop forwarding and watching.
    fn abort_tasks(&mut self) {
        let forwarders: Vec<_> = lock(&self.forwarders).drain().map(|(_, t)| t).collect();
        for t in forwarders.into_iter().chain(self.tasks.drain(..)) {
            t.abort();
        }
    }

    /// Stop watching, drain (what the old connection still hears is forwarded: the new one
    /// is already subscribed, and each id is delivered once), then stop forwarding.
    async fn retire(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let _ = tokio::time::timeout(DRAIN, self.client.drain()).await;
        self.abort_tasks();
    }
}

/// What `send`, `rooms` and `nats` read without waiting for a join in progress.
#[derive(Clone)]
struct View {
    client: Client,
    rooms: Arc<Mutex<Vec<String>>>,
    auth: credentials::Shared,
}

struct Inner {
    api: Api,
    config: ServerConfig,
    session: session::Session,
    /// The client's own user nkey, for NATS credentials.
    credentials: Arc<credentials::Credentials>,
    nats_url: String,
    backoff: Backoff,
    /// The live connection; held across a join or leave, so switches happen one at a time.
    live: tokio::sync::Mutex<Option<Live>>,
    view: Mutex<Option<View>>,
    channels: Mutex<HashMap<String, broadcast::Sender<Message>>>,
    /// Message ids each room heard lately (two connections hear a room during a join).
    seen: Mutex<HashMap<String, message::Seen>>,
    /// Rooms nats-server refused a publish to (read only), until a notice grants write.
    read_only: Mutex<HashSet<String>>,
    events: broadcast::Sender<Event>,
    generation: AtomicU64,
}

/// A chat client: one user, the rooms it holds, one live NATS connection (two during a join).
pub struct ChatClient {
    inner: Arc<Inner>,
    refresher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatClient")
            .field("user", &self.user())
            .field("rooms", &self.rooms())
            .finish_non_exhaustive()
    }
}

impl ChatClient {
    /// Log in, read `GET /api/config`, and connect with `options.rooms`: if nats-server
    /// refuses one of them, the error is [`Error::Refused`] (join rooms that may be refused
    /// with [`ChatClient::join`] instead).
    pub async fn connect(options: Options) -> Result<ChatClient> {
        let api = Api::new(&options.api);
        let config = api.config().await?;
        let (tokens, user) = match &options.login {
            Login::Password { username, password } => {
                let tokens = api
                    .login(username, password, options.client_id.as_deref())
                    .await?;
                (tokens, None)
            }
            Login::Token(t) => {
                // The service says whose token it is (an identity provider's `sub` may not
                // be the user's name).
                session::Claims::of(t)?;
                let user = api.user_id(t).await?;
                let tokens = api::Tokens {
                    access_token: t.clone(),
                    refresh_token: None,
                };
                (tokens, Some(user))
            }
        };
        let session = session::Session::new(api.clone(), tokens, user)?;
        let (events, _) = broadcast::channel(256);
        let inner = Arc::new(Inner {
            api,
            config,
            session,
            credentials: Arc::new(credentials::Credentials::new(options.nats_credentials)),
            nats_url: options.nats.clone(),
            backoff: options.backoff,
            live: tokio::sync::Mutex::new(None),
            view: Mutex::new(None),
            channels: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            read_only: Mutex::new(HashSet::new()),
            events,
            generation: AtomicU64::new(0),
        });
        let refresher = matches!(options.login, Login::Password { .. })
            .then(|| tokio::spawn(refresh_loop(Arc::downgrade(&inner))));
        let client = ChatClient { inner, refresher };
        client.switch(options.rooms.clone(), &options.rooms).await?;
        Ok(client)
    }

    /// The user id the session names.
    #[must_use]
    pub fn user(&self) -> &str {
        self.inner.session.user()
    }

    /// How the live connection authenticated (or, while it reconnects, is authenticating):
    /// with NATS credentials (operator mode) or through the callout.
    #[must_use]
    pub fn via(&self) -> Via {
        lock(&self.inner.view)
            .as_ref()
            .map_or(Via::Callout, |v| lock(&v.auth).via())
    }

    /// What the service told the kit (subjects, inbox prefix, room limit).
    #[must_use]
    pub fn server_config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The rooms held now.
    #[must_use]
    pub fn rooms(&self) -> Vec<String> {
        lock(&self.inner.view)
            .as_ref()
            .map(|v| lock(&v.rooms).clone())
            .unwrap_or_default()
    }

    /// Join `room`: resolves once nats-server granted it on a new connection that holds
    /// every room, and the old connection is closed. Refused: [`Error::Refused`] (code
    /// `refused`), and the rooms held keep working on the old connection.
    pub async fn join(&self, room: &str) -> Result<()> {
        check_name(room)?;
        let mut rooms = self.rooms();
        if rooms.iter().any(|r| r == room) {
            return Ok(());
        }
        rooms.push(room.to_string());
        self.switch(rooms, &[room.to_string()]).await
    }

    /// Leave `room` (a new connection without it, then the old one closed).
    pub async fn leave(&self, room: &str) -> Result<()> {
        let mut rooms = self.rooms();
        let before = rooms.len();
        rooms.retain(|r| r != room);
        if rooms.len() == before {
            return Err(Error::NotJoined(room.into()));
        }
        self.switch(rooms, &[]).await
    }

    /// Every message heard in `room` from now on (whether joined yet or not), across
    /// reconnections; the stream ends when the client is closed. A reader that falls more
    /// than 1,024 messages behind skips the oldest.
    pub fn messages(&self, room: &str) -> BoxStream<'static, Message> {
        let rx = self.inner.channel(room).subscribe();
        receiver_stream(rx)
    }

    /// Everything that happens on its own ([`Event`]), from now on.
    pub fn events(&self) -> BoxStream<'static, Event> {
        receiver_stream(self.inner.events.subscribe())
    }

    /// Send `text` to `room` (joined) as JSON `{"id", "text"}`; resolves with the id once
    /// nats-server took it. nats-server drops a publish the grant does not allow and says so
    /// in a permission error, which the kit reports as [`Event::PublishRefused`]; from then on
    /// (until a notice grants write) `send` to that room fails with `read-only` before
    /// publishing, as it does when the refusal is already here when the flush ends.
    pub async fn send(&self, room: &str, text: &str) -> Result<String> {
        let view = lock(&self.inner.view).clone().ok_or(Error::Closed)?;
        if !lock(&view.rooms).iter().any(|r| r == room) {
            return Err(Error::NotJoined(room.into()));
        }
        if lock(&self.inner.read_only).contains(room) {
            return Err(Error::ReadOnly(room.into()));
        }
        let subject = ServerConfig::render(&self.inner.config.write_subject, room, self.user());
        let id = message::new_id();
        let not_sent = |e: &dyn std::fmt::Display| Error::NotSent(e.to_string());
        view.client
            .publish(subject, message::encode(&id, text).into())
            .await
            .map_err(|e| not_sent(&e))?;
        view.client.flush().await.map_err(|e| not_sent(&e))?;
        if lock(&self.inner.read_only).contains(room) {
            return Err(Error::ReadOnly(room.into()));
        }
        Ok(id)
    }

    /// The live NATS connection (for subjects of your own, or its server info).
    #[must_use]
    pub fn nats(&self) -> Option<Client> {
        lock(&self.inner.view).as_ref().map(|v| v.client.clone())
    }

    /// The access token now (refreshed first when due), for calls of your own.
    pub async fn access_token(&self) -> Result<String> {
        self.inner.session.token().await
    }

    /// The rooms the user may join (`GET /api/rooms`); `open`: the open data rooms not
    /// joined yet.
    pub async fn available_rooms(&self, open: bool) -> Result<Vec<RoomInfo>> {
        self.inner.api.rooms(&self.access_token().await?, open).await
    }

    /// Create a data room the user owns.
    pub async fn create_room(&self, name: &str, description: Option<&str>, join: JoinPolicy) -> Result<()> {
        check_name(name)?;
        let token = self.access_token().await?;
        self.inner
            .api
            .create_room(&token, name, description, join)
            .await
            .map(drop)
    }

    /// Delete a data room (owners, admins).
    pub async fn delete_room(&self, name: &str) -> Result<()> {
        self.inner
            .api
            .delete_room(&self.access_token().await?, name)
            .await
    }

    /// Add `user` to a data room, or change their access (owners, admins): they get a
    /// `grants-changed` notice and may join.
    pub async fn invite(&self, room: &str, user: &str, access: Access) -> Result<Member> {
        self.inner
            .api
            .add_member(&self.access_token().await?, room, user, access, false)
            .await
    }

    /// Remove `user` from a data room (owners, admins, or the user leaving): their live
    /// connections lose the room.
    pub async fn remove_member(&self, room: &str, user: &str) -> Result<()> {
        self.inner
            .api
            .remove_member(&self.access_token().await?, room, user)
            .await
    }

    /// The members of a data room.
    pub async fn members(&self, room: &str) -> Result<Vec<Member>> {
        self.inner.api.members(&self.access_token().await?, room).await
    }

    /// Become a member of an open data room, then join it.
    pub async fn join_open(&self, room: &str) -> Result<()> {
        self.inner
            .api
            .join_open(&self.access_token().await?, room)
            .await?;
        self.join(room).await
    }

    /// Close the connection; the message and event streams end.
    pub async fn close(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        let live = self.inner.live.lock().await.take();
        lock(&self.inner.view).take();
        if let Some(l) = live {
            l.retire().await;
        }
        lock(&self.inner.channels).clear();
    }

    /// Make-before-break: a connection with `rooms`, then the old one closed. When a room of
    /// `joining` is refused there, the new connection is closed and the old one kept.
    async fn switch(&self, rooms: Vec<String>, joining: &[String]) -> Result<()> {
        let max = self.inner.config.max_rooms;
        if rooms.len() > max {
            return Err(Error::TooManyRooms(max));
        }
        let mut live = self.inner.live.lock().await;
        let (new, refused) = Inner::open(&self.inner, rooms).await?;
        if let Some(room) = joining.iter().find(|j| refused.contains(j)) {
            new.retire().await;
            tracing::debug!(room, "join refused");
            return Err(Error::Refused { room: room.clone() });
        }
        self.inner.install(&mut live, new, refused).await;
        Ok(())
    }
}

impl Drop for ChatClient {
    fn drop(&mut self) {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        if let Ok(mut live) = self.inner.live.try_lock()
            && let Some(mut l) = live.take()
        {
            l.abort_tasks();
        }
    }
}

fn receiver_stream<T: Clone + Send + 'static>(rx: broadcast::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(m) => return Some((m, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}

/// Refresh the session when due, until it ends.
async fn refresh_loop(inner: Weak<Inner>) {
    let mut failures = 0;
    loop {
        let due = match inner.upgrade() {
            Some(i) => i.session.due_in().await,
            None => return,
        };
        tokio::time::sleep(due.max(Duration::from_millis(200))).await;
        let Some(i) = inner.upgrade() else { return };
        match i.session.token().await {
            Ok(_) => failures = 0,
            Err(Error::AuthExpired) => {
                i.emit(Event::AuthExpired);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "token refresh failed; retrying");
                tokio::time::sleep(i.backoff.delay(failures)).await;
                failures += 1;
            }
        }
    }
}

impl Inner {
    /// Put `new` in use (the rooms `refused` on it are lost), then close the old connection.
    async fn install(&self, live: &mut Option<Live>, new: Live, refused: Vec<String>) {
        for room in refused {
            self.emit(Event::RoomLost { room });
        }
        *lock(&self.view) = Some(new.view());
        if let Some(old) = live.replace(new) {
            old.retire().await;
        }
    }

    /// Connection `id`'s NATS credentials are due: the same rooms on a new connection with
    /// fresh ones, make-before-break (unless the connection was replaced meanwhile).
    /// (Boxed: a connection's renewal task opens the next connection.)
    fn renew(self: Arc<Self>, id: u64) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut live = self.live.lock().await;
            let Some(rooms) = live
                .as_ref()
                .filter(|l| l.id == id)
                .map(|l| lock(&l.rooms).clone())
            else {
                return;
            };
            match Inner::open(&self, rooms).await {
                Ok((new, refused)) => self.install(&mut live, new, refused).await,
                // The old connection goes on until its JWT expires; its reconnect asks again.
                Err(e) => tracing::warn!(error = %e, "renewing the NATS credentials failed"),
            }
        })
    }

    fn emit(&self, e: Event) {
        tracing::debug!(event = e.name(), "event");
        let _ = self.events.send(e);
    }

    fn channel(&self, room: &str) -> broadcast::Sender<Message> {
        lock(&self.channels)
            .entry(room.to_string())
            .or_insert_with(|| broadcast::channel(ROOM_BUFFER).0)
            .clone()
    }

    fn room_of(&self, subject: &str, rooms: &[String]) -> Option<String> {
        let user = self.session.user();
        rooms
            .iter()
            .find(|r| ServerConfig::render(&self.config.read_subject, r, user) == subject)
            .cloned()
    }

    /// A new connection holding `rooms`: the rooms nats-server refused are left out of it
    /// and returned.
    async fn open(self: &Arc<Self>, rooms: Vec<String>) -> Result<(Live, Vec<String>)> {
        for r in &rooms {
            check_name(r)?;
        }
        let id = self.generation.fetch_add(1, Ordering::SeqCst);
        let user = self.session.user().to_string();
        let list = Arc::new(Mutex::new(rooms.clone()));
        let auth = credentials::Shared::default();
        let (tx, mut rx) = mpsc::unbounded_channel::<async_nats::Event>();
        let mut dialled = self.dial(&list, &auth, tx.clone()).await;
        let mut token_renewed = false;
        // At most: a reused JWT refused, a fresh one refused, the token refused.
        for _ in 0..3 {
            match &dialled {
                Err(e) if e.kind() == ConnectErrorKind::AuthorizationViolation => {}
                _ => break,
            }
            let jwt = lock(&auth).via() == Via::Credentials;
            if jwt {
                // nats-server refused the JWT: the next attempt asks afresh, or goes through
                // the callout.
                if lock(&auth).refused() {
                    self.credentials.turn_off("nats-server refused a fresh JWT");
                }
            } else if token_renewed {
                break;
            } else {
                // An access token nats-server refused: once more with a fresh one.
                self.session.mark_stale().await;
                token_renewed = true;
            }
            dialled = self.dial(&list, &auth, tx.clone()).await;
        }
        let client = dialled.map_err(|e| match e.kind() {
            ConnectErrorKind::AuthorizationViolation => Error::Nats("authorization violation".into()),
            _ => Error::Nats(e.to_string()),
        })?;
        let nats = |e: &dyn std::fmt::Display| Error::Nats(e.to_string());
        let forwarders = Arc::new(Mutex::new(HashMap::new()));
        for room in &rooms {
            let sub = client
                .subscribe(ServerConfig::render(&self.config.read_subject, room, &user))
                .await
                .map_err(|e| nats(&e))?;
            let task = tokio::spawn(forward(Arc::downgrade(self), room.clone(), sub));
            lock(&forwarders).insert(room.clone(), task);
        }
        let notices = client
            .subscribe(ServerConfig::render(&self.config.notice_subject, "", &user))
            .await
            .map_err(|e| nats(&e))?;
        // nats-server answers each SUB it refuses with a permission error, in order. A probe
        // no grant allows comes last: once its error is here, every room's is.
        let probe_subject = format!(
            "{}.{PROBE}",
            ServerConfig::render(&self.config.notice_subject, "", &user)
        );
        let probe = client
            .subscribe(probe_subject.clone())
            .await
            .map_err(|e| nats(&e))?;
        client.flush().await.map_err(|e| nats(&e))?;
        let mut refused = Vec::new();
        let mut early = Vec::new();
        let checked = tokio::time::timeout(PROBE_WAIT, async {
            while let Some(e) = rx.recv().await {
                if let async_nats::Event::ServerError(ServerError::Other(s)) = &e
                    && let Some(subject) = refused_subject(s)
                {
                    if subject == probe_subject {
                        return true;
                    }
                    if let Some(room) = self.room_of(subject, &rooms) {
                        refused.push(room);
                        continue;
                    }
                }
                early.push(e);
            }
            false
        })
        .await;
        drop(probe);
        if checked != Ok(true) {
            tracing::warn!(
                subject = probe_subject,
                "the probe subscription was not refused: refusals may go unseen"
            );
        }
        if !refused.is_empty() {
            lock(&list).retain(|r| !refused.contains(r));
            let mut f = lock(&forwarders);
            for r in &refused {
                if let Some(t) = f.remove(r) {
                    t.abort();
                }
            }
        }
        let via = lock(&auth).via();
        lock(&auth).connected(std::time::Instant::now());
        tracing::debug!(id, user, ?refused, via = via.name(), "connection open");
        let weak = Arc::downgrade(self);
        let live = Live {
            tasks: vec![
                tokio::spawn(watch(
                    weak.clone(),
                    client.clone(),
                    list.clone(),
                    forwarders.clone(),
                    auth.clone(),
                    early,
                    rx,
                )),
                tokio::spawn(read_notices(
                    weak.clone(),
                    client.clone(),
                    list.clone(),
                    auth.clone(),
                    notices,
                )),
                tokio::spawn(renew_credentials(weak, id, auth.clone())),
            ],
            id,
            client,
            auth,
            rooms: list,
            forwarders,
        };
        Ok((live, refused))
    }

    /// Connect with the room list on every (re)connect: NATS credentials for it where the
    /// service mints them, else a fresh access token for the callout.
    async fn dial(
        self: &Arc<Self>,
        list: &Arc<Mutex<Vec<String>>>,
        conn: &credentials::Shared,
        events: mpsc::UnboundedSender<async_nats::Event>,
    ) -> Result<Client, async_nats::ConnectError> {
        let weak = Arc::downgrade(self);
        let rooms = list.clone();
        let backoff = self.backoff;
        let inbox = ServerConfig::render(&self.config.inbox_prefix, "", self.session.user());
        let conn_auth = conn.clone();
        let seen = conn.clone();
        let creds = self.credentials.clone();
        ConnectOptions::with_auth_callback(move |nonce| {
            let rooms = lock(&rooms).clone();
            let weak = weak.clone();
            let conn = conn_auth.clone();
            let auth = tokio::spawn(async move {
                match weak.upgrade() {
                    Some(inner) => inner.authenticate(&conn, rooms, &nonce).await,
                    None => Err(Error::Closed),
                }
            });
            async move { auth.await.map_err(AuthError::new)?.map_err(AuthError::new) }
        })
        .custom_inbox_prefix(inbox)
        .reconnect_delay_callback(move |attempt| backoff.delay(attempt))
        .connection_timeout(Duration::from_secs(10))
        .event_callback(move |e| {
            // Before the next attempt's auth callback: how the JWT's connection went.
            let now = std::time::Instant::now();
            let refused = match &e {
                async_nats::Event::Connected => {
                    lock(&seen).connected(now);
                    false
                }
                async_nats::Event::Disconnected => {
                    lock(&seen).disconnected(now);
                    false
                }
                async_nats::Event::ServerError(ServerError::AuthorizationViolation) => true,
                async_nats::Event::ClientError(ClientError::Other(s)) => {
                    s.to_ascii_lowercase().contains("authorization violation")
                }
                _ => false,
            };
            if refused && lock(&seen).refused() {
                creds.turn_off("nats-server refused a fresh JWT");
            }
            let events = events.clone();
            async move {
                let _ = events.send(e);
            }
        })
        .connect(self.nats_url.as_str())
        .await
    }
}

impl Inner {
    /// The CONNECT fields of one attempt for `rooms`: the JWT and the nonce's signature when
    /// NATS credentials are had, else the rooms in `user` and the access token.
    async fn authenticate(
        &self,
        conn: &credentials::Shared,
        rooms: Vec<String>,
        nonce: &[u8],
    ) -> Result<Auth> {
        if let Some(jwt) = self.credentials_for(conn, &rooms).await
            && let Some(signature) = self.credentials.sign(nonce)
        {
            lock(conn).attempt(Via::Credentials);
            let mut auth = Auth::new();
            auth.jwt = Some(jwt);
            auth.signature = Some(signature);
            return Ok(auth);
        }
        lock(conn).attempt(Via::Callout);
        let token = self.session.token().await?;
        let mut auth = Auth::new();
        auth.username = Some(rooms.join(";"));
        auth.password = Some(String::new());
        auth.token = Some(token);
        Ok(auth)
    }

    /// A JWT for `rooms`: the connection's own if it may be reused, else a fresh one from the
    /// service; `None` when the callout is to decide (see the `credentials` module).
    async fn credentials_for(&self, conn: &credentials::Shared, rooms: &[String]) -> Option<String> {
        if self.credentials.is_off() {
            return None;
        }
        if let Some(jwt) = lock(conn).reusable(rooms, std::time::Instant::now()) {
            return Some(jwt);
        }
        let key = self.credentials.public_key();
        let mut token_renewed = false;
        loop {
            let token = self.session.token().await.ok()?;
            match self.api.nats_credentials(&token, &key, rooms).await {
                Ok(c) => {
                    let claims = session::Claims::of(&c.jwt).ok();
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                    let life = credentials::life(c.expires_at, claims.and_then(|c| c.iat), now_ms);
                    tracing::debug!(expires_at = c.expires_at, "NATS credentials minted");
                    let jwt = c.jwt.clone();
                    lock(conn).hold(c.jwt, rooms.to_vec(), life, std::time::Instant::now());
                    return Some(jwt);
                }
                // `operator-mode-only`, `credentials-off`: not here, not later.
                Err(Error::Api {
                    status: 404, code, ..
                }) => {
                    self.credentials.turn_off(&code);
                    return None;
                }
                Err(Error::Api { status: 401, .. }) if !token_renewed => {
                    self.session.mark_stale().await;
                    token_renewed = true;
                }
                Err(e) => {
                    tracing::debug!(
                        code = e.code(),
                        "no NATS credentials for this connect: the callout decides"
                    );
                    return None;
                }
            }
        }
    }
}

/// Renew connection `id`'s NATS credentials at four fifths of their life (a new connection
/// with fresh ones, make-before-break); idle while it holds none.
async fn renew_credentials(inner: Weak<Inner>, id: u64, auth: credentials::Shared) {
    let changed = lock(&auth).changed();
    let mut failures = 0;
    loop {
        let due = lock(&auth).renew_in(std::time::Instant::now());
        match due {
            None => changed.notified().await,
            Some(d) if !d.is_zero() => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = changed.notified() => {}
                }
            }
            Some(_) => {
                let Some(i) = inner.upgrade() else { return };
                // Not awaited here: the renewal retires this connection, and this task with it.
                let backoff = i.backoff;
                tokio::spawn(i.renew(id));
                // Still here: that renewal failed (the service or nats-server is down). Again,
                // after a backoff: the connection lives on until its JWT expires.
                tokio::time::sleep(backoff.delay(failures).max(Duration::from_secs(1))).await;
                failures += 1;
            }
        }
    }
}

/// Forward one room's messages to its channel.
async fn forward(inner: Weak<Inner>, room: String, mut sub: async_nats::Subscriber) {
    while let Some(m) = sub.next().await {
        let Some(i) = inner.upgrade() else { return };
        let from = m
            .subject
            .as_str()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string();
        let (text, id) = message::parse(&m.payload);
        if let Some(id) = &id
            && !lock(&i.seen).entry(room.clone()).or_default().first(&from, id)
        {
            continue; // heard on the other connection of a join
        }
        let _ = i.channel(&room).send(Message {
            room: room.clone(),
            from,
            text,
            id,
        });
    }
}

/// React to what the connection reports: reconnect on a lame-duck notice, refresh the token
/// after an authorization error, leave a room whose subscription nats-server refuses after
/// a reconnect.
async fn watch(
    inner: Weak<Inner>,
    client: Client,
    list: Arc<Mutex<Vec<String>>>,
    forwarders: Arc<Mutex<HashMap<String, JoinHandle<()>>>>,
    auth: credentials::Shared,
    early: Vec<async_nats::Event>,
    mut rx: mpsc::UnboundedReceiver<async_nats::Event>,
) {
    let mut pending = early.into_iter();
    loop {
        let e = match pending.next() {
            Some(e) => e,
            None => match rx.recv().await {
                Some(e) => e,
                None => return,
            },
        };
        let Some(i) = inner.upgrade() else { return };
        match e {
            async_nats::Event::LameDuckMode => {
                i.emit(Event::LameDuck);
                // The grant may have changed: the reconnect asks for fresh credentials.
                lock(&auth).forget();
                if let Err(e) = client.force_reconnect().await {
                    tracing::warn!(error = %e, "reconnect after a lame-duck notice failed");
                }
            }
            async_nats::Event::Connected => i.emit(Event::Connected),
            async_nats::Event::Disconnected => i.emit(Event::Disconnected),
            async_nats::Event::ServerError(ServerError::AuthorizationViolation) => {
                i.session.mark_stale().await
            }
            async_nats::Event::ServerError(ServerError::Other(s))
            | async_nats::Event::ClientError(ClientError::Other(s)) => {
                let lower = s.to_ascii_lowercase();
                if lower.contains("authorization violation") || lower.contains("authentication expired") {
                    i.session.mark_stale().await;
                } else if let Some(subject) = refused_publish(&s) {
                    let user = i.session.user().to_string();
                    let held = lock(&list).clone();
                    if let Some(room) = held
                        .into_iter()
                        .find(|r| ServerConfig::render(&i.config.write_subject, r, &user) == subject)
                        && lock(&i.read_only).insert(room.clone())
                    {
                        i.emit(Event::PublishRefused { room });
                    }
                } else if let Some(subject) = refused_subject(&s) {
                    let held = lock(&list).clone();
                    if let Some(room) = i.room_of(subject, &held) {
                        lock(&list).retain(|r| *r != room);
                        if let Some(t) = lock(&forwarders).remove(&room) {
                            t.abort();
                        }
                        i.emit(Event::RoomLost { room });
                    }
                }
            }
            _ => {}
        }
    }
}

/// Read the user's notices: a grant of a held room changed, so reconnect (the rooms still
/// granted come back, the others are lost); every change is an event.
async fn read_notices(
    inner: Weak<Inner>,
    client: Client,
    list: Arc<Mutex<Vec<String>>>,
    auth: credentials::Shared,
    mut sub: async_nats::Subscriber,
) {
    while let Some(m) = sub.next().await {
        let Some(i) = inner.upgrade() else { return };
        let Ok(n) = serde_json::from_slice::<Notice>(&m.payload) else {
            tracing::debug!("a notice that is not JSON");
            continue;
        };
        if n.kind != "grants-changed" {
            continue;
        }
        let held = lock(&list).contains(&n.room);
        if n.access.contains("write") {
            lock(&i.read_only).remove(&n.room);
        }
        i.emit(Event::GrantsChanged {
            room: n.room,
            access: n.access,
            previous: n.previous,
        });
        if held {
            lock(&auth).forget();
        }
        if held && let Err(e) = client.force_reconnect().await {
            tracing::warn!(error = %e, "reconnect after a notice failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_subjects_are_read_from_the_server_error() {
        assert_eq!(
            refused_subject("Permissions Violation for Subscription to \"chat.bob1.>\""),
            Some("chat.bob1.>")
        );
        assert_eq!(
            refused_subject("permissions violation for subscription to \"chat.x.>\" using queue \"q\""),
            Some("chat.x.>\" using queue \"q")
        );
        assert_eq!(
            refused_subject("Permissions Violation for Publish to \"chat.a.b\""),
            None
        );
        assert_eq!(refused_subject("Permissions Violation for Subscription to"), None);
        assert_eq!(refused_subject("Authorization Violation"), None);
    }

    #[test]
    fn names_are_checked_before_any_subject_is_built() {
        for good in ["all1", "a-b_c", &"x".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a.b", "a>", "*", "a b", &"x".repeat(65), "é"] {
            assert_eq!(check_name(bad).unwrap_err().code(), "bad-room-name", "{bad:?}");
        }
    }

    #[test]
    fn templates_are_filled() {
        assert_eq!(
            ServerConfig::render("chat.{room}.{user}", "all1", "bob"),
            "chat.all1.bob"
        );
        assert_eq!(ServerConfig::render("_INBOX.{user}", "", "bob"), "_INBOX.bob");
    }
}
