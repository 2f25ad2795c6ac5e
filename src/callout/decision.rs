//! The decision: a pure function from a verified request, keys, snapshot and clock to a grant or a deny.

use std::collections::HashSet;
use std::time::Duration;

use crate::access::{Answer, Answers, Ask, Outcome, Routes};
use crate::claims::request::AuthRequest;
use crate::claims::response::{Permission, UserPermissions};
use crate::config::CalloutSettings;
use crate::names::{NameError, validate_name};
use crate::permissions::{Access, Limits, Privileges, Role, Snapshot};
use crate::subjects::{Kind, Template};
use crate::tokens::revocation::RevocationIndex;
use crate::tokens::{AccessClaims, TokenError, TokenKeys};

/// Which connection types are served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionTypes {
    pub nats: bool,
    pub websocket: bool,
    pub leafnode: bool,
    pub mqtt: bool,
}

impl ConnectionTypes {
    /// The user JWT's `allowed_connection_types` for these: nats-server enforces them for a
    /// client connecting with the JWT itself (not for callout users, checked here instead).
    pub fn jwt_names(self) -> Vec<&'static str> {
        [
            (self.nats, "STANDARD"),
            (self.websocket, "WEBSOCKET"),
            (self.leafnode, "LEAFNODE"),
            (self.mqtt, "MQTT"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// The rules of a decision, derived from the configuration once.
#[derive(Debug, Clone)]
pub struct Policy {
    pub account: String,
    pub max_rooms: usize,
    pub reserved: HashSet<String>,
    pub types: ConnectionTypes,
    pub read_subject: Template,
    pub write_subject: Template,
    pub inbox_prefix: Template,
    pub user_jwt_ttl: Duration,
    /// Roles whose users may publish `auth.v1.tokenReset`.
    pub token_reset_roles: Vec<Role>,
    /// The accounts users may be placed in: `[callout.accounts]` in operator mode,
    /// `account` and `user_accounts` in config mode. Any other is denied.
    pub placements: HashSet<String>,
    /// The rooms app services decide (`[[access.delegate]]`): only their answers grant them.
    pub delegates: Routes,
    /// Every user may ask for NATS credentials over NATS (`auth.v1.credentials`): operator
    /// mode while minting is on.
    pub credentials: bool,
}

impl Policy {
    /// Build from validated settings (see `Config::validate`).
    pub fn from_settings(s: &CalloutSettings) -> Result<Policy, String> {
        Self::with_token_reset_roles(s, &[])
    }

    /// Build from settings, with the roles allowed to reset tokens.
    pub fn with_token_reset_roles(s: &CalloutSettings, roles: &[Role]) -> Result<Policy, String> {
        let token_reset_roles = roles.to_vec();
        let has = |t: &str| s.connection_types.iter().any(|c| c == t);
        Ok(Policy {
            account: s.account.clone(),
            max_rooms: s.max_rooms,
            reserved: s.auth_users.iter().cloned().collect(),
            types: ConnectionTypes {
                nats: has("nats"),
                websocket: has("websocket"),
                leafnode: has("leafnode"),
                mqtt: has("mqtt"),
            },
            read_subject: Template::parse(&s.read_subject, Kind::Read)?,
            write_subject: Template::parse(&s.write_subject, Kind::Write)?,
            inbox_prefix: Template::parse(&s.inbox_prefix, Kind::Inbox)?,
            user_jwt_ttl: s.user_jwt_ttl,
            token_reset_roles,
            placements: s.placements().into_iter().collect(),
            delegates: Routes::default(),
            credentials: false,
        })
    }

    /// Every grant may publish `auth.v1.credentials` (operator mode, minting on).
    #[must_use]
    pub fn with_credentials(mut self, on: bool) -> Policy {
        self.credentials = on;
        self
    }

    /// Rooms matching `delegates` are decided by their app services.
    #[must_use]
    pub fn with_delegates(mut self, delegates: Routes) -> Policy {
        self.delegates = delegates;
        self
    }

    /// The longest `user` field that can hold `max_rooms` valid names.
    pub fn max_room_list_len(&self) -> usize {
        self.max_rooms * (crate::names::MAX_NAME_LEN + 1)
    }
}

/// A granted room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedRoom {
    pub name: String,
    pub access: Access,
}

/// An allowed connection: who, which rooms, which subjects, until when.
#[derive(Debug, Clone)]
pub struct Grant {
    pub identity: AccessClaims,
    /// The account the connection is placed in (a name; operator mode maps it to a key).
    pub account: String,
    pub rooms: Vec<GrantedRoom>,
    /// Requested rooms left out: first those outside the token's application, then those
    /// the user has no grant for.
    pub refused: Vec<String>,
    /// How many of `refused` (the first ones) are outside the token's application.
    pub outside_application: usize,
    pub permissions: UserPermissions,
    pub expires_at: i64,
    /// Role-derived publish rights granted.
    pub privileges: Privileges,
    /// The delegated rooms (granted or refused), each with its delegate and answer.
    pub delegated: Vec<Outcome>,
    /// Delegated rooms without an answer in the decision's inputs (refused in this grant):
    /// what to ask before deciding again.
    pub asks: Vec<Ask>,
    /// What the user may hold at once.
    pub limits: Limits,
}

impl Grant {
    /// Each refused room with why: `outside-application`, `no-grant`, or the delegate's
    /// `delegate-none`, `delegate-unavailable`, `delegate-bad-answer`.
    pub fn refusals(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.refused.iter().enumerate().map(|(i, room)| {
            let why = if i < self.outside_application {
                "outside-application"
            } else {
                self.delegate_of(room)
                    .and_then(|o| o.answer.refusal())
                    .unwrap_or("no-grant")
            };
            (room.as_str(), why)
        })
    }

    /// The delegate that decided `room`, with its answer, if one did.
    pub fn delegate_of(&self, room: &str) -> Option<&Outcome> {
        self.delegated.iter().find(|o| o.room == room)
    }
}

/// Why a connection was denied. [`Deny::code`] is the logged reason.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Deny {
    #[error("connection type {kind}/{client_type} is not served")]
    ConnectionType { kind: String, client_type: String },
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("access token revoked ({0})")]
    Revoked(&'static str),
    #[error("token subject is not a valid user id: {0}")]
    BadUserId(NameError),
    #[error("unknown user {0}")]
    UnknownUser(String),
    #[error(
        "provider {provider:?} may not assert {user:?}, a user of the permission files (file_users = false)"
    )]
    FileUserRefused { provider: String, user: String },
    #[error("session ended at {0}")]
    SessionEnded(i64),
    #[error("{count} rooms requested, at most {max} allowed")]
    TooManyRooms { count: usize, max: usize },
    #[error("room list of {len} bytes is longer than {max}")]
    RoomListTooLong { len: usize, max: usize },
    #[error("invalid room name {room:?}: {reason}")]
    BadRoom { room: String, reason: NameError },
    #[error("room name {0:?} is reserved")]
    ReservedRoom(String),
    #[error("account {0:?} is not one users are placed in (callout.accounts, callout.user_accounts)")]
    AccountNotServed(String),
    /// A per-user limit refuses the connection (`too-many-connects`, `too-many-connections`,
    /// `too-many-subscriptions`; see [`crate::limits`]).
    #[error("refused by a limit ({0})")]
    Limit(&'static str),
}

