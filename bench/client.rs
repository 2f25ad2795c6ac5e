//! A raw NATS client: TCP connect, INFO, `CONNECT {auth_token, user, pass}` (or
//! `CONNECT {jwt, sig}` with the nonce of INFO signed) + PING, and PONG (authorized) or
//! `-ERR` (refused). The least client work per connection, so that the two cores go to
//! nats-server and the service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one connect may take before it counts as a timeout (nats-server's own
/// authorization timeout is 2 s, so a slow callout shows up as `-ERR` first).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a client authenticates with.
#[derive(Clone)]
pub enum Cred {
    /// A fixed CONNECT line (token and room list, or a static user's password) + PING.
    Line(Vec<u8>),
    /// A user JWT (NATS credentials) and the user nkey it was minted for: the CONNECT
    /// carries the JWT and the nonce of each INFO signed with the key.
    Jwt { jwt: String, key: Arc<nkeys::KeyPair> },
}

/// The CONNECT line a chat client sends, followed by PING.
pub fn connect_line(auth_token: &str, user: &str, pass: &str) -> Cred {
    let opts = serde_json::json!({
        "verbose": false, "pedantic": false, "tls_required": false,
        "auth_token": auth_token, "user": user, "pass": pass,
        "name": "bench", "lang": "rust", "version": "0.1.0", "protocol": 1,
        "echo": true, "headers": true, "no_responders": true,
    });
    Cred::Line(format!("CONNECT {opts}\r\nPING\r\n").into_bytes())
}

/// The CONNECT line (+ PING) of a JWT client answering the server's `nonce`.
fn jwt_connect_line(jwt: &str, key: &nkeys::KeyPair, nonce: &str) -> Result<Vec<u8>, Failure> {
    let sig = key
        .sign(nonce.as_bytes())
        .map_err(|e| Failure::Io(format!("signing the nonce: {e}")))?;
    let opts = serde_json::json!({
        "verbose": false, "pedantic": false, "tls_required": false,
        "jwt": jwt, "sig": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig),
        "name": "bench", "lang": "rust", "version": "0.1.0", "protocol": 1,
        "echo": true, "headers": true, "no_responders": true,
    });
    Ok(format!("CONNECT {opts}\r\nPING\r\n").into_bytes())
}

/// Why a connect did not end in PONG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// `-ERR 'Authorization Violation'` (or another `-ERR` during the handshake).
    Refused(String),
    Timeout,
    Io(String),
}

/// An authorized connection.
pub struct Connected {
    stream: TcpStream,
    /// The server's id for this client (for KICK), when asked for.
    pub cid: u64,
    pub server_id: String,
    pub latency: Duration,
}

impl Connected {
    /// Close at once with a reset (no TIME_WAIT pile-up over many thousands of connects).
    pub fn reset(self) {
        abort_on_close(&self.stream);
    }

    /// The connection, to speak the protocol on.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Stay connected (answering PING) until the server closes the connection.
    pub async fn wait_closed(mut self) {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if buf[..n].windows(6).any(|w| w == b"PING\r\n")
                        && self.stream.write_all(b"PONG\r\n").await.is_err()
                    {
                        return;
                    }
                }
            }
        }
    }
}

/// One connect: TCP, INFO, CONNECT + PING, PONG. `parse_info` reads the client id and the
/// server id from INFO (the storm needs them to kick).
pub async fn connect(addr: SocketAddr, cred: &Cred, parse_info: bool) -> Result<Connected, Failure> {
    let start = Instant::now();
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake(addr, cred, parse_info, start)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout),
    }
}

async fn handshake(
    addr: SocketAddr,
    cred: &Cred,
    parse_info: bool,
    start: Instant,
) -> Result<Connected, Failure> {
    let io = |e: std::io::Error| Failure::Io(e.kind().to_string());
    let mut stream = TcpStream::connect(addr).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let mut buf = Vec::with_capacity(2048);
    let info_end = read_until_crlf(&mut stream, &mut buf, 0).await?;
    let (mut cid, mut server_id) = (0, String::new());
    let signed;
    let connect = match cred {
        Cred::Line(line) if !parse_info => line,
        _ => {
            let line = &buf[..info_end];
            let json = line.strip_prefix(b"INFO ").ok_or(Failure::Io("no INFO".into()))?;
            let info: Info = serde_json::from_slice(json).map_err(|e| Failure::Io(e.to_string()))?;
            (cid, server_id) = (info.client_id, info.server_id);
            match cred {
                Cred::Line(line) => line,
                Cred::Jwt { jwt, key } => {
                    signed = jwt_connect_line(jwt, key, &info.nonce)?;
                    &signed
                }
            }
        }
    };
    buf.drain(..info_end + 2);
    stream.write_all(connect).await.map_err(io)?;
    loop {
        let end = read_until_crlf(&mut stream, &mut buf, 0).await?;
        let line = &buf[..end];
        if line == b"PONG" {
            return Ok(Connected {
                stream,
                cid,
                server_id,
                latency: start.elapsed(),
            });
        }
        if line.starts_with(b"-ERR") {
            let msg = String::from_utf8_lossy(line).into_owned();
            abort_on_close(&stream);
            return Err(Failure::Refused(msg));
        }
        // +OK, PING or an INFO update: skip the line.
        buf.drain(..end + 2);
    }
}

/// SO_LINGER 0: closing sends a reset and leaves no TIME_WAIT behind (never blocks).
fn abort_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

#[derive(serde::Deserialize)]
struct Info {
    #[serde(default)]
    client_id: u64,
    #[serde(default)]
    server_id: String,
    /// What a JWT client signs (only in INFO when the server has nkey or JWT users).
    #[serde(default)]
    nonce: String,
}

/// Read until `buf[from..]` holds a CRLF; returns the index of the CR.
async fn read_until_crlf(stream: &mut TcpStream, buf: &mut Vec<u8>, from: usize) -> Result<usize, Failure> {
    loop {
        if let Some(i) = buf[from..].windows(2).position(|w| w == b"\r\n") {
            return Ok(from + i);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) => return Err(Failure::Io("closed by server".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(Failure::Io(e.kind().to_string())),
        }
    }
}
