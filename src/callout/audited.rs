//! The audit event of a decision: who, which rooms were asked, granted and refused (each
//! with why), the client and the server, built from what the decision already holds.

use super::Verdict;
use super::decision::parse_rooms;
use crate::audit::{Client, Decision, GrantedRoom, RefusedRoom, Rooms};
use crate::claims::request::AuthRequest;

/// The event of `verdict` on `req` (absent when the request itself was refused), its time
/// left for the caller to fill in.
pub(super) fn decision(
    req: Option<&AuthRequest>,
    verdict: &Verdict,
    policy: &super::decision::Policy,
    now: i64,
) -> Decision {
    let mut d = Decision {
        event: "decision",
        at: now,
        ..Decision::default()
    };
    if let Some(req) = req {
        let ci = &req.client_info;
        d.server = Some(req.server_id.name.clone());
        d.client = Some(Client {
            kind: ci.kind.clone(),
            client_type: ci.client_type.clone(),
            host: ci.host.clone(),
            id: ci.id,
        });
        // The rooms as the decision read them (none when the list itself was refused).
        d.rooms.asked = parse_rooms(req.connect_opts.user.as_deref(), policy)
            .map(|rooms| rooms.into_iter().map(str::to_string).collect())
            .unwrap_or_default();
    }
    match verdict {
        Verdict::Allowed(allowed) => {
            let g = &allowed.0;
            d.result = "allowed";
            d.reason = "granted".into();
            d.user = Some(g.identity.sub.clone());
            d.session = Some(g.identity.sid.clone());
            d.application = g.identity.client_id.clone();
            d.device = g.identity.did.clone();
            d.rooms = Rooms {
                asked: std::mem::take(&mut d.rooms.asked),
                granted: g
                    .rooms
                    .iter()
                    .map(|r| GrantedRoom {
                        room: r.name.clone(),
                        access: r.access.as_str(),
                        source: delegate_source(g, &r.name),
                    })
                    .collect(),
                refused: g
                    .refusals()
                    .map(|(room, reason)| RefusedRoom {
                        room: room.to_string(),
                        reason,
                        source: delegate_source(g, room),
                    })
                    .collect(),
            };
        }
        Verdict::Denied(denied) => {
            d.result = "denied";
            d.reason = denied.deny.code().into();
            d.detail = Some(denied.to_string());
            if let Some((user, session)) = &denied.who {
                d.user = Some(user.clone());
                d.session = Some(session.clone());
            }
        }
        Verdict::Refused(code) => {
            d.result = if *code == "sign-failed" {
                "error"
            } else {
                "refused"
            };
            d.reason = (*code).into();
        }
    }
    d
}

/// `delegate:<subject>` when an app service decided `room`.
fn delegate_source(g: &super::decision::Grant, room: &str) -> Option<String> {
    g.delegate_of(room).map(|o| format!("delegate:{}", o.subject))
}
