//! Permission store: users, groups, rooms and grants, loaded from a directory of files.
//!
//! Every `*.toml` and `*.json` file in the directory is read (other files, hidden files
//! and subdirectories are ignored), validated, and merged into one immutable [`Snapshot`].
//! Both formats share one schema; each file may hold any of the four tables:
//!
//! ```toml
//! [users.bob]
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."   # optional; argon2id PHC hash
//! roles = ["user"]            # optional, default ["user"]: user, admin, sysadmin, service
//! groups = ["everyone"]       # optional
//! nkeys = ["U..."]            # optional: public user nkeys for the key login, one user each
//! account = "APP2"            # optional: where the user's connections go (default callout.account)
//! limits = { connections = 3, subscriptions = 500 }   # optional (see [`Limits`])
//! [users.bob.rooms]           # optional direct grants: room or pattern -> access
//! bob1 = "readwrite"
//! "team-*" = "read"
//!
//! [groups.everyone]
//! members = ["bob", "alice"]  # users only (users may also list their groups)
//! limits = { connections = 5 } # optional: for members that set none (the smallest group's wins)
//!
//! [rooms.all1]
//! members = ["bob", "@everyone"]  # users, or groups prefixed with '@'
//! access = "readwrite"            # optional, default "readwrite"; read, write, readwrite
//! description = "..."             # optional
//!
//! [applications.mobile]           # a client application (the `clientId` of a login)
//! rooms = ["all1", "team-*"]      # the rooms (or patterns) it may reach
//! description = "..."             # optional
//! ```
//!
//! A room pattern holds exactly one `*`, which matches one or more name characters; `*`
//! alone matches every room. A user's access to a room is the union of direct grants,
//! room memberships (direct and through groups) and matching patterns; admins and
//! sysadmins may read and write every valid room. A session of an application reaches
//! only the application's rooms of those (see [`Scope`]); when applications are defined, a
//! login naming another `clientId` is refused. Validation collects every problem,
//! each with its file and line (see [`Problem`]); a single problem rejects the whole set.

mod application;
mod asserted;
mod build;
pub mod limits;
mod locate;
mod model;
pub mod published;
mod shared;
mod snapshot;
mod source;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

pub use application::{Application, ApplicationError, Scope};
pub use asserted::Asserted;
pub use limits::Limits;
pub use model::{Access, Pattern, PatternError, Role, UnknownAccess, UnknownRole, User};
pub use shared::{Permissions, Privileges};
pub use snapshot::Snapshot;

use locate::{LineIndex, Seg, json_lines, toml_lines};
use source::{Format, Loc, Pending};

/// One problem in the permission files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as given (e.g. `permissions/users.toml`), or the directory.
    pub file: String,
    /// 1-based line; 0 when the problem concerns the whole file or directory.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    /// `file:line: reason`, or `file: reason` when there is no line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.reason)
        }
    }
}

/// Every problem found while loading permission files (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_lines(.0))]
pub struct LoadErrors(pub Vec<Problem>);

fn display_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `*.toml` and `*.json` file in `dir` (sorted by name) as `(path, contents)`;
/// hidden files, other files and subdirectories are left out.
///
/// # Errors
/// The directory or a file cannot be read (every such problem).
pub fn read_files(dir: &Path) -> Result<Sources, LoadErrors> {
    match read_dir_sources(dir)? {
        (sources, problems) if problems.is_empty() => Ok(sources),
        (_, problems) => Err(LoadErrors(problems)),
    }
}

/// Permission files as `(name, contents)` pairs.
pub type Sources = Vec<(String, String)>;

/// The files of `dir` that could be read, and a problem for each that could not.
fn read_dir_sources(dir: &Path) -> Result<(Sources, Vec<Problem>), LoadErrors> {
    let dir_problem = |reason: String| {
        LoadErrors(vec![Problem {
            file: dir.display().to_string(),
            line: 0,
            reason,
        }])
    };
    let entries = std::fs::read_dir(dir).map_err(|e| dir_problem(format!("cannot read directory: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| dir_problem(format!("cannot read directory: {e}")))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let wanted = !name.starts_with('.') && Format::from_path(&path).is_some() && path.is_file();
        if wanted {
            paths.push(path);
        }
    }
    paths.sort();
    let mut sources = Vec::with_capacity(paths.len());
    let mut problems = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push((file, text)),
            Err(e) => problems.push(Problem {
                file,
                line: 0,
                reason: format!("cannot read file: {e}"),
            }),
        }
    }
    Ok((sources, problems))
}

impl Snapshot {
    /// Loads every `*.toml` and `*.json` file in `dir` (sorted by name). An empty directory
    /// gives an empty snapshot.
    ///
    /// # Errors
    /// Every problem found: an unreadable directory or file, syntax, schema and
    /// reference errors (see the module documentation).
    pub fn load_dir(dir: &Path) -> Result<Self, LoadErrors> {
        let (sources, mut problems) = read_dir_sources(dir)?;
        match Self::from_sources(&sources) {
            Ok(snapshot) if problems.is_empty() => Ok(snapshot),
            Ok(_) => Err(LoadErrors(problems)),
            Err(LoadErrors(more)) => {
                problems.extend(more);
                Err(LoadErrors(problems))
            }
        }
    }

    /// Builds a snapshot from `(file name, contents)` pairs; names ending in `.json` are
    /// read as JSON, all others as TOML. Definitions may be split across files in any way.
    ///
    /// # Errors
    /// Every problem found, ordered by file and line.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Self, LoadErrors> {
        checked(sources).map(build::Defs::build)
    }
}

