//! The auth callout: open and verify each request, decide, answer with a signed (and sealed) response.
//!
//! [`Callout::handle`] is the whole request path without I/O; [`serve`] is the NATS loop
//! around it (queue group, bounded concurrency that queues instead of denying).

mod audited;
pub mod credentials;
pub mod decision;
pub mod envelope;
pub mod recent;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::access::{Answers, Delegates};
use crate::claims::request::{self, AuthRequest};
use crate::claims::response::{Outcome, UserJwt, response_jwt_as, user_jwt};
use crate::clock::now_secs;
use crate::keys::CalloutKeys;
use crate::permissions::{Permissions, Snapshot};
use crate::tokens::TokenKeys;
use crate::tokens::revocation::Revocations;
use crate::wire::{AUTH_SUBJECT, ConnKey, DECISION_SUBJECT, DecisionRecord};
use decision::{Denied, Grant, Inputs, Policy, decide_with};
use nkeys::KeyPair;

/// Everything the request path needs, shared by all in-flight requests.
pub struct Callout {
    keys: CalloutKeys,
    /// Operator mode: the AUTH account and the accounts users are placed in.
    operator: Option<crate::operator::OperatorKeys>,
    tokens: Arc<TokenKeys>,
    permissions: Permissions,
    revocations: Revocations,
    policy: Policy,
    /// Rooms as data (empty unless the service keeps them).
    rooms: Arc<crate::rooms::RoomIndex>,
    counters: Arc<Counters>,
    /// Every decision goes into the audit trail (off by default).
    audit: crate::audit::Audit,
    /// The app services that decide delegated rooms (none by default).
    delegates: Arc<Delegates>,
    /// Refusals by per-user limits (see [`crate::limits`]).
    limits: Arc<crate::limits::Gate>,
}

/// What this instance answered, shared with status and `$SRV.STATS`.
#[derive(Debug, Default)]
pub struct Counters {
    allowed: AtomicU64,
    denied: AtomicU64,
    refused: AtomicU64,
    /// Total time spent deciding (ns).
    time_ns: AtomicU64,
    /// The last request refused (could not be opened, verified or signed), with its time.
    last_error: std::sync::Mutex<String>,
    /// The latest denies and decision times (the admin console).
    pub recent: recent::Recent,
}

impl Counters {
    pub fn stats(&self) -> Stats {
        Stats {
            allowed: self.allowed.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            time_ns: self.time_ns.load(Ordering::Relaxed),
        }
    }

