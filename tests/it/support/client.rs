//! Chat clients: async-nats connections with a room list and a token, which report the
//! server errors they receive.

use async_nats::{Client, ConnectOptions, Event, ServerError};
use tokio::sync::mpsc;

use super::DEADLINE;

/// A client connection plus the server errors it received (permission violations).
pub struct Conn {
    pub client: Client,
    /// The user the token names (when it verifies).
    pub user: Option<String>,
    pub errors: mpsc::UnboundedReceiver<String>,
}

impl Conn {
    /// Wait for an asynchronous server error containing `needle`.
    pub async fn expect_error(&mut self, needle: &str) {
        let found = tokio::time::timeout(DEADLINE, async {
            while let Some(e) = self.errors.recv().await {
                if e.contains(needle) {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(matches!(found, Ok(true)), "no server error containing {needle:?}");
    }

    /// Connected to the server now (false once kicked, while reconnecting or refused).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// Where a chat client puts its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenIn {
    /// `auth_token`, with an empty password (nats.go, nats.js and async-nats can send both).
    AuthToken,
    /// The password, beside the rooms in `user`: the form every client can send (nats-py
    /// sends a token only without a user, the `nats` CLI has `--user` and `--password`).
    Pass,
}

/// A chat client with `token` in `auth_token` and `rooms` in `user`.
pub async fn connect_to(
    url: &str,
    token: Option<&str>,
    rooms: &str,
    inbox: Option<&str>,
) -> Result<Conn, async_nats::ConnectError> {
    connect_via(url, token, rooms, inbox, TokenIn::AuthToken).await
}

/// A chat client with `token` where `how` says and `rooms` in `user`.
pub async fn connect_via(
    url: &str,
    token: Option<&str>,
    rooms: &str,
    inbox: Option<&str>,
    how: TokenIn,
) -> Result<Conn, async_nats::ConnectError> {
    let password = match (how, token) {
        (TokenIn::Pass, Some(t)) => t.to_string(),
        _ => String::new(),
    };
    let mut opts = ConnectOptions::new().user_and_password(rooms.to_string(), password);
    if let (TokenIn::AuthToken, Some(t)) = (how, token) {
        opts = opts.token(t.to_string());
    }
    if let Some(i) = inbox {
        opts = opts.custom_inbox_prefix(i);
    }
    connect_watching(opts, url).await
}

/// A client presenting a user JWT and signing the server's nonce with `key` (operator mode's
/// NATS credentials), its inbox below `inbox`.
pub async fn connect_with_jwt(
    url: &str,
    jwt: &str,
    key: std::sync::Arc<nkeys::KeyPair>,
    inbox: &str,
) -> Result<Conn, async_nats::ConnectError> {
    let opts = ConnectOptions::with_jwt(jwt.to_string(), move |nonce| {
        let key = key.clone();
        async move { key.sign(&nonce).map_err(async_nats::AuthError::new) }
    })
    .custom_inbox_prefix(inbox);
    connect_watching(opts, url).await
}

/// Connect once (one reconnect at most), the server's errors collected in [`Conn::errors`].
async fn connect_watching(opts: ConnectOptions, url: &str) -> Result<Conn, async_nats::ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = opts
        .max_reconnects(Some(1))
        .connection_timeout(DEADLINE)
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let Event::ServerError(ServerError::Other(s)) = e {
                    let _ = tx.send(s);
                }
            }
        })
        .connect(url)
        .await?;
    Ok(Conn {
        client,
        user: None,
        errors: rx,
    })
}

/// Talk raw NATS over websocket to `url`: upgrade with `origin` (and the `nats_token` cookie
/// when given), CONNECT with `user` = rooms, then `extra`, then PING. Returns what the server
/// answered to the extra commands (or the refusal).
pub async fn ws_exchange(
    url: &str,
    origin: &str,
    cookie_token: Option<&str>,
    rooms: &str,
    extra: &str,
) -> String {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("Origin", origin.parse().unwrap());
    if let Some(t) = cookie_token {
        req.headers_mut()
            .insert("Cookie", format!("nats_token={t}").parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket upgrade");
    let _info = ws.next().await;
    let connect = format!(r#"CONNECT {{"user":"{rooms}","verbose":false,"pedantic":false,"protocol":1}}"#);
    ws.send(Message::binary(format!("{connect}\r\nPING\r\n").into_bytes()))
        .await
        .unwrap();
    let mut out = String::new();
    let mut sent_extra = false;
    let _ = tokio::time::timeout(DEADLINE, async {
        while let Some(Ok(m)) = ws.next().await {
            out.push_str(&String::from_utf8_lossy(&m.into_data()));
            if out.contains("-ERR 'Authorization Violation'") {
                break;
            }
            if out.contains("PONG") && !sent_extra {
                sent_extra = true;
                ws.send(Message::binary(format!("{extra}PING\r\n").into_bytes()))
                    .await
                    .unwrap();
                out.clear();
                continue;
            }
            // Give a permission error on the extra commands time to arrive before PONG.
            if sent_extra && out.contains("PONG") {
                break;
            }
        }
    })
    .await;
    out
}

/// `conn` (user `user`) talks in `room`: it hears its own message there (sent again until
/// the subscription is in place).
pub async fn talks(conn: &Conn, room: &str, user: &str) {
    use futures::StreamExt;
    let mut sub = conn.client.subscribe(format!("chat.{room}.>")).await.unwrap();
    conn.client.flush().await.unwrap();
    let subject = format!("chat.{room}.{user}");
    for _ in 0..50 {
        conn.client.publish(subject.clone(), "hi".into()).await.unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(std::time::Duration::from_millis(200), sub.next()).await {
            assert_eq!(m.subject.as_str(), subject);
            return;
        }
    }
    panic!("{user} does not hear itself in {room}");
}
