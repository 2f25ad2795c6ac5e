//! The fuzz targets' bodies (request path, permission files, access tokens) over the shared
//! test world: each input is decoded into choices, run, and its verdict checked against
//! what the grant allows. Used by `fuzz/` (cargo-fuzz) and replayed by the tests.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use nkeys::{KeyPair, KeyPairType};
use serde_json::{Value, json};

use super::{NOW, PERMISSIONS, TOKEN_AUDIENCE, TOKEN_ISSUER, World};
use crate::callout::decision::{Inputs, Policy, decide};
use crate::callout::{Callout, Verdict};
use crate::claims::request::{self, AuthRequest, ClientInfo, ConnectOpts};
use crate::claims::{self, encode};
use crate::names::{MAX_NAME_LEN, validate_name};
use crate::permissions::{Access, Pattern, Privileges, Role, Snapshot};
use crate::tokens::revocation::RevocationIndex;
use crate::tokens::{AccessClaims, MintRequest, TokenError};
use crate::wire::privilege_subjects;

/// Users of [`PERMISSIONS`] and names that are not (or not valid) users; the token pool
/// mints one token for each.
const TOKEN_USERS: &[&str] = &[
    "bob", "alice", "root", "sysop", "svc", "ghost", "bad.user", "", "*",
];

/// Room names and fragments the structured request variant builds room lists from.
const ROOM_WORDS: &[&str] = &[
    "all1", "bob1", "alice1", "news", "drop", "ops", "dev", "team-x", "team-", "team-a.b", "xzy", "x-y",
    "x*y", "xy", "*", ">", ".", "a.b", "chat", "callout", "sys", "_INBOX", "é", "\u{0}", " all1", "all1 ",
    "\t", "$SYS", "all1>", "BOB1", "bob1.>", "team-*",
];
const SEPARATORS: &[&str] = &[";", ",", ";;", ".", " ", "|", "", ";\n", "\u{3b}\u{200b}"];

/// Everything the targets share, built once per process.
pub struct Fuzz {
    /// The fixed keys.
    pub w: World,
    /// A callout without an xkey: plain requests only.
    pub plain: Callout,
    /// A callout with an xkey: sealed requests only.
    pub sealed: Callout,
    pub snapshot: Snapshot,
    pub policy: Policy,
    /// One token per `TOKEN_USERS` entry, then expired, capped-session, not-yet-valid
    /// and with-device tokens for bob.
    pub pool: Vec<(String, AccessClaims)>,
}

static FUZZ: LazyLock<Fuzz> = LazyLock::new(build);

pub fn world() -> &'static Fuzz {
    &FUZZ
}

fn build() -> Fuzz {
    let w = World::fixed();
    let snapshot = || super::snapshot(PERMISSIONS);
    let mint = |user: &str, device: Option<&str>, sexp: Option<i64>, now: i64| {
        let req = MintRequest {
            user,
            session: "s1",
            device,
            ttl: Duration::from_secs(300),
            session_expires_at: sexp,
            asserted: None,
            client_id: None,
        };
        w.tokens.mint_with_id(&req, "t1", now).expect("mint")
    };
    let mut pool: Vec<_> = TOKEN_USERS.iter().map(|u| mint(u, None, None, NOW)).collect();
    pool.push(mint("bob", None, None, NOW - 1000));
    pool.push(mint("bob", None, Some(NOW + 100), NOW));
    pool.push(mint("bob", None, None, NOW + 1000));
    pool.push(mint("alice", Some("d1"), None, NOW));
    Fuzz {
        plain: w.callout(snapshot(), false),
        sealed: w.callout(snapshot(), true),
        snapshot: snapshot(),
        policy: super::policy(),
        pool,
        w,
    }
}