    /// `"<RFC 3339 time> <code>"` of the last refused request, or `""` if none was.
    pub fn last_error(&self) -> String {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, verdict: &Verdict, now: i64) {
        let counter = match verdict {
            Verdict::Allowed(_) => &self.allowed,
            Verdict::Denied(_) => &self.denied,
            Verdict::Refused(code) => {
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                    format!("{} {code}", crate::clock::rfc3339(now));
                &self.refused
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// How many requests this instance answered, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub allowed: u64,
    pub denied: u64,
    /// Requests that could not be opened or verified (empty reply).
    pub refused: u64,
    /// Total time spent deciding, nanoseconds.
    pub time_ns: u64,
}

/// What became of one request (for logs and tests).
#[derive(Debug)]
pub enum Verdict {
    /// Not answered with a JWT (cannot be opened or verified): an empty reply.
    Refused(&'static str),
    Denied(Denied),
    /// Allowed: the grant, and the record published for live enforcement.
    Allowed(Box<(Grant, DecisionRecord)>),
}

impl Callout {
    pub fn new(
        keys: CalloutKeys,
        tokens: Arc<TokenKeys>,
        permissions: Permissions,
        revocations: Revocations,
        policy: Policy,
    ) -> Self {
        Callout {
            keys,
            operator: None,
            tokens,
            permissions,
            revocations,
            policy,
            rooms: Arc::default(),
            counters: Arc::default(),
            audit: crate::audit::Audit::off(),
            delegates: Arc::default(),
            limits: Arc::default(),
        }
    }

    /// Refuse what the enforcer's limits refuse (see [`crate::limits::Gate`]).
    #[must_use]
    pub fn with_limits(mut self, limits: Arc<crate::limits::Gate>) -> Self {
        self.limits = limits;
        self
    }

    /// A grant the limits refuse becomes a deny naming the limit.
    fn admit(&self, g: Grant) -> Result<Grant, Denied> {
        let (user, session) = (&g.identity.sub, &g.identity.sid);
        match self
            .limits
            .check(user, session, g.limits, std::time::Instant::now())
        {
            None => Ok(g),
            Some(code) => {
                metrics::counter!("nats_callout_limits_total", "action" => "refused", "reason" => code)
                    .increment(1);
                Err(Denied {
                    deny: decision::Deny::Limit(code),
                    who: Some((user.clone(), session.clone())),
                })
            }
        }
    }

    /// Record every decision in this audit trail.
    #[must_use]
    pub fn with_audit(mut self, audit: crate::audit::Audit) -> Self {
        self.audit = audit;
        self
    }

    /// The rooms in data decisions read.
    pub fn rooms(&self) -> &crate::rooms::RoomIndex {
        &self.rooms
    }

    /// Decide with the rooms in data this index holds.
    pub fn with_rooms(mut self, rooms: Arc<crate::rooms::RoomIndex>) -> Self {
        self.rooms = rooms;
        self
    }

    /// Serve an operator-mode server (see [`crate::operator`]).
    pub fn with_operator(mut self, operator: Option<crate::operator::OperatorKeys>) -> Self {
        self.operator = operator;
        self
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.permissions.load_full()
    }

    /// The counters of what this instance answered (shared with status and discovery).
    /// The rules decisions follow.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub fn stats(&self) -> Stats {
        self.counters.stats()
    }

    /// Handle one request payload; returns the reply bytes (empty = immediate deny).
    /// Delegated rooms are answered from the cache only (the others are refused as
    /// unavailable); [`Callout::handle_async`] asks the delegates.
    pub fn handle(&self, payload: &[u8], xkey_header: Option<&str>, now: i64) -> (Vec<u8>, Verdict) {
        self.handle_with(payload, xkey_header, now, Delegation::Cached)
            .now_or_never()
            .expect("answers from the cache are ready at once")
    }

    /// [`Callout::handle`], asking the delegates about the delegated rooms the cache has no
    /// answer for: in parallel, each within its budget, then deciding again with the answers.
    pub async fn handle_async(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
        now: i64,
    ) -> (Vec<u8>, Verdict) {
        self.handle_with(payload, xkey_header, now, Delegation::Asked)
            .await
    }

    /// Open, verify and decide (see [`Callout::decide_now`]); then answer, audit and count.
    async fn handle_with(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
        now: i64,
        delegation: Delegation,
    ) -> (Vec<u8>, Verdict) {
        let started = std::time::Instant::now();
        let (reply, verdict, req) = match self.open(payload, xkey_header, now) {
            Err(refused) => *refused,
            Ok(opened) => {
                // Epochs first: a decision never claims a newer epoch than the data it used.
                let epochs = Epochs {
                    snapshot: self.permissions.epoch(),
                    revocations: self.revocations.epoch(),
                    rooms: self.rooms.epoch(),
                };
                let verdict = match self.decide_now(&opened.req, now, delegation).await {
                    Ok(grant) => {
                        let record = decision_record(&opened.req, &grant, epochs, now);
                        Verdict::Allowed(Box::new((grant, record)))
                    }
                    Err(deny) => Verdict::Denied(deny),
                };
                self.conclude(opened, verdict, now)
            }
        };
        self.report(started, req.as_ref(), &verdict, now);
        (reply, verdict)
    }

    /// The one decision of the request path and of [`Callout::credentials`]: decide `req` on
    /// the current permissions, rooms and revocations, then the limits; when delegated rooms
    /// need answers, get them (from the cache, or asking as `delegation` says) and decide
    /// again with them, then the limits again. A user the limits refuse is refused before
    /// any delegate is asked.
    async fn decide_now(&self, req: &AuthRequest, now: i64, delegation: Delegation) -> Result<Grant, Denied> {
        let grant = self.decide_on(req, &Answers::default(), now)?;
        if grant.asks.is_empty() {
            return Ok(grant);
        }
        let answers = match delegation {
            Delegation::Cached => self.delegates.cached(&grant.asks),
            Delegation::Asked => self.delegates.resolve(&grant.asks).await,
        };
        self.decide_on(req, &answers, now)
    }

    /// Decide `req` on the current inputs with the delegates' `answers`, then the limits.
    fn decide_on(&self, req: &AuthRequest, answers: &Answers, now: i64) -> Result<Grant, Denied> {
        let snapshot = self.permissions.load();
        let revoked = self.revocations.load();
        let inputs = Inputs {
            tokens: &self.tokens,
            snapshot: &snapshot,
            rooms: &self.rooms,
            revoked: &revoked,
            policy: &self.policy,
        };
        decide_with(req, &inputs, answers, now).and_then(|g| self.admit(g))
    }

    /// The delegates decisions ask.
    pub fn delegates(&self) -> &Arc<Delegates> {
        &self.delegates
    }

    /// Ask these delegates (their routes are the policy's).
    #[must_use]
    pub fn with_delegates(mut self, delegates: Arc<Delegates>) -> Self {
        self.delegates = delegates;
        self
    }

    /// Audit, count and measure a handled request.
    fn report(&self, started: std::time::Instant, req: Option<&AuthRequest>, verdict: &Verdict, now: i64) {
        if self.audit.is_on() {
            let mut event = audited::decision(req, verdict, &self.policy, now);
            event.took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.audit.decision(event);
        }
        self.counters.record(verdict, now);
        if let Verdict::Refused(code) = verdict {
            self.counters.recent.deny(recent::DenyEntry {
                at: now,
                reason: (*code).to_string(),
                detail: "the request could not be opened or verified (no reply JWT)".into(),
                user: None,
                kind: String::new(),
                requested: String::new(),
            });
        }
        let (result, reason) = match verdict {
            Verdict::Allowed(_) => ("allow", "granted"),
            Verdict::Denied(d) => ("deny", d.deny.code()),
            Verdict::Refused(code) => ("refused", *code),
        };
        metrics::counter!("nats_callout_authorizations_total", "result" => result, "reason" => reason)
            .increment(1);
    }

    /// Open and verify a request, or the empty reply refusing it.
    fn open<'k>(
        &'k self,
        payload: &[u8],
        xkey_header: Option<&str>,
        now: i64,
    ) -> Result<Request<'k>, Box<Handled>> {
        let (opened, our_xkey) = match envelope::open_with(payload, xkey_header, self.keys.xkeys()) {
            Ok(o) => o,
            Err(e) => {
                warn!(reason = e.code(), error = %e, "authorization request refused");
                return Err(Box::new((Vec::new(), Verdict::Refused(e.code()), None)));
            }
        };
        // Config mode: the server names our issuer; operator mode: the AUTH account.
        let expected = match &self.operator {
            Some(op) => vec![op.auth_account.as_str()],
            None => self.keys.issuer_publics(),
        };
        let req = match request::verify_for(&opened.jwt, &expected, now) {
            Ok(r) => r,
            Err(e) => {
                warn!(reason = "request-invalid", error = %e, "authorization request refused");
                return Err(Box::new((Vec::new(), Verdict::Refused("request-invalid"), None)));
            }
        };
        if let Some((header, _)) = &opened.server_xkey
            && *header != req.server_id.xkey
        {
            let e = request::RequestError::XkeyMismatch {
                header: header.clone(),
                signed: req.server_id.xkey.clone(),
            };
            warn!(reason = "request-xkey-mismatch", error = %e, "authorization request refused");
            return Err(Box::new((
                Vec::new(),
                Verdict::Refused("request-xkey-mismatch"),
                Some(req),
            )));
        }
        Ok(Request {
            req,
            our_xkey,
            server_xkey: opened.server_xkey.map(|(_, k)| k),
        })
    }

    /// Log the verdict and answer it: the reply (sealed when the request was), the verdict
    /// and the request.
    fn conclude(&self, opened: Request<'_>, verdict: Verdict, now: i64) -> Handled {
        let Request {
            req,
            our_xkey,
            server_xkey,
        } = opened;
        log_decision(&req, &verdict);
        if let Verdict::Denied(d) = &verdict {
            self.counters.recent.deny(recent::DenyEntry {
                at: now,
                reason: d.deny.code().to_string(),
                detail: d.to_string(),
                user: d.who.as_ref().map(|(user, _)| user.clone()),
                kind: req.client_info.client_type.clone(),
                requested: truncate(req.connect_opts.user.as_deref().unwrap_or(""), 200).to_string(),
            });
        }
        let reply = match self.respond(&req, &verdict, now) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "could not sign the authorization response");
                return (Vec::new(), Verdict::Refused("sign-failed"), Some(req));
            }
        };
        (
            envelope::seal(reply, our_xkey, server_xkey.as_ref()),
            verdict,
            Some(req),
        )
    }

    fn respond(
        &self,
        req: &AuthRequest,
        verdict: &Verdict,
        now: i64,
    ) -> Result<String, crate::claims::ClaimsError> {
        // Config mode: answer with the issuer this server expects (two during a key
        // rotation). Operator mode: the AUTH account's key, or a signing key of it.
        let (issuer, issuer_pk, issuer_account) = match &self.operator {
            None => {
                let pk = req.callout_issuer.as_str();
                let k = self
                    .keys
                    .issuer_for(pk)
                    .ok_or(crate::claims::ClaimsError::UnknownIssuer)?;
                (k, pk, None)
            }
            Some(op) => {
                let pk = self.keys.issuer_public();
                let account = (pk != op.auth_account).then_some(op.auth_account.as_str());
                (self.keys.issuer(), pk, account)
            }
        };
        let (nkey, server) = (req.user_nkey.as_str(), req.server_id.id.as_str());
        let answer = |outcome| response_jwt_as(issuer, issuer_pk, issuer_account, nkey, server, outcome, now);
        match verdict {
            Verdict::Allowed(allowed) => {
                let grant = &allowed.0;
                let user = |key: &KeyPair, key_pk: &str, issuer_account| {
                    user_jwt(
                        key,
                        key_pk,
                        &UserJwt {
                            user_nkey: nkey,
                            name: &grant.identity.sub,
                            account: &grant.account,
                            expires_at: grant.expires_at,
                            permissions: &grant.permissions,
                            issuer_account,
                            subscriptions: None,
                            record: None,
                            connection_types: &[],
                        },
                        now,
                    )
                };
                let jwt = match &self.operator {
                    None => user(issuer, issuer_pk, None)?,
                    Some(op) => match op.target(&grant.account) {
                        Some(t) => user(&t.signer, &t.signer_public, t.issuer_account())?,
                        // The decision only places users in configured accounts.
                        None => return answer(Outcome::Deny("account-not-served")),
                    },
                };
                answer(Outcome::Allow(&jwt))
            }
            Verdict::Denied(d) => answer(Outcome::Deny(d.deny.code())),
            Verdict::Refused(code) => answer(Outcome::Deny(code)),
        }
    }
}