impl Deny {
    pub fn code(&self) -> &'static str {
        match self {
            Deny::ConnectionType { .. } => "connection-type",
            Deny::Token(e) => e.code(),
            Deny::Revoked(_) => "access-token-revoked",
            Deny::BadUserId(_) => "bad-user-id",
            Deny::UnknownUser(_) => "unknown-user",
            Deny::FileUserRefused { .. } => "file-user-refused",
            Deny::SessionEnded(_) => "session-ended",
            Deny::TooManyRooms { .. } => "too-many-rooms",
            Deny::RoomListTooLong { .. } => "room-list-too-long",
            Deny::BadRoom { .. } => "bad-room-name",
            Deny::ReservedRoom(_) => "reserved-room-name",
            Deny::AccountNotServed(_) => "account-not-served",
            Deny::Limit(code) => code,
        }
    }
}

/// A denied connection: why, and whose token it carried when the token verified (a
/// revoked session's deny names its user and session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub deny: Deny,
    /// The token's user and session, when the deny came after the token verified.
    pub who: Option<(String, String)>,
}

impl From<Deny> for Denied {
    fn from(deny: Deny) -> Self {
        Denied { deny, who: None }
    }
}

impl PartialEq<Deny> for Denied {
    fn eq(&self, other: &Deny) -> bool {
        self.deny == *other
    }
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.deny.fmt(f)
    }
}

/// Client-supplied text, shortened for logs.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Split the CONNECT `user` field into room names (`;`, `,` accepted), validated,
/// without duplicates. Empty segments are skipped.
pub fn parse_rooms<'a>(list: Option<&'a str>, policy: &Policy) -> Result<Vec<&'a str>, Deny> {
    let Some(list) = list else { return Ok(Vec::new()) };
    let max_len = policy.max_room_list_len();
    if list.len() > max_len {
        return Err(Deny::RoomListTooLong {
            len: list.len(),
            max: max_len,
        });
    }
    let mut rooms: Vec<&str> = Vec::new();
    for room in list.split([';', ',']).filter(|r| !r.is_empty()) {
        validate_name(room).map_err(|reason| Deny::BadRoom {
            room: clip(room),
            reason,
        })?;
        if policy.reserved.contains(room) {
            return Err(Deny::ReservedRoom(room.to_string()));
        }
        if !rooms.contains(&room) {
            rooms.push(room);
        }
        if rooms.len() > policy.max_rooms {
            return Err(Deny::TooManyRooms {
                count: rooms.len(),
                max: policy.max_rooms,
            });
        }
    }
    Ok(rooms)
}

fn check_connection_type(req: &AuthRequest, t: ConnectionTypes) -> Result<(), Deny> {
    let ci = &req.client_info;
    let ok = match (ci.kind.as_str(), ci.client_type.as_str()) {
        ("Leafnode", _) => t.leafnode,
        ("Client" | "", "nats" | "") => t.nats,
        ("Client" | "", "websocket") => t.websocket,
        ("Client" | "", "mqtt") => t.mqtt,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Deny::ConnectionType {
            kind: clip(&ci.kind),
            client_type: clip(&ci.client_type),
        })
    }
}

/// What a decision reads besides the request: keys, permissions, rooms in data,
/// revocations, rules.
pub struct Inputs<'a> {
    pub tokens: &'a TokenKeys,
    pub snapshot: &'a Snapshot,
    /// Rooms as data (an in-memory index, never the store).
    pub rooms: &'a crate::rooms::RoomIndex,
    pub revoked: &'a RevocationIndex,
    pub policy: &'a Policy,
}

