//! `auth.v1.rooms.*`: the operations on rooms over NATS, for app services (the `service`
//! role may publish there; nobody else). An app service acts for a user it names (`owner`,
//! `userId`) and manages every room, as an admin does; answers are JSON, a refusal
//! `{error, error_code}` with the same codes as the HTTP API.

use serde::Deserialize;
use serde_json::{Value, json};

use super::model::RoomError;
use super::service::{Actor, NewMember, NewRoom, RoomService};
use crate::permissions::{Access, Snapshot};
use crate::tokens::TokenService;

/// The subjects under `auth.v1.rooms.`.
pub const OPERATIONS: [&str; 7] = [
    "create",
    "delete",
    "join",
    "list",
    "members.add",
    "members.remove",
    "members.list",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Create {
    #[serde(flatten)]
    room: NewRoomFields,
    /// The user who owns it.
    owner: String,
}

/// [`NewRoom`]'s fields, beside `owner`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewRoomFields {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    join: super::JoinPolicy,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Room {
    room: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Member {
    room: String,
    user_id: String,
    #[serde(default)]
    access: Option<Access>,
    #[serde(default)]
    owner: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct List {
    user_id: String,
    #[serde(default)]
    open: bool,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

fn refused(e: &RoomError) -> Value {
    json!({"error": e.to_string(), "error_code": e.code()})
}

fn parse<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, RoomError> {
    serde_json::from_slice(payload).map_err(|e| RoomError::BadRequest(format!("invalid request: {e}")))
}

/// An app service acting for `user`.
fn acting_for(user: &str) -> Actor<'_> {
    Actor {
        user,
        admin: true,
        may_create: true,
    }
}

/// Answer the request to `operation` (what follows `auth.v1.rooms.`).
pub async fn answer(
    rooms: &RoomService,
    snapshot: &Snapshot,
    tokens: &TokenService,
    operation: &str,
    payload: &[u8],
    now: i64,
) -> Value {
    match run(rooms, snapshot, tokens, operation, payload, now).await {
        Ok(v) => v,
        Err(e) => refused(&e),
    }
}

async fn run(
    rooms: &RoomService,
    snapshot: &Snapshot,
    tokens: &TokenService,
    operation: &str,
    payload: &[u8],
    now: i64,
) -> Result<Value, RoomError> {
    match operation {
        "create" => {
            let c: Create = parse(payload)?;
            if !rooms.is_known(snapshot, tokens, &c.owner).await? {
                return Err(RoomError::UnknownUser(c.owner.chars().take(80).collect()));
            }
            let new = NewRoom {
                name: c.room.name,
                description: c.room.description,
                join: c.room.join,
            };
            let room = rooms.create(&acting_for(&c.owner), new, snapshot, now).await?;
            to_json(&room)
        }
        "delete" => {
            let r: Room = parse(payload)?;
            rooms.delete(&acting_for(""), &r.room).await?;
            Ok(json!({"done": true}))
        }
        "join" => {
            let m: Member = parse(payload)?;
            if !rooms.is_known(snapshot, tokens, &m.user_id).await? {
                return Err(RoomError::UnknownUser(m.user_id.chars().take(80).collect()));
            }
            let actor = Actor {
                user: &m.user_id,
                admin: false,
                may_create: false,
            };
            to_json(&rooms.join(&actor, &m.room, now).await?)
        }
        "list" => {
            let l: List = parse(payload)?;
            if l.open {
                let limit = l.limit.unwrap_or(100).clamp(1, 1000);
                return to_json(&rooms.open_rooms(&l.user_id, l.after.as_deref(), limit));
            }
            let list: Vec<Value> = rooms
                .rooms_of(&l.user_id)
                .into_iter()
                .map(|(room, access, owner)| json!({"room": room, "access": access, "owner": owner}))
                .collect();
            Ok(Value::Array(list))
        }
        "members.add" => {
            let m: Member = parse(payload)?;
            let access = m
                .access
                .ok_or_else(|| RoomError::BadRequest("access: read, write or readwrite".into()))?;
            let known = rooms.is_known(snapshot, tokens, &m.user_id).await?;
            let new = NewMember {
                user: &m.user_id,
                access,
                owner: m.owner,
                known,
            };
            let member = rooms.put_member(&acting_for(""), &m.room, new, now).await?;
            to_json(&member)
        }
        "members.remove" => {
            let m: Member = parse(payload)?;
            rooms
                .remove_member(&acting_for(""), &m.room, &m.user_id, now)
                .await?;
            Ok(json!({"done": true}))
        }
        "members.list" => {
            let r: Room = parse(payload)?;
            to_json(&rooms.members(&acting_for(""), &r.room)?)
        }
        _ => Err(RoomError::BadRequest(format!(
            "no such operation {:?} (auth.v1.rooms.{{{}}})",
            operation.chars().take(40).collect::<String>(),
            OPERATIONS.join(",")
        ))),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, RoomError> {
    serde_json::to_value(v).map_err(|e| RoomError::Store(e.to_string()))
}
