//! The permission-set generator: `bench gen-permissions --out DIR` writes a large,
//! deterministic set as JSON files (the same schema as the TOML files).
//!
//! Grants are split 60/40: each user has `grants * 0.6 / users` direct room grants
//! (`users.U.rooms`), and each room lists `grants * 0.4 / rooms` members (`rooms.R.members`).
//! On top: one admin per 10,000 users, and 100 groups of 100 users, each group a member of
//! one room. Every user has an argon2id password hash, as users who log in do.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(clap::Args, Clone, Debug)]
pub struct GenArgs {
    /// Directory to write into (created; existing `*.json` files in it are replaced).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    #[arg(long, default_value_t = 10_000)]
    pub rooms: usize,
    #[arg(long, default_value_t = 1_000_000)]
    pub grants: usize,
    /// Files the users are split over.
    #[arg(long, default_value_t = 10)]
    pub files: usize,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub users: usize,
    pub rooms: usize,
    pub direct_grants: usize,
    pub room_memberships: usize,
    pub groups: usize,
    pub files: usize,
    pub bytes: u64,
}

/// A demo argon2id hash (the password is the user name "bob"): realistic size only.
const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$6DagVw73dIuNptllUCkSOQ$ky3bsIdt02AJ84yAtu9IX48twRpyrUDA/b5RqzObzmc";
const ACCESS: [&str; 6] = [
    "readwrite",
    "readwrite",
    "read",
    "readwrite",
    "write",
    "readwrite",
];
const GROUPS: usize = 100;
const GROUP_SIZE: usize = 100;

pub fn user_name(u: usize) -> String {
    format!("user-{u:06}")
}

pub fn room_name(r: usize) -> String {
    format!("room-{r:05}")
}

/// Direct grants per user for this shape.
pub fn direct_per_user(users: usize, grants: usize) -> usize {
    (grants * 6 / 10) / users.max(1)
}

/// The `j`-th room user `u` holds a direct grant on (distinct for `j` < 10 and at least
/// 10,000 rooms).
pub fn direct_room(u: usize, j: usize, rooms: usize) -> usize {
    (u * 7 + j * 1009) % rooms
}

pub fn write(args: &GenArgs) -> anyhow::Result<Written> {
    let GenArgs {
        out,
        users,
        rooms,
        grants,
        files,
    } = args.clone();
    anyhow::ensure!(
        users > 0 && rooms > 0 && files > 0,
        "users, rooms and files must be > 0"
    );
    std::fs::create_dir_all(&out)?;
    for e in std::fs::read_dir(&out)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json") {
            std::fs::remove_file(p)?;
        }
    }
    let direct = direct_per_user(users, grants);
    let members_per_room = (grants - direct * users) / rooms;
    let mut w = Written {
        users,
        rooms,
        direct_grants: direct * users,
        room_memberships: members_per_room * rooms,
        groups: GROUPS.min(users / GROUP_SIZE),
        files: files + 1,
        bytes: 0,
    };
    let per_file = users.div_ceil(files);
    for f in 0..files {
        let range = (f * per_file)..((f + 1) * per_file).min(users);
        let mut s = String::with_capacity(range.len() * 320);
        s.push_str("{\"users\": {\n");
        for (n, u) in range.clone().enumerate() {
            if n > 0 {
                s.push_str(",\n");
            }
            s.push_str(&format!("\"{}\": {{\"password\": \"{HASH}\"", user_name(u)));
            if u % 10_000 == 0 {
                s.push_str(", \"roles\": [\"admin\"]");
            }
            s.push_str(", \"rooms\": {");
            for j in 0..direct {
                if j > 0 {
                    s.push_str(", ");
                }
                let r = direct_room(u, j, rooms);
                s.push_str(&format!("\"{}\": \"{}\"", room_name(r), ACCESS[j % ACCESS.len()]));
            }
            s.push_str("}}");
        }
        s.push_str("\n}}\n");
        w.bytes += write_file(&out.join(format!("users-{f:02}.json")), &s)?;
    }
    let mut s = String::with_capacity(rooms * (members_per_room * 16 + 64));
    s.push_str("{\"groups\": {\n");
    for g in 0..w.groups {
        if g > 0 {
            s.push_str(",\n");
        }
        let members: Vec<String> = (0..GROUP_SIZE)
            .map(|k| format!("\"{}\"", user_name((g * 997 + k) % users)))
            .collect();
        s.push_str(&format!(
            "\"group-{g:03}\": {{\"members\": [{}]}}",
            members.join(", ")
        ));
    }
    s.push_str("\n}, \"rooms\": {\n");
    for r in 0..rooms {
        if r > 0 {
            s.push_str(",\n");
        }
        let mut members: Vec<String> = (0..members_per_room)
            .map(|k| format!("\"{}\"", user_name((r * members_per_room + k) % users)))
            .collect();
        if r % 100 == 0 && r / 100 < w.groups {
            members.push(format!("\"@group-{:03}\"", r / 100));
        }
        let access = if r % 4 == 0 { "read" } else { "readwrite" };
        s.push_str(&format!(
            "\"{}\": {{\"access\": \"{access}\", \"members\": [{}]}}",
            room_name(r),
            members.join(", ")
        ));
    }
    s.push_str("\n}}\n");
    w.bytes += write_file(&out.join("rooms.json"), &s)?;
    eprintln!(
        "bench: wrote {} users, {} rooms, {} direct grants + {} room memberships, {} groups: {} files, {:.1} MB in {}",
        w.users,
        w.rooms,
        w.direct_grants,
        w.room_memberships,
        w.groups,
        w.files,
        w.bytes as f64 / 1e6,
        out.display()
    );
    Ok(w)
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<u64> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(text.as_bytes())?;
    f.flush()?;
    Ok(text.len() as u64)
}