impl Fuzz {
    /// Replace `$S` (server key), `$I` (our issuer), `$X` (server curve key), `$K` (token
    /// kid) and `$0`..`$9` (pool tokens), so fuzz inputs can name them.
    pub fn expand(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            if data[i] == b'$' && i + 1 < data.len() {
                let sub = match data[i + 1] {
                    b'S' => Some(self.w.server.public_key()),
                    b'I' => Some(self.w.issuer_public()),
                    b'X' => Some(self.w.server_xkey.public_key()),
                    b'K' => Some(self.w.kid.clone()),
                    d @ b'0'..=b'9' => Some(self.pool[usize::from(d - b'0')].0.clone()),
                    _ => None,
                };
                if let Some(s) = sub {
                    out.extend_from_slice(s.as_bytes());
                    i += 2;
                    continue;
                }
            }
            out.push(data[i]);
            i += 1;
        }
        out
    }

    /// A request as nats-server 2.15.1 writes it, for the first pool token and `all1;bob1`.
    pub fn request_json(&self) -> Value {
        let mut v = self.w.request_claims(&self.pool[0].0, "all1;bob1", NOW);
        v["jti"] = json!("X");
        v["nats"]["user_nkey"] = json!(
            KeyPair::new_from_raw(KeyPairType::User, [6; 32])
                .expect("user key")
                .public_key()
        );
        v
    }
}

/// Reads the fuzz input as a sequence of choices; past the end every read is zero/empty.
pub struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes(data)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }
    /// A string of up to 255 bytes (length byte first), lossily decoded.
    pub fn string(&mut self) -> String {
        let n = usize::from(self.byte());
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    pub fn i64(&mut self) -> i64 {
        let mut raw = [0u8; 8];
        let b = self.take(8);
        raw[..b.len()].copy_from_slice(b);
        i64::from_le_bytes(raw)
    }
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[usize::from(self.byte()) % items.len()].clone()
    }
}

// ---------------------------------------------------------------------------------------
// Target `request`: the callout request path.

/// Fuzz the request path. The first byte picks the variant:
/// 0 raw bytes to the plain callout; 1 raw bytes as a sealed payload; 2 raw bytes sealed
/// properly (so they reach verification); 3 `request::verify` directly; 4 raw bytes as the
/// claims of a server-signed JWT (`$S`, `$I`, ... expanded); otherwise the structured
/// variant: a valid request mutated field by field, signed, optionally sealed.
pub fn request(data: &[u8]) {
    let w = world();
    let mut b = Bytes::new(data);
    match b.byte() % 8 {
        0 => {
            let (reply, verdict) = w.plain.handle(b.rest(), None, NOW);
            check_reply(w, false, &reply, &verdict, None);
        }
        1 => {
            let header = match b.byte() % 3 {
                0 => None,
                1 => Some(w.w.server_xkey.public_key()),
                _ => Some(b.string()),
            };
            let (reply, verdict) = w.sealed.handle(b.rest(), header.as_deref(), NOW);
            check_reply(w, true, &reply, &verdict, None);
        }
        2 => {
            let sealed = w.w.seal(b.rest());
            let header = w.w.server_xkey.public_key();
            let (reply, verdict) = w.sealed.handle(&sealed, Some(&header), NOW);
            check_reply(w, true, &reply, &verdict, None);
        }
        3 => {
            let data = b.rest();
            if let Ok(req) = request::verify(data, &w.w.issuer_public(), NOW) {
                assert!(!req.user_nkey.is_empty(), "verified request without user nkey");
                assert_eq!(req.kind, request::REQUEST_TYPE);
            }
            let _ = std::str::from_utf8(data).map(claims::decode_verified::<Value>);
        }
        4 => {
            let sealed = b.byte() & 1 == 1;
            let body = w.expand(b.rest());
            let requested = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                v.pointer("/nats/connect_opts/user")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            send(w, sealed, w.w.server_signed(&body), requested.as_deref());
        }
        _ => structured(w, &mut b),
    }
}

/// Send a server-signed request JWT through the plain or the sealed callout and check the reply.
fn send(w: &Fuzz, sealed: bool, jwt: String, requested: Option<&str>) {
    let (reply, verdict) = if sealed {
        let header = w.w.server_xkey.public_key();
        w.sealed.handle(&w.w.seal(jwt.as_bytes()), Some(&header), NOW)
    } else {
        w.plain.handle(jwt.as_bytes(), None, NOW)
    };
    check_reply(w, sealed, &reply, &verdict, requested);
}

