//! The wire contract: every NATS subject the service uses or serves, and the messages that
//! travel on the service's own subjects (decision records, token-reset requests).
//!
//! Subjects of the service account (`AUTH` in the demo) are the service's own; `auth.v1.*`
//! is exported to the app account; `$SYS.*` subjects belong to nats-server.

use serde::{Deserialize, Serialize};

use crate::permissions::{Access, Asserted, Privileges};

/// nats-server sends authorization requests here (auth callout).
pub const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// nats-server reports failed authorizations (timeouts included) here, in the callout account.
pub const AUTH_ERROR_SUBJECT: &str = "$SYS.ACCOUNT.CLIENT.AUTH.ERR";

/// Decision records of allowed connections, for live enforcement.
pub const DECISION_SUBJECT: &str = "nats-callout.decisions";
/// Limits the enforcer applied, for every instance's decisions ([`LimitFact`]).
pub const LIMITS_SUBJECT: &str = "nats-callout.limits";
/// Operators revoke through the running service (service credentials, `nats-callout revoke`).
pub const ADMIN_REVOKE_SUBJECT: &str = "nats-callout.admin.revoke";
/// Operators ask a running instance for its status (`nats-callout status`).
pub const ADMIN_STATUS_SUBJECT: &str = "nats-callout.admin.status";
/// `explain --live`: `{userId, rooms, clientId?}` answered with an explanation.
pub const ADMIN_EXPLAIN_SUBJECT: &str = "nats-callout.admin.explain";

/// Internal services ask who a token belongs to (exported to the app account).
pub const USER_CONTEXT_SUBJECT: &str = "auth.v1.usercontext";
/// Re-authorize connections by token id, user or session (exported to the app account).
pub const TOKEN_RESET_SUBJECT: &str = "auth.v1.tokenReset";
/// Rooms as data for app services: `auth.v1.rooms.<operation>` (exported to the app account).
pub const ROOMS_SUBJECTS: &str = "auth.v1.rooms.>";
/// App services forget delegates' answers (`{user?, room?}`), and the live connections
/// holding the rooms named decide again (exported to the app account).
pub const ACCESS_INVALIDATE_SUBJECT: &str = "auth.v1.access.invalidate";
/// Connected clients ask for NATS credentials (operator mode; exported to the app accounts;
/// every user JWT may publish here while minting is on).
pub const CREDENTIALS_SUBJECT: &str = "auth.v1.credentials";
/// What users with the `service` role may publish to: the service's own endpoints.
pub const SERVICE_SUBJECTS: &[&str] = &[USER_CONTEXT_SUBJECT, ROOMS_SUBJECTS, ACCESS_INVALIDATE_SUBJECT];

/// Notices to users (`nats-callout.notice.<user>`): their grants changed. Exported as a
/// stream to the app accounts; each user JWT may subscribe to its own subject and no other.
pub const NOTICE_SUBJECTS: &str = "nats-callout.notice.>";

/// The subject `user`'s notices are published on.
#[must_use]
pub fn notice_subject(user: &str) -> String {
    format!("{}{user}", NOTICE_SUBJECTS.trim_end_matches('>'))
}

/// The audit trail, in the service's account: `nats-callout.audit.<kind>`, where kind is a
/// decision's result (`allowed`, `denied`, `refused`, `error`) or a change of access
/// (`revocation`, `kick`, `token-reset`, `room`, `limit`).
pub const AUDIT_SUBJECTS: &str = "nats-callout.audit.>";

/// The subject audit events of `kind` are published on.
#[must_use]
pub fn audit_subject(kind: &str) -> String {
    format!("{}{kind}", AUDIT_SUBJECTS.trim_end_matches('>'))
}

/// NATS service discovery (`$SRV.PING|INFO|STATS[.name[.id]]`).
pub const DISCOVERY_SUBJECTS: &str = "$SRV.>";
/// The service's name in discovery.
pub const SERVICE_NAME: &str = "nats-callout";