/// A request opened and verified, with the keys its reply is sealed with.
struct Request<'k> {
    req: AuthRequest,
    our_xkey: Option<&'k nkeys::XKey>,
    server_xkey: Option<nkeys::XKey>,
}

/// The reply, the verdict, and the request when it could be opened and verified.
type Handled = (Vec<u8>, Verdict, Option<AuthRequest>);

/// Where a decision gets the answers for delegated rooms.
#[derive(Debug, Clone, Copy)]
enum Delegation {
    /// From the cache only: a room without a cached answer is refused as unavailable.
    Cached,
    /// From the cache, else by asking the delegate within its budget.
    Asked,
}

/// The epochs of the data a decision read.
#[derive(Debug, Clone, Copy)]
struct Epochs {
    snapshot: u64,
    revocations: u64,
    rooms: u64,
}

impl Epochs {
    /// No data read at a known moment: the record is judged whenever it is seen.
    const NONE: Epochs = Epochs {
        snapshot: 0,
        revocations: 0,
        rooms: 0,
    };
}

fn decision_record(req: &AuthRequest, g: &Grant, epochs: Epochs, now: i64) -> DecisionRecord {
    DecisionRecord {
        conn: ConnKey {
            server: req.server_id.id.clone(),
            cid: req.client_info.id,
        },
        user: g.identity.sub.clone(),
        session: g.identity.sid.clone(),
        device: g.identity.did.clone(),
        tid: g.identity.tid.clone(),
        iat: g.identity.iat,
        rooms: g.rooms.iter().map(|r| (r.name.clone(), r.access)).collect(),
        privileges: g.privileges,
        leafnode: req.client_info.kind == "Leafnode",
        expires_at: g.expires_at,
        snapshot_epoch: epochs.snapshot,
        revocation_epoch: epochs.revocations,
        rooms_epoch: epochs.rooms,
        asserted: g.identity.ext.clone(),
        client_id: g.identity.client_id.clone(),
        at: now,
    }
}