/// Paths into a request that a mutation may replace or remove.
const REQUEST_PATHS: &[&[&str]] = &[
    &["aud"],
    &["exp"],
    &["iat"],
    &["iss"],
    &["sub"],
    &["nats"],
    &["nats", "server_id"],
    &["nats", "server_id", "id"],
    &["nats", "server_id", "xkey"],
    &["nats", "user_nkey"],
    &["nats", "client_info"],
    &["nats", "client_info", "id"],
    &["nats", "client_info", "kind"],
    &["nats", "client_info", "type"],
    &["nats", "connect_opts"],
    &["nats", "connect_opts", "auth_token"],
    &["nats", "connect_opts", "user"],
    &["nats", "connect_opts", "pass"],
    &["nats", "type"],
    &["nats", "version"],
];

fn slot<'v>(v: &'v mut Value, path: &[&str]) -> Option<&'v mut Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = v;
    for p in parents {
        cur = cur.get_mut(*p)?;
    }
    cur.as_object_mut().map(|o| o.entry(*last).or_insert(Value::Null))
}

fn set(v: &mut Value, path: &[&str], value: Value) {
    if let Some(s) = slot(v, path) {
        *s = value;
    }
}

fn remove(v: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = &mut *v;
    for p in parents {
        let Some(next) = cur.get_mut(*p) else { return };
        cur = next;
    }
    if let Some(o) = cur.as_object_mut() {
        o.remove(*last);
    }
}

/// A JSON value of any type, often the right one.
fn any_value(w: &Fuzz, b: &mut Bytes<'_>) -> Value {
    match b.byte() % 20 {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(i64::MAX),
        5 => json!(i64::MIN),
        6 => json!(u64::MAX),
        7 => json!(1.5),
        8 => json!(""),
        9 => json!(w.w.issuer_public()),
        10 => json!(w.w.server.public_key()),
        11 => json!(
            KeyPair::new_from_raw(KeyPairType::Server, [7; 32])
                .expect("key")
                .public_key()
        ),
        12 => json!([]),
        13 => json!({}),
        14 => json!([b.string()]),
        15 => json!({ "user": b.string() }),
        16 => json!(b.i64()),
        _ => json!(b.string()),
    }
}

/// A room list: words and separators, or one word repeated many times.
fn room_list(b: &mut Bytes<'_>) -> String {
    let mut out = String::new();
    if b.byte().is_multiple_of(4) {
        let word = b.pick(ROOM_WORDS);
        let sep = b.pick(SEPARATORS);
        let n = usize::from(b.byte()) * 16;
        for _ in 0..n {
            out.push_str(word);
            out.push_str(sep);
        }
        return out;
    }
    let n = b.byte() % 64;
    for _ in 0..n {
        match b.byte() % 8 {
            0 => out.push_str(&b.string()),
            1 => out.push_str(&"r".repeat(MAX_NAME_LEN + usize::from(b.byte() % 3) - 1)),
            _ => out.push_str(b.pick(ROOM_WORDS)),
        }
        out.push_str(b.pick(SEPARATORS));
    }
    out
}

/// A valid token with a few bytes changed.
fn mutated_token(w: &Fuzz, b: &mut Bytes<'_>) -> (Vec<u8>, usize) {
    let i = usize::from(b.byte()) % w.pool.len();
    let mut t = w.pool[i].0.clone().into_bytes();
    for _ in 0..=(b.byte() % 4) {
        if t.is_empty() {
            break;
        }
        let pos = (usize::from(b.byte()) << 8 | usize::from(b.byte())) % t.len();
        match b.byte() % 4 {
            0 => t[pos] ^= 1 << (b.byte() % 8),
            1 => {
                t.remove(pos);
            }
            2 => t.insert(pos, b.byte()),
            _ => t.truncate(pos),
        }
    }
    (t, i)
}

fn token_value(w: &Fuzz, b: &mut Bytes<'_>) -> Value {
    match b.byte() % 6 {
        0 => json!(b.string()),
        1 => json!("null"),
        2 => {
            let (t, _) = mutated_token(w, b);
            json!(String::from_utf8_lossy(&t))
        }
        3 => Value::Null,
        _ => json!(b.pick(&w.pool).0),
    }
}