/// Decide one connection. Pure: no I/O, the clock is `now` (unix seconds). Delegated rooms
/// are refused, each listed in [`Grant::asks`]: see [`decide_with`].
pub fn decide(req: &AuthRequest, inputs: &Inputs<'_>, now: i64) -> Result<Grant, Denied> {
    decide_with(req, inputs, &Answers::default(), now)
}

/// [`decide`] with the delegates' answers for the delegated rooms (asked before, by the
/// caller, for the rooms a first decision listed in [`Grant::asks`]). A delegated room
/// without an answer here is refused and listed in `asks`.
pub fn decide_with(
    req: &AuthRequest,
    inputs: &Inputs<'_>,
    answers: &Answers,
    now: i64,
) -> Result<Grant, Denied> {
    let Inputs { tokens, .. } = *inputs;
    check_connection_type(req, inputs.policy.types)?;
    let (token, _) = req.connect_opts.access_token();
    let identity = tokens.verify(token, now).map_err(Deny::from)?;
    match grant_for(&identity, req, inputs, answers, now) {
        Ok(grant) => Ok(Grant { identity, ..grant }),
        // From here on every deny names the token's user and session.
        Err(deny) => Err(Denied {
            deny,
            who: Some((identity.sub, identity.sid)),
        }),
    }
}

/// The grant of a verified identity (its `identity` left empty: [`decide`] moves it in).
fn grant_for(
    identity: &AccessClaims,
    req: &AuthRequest,
    inputs: &Inputs<'_>,
    answers: &Answers,
    now: i64,
) -> Result<Grant, Deny> {
    let Inputs {
        snapshot,
        rooms,
        revoked,
        policy,
        ..
    } = *inputs;
    if let Some(why) = revoked.check(identity) {
        return Err(Deny::Revoked(why));
    }
    validate_name(&identity.sub).map_err(Deny::BadUserId)?;
    let user = known_user(identity, snapshot)?;
    let user = &*user;
    let expires_at = expiry(identity, policy, now)?;
    let account = user.account().unwrap_or(&policy.account).to_string();
    if !policy.placements.contains(&account) {
        return Err(Deny::AccountNotServed(account));
    }
    let requested = parse_rooms(req.connect_opts.user.as_deref(), policy)?;
    // A token of an application reaches only the application's rooms: the others are
    // refused whatever the user may do there.
    let scope = snapshot.scope(identity.client_id.as_deref());
    let (requested, outside): (Vec<&str>, Vec<&str>) = requested.into_iter().partition(|r| scope.reaches(r));
    let uid = identity.sub.as_str();
    // The inbox is for replies to the requests this user makes (the service endpoints);
    // nobody publishes into it but the responders behind the account's imports.
    let inbox = policy
        .inbox_prefix
        .render("", uid)
        .map(|p| p + ".>")
        .ok_or(Deny::BadUserId(NameError::Empty))?;
    let mut g = Granted::new(inbox, crate::wire::notice_subject(uid), requested.len());
    let outside_application = outside.len();
    g.refused.extend(outside.into_iter().map(str::to_string));
    let (mut delegated, mut asks) = (Vec::new(), Vec::new());
    for room in requested {
        // A delegated room: the delegate's answer alone grants it (never the files or data).
        let access = match policy.delegates.route(room) {
            None => crate::rooms::access(snapshot, rooms, user, room),
            Some(route) => {
                let answer = answers.get(room).unwrap_or_else(|| {
                    let (client, device) = (identity.client_id.clone(), identity.did.clone());
                    asks.push(Ask::of(user, room, &account, client, device));
                    Answer::Unavailable
                });
                delegated.push(Outcome {
                    room: room.to_string(),
                    subject: route.subject.clone(),
                    answer,
                });
                match answer {
                    Answer::Access(access) => access,
                    Answer::Unavailable | Answer::Bad => None,
                }
            }
        };
        match access {
            Some(access) => g.room(policy, room, uid, access),
            None => g.refused.push(room.to_string()),
        }
    }
    let privileges = Privileges::of(user, &policy.token_reset_roles);
    g.publish.extend(crate::wire::privilege_subjects(privileges));
    if policy.credentials {
        g.publish.push(crate::wire::CREDENTIALS_SUBJECT.to_string());
    }
    Ok(Grant {
        identity: AccessClaims::default(),
        account,
        rooms: g.rooms,
        refused: g.refused,
        outside_application,
        permissions: UserPermissions {
            publish: Permission::only(g.publish),
            subscribe: Permission::only(g.subscribe),
        },
        expires_at,
        privileges,
        delegated,
        asks,
        limits: user.limits(),
    })
}

/// The user the token names, as the files (and a provider's assertion) make them.
fn known_user<'a>(
    identity: &AccessClaims,
    snapshot: &'a Snapshot,
) -> Result<std::borrow::Cow<'a, crate::permissions::User>, Deny> {
    identity.user(snapshot).ok_or_else(|| match &identity.ext {
        Some(a) if !a.file_users && snapshot.user(&identity.sub).is_some() => Deny::FileUserRefused {
            provider: a.idp.clone(),
            user: identity.sub.clone(),
        },
        _ => Deny::UnknownUser(identity.sub.clone()),
    })
}

/// When the user JWT expires: the cap, never after the session's end.
fn expiry(identity: &AccessClaims, policy: &Policy, now: i64) -> Result<i64, Deny> {
    let cap = now + policy.user_jwt_ttl.as_secs() as i64;
    match identity.sexp {
        Some(end) if end <= now => Err(Deny::SessionEnded(end)),
        Some(end) => Ok(cap.min(end)),
        None => Ok(cap),
    }
}