/// The publish subjects role-derived privileges grant.
pub fn privilege_subjects(p: Privileges) -> impl Iterator<Item = String> {
    let service = SERVICE_SUBJECTS.iter().filter(move |_| p.service);
    let reset = std::iter::once(&TOKEN_RESET_SUBJECT).filter(move |_| p.token_reset);
    service.chain(reset).map(|s| s.to_string())
}

/// A request to one server (`LDM`, `KICK`, `CONNZ`), or to all of them with `PING`.
pub fn server_request(server: Option<&str>, verb: &str) -> String {
    format!("$SYS.REQ.SERVER.{}.{verb}", server.unwrap_or("PING"))
}

/// Events of a server (`LAMEDUCK`, `SHUTDOWN`); `*` for every server.
pub fn server_event(server: &str, event: &str) -> String {
    format!("$SYS.SERVER.{server}.{event}")
}

/// Connect (`CONNECT`) or disconnect (`DISCONNECT`) events of an account.
pub fn account_event(account: &str, event: &str) -> String {
    format!("$SYS.ACCOUNT.{account}.{event}")
}

/// A connection: the server it is on and its client id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnKey {
    pub server: String,
    pub cid: u64,
}

/// What the callout decided for one allowed connection (on [`DECISION_SUBJECT`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub conn: ConnKey,
    pub user: String,
    pub session: String,
    pub device: Option<String>,
    pub tid: String,
    /// The access token's `iat` (revocation cutoffs compare with it).
    pub iat: i64,
    pub rooms: Vec<(String, Access)>,
    /// Role-derived publish rights granted (`service`, `token_reset`).
    #[serde(flatten)]
    pub privileges: Privileges,
    pub leafnode: bool,
    pub expires_at: i64,
    pub snapshot_epoch: u64,
    pub revocation_epoch: u64,
    /// The rooms index's epoch the decision read (older records: 0).
    #[serde(default)]
    pub rooms_epoch: u64,
    /// When the connection was allowed (unix seconds).
    #[serde(default)]
    pub at: i64,
    /// What an identity provider asserted (groups, roles): the user is judged with it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asserted: Option<Asserted>,
    /// The token's application (`clientId`): its rooms are judged with it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// The claims of a user JWT that enforcement reads back from a connect event or the
/// connection list: a JWT minted by `POST /api/auth/nats-credentials` carries its decision
/// in the `nats_callout` claim (with an empty `conn`, filled in when a connection uses it), so the
/// connection joins the registry as a decided one on every instance, after any restart.
#[derive(Debug, Deserialize)]
pub struct MintedClaims {
    /// The client's user nkey (a JWT connection's user in events and CONNZ).
    pub sub: String,
    #[serde(default)]
    pub nats_callout: Option<DecisionRecord>,
}

/// A limit the enforcer applied (on [`LIMITS_SUBJECT`]): a user cooling down
/// (`too-many-connects`, no session) or a login session closed for a limit
/// (`too-many-connections`, `too-many-subscriptions`), refused for `for_ms` from receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitFact {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub reason: String,
    pub for_ms: u64,
}

/// A token-reset request on [`TOKEN_RESET_SUBJECT`] (or `POST /api/admin/token-reset`):
/// `{tids?, users?, sessions?, reason?, subject?}`, at least one id in all. A system that
/// changed a user's rights elsewhere names the user; resgate-style callers name token ids
/// and the subject resgate re-authorizes on (`{"tids": [...], "subject": "..."}`), which is
/// logged with the reset.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenResetRequest {
    #[serde(default)]
    pub tids: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub sessions: Vec<String>,
    #[serde(default)]
    pub reason: String,
    /// resgate's subject for the re-authorization: a NATS subject, logged, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// The most ids one token-reset request may name.
pub const MAX_TOKEN_RESET_IDS: usize = 10_000;
/// The longest `subject` a token-reset request may give.
pub const MAX_TOKEN_RESET_SUBJECT_LEN: usize = 256;