/// One structured line per decision. Never logs a token.
fn log_decision(req: &AuthRequest, verdict: &Verdict) {
    let ci = &req.client_info;
    let requested = truncate(req.connect_opts.user.as_deref().unwrap_or(""), 200);
    // Where the token was read from, never the token itself.
    let token_from = req.connect_opts.access_token().1.as_str();
    match verdict {
        Verdict::Allowed(allowed) => {
            let g = &allowed.0;
            let granted = Joined(|| g.rooms.iter().map(|r| r.name.as_str()));
            let refused = Joined(|| g.refused.iter().map(String::as_str));
            // Delegated rooms name their source: `team-a=delegate:apps.access:read`.
            let delegated = Delegated(&g.delegated);
            info!(
                result = "allow",
                user = %g.identity.sub,
                session = %g.identity.sid,
                tid = %g.identity.tid,
                client_id = ci.id,
                server = %req.server_id.name,
                kind = %ci.client_type,
                requested = %requested,
                token_from,
                granted = %granted,
                refused = %refused,
                delegated = %delegated,
                expires_at = g.expires_at,
                "authorization"
            );
        }
        Verdict::Denied(d) => {
            let (user, session) = d.who.as_ref().map_or(("", ""), |(u, s)| (u.as_str(), s.as_str()));
            info!(
                result = "deny",
                reason = d.deny.code(),
                detail = %d,
                user,
                session,
                client_id = ci.id,
                server = %req.server_id.name,
                kind = %ci.client_type,
                requested = %requested,
                token_from,
                "authorization"
            );
        }
        Verdict::Refused(_) => {}
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Room names written `a;b;c` straight into the log line, without building a string.
struct Joined<F>(F);

impl<'a, F, I> std::fmt::Display for Joined<F>
where
    F: Fn() -> I,
    I: Iterator<Item = &'a str>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, name) in (self.0)().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// Delegated rooms for the log line: `room=delegate:<subject>:<access or refusal>;...`.
struct Delegated<'a>(&'a [crate::access::Outcome]);

impl std::fmt::Display for Delegated<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, o) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            let answer = match o.answer {
                crate::access::Answer::Access(Some(a)) => a.as_str(),
                other => other.refusal().unwrap_or("none"),
            };
            write!(f, "{}=delegate:{}:{answer}", o.room, o.subject)?;
        }
        Ok(())
    }
}