/// The rooms and subjects granted so far.
struct Granted {
    publish: Vec<String>,
    subscribe: Vec<String>,
    rooms: Vec<GrantedRoom>,
    refused: Vec<String>,
}

impl Granted {
    /// Nothing but the user's inbox and their notices yet.
    fn new(inbox: String, notices: String, rooms: usize) -> Granted {
        let mut subscribe = Vec::with_capacity(rooms + 2);
        subscribe.extend([inbox, notices]);
        Granted {
            publish: Vec::with_capacity(rooms + 2),
            subscribe,
            rooms: Vec::with_capacity(rooms),
            refused: Vec::new(),
        }
    }

    /// Grant `room` with `access`: read and write subjects from the policy's templates.
    fn room(&mut self, policy: &Policy, room: &str, uid: &str, access: Access) {
        if access.can_read()
            && let Some(s) = policy.read_subject.render(room, uid)
        {
            self.subscribe.push(s);
        }
        if access.can_write()
            && let Some(s) = policy.write_subject.render(room, uid)
        {
            self.publish.push(s);
        }
        self.rooms.push(GrantedRoom {
            name: room.to_string(),
            access,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, NOW, PERMISSIONS, World, auth_request as req};

    fn run(r: &AuthRequest, k: &TokenKeys, s: &Snapshot, p: &Policy, now: i64) -> Result<Grant, Deny> {
        let revoked = RevocationIndex::default();
        let inputs = Inputs {
            tokens: k,
            snapshot: s,
            rooms: &crate::rooms::RoomIndex::default(),
            revoked: &revoked,
            policy: p,
        };
        decide(r, &inputs, now).map_err(|d| d.deny)
    }

    /// Token keys, the shared permission set and the default policy.
    fn world() -> (TokenKeys, Snapshot, Policy) {
        let w = World::random();
        let keys = TokenKeys::new(testing::TOKEN_ISSUER, testing::TOKEN_AUDIENCE)
            .with_signing_pem(&w.token_pem)
            .unwrap();
        (keys, testing::snapshot(PERMISSIONS), testing::policy())
    }

    fn token(keys: &TokenKeys, user: &str, sexp: Option<i64>) -> String {
        mint(keys, user, sexp, None)
    }

    /// A token of `user` for application `app` (the `clientId` of its login).
    fn app_token(keys: &TokenKeys, user: &str, app: Option<&str>) -> String {
        mint(keys, user, None, app)
    }

    fn mint(keys: &TokenKeys, user: &str, sexp: Option<i64>, app: Option<&str>) -> String {
        let req = crate::tokens::MintRequest {
            user,
            session: "s",
            device: None,
            ttl: Duration::from_secs(300),
            session_expires_at: sexp,
            asserted: None,
            client_id: app,
        };
        keys.mint(&req, NOW).unwrap().0
    }

    fn grant(user: &str, rooms: &str) -> Result<Grant, Deny> {
        let (k, s, p) = world();
        run(
            &req(Some(&token(&k, user, None)), Some(rooms), "Client", "nats"),
            &k,
            &s,
            &p,
            NOW,
        )
    }

    #[test]
    fn grants_map_to_subjects_table() {
        // (user, requested rooms, publish allow, subscribe allow, refused)
        type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            (
                "bob",
                "all1;bob1;alice1",
                &["chat.all1.bob", "chat.bob1.bob"],
                &[
                    "_INBOX.bob.>",
                    "nats-callout.notice.bob",
                    "chat.all1.>",
                    "chat.bob1.>",
                ],
                &["alice1"],
            ),
            (
                "alice",
                "all1,alice1,bob1",
                &["chat.all1.alice", "chat.alice1.alice"],
                &[
                    "_INBOX.alice.>",
                    "nats-callout.notice.alice",
                    "chat.all1.>",
                    "chat.alice1.>",
                ],
                &["bob1"],
            ),
            (
                "bob",
                "news",
                &[],
                &["_INBOX.bob.>", "nats-callout.notice.bob", "chat.news.>"],
                &[],
            ),
            (
                "bob",
                "drop",
                &["chat.drop.bob"],
                &["_INBOX.bob.>", "nats-callout.notice.bob"],
                &[],
            ),
            (
                "alice",
                "team-x;team-",
                &[],
                &["_INBOX.alice.>", "nats-callout.notice.alice", "chat.team-x.>"],
                &["team-"],
            ),
            (
                "root",
                "anything;all1",
                &["chat.anything.root", "chat.all1.root"],
                &[
                    "_INBOX.root.>",
                    "nats-callout.notice.root",
                    "chat.anything.>",
                    "chat.all1.>",
                ],
                &[],
            ),
            ("bob", "", &[], &["_INBOX.bob.>", "nats-callout.notice.bob"], &[]),
            (
                "bob",
                "all1;;all1;",
                &["chat.all1.bob"],
                &["_INBOX.bob.>", "nats-callout.notice.bob", "chat.all1.>"],
                &[],
            ),
        ];
        for (user, rooms, publish, subscribe, refused) in cases {
            let g = grant(user, rooms).unwrap_or_else(|e| panic!("{user} {rooms}: {e}"));
            assert_eq!(g.permissions.publish.allow, *publish, "{user} {rooms} pub");
            assert_eq!(g.permissions.subscribe.allow, *subscribe, "{user} {rooms} sub");
            assert_eq!(g.refused, *refused, "{user} {rooms} refused");
            for p in [&g.permissions.publish, &g.permissions.subscribe] {
                // Never an empty allow list alone: that would be allow-all.
                assert!(!p.allow.is_empty() || p.deny == [">"], "{user} {rooms}: {p:?}");
            }
            assert_eq!(g.identity.sub, *user);
        }
    }

    /// Rooms in data beside the files: a membership grants as a file grant does, the creator
    /// holds the room, a file grant and a data membership add up (a pattern covering a data
    /// room), and a membership that does not count (left, of a room deleted and made again,
    /// of no room) grants nothing.
    #[test]
    fn data_rooms_grant_beside_the_files_table() {
        use crate::rooms::{JoinPolicy, RoomEvent, RoomIndex};
        use crate::testing::{member_event as member, room_event as room};
        let rooms = RoomIndex::default();
        let mut left = member("proj", "1", "carol", Access::Read, false);
        if let RoomEvent::Member { member, .. } = &mut left {
            member.left = true;
        }
        rooms.apply(&[
            room("proj", "1", "alice", JoinPolicy::Invite),
            member("proj", "1", "bob", Access::Read, false),
            left,
            room("xay", "1", "alice", JoinPolicy::Open),
            member("xay", "1", "bob", Access::Read, false),
            room("team-z", "1", "root", JoinPolicy::Invite),
            member("team-z", "1", "alice", Access::Write, false),
            room("again", "2", "root", JoinPolicy::Invite),
            member("again", "1", "bob", Access::ReadWrite, false),
            member("nowhere", "1", "bob", Access::ReadWrite, false),
        ]);
        // (user, requested rooms, publish allow, subscribe allow, refused)
        type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            // A read membership: hear, not speak. The creator: both.
            (
                "bob",
                "proj",
                &[],
                &["_INBOX.bob.>", "nats-callout.notice.bob", "chat.proj.>"],
                &[],
            ),
            (
                "alice",
                "proj",
                &["chat.proj.alice"],
                &["_INBOX.alice.>", "nats-callout.notice.alice", "chat.proj.>"],
                &[],
            ),
            // File pattern x*y gives bob write, data gives read: readwrite.
            (
                "bob",
                "xay",
                &["chat.xay.bob"],
                &["_INBOX.bob.>", "nats-callout.notice.bob", "chat.xay.>"],
                &[],
            ),
            // alice: the pattern team-* reads, the data membership writes.
            (
                "alice",
                "team-z",
                &["chat.team-z.alice"],
                &["_INBOX.alice.>", "nats-callout.notice.alice", "chat.team-z.>"],
                &[],
            ),
            // Memberships that do not count.
            (
                "carol",
                "proj",
                &[],
                &["_INBOX.carol.>", "nats-callout.notice.carol"],
                &["proj"],
            ),
            (
                "bob",
                "again;nowhere",
                &[],
                &["_INBOX.bob.>", "nats-callout.notice.bob"],
                &["again", "nowhere"],
            ),
            // Open is not joined: alice made it, nobody else holds it.
            (
                "carol",
                "xay",
                &[],
                &["_INBOX.carol.>", "nats-callout.notice.carol"],
                &["xay"],
            ),
            // Files and data in one request.
            (
                "bob",
                "all1;proj;alice1",
                &["chat.all1.bob"],
                &[
                    "_INBOX.bob.>",
                    "nats-callout.notice.bob",
                    "chat.all1.>",
                    "chat.proj.>",
                ],
                &["alice1"],
            ),
        ];
        let (k, _, p) = world();
        let s = testing::snapshot(&format!("{PERMISSIONS}\n[users.carol]\n"));
        let revoked = RevocationIndex::default();
        let inputs = Inputs {
            tokens: &k,
            snapshot: &s,
            rooms: &rooms,
            revoked: &revoked,
            policy: &p,
        };
        for (user, list, publish, subscribe, refused) in cases {
            let r = req(Some(&token(&k, user, None)), Some(list), "Client", "nats");
            let g = decide(&r, &inputs, NOW).unwrap_or_else(|e| panic!("{user} {list}: {}", e.deny));
            assert_eq!(g.permissions.publish.allow, *publish, "{user} {list} pub");
            assert_eq!(g.permissions.subscribe.allow, *subscribe, "{user} {list} sub");
            assert_eq!(g.refused, *refused, "{user} {list} refused");
        }
    }