/// A valid request, mutated up to 16 times, signed by the server and sent.
fn structured(w: &Fuzz, b: &mut Bytes<'_>) {
    let sealed = b.byte() & 1 == 1;
    let mut v = w.request_json();
    for _ in 0..16 {
        if b.is_empty() {
            break;
        }
        let user = &["nats", "connect_opts", "user"][..];
        match b.byte() % 10 {
            0 => set(&mut v, user, json!(b.string())),
            1 | 2 => set(&mut v, user, json!(room_list(b))),
            3 => set(&mut v, &["nats", "connect_opts", "auth_token"], token_value(w, b)),
            4 => {
                let kind = b.pick(&["Client", "Leafnode", "Router", "", "client", "Gateway"]);
                let ty = b.pick(&["nats", "websocket", "mqtt", "leafnode", "", "NATS"]);
                set(&mut v, &["nats", "client_info", "kind"], json!(kind));
                set(&mut v, &["nats", "client_info", "type"], json!(ty));
            }
            5 => {
                let path = b.pick(REQUEST_PATHS);
                let value = any_value(w, b);
                set(&mut v, path, value);
            }
            6 => remove(&mut v, b.pick(REQUEST_PATHS)),
            7 => {
                let exp = [
                    NOW - 10,
                    NOW - 2,
                    NOW - 1,
                    NOW,
                    NOW + 1,
                    0,
                    -1,
                    i64::MAX,
                    i64::MIN,
                    b.i64(),
                ];
                let exp = b.pick(&exp);
                set(&mut v, &["exp"], json!(exp));
            }
            8 => set(&mut v, user, Value::Null),
            _ => {
                let id = b.pick(&[0, 1, u64::MAX, i64::MAX as u64 + 1]);
                set(&mut v, &["nats", "client_info", "id"], json!(id));
            }
        }
    }
    let requested = v
        .pointer("/nats/connect_opts/user")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let jwt = encode(&v, &w.w.server).expect("sign request");
    send(w, sealed, jwt, requested.as_deref());
}

/// The reply must match the verdict, be signed by our issuer, and an allow must carry
/// only subjects the user was granted (see [`check_subjects`]).
fn check_reply(w: &Fuzz, sealed: bool, reply: &[u8], verdict: &Verdict, requested: Option<&str>) {
    if let Verdict::Refused(_) = verdict {
        assert!(reply.is_empty(), "a refused request must get an empty reply");
        return;
    }
    let reply = if sealed {
        w.w.open_reply(reply)
            .expect("a sealed request gets a reply sealed to the server")
    } else {
        reply.to_vec()
    };
    let reply = String::from_utf8(reply).expect("reply is UTF-8");
    let (iss, resp) = claims::decode_verified::<Value>(&reply).expect("reply verifies");
    assert_eq!(iss, w.w.issuer_public(), "reply issuer");
    assert_eq!(resp["nats"]["type"], "authorization_response");
    match (verdict, resp["nats"]["jwt"].as_str()) {
        (Verdict::Allowed(allowed), Some(user_jwt)) => {
            let (iss, user) = claims::decode_verified::<Value>(user_jwt).expect("user JWT verifies");
            assert_eq!(iss, w.w.issuer_public(), "user JWT issuer");
            assert_eq!(user["aud"], w.policy.account.as_str(), "user JWT audience");
            assert_eq!(
                user["sub"], resp["sub"],
                "user JWT subject is the connection's nkey"
            );
            let exp = user["exp"].as_i64().expect("user JWT exp");
            assert!(
                exp > NOW && exp <= NOW + w.policy.user_jwt_ttl.as_secs() as i64,
                "exp {exp}"
            );
            let name = user["name"].as_str().expect("user JWT name");
            assert_eq!(name, allowed.0.identity.sub);
            assert!(user["nats"].get("resp").is_none(), "no response permission");
            let list = |dir: &str| -> Vec<String> {
                let strings = |key: &str| -> Vec<String> {
                    user["nats"][dir][key]
                        .as_array()
                        .unwrap_or_else(|| panic!("an explicit {dir} {key} list"))
                        .iter()
                        .map(|s| s.as_str().expect("subject").to_owned())
                        .collect()
                };
                let (allow, deny) = (strings("allow"), strings("deny"));
                // An empty allow list means allow-all: nothing allowed is a deny of all.
                let want: &[&str] = if allow.is_empty() { &[">"] } else { &[] };
                assert_eq!(deny, want, "{dir}: deny all exactly when nothing is allowed");
                allow
            };
            let (publish, subscribe) = (list("pub"), list("sub"));
            let roles = &w.policy.token_reset_roles;
            if let Err(e) = check_subjects(&w.snapshot, roles, name, requested, &publish, &subscribe) {
                panic!("{e}\nrequested {requested:?}\npub {publish:?}\nsub {subscribe:?}");
            }
        }
        (Verdict::Denied(deny), None) => {
            assert_eq!(resp["nats"]["error"], deny.deny.code(), "deny reason");
        }
        (v, jwt) => panic!(
            "verdict {v:?} does not match the reply (user JWT: {})",
            jwt.is_some()
        ),
    }
}

