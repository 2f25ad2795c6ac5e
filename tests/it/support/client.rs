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
}

pub async fn connect_to(
    url: &str,
    token: Option<&str>,
    rooms: &str,
    inbox: Option<&str>,
) -> Result<Conn, async_nats::ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut opts = ConnectOptions::new()
        .user_and_password(rooms.to_string(), String::new())
        .max_reconnects(Some(1))
        .connection_timeout(DEADLINE)
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let Event::ServerError(ServerError::Other(s)) = e {
                    let _ = tx.send(s);
                }
            }
        });
    if let Some(t) = token {
        opts = opts.token(t.to_string());
    }
    if let Some(i) = inbox {
        opts = opts.custom_inbox_prefix(i);
    }
    let client = opts.connect(url).await?;
    Ok(Conn {
        client,
        user: None,
        errors: rx,
    })
}
