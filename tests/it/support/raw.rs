//! A raw NATS protocol client for tests that must send exact protocol lines (HPUB, queue
//! subscriptions, odd reply subjects) and see exactly what the server answers.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::DEADLINE;
use super::client::TokenIn;

/// A message as delivered (`MSG` or `HMSG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub subject: String,
    pub sid: String,
    pub reply: Option<String>,
    /// The header block of an `HMSG` (`NATS/1.0\r\n...`), if any.
    pub headers: Option<String>,
    pub payload: String,
}

/// One connection speaking the protocol by hand.
pub struct Raw {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Everything delivered so far, in order.
    pub delivered: Vec<Delivered>,
    /// Every `-ERR` text so far, in order.
    pub errors: Vec<String>,
    /// Asynchronous `INFO` lines seen after the first (lame-duck notices among them).
    pub infos: Vec<String>,
    closed: bool,
}

impl Raw {
    /// Connect, send `CONNECT <connect>` and a `PING`; `Err` with the server's `-ERR` text
    /// (for example `Authorization Violation`) when it refuses.
    pub async fn connect(port: u16, connect: &serde_json::Value) -> Result<Raw, String> {
        Self::connect_answering(port, |_| connect.clone()).await
    }

    /// [`Raw::connect`] presenting a user JWT with the nonce of INFO signed by `key`, as a
    /// client with operator mode's NATS credentials does.
    pub async fn connect_jwt(port: u16, jwt: &str, key: &nkeys::KeyPair, echo: bool) -> Result<Raw, String> {
        Self::connect_answering(port, |nonce| {
            let sig = key.sign(nonce.as_bytes()).expect("a user key signs");
            Self::jwt_body(jwt, Some(&sig), echo)
        })
        .await
    }

    /// The CONNECT body of a client presenting `jwt` and `sig` (the server's nonce signed).
    pub fn jwt_body(jwt: &str, sig: Option<&[u8]>, echo: bool) -> serde_json::Value {
        use base64::Engine;
        let mut v = serde_json::json!({
            "verbose": false, "pedantic": false, "lang": "raw", "version": "0",
            "protocol": 1, "headers": true, "no_responders": true, "echo": echo, "jwt": jwt,
        });
        if let Some(sig) = sig {
            v["sig"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sig)
                .into();
        }
        v
    }