/// Subscribe to `$SYS.REQ.USER.AUTH` in the queue group `queue` (several instances share the load).
pub async fn subscribe(
    client: &async_nats::Client,
    queue: &str,
) -> Result<async_nats::Subscriber, async_nats::SubscribeError> {
    // No flush: the connection may still be waiting for NATS; the subscription goes out
    // as soon as it is up.
    client.queue_subscribe(AUTH_SUBJECT, queue.to_string()).await
}

/// The connections of the request path.
#[derive(Clone)]
pub struct Connections {
    /// Where requests arrive (`sub` lives here) and replies go.
    pub requests: async_nats::Client,
    /// Decision records, and replies while the subscription drains.
    pub service: async_nats::Client,
}

/// Serve the requests arriving on `sub` until `shutdown`, at most `max_in_flight`
/// at once (later ones wait: overload never becomes a deny), then finish those in flight.
///
/// A reply leaves on the connection its request came in on: nats-server waits for it on a
/// reply subject it subscribed just before sending the request, and in a cluster only the
/// node the request came through has surely learnt that interest (a reply sent through
/// another node can be dropped there). While draining, replies go out on the service
/// connection instead: async-nats forgets a draining subscription at the first wake-up of
/// its connection after sending `UNSUB`, not at the `PONG` that fences it, and a reply
/// written there would be such a wake-up, dropping requests the server had already routed.
pub async fn serve(
    conns: Connections,
    mut sub: async_nats::Subscriber,
    callout: Arc<Callout>,
    max_in_flight: usize,
    shutdown: impl Future<Output = ()>,
) {
    info!(subject = AUTH_SUBJECT, "serving authorization requests");
    let limit = Arc::new(Semaphore::new(max_in_flight));
    tokio::pin!(shutdown);
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let msg = if draining.load(Ordering::Relaxed) {
            // Unsubscribed: finish what was already delivered to us, then stop.
            match sub.next().await {
                Some(m) => m,
                None => break,
            }
        } else {
            tokio::select! {
                m = sub.next() => match m { Some(m) => m, None => break },
                _ = &mut shutdown => {
                    info!("shutting down: no new authorization requests");
                    draining.store(true, Ordering::Relaxed);
                    if sub.drain().await.is_err() {
                        break;
                    }
                    continue;
                }
            }
        };
        let waiting = limit.available_permits() == 0;
        if waiting {
            metrics::counter!("nats_callout_requests_queued_total").increment(1);
        }
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        metrics::gauge!("nats_callout_requests_in_flight")
            .set((max_in_flight - limit.available_permits()) as f64);
        let (conns, callout, draining) = (conns.clone(), callout.clone(), draining.clone());
        // One short task per request, held by its permit: the wait below for every permit
        // is what awaits them at shutdown.
        tokio::spawn(async move {
            answer(&conns, &draining, &callout, msg).await;
            drop(permit);
        });
    }
    // Wait (bounded) for the requests in flight.
    let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(5), limit.acquire_many(all)).await;
    metrics::gauge!("nats_callout_requests_in_flight").set(0.0);
    let _ = tokio::time::timeout(Duration::from_secs(2), conns.service.flush()).await;
}