impl TokenResetRequest {
    /// Why the request cannot be served, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let n = self.tids.len() + self.users.len() + self.sessions.len();
        match n {
            0 => Some("name at least one of tids, users, sessions".into()),
            n if n > MAX_TOKEN_RESET_IDS => Some(format!(
                "{n} ids named, at most {MAX_TOKEN_RESET_IDS} per request"
            )),
            _ => self.subject.as_deref().and_then(subject_problem),
        }
    }
}

/// Why `s` is not a plain NATS subject of at most [`MAX_TOKEN_RESET_SUBJECT_LEN`] bytes
/// (tokens separated by `.`, none empty, no wildcard, no space or control character).
fn subject_problem(s: &str) -> Option<String> {
    if s.len() > MAX_TOKEN_RESET_SUBJECT_LEN {
        return Some(format!(
            "subject: {} bytes, at most {MAX_TOKEN_RESET_SUBJECT_LEN}",
            s.len()
        ));
    }
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '*' || c == '>';
    if s.split('.').any(|t| t.is_empty() || t.contains(bad_char)) {
        return Some(
            "subject: not a NATS subject (tokens separated by '.', none empty, no wildcard, \
             space or control character)"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_give_exactly_their_subjects() {
        let p = |service, token_reset| Privileges { service, token_reset };
        let subjects = |p| privilege_subjects(p).collect::<Vec<_>>();
        assert!(subjects(p(false, false)).is_empty());
        assert_eq!(
            subjects(p(true, false)),
            [
                "auth.v1.usercontext",
                "auth.v1.rooms.>",
                "auth.v1.access.invalidate"
            ]
        );
        assert_eq!(subjects(p(false, true)), ["auth.v1.tokenReset"]);
        assert_eq!(
            subjects(p(true, true)),
            [
                "auth.v1.usercontext",
                "auth.v1.rooms.>",
                "auth.v1.access.invalidate",
                "auth.v1.tokenReset"
            ]
        );
    }

    #[test]
    fn a_token_reset_names_at_least_one_id_and_not_too_many() {
        let req = |tids: usize, users: usize| TokenResetRequest {
            tids: vec!["t".into(); tids],
            users: vec!["u".into(); users],
            ..Default::default()
        };
        assert!(req(0, 0).problem().is_some());
        assert!(req(1, 0).problem().is_none());
        assert!(req(0, 1).problem().is_none());
        assert!(req(MAX_TOKEN_RESET_IDS, 1).problem().is_some());
        assert!(serde_json::from_str::<TokenResetRequest>(r#"{"users": "bob"}"#).is_err());
        assert!(serde_json::from_str::<TokenResetRequest>(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn resgates_reset_names_token_ids_and_a_subject_that_must_be_one() {
        let parse = |json: &str| serde_json::from_str::<TokenResetRequest>(json).unwrap();
        let ok = parse(r#"{"tids": ["t1", "t2"], "subject": "auth.chat.reauth"}"#);
        assert_eq!(ok.tids, ["t1", "t2"]);
        assert_eq!(ok.subject.as_deref(), Some("auth.chat.reauth"));
        assert_eq!(ok.problem(), None);
        assert!(parse(r#"{"tids": [], "subject": "a"}"#).problem().is_some());
        let long = format!("{{\"tids\": [\"t\"], \"subject\": \"{}\"}}", "a".repeat(257));
        let long = parse(&long).problem().unwrap();
        assert!(long.contains("257 bytes, at most 256"), "{long}");
        for bad in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "a\\nb", "a\\u0000"] {
            let req = parse(&format!(r#"{{"tids": ["t"], "subject": "{bad}"}}"#));
            assert!(
                req.problem().is_some_and(|p| p.starts_with("subject: ")),
                "{bad:?}"
            );
        }
        // Serialized without the field when absent (the CLI's requests stay as they were).
        let plain = TokenResetRequest {
            users: vec!["bob".into()],
            ..Default::default()
        };
        assert!(!serde_json::to_string(&plain).unwrap().contains("subject"));
    }
}