    #[test]
    fn applications_scope_the_granted_rooms_table() {
        let (k, plain, p) = world();
        let scoped = testing::snapshot(&format!(
            "{PERMISSIONS}\n[applications.mobile]\nrooms = [\"all1\", \"team-*\"]\n[applications.kiosk]\n"
        ));
        // (files define applications, user, application, rooms, publish, subscribe, refused)
        type Case<'a> = (
            bool,
            &'a str,
            Option<&'a str>,
            &'a str,
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            // The user's rooms within the application's.
            (
                true,
                "bob",
                Some("mobile"),
                "all1;bob1",
                &["chat.all1.bob"],
                &["_INBOX.bob.>", "nats-callout.notice.bob", "chat.all1.>"],
                &["bob1"],
            ),
            // A pattern of the application, read-only for the user: still read-only.
            (
                true,
                "alice",
                Some("mobile"),
                "team-x;alice1;all1",
                &["chat.all1.alice"],
                &[
                    "_INBOX.alice.>",
                    "nats-callout.notice.alice",
                    "chat.team-x.>",
                    "chat.all1.>",
                ],
                &["alice1"],
            ),
            // Admins too reach only the application's rooms.
            (
                true,
                "root",
                Some("mobile"),
                "anything;all1;team-q",
                &["chat.all1.root", "chat.team-q.root"],
                &[
                    "_INBOX.root.>",
                    "nats-callout.notice.root",
                    "chat.all1.>",
                    "chat.team-q.>",
                ],
                &["anything"],
            ),
            // In scope but not the user's: refused as ever.
            (
                true,
                "bob",
                Some("mobile"),
                "team-x",
                &[],
                &["_INBOX.bob.>", "nats-callout.notice.bob"],
                &["team-x"],
            ),
            // An application with no rooms, and one the files no longer define: nothing.
            (
                true,
                "bob",
                Some("kiosk"),
                "all1;bob1",
                &[],
                &["_INBOX.bob.>", "nats-callout.notice.bob"],
                &["all1", "bob1"],
            ),
            (
                true,
                "bob",
                Some("gone"),
                "all1",
                &[],
                &["_INBOX.bob.>", "nats-callout.notice.bob"],
                &["all1"],
            ),
            // No application in the token (older tokens, provider tokens): the user's rooms.
            (
                true,
                "bob",
                None,
                "all1;bob1",
                &["chat.all1.bob", "chat.bob1.bob"],
                &[
                    "_INBOX.bob.>",
                    "nats-callout.notice.bob",
                    "chat.all1.>",
                    "chat.bob1.>",
                ],
                &[],
            ),
            // Files without applications (the demo): clientId is free-form, scopes nothing.
            (
                false,
                "bob",
                Some("anything"),
                "all1;bob1",
                &["chat.all1.bob", "chat.bob1.bob"],
                &[
                    "_INBOX.bob.>",
                    "nats-callout.notice.bob",
                    "chat.all1.>",
                    "chat.bob1.>",
                ],
                &[],
            ),
        ];
        for (apps, user, app, rooms, publish, subscribe, refused) in cases {
            let s = if *apps { &scoped } else { &plain };
            let r = req(Some(&app_token(&k, user, *app)), Some(rooms), "Client", "nats");
            let g = run(&r, &k, s, &p, NOW).unwrap_or_else(|e| panic!("{user} {app:?} {rooms}: {e}"));
            let what = format!("{user} {app:?} {rooms}");
            assert_eq!(g.permissions.publish.allow, *publish, "{what} pub");
            assert_eq!(g.permissions.subscribe.allow, *subscribe, "{what} sub");
            assert_eq!(g.refused, *refused, "{what} refused");
            let granted: Vec<&str> = g.rooms.iter().map(|r| r.name.as_str()).collect();
            assert!(
                granted.iter().all(|r| s.scope(*app).reaches(r)),
                "{what}: {granted:?}"
            );
            assert_eq!(g.identity.client_id.as_deref(), *app);
            for p in [&g.permissions.publish, &g.permissions.subscribe] {
                assert!(!p.allow.is_empty() || p.deny == [">"], "{what}: {p:?}");
            }
        }
    }

    #[test]
    fn delegated_rooms_are_granted_by_their_delegate_alone() {
        let (k, s, p) = world();
        let routes = Routes::from_settings(&[crate::access::DelegateSettings {
            rooms: "team-*".into(),
            subject: "apps.access".into(),
            timeout: Duration::from_millis(250),
            cache: Duration::from_secs(30),
        }])
        .unwrap();
        let p = p.with_delegates(routes);
        let revoked = RevocationIndex::default();
        let rooms = crate::rooms::RoomIndex::default();
        let inputs = Inputs {
            tokens: &k,
            snapshot: &s,
            rooms: &rooms,
            revoked: &revoked,
            policy: &p,
        };
        // alice's files grant "team-*" = read; the delegate decides those rooms alone.
        let r = req(
            Some(&token(&k, "alice", None)),
            Some("all1;team-a;team-b;team-c;team-d"),
            "Client",
            "nats",
        );
        let first = decide(&r, &inputs, NOW).unwrap();
        let asked: Vec<&str> = first.asks.iter().map(|a| a.room.as_str()).collect();
        assert_eq!(asked, ["team-a", "team-b", "team-c", "team-d"]);
        assert_eq!(first.asks[0].user, "alice");
        assert_eq!(first.asks[0].groups, ["devs", "everyone"]);
        assert_eq!(first.asks[0].roles, ["user"]);
        assert_eq!(first.asks[0].account, "APP");
        assert_eq!(first.asks[0].device_id, None);
        assert_eq!(
            first.rooms.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["all1"],
            "nothing delegated is granted before its answer"
        );
        let mut answers = Answers::default();
        answers.insert("team-a".into(), Answer::Access(Some(Access::ReadWrite)));
        answers.insert("team-b".into(), Answer::Access(None));
        answers.insert("team-c".into(), Answer::Unavailable);
        answers.insert("team-d".into(), Answer::Bad);
        let g = decide_with(&r, &inputs, &answers, NOW).unwrap();
        assert!(g.asks.is_empty());
        assert_eq!(
            g.permissions.publish.allow,
            ["chat.all1.alice", "chat.team-a.alice"]
        );
        assert_eq!(
            g.permissions.subscribe.allow,
            [
                "_INBOX.alice.>",
                "nats-callout.notice.alice",
                "chat.all1.>",
                "chat.team-a.>"
            ]
        );
        let refusals: Vec<(&str, &str)> = g.refusals().collect();
        assert_eq!(
            refusals,
            [
                ("team-b", "delegate-none"),
                ("team-c", "delegate-unavailable"),
                ("team-d", "delegate-bad-answer")
            ]
        );
        assert_eq!(g.delegate_of("team-a").unwrap().subject, "apps.access");
        assert!(g.delegate_of("all1").is_none());
        // An admin's "every room" does not reach a delegated room either.
        let admin = req(
            Some(&token(&k, "root", None)),
            Some("team-a;all1"),
            "Client",
            "nats",
        );
        let g = decide(&admin, &inputs, NOW).unwrap();
        assert_eq!(g.refused, ["team-a"]);
        assert_eq!(g.asks.len(), 1);
    }

    #[test]
    fn users_go_only_to_the_accounts_the_policy_names() {
        let (k, _, mut p) = world();
        let s = testing::snapshot(&format!(
            "{PERMISSIONS}\n[users.carol]\naccount = \"APP2\"\n[users.carol.rooms]\nall1 = \"readwrite\"\n"
        ));
        let carol = req(Some(&token(&k, "carol", None)), Some("all1"), "Client", "nats");
        let bob = req(Some(&token(&k, "bob", None)), Some("all1"), "Client", "nats");
        // Not named by the policy: denied, not placed where the files say.
        assert_eq!(
            run(&carol, &k, &s, &p, NOW).unwrap_err(),
            Deny::AccountNotServed("APP2".into())
        );
        assert_eq!(run(&bob, &k, &s, &p, NOW).unwrap().account, "APP");
        p.placements.insert("APP2".into());
        assert_eq!(run(&carol, &k, &s, &p, NOW).unwrap().account, "APP2");
        assert_eq!(run(&bob, &k, &s, &p, NOW).unwrap().account, "APP");
    }

    #[test]
    fn role_derived_subjects_only_for_their_roles() {
        // (user, publish allow for rooms "ops")
        let cases: &[(&str, &[&str])] = &[
            ("bob", &[]),
            ("root", &["chat.ops.root"]),
            ("sysop", &["chat.ops.sysop", "auth.v1.tokenReset"]),
            // The default token-reset roles are sysadmin alone (least privilege).
            (
                "svc",
                &[
                    "chat.ops.svc",
                    "auth.v1.usercontext",
                    "auth.v1.rooms.>",
                    "auth.v1.access.invalidate",
                ],
            ),
        ];
        for (user, publish) in cases {
            let g = grant(user, "ops").unwrap();
            assert_eq!(g.permissions.publish.allow, *publish, "{user}");
            let deny: &[&str] = if publish.is_empty() { &[">"] } else { &[] };
            assert_eq!(g.permissions.publish.deny, deny, "{user}");
        }
    }

    #[test]
    fn connection_types_name_the_jwts_types() {
        let all = ConnectionTypes {
            nats: true,
            websocket: true,
            leafnode: true,
            mqtt: true,
        };
        assert_eq!(all.jwt_names(), ["STANDARD", "WEBSOCKET", "LEAFNODE", "MQTT"]);
        let ws = ConnectionTypes {
            nats: false,
            websocket: true,
            leafnode: false,
            mqtt: false,
        };
        assert_eq!(ws.jwt_names(), ["WEBSOCKET"]);
    }

    #[test]
    fn while_minting_every_grant_may_ask_for_credentials() {
        let (k, s, p) = world();
        let p = p.with_credentials(true);
        let r = req(Some(&token(&k, "bob", None)), Some("all1"), "Client", "nats");
        let g = run(&r, &k, &s, &p, NOW).unwrap();
        assert_eq!(
            g.permissions.publish.allow,
            ["chat.all1.bob", "auth.v1.credentials"]
        );
        // A user without a room to write to may still ask (nothing else to publish).
        let r = req(Some(&token(&k, "bob", None)), Some(""), "Client", "nats");
        let g = run(&r, &k, &s, &p, NOW).unwrap();
        assert_eq!(g.permissions.publish.allow, ["auth.v1.credentials"]);
        assert!(g.permissions.publish.deny.is_empty());
    }

    #[test]
    fn bad_rooms_deny_table() {
        let long = "x".repeat(65);
        let many = (0..51).map(|i| format!("r{i}")).collect::<Vec<_>>().join(";");
        let huge = "a;".repeat(5000);
        let cases: &[(&str, &str)] = &[
            ("all1;a.b", "bad-room-name"),
            ("*", "bad-room-name"),
            (">", "bad-room-name"),
            ("all1;a b", "bad-room-name"),
            (" all1", "bad-room-name"),
            ("all1\t", "bad-room-name"),
            (&long, "bad-room-name"),
            ("all1;callout", "reserved-room-name"),
            ("sys", "reserved-room-name"),
            (&many, "too-many-rooms"),
            (&huge, "room-list-too-long"),
        ];
        for (rooms, code) in cases {
            let err = grant("bob", rooms).expect_err(rooms);
            assert_eq!(err.code(), *code, "{rooms:.40}");
        }
    }

    #[test]
    fn identity_and_type_deny_table() {
        let (k, s, p) = world();
        let good = token(&k, "bob", None);
        let ghost = token(&k, "ghost", None);
        let ended = token(&k, "bob", Some(NOW));
        let cases: &[(AuthRequest, &str)] = &[
            (req(None, Some("all1"), "Client", "nats"), "no-token"),
            (req(Some(""), Some("all1"), "Client", "nats"), "no-token"),
            (
                req(Some("null"), Some("all1"), "Client", "nats"),
                "token-malformed",
            ),
            (req(Some(&ghost), Some("all1"), "Client", "nats"), "unknown-user"),
            (
                req(Some(&ended), Some("all1"), "Client", "nats"),
                "access-token-expired",
            ),
            (req(Some(&good), Some("all1"), "Leafnode", ""), "connection-type"),
            (
                req(Some(&good), Some("all1"), "Client", "mqtt"),
                "connection-type",
            ),
            (
                req(Some(&good), Some("all1"), "Router", "nats"),
                "connection-type",
            ),
        ];
        for (r, code) in cases {
            assert_eq!(run(r, &k, &s, &p, NOW).unwrap_err().code(), *code);
        }
        // websocket and plain clients pass by default
        for ty in ["nats", "websocket"] {
            assert!(run(&req(Some(&good), Some("all1"), "Client", ty), &k, &s, &p, NOW).is_ok());
        }
        // leafnode and mqtt only when configured
        let settings = CalloutSettings {
            connection_types: vec!["leafnode".into(), "mqtt".into()],
            ..Default::default()
        };
        let p2 = Policy::from_settings(&settings).unwrap();
        assert!(run(&req(Some(&good), Some("all1"), "Leafnode", ""), &k, &s, &p2, NOW).is_ok());
        assert!(
            run(
                &req(Some(&good), Some("all1"), "Client", "mqtt"),
                &k,
                &s,
                &p2,
                NOW
            )
            .is_ok()
        );
        assert!(
            run(
                &req(Some(&good), Some("all1"), "Client", "nats"),
                &k,
                &s,
                &p2,
                NOW
            )
            .is_err()
        );
    }

    /// Clients that cannot send a token beside a user send it as the password: the same
    /// grant and the same deny reasons; with both, `auth_token` decides.
    #[test]
    fn the_token_in_pass_decides_as_in_auth_token() {
        let (k, s, p) = world();
        let good = token(&k, "bob", None);
        let ghost = token(&k, "ghost", None);
        let with = |auth_token: Option<&str>, pass: Option<&str>| {
            let mut r = req(auth_token, Some("all1;bob1;alice1"), "Client", "nats");
            r.connect_opts.pass = pass.map(str::to_string);
            run(&r, &k, &s, &p, NOW)
        };
        let by_token = with(Some(&good), None).unwrap();
        let by_pass = with(None, Some(&good)).unwrap();
        assert_eq!(by_pass.identity.sub, "bob");
        assert_eq!(by_pass.permissions, by_token.permissions);
        assert_eq!(by_pass.refused, ["alice1"]);
        for (pass, code) in [
            (None, "no-token"),
            (Some(""), "no-token"),
            (Some("null"), "token-malformed"),
            (Some("bob"), "token-malformed"),
            (Some(ghost.as_str()), "unknown-user"),
        ] {
            let in_token = with(pass, None).unwrap_err().code();
            assert_eq!(in_token, code, "{pass:?} in auth_token");
            assert_eq!(with(None, pass).unwrap_err().code(), code, "{pass:?} in pass");
        }
        // Both sent: auth_token decides, whatever pass holds.
        assert_eq!(with(Some(&good), Some("wrong")).unwrap().identity.sub, "bob");
        assert_eq!(
            with(Some("wrong"), Some(&good)).unwrap_err().code(),
            "token-malformed"
        );
        assert_eq!(
            with(Some(&ghost), Some(&good)).unwrap_err().code(),
            "unknown-user"
        );
    }

    #[test]
    fn revoked_tokens_are_denied() {
        use crate::tokens::revocation::{Revocation, RevocationKind};
        let (k, s, p) = world();
        let tok = token(&k, "bob", None);
        let revs = crate::tokens::revocation::Revocations::new([Revocation {
            kind: RevocationKind::User,
            value: "bob".into(),
            cutoff: NOW,
            expires_at: NOW + 300,
        }]);
        let idx = revs.load();
        let inputs = Inputs {
            tokens: &k,
            snapshot: &s,
            rooms: &crate::rooms::RoomIndex::default(),
            revoked: &idx,
            policy: &p,
        };
        let err = decide(&req(Some(&tok), Some("all1"), "Client", "nats"), &inputs, NOW).unwrap_err();
        assert_eq!(err.deny.code(), "access-token-revoked");
        // The deny names whose token it was (the log line and the console say so).
        assert_eq!(err.who, Some(("bob".into(), "s".into())));
        // A token that does not verify names nobody.
        let bad = decide(&req(Some("nope"), Some("all1"), "Client", "nats"), &inputs, NOW).unwrap_err();
        assert_eq!(bad.who, None);
        let alice = token(&k, "alice", None);
        assert!(decide(&req(Some(&alice), Some("all1"), "Client", "nats"), &inputs, NOW).is_ok());
    }

    #[test]
    fn user_jwt_expiry_is_the_cap_not_the_access_token() {
        let (k, s, p) = world();
        let g = run(
            &req(Some(&token(&k, "bob", None)), Some("all1"), "Client", "nats"),
            &k,
            &s,
            &p,
            NOW,
        )
        .unwrap();
        assert_eq!(g.expires_at, NOW + 3600);
        assert_eq!(g.identity.exp, NOW + 300);
        // ...but never after the session's absolute end
        let r = req(
            Some(&token(&k, "bob", Some(NOW + 120))),
            Some("all1"),
            "Client",
            "nats",
        );
        let g = run(&r, &k, &s, &p, NOW).unwrap();
        assert_eq!(g.expires_at, NOW + 120);
    }
}