/// Whether `publish` and `subscribe` are explicit, wildcard-free lists of what `user` was
/// granted: `_INBOX.<user>.>` and `nats-callout.notice.<user>` to subscribe (never to
/// publish); `chat.<room>.>` to subscribe
/// and `chat.<room>.<user>` to publish for a valid requested room the snapshot lets the
/// user read or write; the subjects of the user's role-derived privileges. `requested` is
/// the CONNECT `user` field, when known.
pub fn check_subjects(
    snapshot: &Snapshot,
    token_reset_roles: &[Role],
    user: &str,
    requested: Option<&str>,
    publish: &[String],
    subscribe: &[String],
) -> Result<(), String> {
    validate_name(user).map_err(|e| format!("granted user {user:?} is not a valid name: {e}"))?;
    let u = snapshot
        .user(user)
        .ok_or_else(|| format!("granted user {user:?} is not in the permission files"))?;
    let inbox = format!("_INBOX.{user}.>");
    if !subscribe.contains(&inbox) {
        return Err("the user's inbox is not readable".into());
    }
    let requested: Option<HashSet<&str>> = requested.map(|r| r.split([';', ',']).collect());
    let room_ok = |room: &str, can: fn(Access) -> bool| {
        validate_name(room).is_ok()
            && requested.as_ref().is_none_or(|r| r.contains(room))
            && snapshot.access(u, room).is_some_and(can)
    };
    for s in publish.iter().chain(subscribe) {
        let tokens: Vec<&str> = s.split('.').collect();
        let wild = tokens.iter().enumerate().any(|(i, t)| {
            t.is_empty() || t.contains('*') || (t.contains('>') && (*t != ">" || i + 1 != tokens.len()))
        });
        if wild || s.chars().any(char::is_whitespace) {
            return Err(format!("subject {s:?} has a wildcard, empty token or whitespace"));
        }
    }
    let privileged: Vec<String> = privilege_subjects(Privileges::of(u, token_reset_roles)).collect();
    for s in publish {
        let tokens: Vec<&str> = s.split('.').collect();
        let ok = privileged.contains(s)
            || matches!(tokens[..], ["chat", room, last] if last == user && room_ok(room, Access::can_write));
        if !ok {
            return Err(format!("publish {s:?} is not a grant of {user}"));
        }
    }
    for s in subscribe {
        let tokens: Vec<&str> = s.split('.').collect();
        let ok = *s == inbox
            || *s == crate::wire::notice_subject(user)
            || matches!(tokens[..], ["chat", room, ">"] if room_ok(room, Access::can_read));
        if !ok {
            return Err(format!("subscribe {s:?} is not a grant of {user}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Target `access_token`: `TokenKeys::verify`.

/// Fuzz access-token verification. The first byte picks: 0 an arbitrary string;
/// 1 a valid token with a few bytes changed; 2 an arbitrary header and body signed with
/// the real key (`$K` is the kid); 3 a minted token with arbitrary claims, round-tripped.
pub fn access_token(data: &[u8]) {
    let w = world();
    let mut b = Bytes::new(data);
    match b.byte() % 4 {
        0 => check_token(w, &String::from_utf8_lossy(b.rest()), None),
        1 => {
            let (t, i) = mutated_token(w, &mut b);
            check_token(w, &String::from_utf8_lossy(&t), Some(&w.pool[i].1));
        }
        2 => {
            let header = w.expand(b.string().as_bytes());
            let body = w.expand(b.rest());
            let mut token = URL_SAFE_NO_PAD.encode(header);
            token.push('.');
            token.push_str(&URL_SAFE_NO_PAD.encode(body));
            let sig = w.w.signing.sign(token.as_bytes());
            token.push('.');
            token.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
            check_token(w, &token, None);
        }
        _ => {
            let user = b.string();
            let session = b.string();
            let device = (b.byte() & 1 == 1).then(|| b.string());
            let ttl = Duration::from_secs(b.pick(&[0, 1, 60, 300, 86_400, 10 * 365 * 86_400]));
            let sexp = b.pick(&[None, Some(NOW - 1), Some(NOW), Some(NOW + 1), Some(NOW + 100)]);
            let at = b.pick(&[NOW, NOW - 299, NOW - 300, NOW + 60, NOW + 61]);
            let req = MintRequest {
                user: &user,
                session: &session,
                device: device.as_deref(),
                ttl,
                session_expires_at: sexp,
                asserted: None,
                client_id: None,
            };
            let tid = b.string();
            let (token, claims) = match w.w.tokens.mint_with_id(&req, &tid, at) {
                Ok(minted) => minted,
                // Longer than `tokens.max_token_ttl`: refused at mint, never issued.
                Err(TokenError::Lifetime { .. }) => {
                    assert!(ttl > w.w.tokens.max_lifetime(), "{ttl:?} refused");
                    return;
                }
                Err(e) => panic!("mint: {e}"),
            };
            let want = if claims.exp <= NOW {
                Err("access-token-expired")
            } else if claims.iat > NOW + 60 {
                Err("token-not-yet-valid")
            } else {
                Ok(claims.clone())
            };
            for got in [
                w.w.tokens.verify(&token, NOW),
                w.w.tokens.verify_uncached(&token, NOW),
            ] {
                assert_eq!(got.map_err(|e| e.code()), want, "round trip of {claims:?}");
            }
        }
    }
}

fn check_token(w: &Fuzz, token: &str, original: Option<&AccessClaims>) {
    let uncached = w.w.tokens.verify_uncached(token, NOW);
    let cached = w.w.tokens.verify(token, NOW);
    assert_eq!(cached, uncached, "the verified-token cache changes the result");
    match cached {
        Ok(c) => {
            assert_eq!(c.iss, TOKEN_ISSUER);
            assert_eq!(c.aud, TOKEN_AUDIENCE);
            assert!(c.exp > NOW, "expired token accepted");
            assert!(c.iat <= NOW + 60, "future token accepted");
            if let Some(o) = original {
                assert_eq!(&c, o, "a changed token verified with other claims");
            }
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Target `permissions`: permission files and names.

/// Fuzz permission-file parsing: the input (lossily UTF-8) as one TOML file, as one JSON
/// file, split at `\u{1}` into a TOML and a second file, and as a name and a pattern.
pub fn permissions(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_name(&text);
    for piece in text.split([';', ',', '\n']).take(64) {
        check_name(piece);
    }
    for name in ["f.toml", "f.json"] {
        check_snapshot(&[(name.to_string(), text.to_string())]);
    }
    if let Some((a, c)) = text.split_once('\u{1}') {
        let second = if c.trim_start().starts_with('{') {
            "b.json"
        } else {
            "b.toml"
        };
        check_snapshot(&[
            ("a.toml".to_string(), a.to_string()),
            (second.to_string(), c.to_string()),
        ]);
    }
}

fn check_name(s: &str) {
    let want = !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    assert_eq!(validate_name(s).is_ok(), want, "validate_name({s:?})");
    if let Ok(p) = Pattern::parse(s) {
        assert_eq!(p.to_string(), s, "a pattern prints as written");
        let (prefix, suffix) = s.split_once('*').expect("a pattern has a star");
        for fill in ["a", "Z9_-", ""] {
            let room = format!("{prefix}{fill}{suffix}");
            assert_eq!(p.matches(&room), !fill.is_empty(), "{s:?} against {room:?}");
        }
    }
}

/// Rooms asked for when deciding against a fuzzed snapshot, besides the rooms it names.
const PROBE_ROOMS: &[&str] = &["", "a.b", "*", ">", "x y", "team-x", "a", "é"];

fn check_snapshot(sources: &[(String, String)]) {
    match Snapshot::from_sources(sources) {
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without problems");
            for p in &errors.0 {
                let (_, text) = sources
                    .iter()
                    .find(|(n, _)| *n == p.file)
                    .unwrap_or_else(|| panic!("problem names an unknown file: {p}"));
                let lines = text.split('\n').count();
                assert!(p.line <= lines, "{p}: past the last line ({lines})");
                let _ = p.to_string();
            }
        }
        Ok(s) => check_valid_snapshot(&s),
    }
}

fn check_valid_snapshot(s: &Snapshot) {
    let w = world();
    let rooms: HashSet<&str> = s.rooms().collect();
    for r in &rooms {
        assert!(validate_name(r).is_ok(), "room {r:?} is not a valid name");
    }
    let mut users: Vec<_> = s.users().collect();
    users.sort_by(|a, b| a.id().cmp(b.id()));
    for (n, u) in users.into_iter().enumerate() {
        assert!(
            validate_name(u.id()).is_ok(),
            "user {:?} is not a valid name",
            u.id()
        );
        assert!(s.user(u.id()).is_some());
        let listed: HashMap<String, Access> = s.rooms_for(u).into_iter().collect();
        for (room, a) in &listed {
            assert!(
                rooms.contains(room.as_str()),
                "{}: {room:?} listed but never named",
                u.id()
            );
            assert_eq!(
                s.access(u, room),
                Some(*a),
                "{}: rooms_for and access differ",
                u.id()
            );
        }
        for r in &rooms {
            assert_eq!(
                s.access(u, r),
                listed.get(*r).copied(),
                "{}: {r:?} missing from rooms_for",
                u.id()
            );
        }
        for bad in ["", "a.b", "*", ">", "x y", "é"] {
            assert_eq!(
                s.access(u, bad),
                None,
                "{}: access to invalid room {bad:?}",
                u.id()
            );
        }
        if n < 4 {
            let reserved = &w.policy.reserved;
            let mut requested: Vec<&str> = rooms
                .iter()
                .copied()
                .filter(|r| !reserved.contains(*r))
                .take(40)
                .collect();
            requested.extend(PROBE_ROOMS.iter().filter(|r| validate_name(r).is_ok()));
            let requested = requested.join(";");
            check_decision(w, s, u.id(), &requested);
        }
    }
}

/// Decide for `user` (with a fresh token) against `s` and check the granted subjects.
fn check_decision(w: &Fuzz, s: &Snapshot, user: &str, requested: &str) {
    let req = MintRequest {
        user,
        session: "s1",
        device: None,
        ttl: Duration::from_secs(300),
        session_expires_at: None,
        asserted: None,
        client_id: None,
    };
    let (token, _) = w.w.tokens.mint_with_id(&req, "t1", NOW).expect("mint");
    let request = AuthRequest {
        user_nkey: "UFUZZ".into(),
        client_info: ClientInfo {
            kind: "Client".into(),
            client_type: "nats".into(),
            ..Default::default()
        },
        connect_opts: ConnectOpts {
            auth_token: Some(token),
            user: Some(requested.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    let revoked = RevocationIndex::default();
    let inputs = Inputs {
        tokens: &w.w.tokens,
        snapshot: s,
        rooms: &crate::rooms::RoomIndex::default(),
        revoked: &revoked,
        policy: &w.policy,
    };
    match decide(&request, &inputs, NOW) {
        Ok(g) => {
            let p = &g.permissions;
            let roles = &w.policy.token_reset_roles;
            if let Err(e) = check_subjects(
                s,
                roles,
                user,
                Some(requested),
                &p.publish.allow,
                &p.subscribe.allow,
            ) {
                panic!("{e}\nrequested {requested:?}\ngrant {p:?}");
            }
        }
        Err(d) => panic!("{user} asking for named rooms was denied: {d}"),
    }
}