/// Handle one request message: reply, then publish the decision record.
async fn answer(
    conns: &Connections,
    draining: &std::sync::atomic::AtomicBool,
    callout: &Callout,
    msg: async_nats::Message,
) {
    let Some(reply_to) = msg.reply.clone() else { return };
    let started = std::time::Instant::now();
    let (reply, verdict) = callout
        .handle_async(&msg.payload, envelope::server_xkey(&msg), now_secs())
        .await;
    let elapsed = started.elapsed();
    metrics::histogram!("nats_callout_decision_seconds").record(elapsed.as_secs_f64());
    callout
        .counters
        .time_ns
        .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    callout.counters.recent.time(elapsed.as_nanos() as u64);
    let via = if draining.load(Ordering::Relaxed) {
        &conns.service
    } else {
        &conns.requests
    };
    if let Err(e) = via.publish(reply_to, reply.into()).await {
        warn!(error = %e, "could not send the authorization reply");
    }
    if let Verdict::Allowed(allowed) = verdict
        && let Ok(body) = serde_json::to_vec(&allowed.1)
        && let Err(e) = conns.service.publish(DECISION_SUBJECT, body.into()).await
    {
        warn!(error = %e, "could not publish the decision record");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_requested_list_is_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc", 200), "abc");
        assert_eq!(truncate("abcdef", 4), "abcd");
        // "é" is two bytes: a cut inside it falls back to the boundary before it.
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate(&"é".repeat(150), 200), "é".repeat(100));
    }

    #[test]
    fn room_names_are_joined_with_semicolons() {
        let rooms = ["all1", "r17"];
        assert_eq!(Joined(|| rooms.iter().copied()).to_string(), "all1;r17");
        assert_eq!(Joined(std::iter::empty::<&str>).to_string(), "");
    }
}