    /// [`Raw::connect`] with the CONNECT body made from the `nonce` of the server's INFO
    /// ("" when it sent none).
    pub async fn connect_answering(
        port: u16,
        connect: impl FnOnce(&str) -> serde_json::Value,
    ) -> Result<Raw, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (r, w) = stream.into_split();
        let mut raw = Raw {
            reader: BufReader::new(r),
            writer: w,
            delivered: Vec::new(),
            errors: Vec::new(),
            infos: Vec::new(),
            closed: false,
        };
        let info = raw.line().await.ok_or("no INFO")?;
        let Some(info) = info.strip_prefix("INFO ") else {
            return Err(format!("expected INFO, got {info:?}"));
        };
        let info: serde_json::Value = serde_json::from_str(info).map_err(|e| format!("INFO: {e}"))?;
        let connect = connect(info["nonce"].as_str().unwrap_or_default());
        raw.send(&format!("CONNECT {connect}\r\n")).await;
        raw.sync().await.map(|_| raw)
    }

    /// The CONNECT body of a chat client: `auth_token` = token, `user` = room list.
    pub fn connect_body(token: Option<&str>, rooms: &str, echo: bool) -> serde_json::Value {
        Self::connect_body_via(token, rooms, echo, TokenIn::AuthToken)
    }

    /// The CONNECT body of a chat client with the token where `how` says.
    pub fn connect_body_via(token: Option<&str>, rooms: &str, echo: bool, how: TokenIn) -> serde_json::Value {
        let mut v = serde_json::json!({
            "verbose": false, "pedantic": false, "lang": "raw", "version": "0",
            "protocol": 1, "headers": true, "no_responders": true, "echo": echo,
            "user": rooms, "pass": "",
        });
        if let Some(t) = token {
            let field = match how {
                TokenIn::AuthToken => "auth_token",
                TokenIn::Pass => "pass",
            };
            v[field] = t.into();
        }
        v
    }

    /// Write protocol text as is.
    pub async fn send(&mut self, text: &str) {
        if self.writer.write_all(text.as_bytes()).await.is_err() {
            self.closed = true;
        }
    }

    /// `PING` and read everything up to its `PONG`: every command sent before has been
    /// processed by the server, and everything it sent in answer has been read.
    /// `Err` with the `-ERR` text if the server closed the connection.
    pub async fn sync(&mut self) -> Result<(), String> {
        self.send("PING\r\n").await;
        let done = tokio::time::timeout(DEADLINE, async {
            loop {
                let Some(line) = self.line().await else {
                    return Err(self.errors.last().cloned().unwrap_or_else(|| "closed".into()));
                };
                if line == "PONG" {
                    return Ok(());
                }
                self.take(&line).await?;
            }
        })
        .await;
        done.unwrap_or_else(|_| Err("no PONG within the deadline".into()))
    }

    async fn take(&mut self, line: &str) -> Result<(), String> {
        let mut parts = line.split_whitespace();
        match parts.next() {
            Some("MSG") => {
                let p: Vec<&str> = parts.collect();
                let (subject, sid, reply, len) = match p.as_slice() {
                    [s, i, n] => (s, i, None, n),
                    [s, i, r, n] => (s, i, Some(r.to_string()), n),
                    _ => return Err(format!("bad MSG line {line:?}")),
                };
                let len: usize = len.parse().map_err(|_| format!("bad size in {line:?}"))?;
                let body = self.body(len).await?;
                self.delivered.push(Delivered {
                    subject: subject.to_string(),
                    sid: sid.to_string(),
                    reply,
                    headers: None,
                    payload: body,
                });
            }
            Some("HMSG") => {
                let p: Vec<&str> = parts.collect();
                let (subject, sid, reply, hlen, total) = match p.as_slice() {
                    [s, i, h, t] => (s, i, None, h, t),
                    [s, i, r, h, t] => (s, i, Some(r.to_string()), h, t),
                    _ => return Err(format!("bad HMSG line {line:?}")),
                };
                let hlen: usize = hlen.parse().map_err(|_| format!("bad size in {line:?}"))?;
                let total: usize = total.parse().map_err(|_| format!("bad size in {line:?}"))?;
                let body = self.body(total).await?;
                let (h, p) = body.split_at(hlen.min(body.len()));
                self.delivered.push(Delivered {
                    subject: subject.to_string(),
                    sid: sid.to_string(),
                    reply,
                    headers: Some(h.to_string()),
                    payload: p.to_string(),
                });
            }
            Some("-ERR") => self.errors.push(line[4..].trim().trim_matches('\'').to_string()),
            Some("PING") => self.send("PONG\r\n").await,
            Some("INFO") => self.infos.push(line.to_string()),
            Some("+OK") | Some("PONG") => {}
            _ => return Err(format!("unexpected line {line:?}")),
        }
        Ok(())
    }

    async fn body(&mut self, len: usize) -> Result<String, String> {
        let mut buf = vec![0u8; len + 2];
        self.reader
            .read_exact(&mut buf)
            .await
            .map_err(|e| format!("short body: {e}"))?;
        buf.truncate(len);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line).await {
            Ok(0) | Err(_) => {
                self.closed = true;
                None
            }
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
        }
    }

    /// Messages delivered since `from`, with their subjects and payloads.
    pub fn since(&self, from: usize) -> &[Delivered] {
        &self.delivered[from.min(self.delivered.len())..]
    }
}

/// `PUB subject [reply] payload`.
pub fn pub_line(subject: &str, reply: Option<&str>, payload: &str) -> String {
    let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
    format!("PUB {subject}{reply} {}\r\n{payload}\r\n", payload.len())
}

/// `HPUB subject [reply]` with one header and a payload.
pub fn hpub_line(subject: &str, reply: Option<&str>, header: (&str, &str), payload: &str) -> String {
    let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
    let headers = format!("NATS/1.0\r\n{}: {}\r\n\r\n", header.0, header.1);
    let total = headers.len() + payload.len();
    format!(
        "HPUB {subject}{reply} {} {total}\r\n{headers}{payload}\r\n",
        headers.len()
    )
}

/// Whether a subscription or permission `pattern` matches `subject`, the way nats-server's
/// sublist does: `*` and `>` in the pattern are wildcards; in the subject they are plain
/// tokens (so a wildcard subscription is allowed only when the pattern covers it).
pub fn matches(pattern: &str, subject: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    for (i, token) in p.iter().enumerate() {
        match *token {
            ">" => return s.len() > i,
            "*" if i < s.len() => {}
            t if i < s.len() && s[i] == t => {}
            _ => return false,
        }
    }
    p.len() == s.len()
}