/// Every file's definitions, checked one by one and across files.
fn checked(sources: &[(String, String)]) -> Result<build::Defs<'_>, LoadErrors> {
    let mut pending = Vec::new();
    let mut defs = build::Defs::default();
    for (i, (raw, problems)) in parse_all(sources).into_iter().enumerate() {
        pending.extend(problems);
        defs.add_file(i, raw, &mut pending);
    }
    defs.check_references(&mut pending);
    if pending.is_empty() {
        Ok(defs)
    } else {
        Err(LoadErrors(resolve(sources, &pending)))
    }
}

/// Parses every file (and checks its users), several files at once, keeping their order.
fn parse_all(sources: &[(String, String)]) -> Vec<(source::RawFile<'_>, Vec<Pending>)> {
    par_map(sources, |i, (name, text)| {
        let mut problems = Vec::new();
        let raw = source::parse(i, Format::of(name), text, &mut problems);
        build::check_users(i, &raw, &mut problems);
        (raw, problems)
    })
}

/// `f(index, item)` for every item, on one thread per core (contiguous slices), in order.
/// A large permission set is split over files, so they are parsed this way.
fn par_map<'a, T: Sync, R: Send>(items: &'a [T], f: impl Fn(usize, &'a T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().enumerate().map(|(i, x)| f(i, x)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || {
                    let first = c * chunk;
                    part.iter()
                        .enumerate()
                        .map(|(i, x)| f(first + i, x))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// Turns pending problems into problems with lines, sorted by file and line.
fn resolve(sources: &[(String, String)], pending: &[Pending]) -> Vec<Problem> {
    // Gather every path to look up, per file, and look them all up in one go per file.
    let mut wanted: Vec<Vec<&[Seg]>> = vec![Vec::new(); sources.len()];
    for p in pending {
        if let Loc::Path(path) = &p.loc {
            wanted[p.file].push(path);
        }
        if let Some((file, path)) = &p.first {
            wanted[*file].push(path);
        }
    }
    let found = lines_of(sources, &wanted);
    let mut line_indexes: Vec<Option<LineIndex>> = sources.iter().map(|_| None).collect();

    let mut problems: Vec<(usize, Problem)> = pending
        .iter()
        .map(|p| {
            let line = match &p.loc {
                Loc::Line(line) => *line,
                Loc::Offset(offset) => line_indexes[p.file]
                    .get_or_insert_with(|| LineIndex::new(&sources[p.file].1))
                    .line(*offset),
                Loc::Path(path) => found[p.file].get(path.as_slice()).copied().unwrap_or(1),
            };
            let mut reason = p.reason.clone();
            if let Some((file, path)) = &p.first {
                let first_line = found[*file].get(path.as_slice()).copied().unwrap_or(1);
                reason = format!("{reason} (first at {}:{first_line})", sources[*file].0);
            }
            let problem = Problem {
                file: sources[p.file].0.clone(),
                line,
                reason,
            };
            (p.file, problem)
        })
        .collect();
    problems.sort_by_key(|(file, p)| (*file, p.line));
    problems.into_iter().map(|(_, p)| p).collect()
}

/// The lines of `wanted[file]`'s paths in each file, looked up in one go per file.
fn lines_of<'p>(sources: &[(String, String)], wanted: &[Vec<&'p [Seg]>]) -> Vec<HashMap<&'p [Seg], usize>> {
    let mut found = Vec::with_capacity(sources.len());
    for ((name, text), paths) in sources.iter().zip(wanted) {
        let lines = match (paths.is_empty(), Format::of(name)) {
            (true, _) => Vec::new(),
            (false, Format::Toml) => toml_lines(text, paths),
            (false, Format::Json) => json_lines(text, paths),
        };
        found.push(paths.iter().copied().zip(lines).collect());
    }
    found
}

/// A definition of the permission files that grants a user (part of) their access to a room.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrantSource {
    pub file: String,
    pub line: usize,
    pub access: Access,
    /// The definition in the files' words: `[rooms.all1] members "@everyone" (user bob is in
    /// group everyone)`.
    pub what: String,
}

impl fmt::Display for GrantSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// For each of `rooms`, every definition in `sources` that grants `user` something there,
/// with its file and line (empty for a room the files do not grant, or an unknown user);
/// `asserted`: the groups a provider places the user in count too. Parses the whole set
/// again: for `explain`, never on a decision's path.
///
/// # Errors
/// The set does not load (the same problems as [`Snapshot::from_sources`]).
pub fn grant_sources(
    sources: &[(String, String)],
    user: &str,
    rooms: &[&str],
    asserted: Option<&Asserted>,
) -> Result<Vec<Vec<GrantSource>>, LoadErrors> {
    let defs = checked(sources)?;
    let per_room: Vec<Vec<build::Found>> = rooms
        .iter()
        .map(|room| match crate::names::validate_name(room) {
            Ok(()) => defs.grants_of(
                user,
                room,
                asserted.map(|a| (a.idp.as_str(), a.groups.as_slice())),
            ),
            Err(_) => Vec::new(),
        })
        .collect();
    let mut wanted: Vec<Vec<&[Seg]>> = vec![Vec::new(); sources.len()];
    for f in per_room.iter().flatten() {
        wanted[f.file].push(&f.path);
    }
    let lines = lines_of(sources, &wanted);
    Ok(per_room
        .iter()
        .map(|found| {
            found
                .iter()
                .map(|f| GrantSource {
                    file: sources[f.file].0.clone(),
                    line: lines[f.file].get(f.path.as_slice()).copied().unwrap_or(1),
                    access: f.access,
                    what: f.what.clone(),
                })
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests;
