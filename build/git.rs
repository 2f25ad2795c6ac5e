//! What the build script learns from git about the sources it builds: the commit and whether
//! the files the binary is made of differ from it. Shared with the tests (`tests/it/release.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files and folders the binary is built from, relative to the package: a change to
/// one of them makes the build dirty (docs and tests do not).
pub const INPUTS: &[&str] = &[
    "src",
    "web/src",
    "web/dist",
    "build",
    "build.rs",
    "Cargo.toml",
    "Cargo.lock",
];

/// Where the sources came from, as far as git can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The full commit id, or `unknown`.
    pub commit: String,
    /// `clean`, `dirty` (an input differs from the commit) or `unknown`.
    pub tree: &'static str,
    /// Git's files whose change may change the answer (`HEAD`, the branch, packed refs).
    pub watch: Vec<PathBuf>,
}

impl Origin {
    /// No repository (a `docker build` context, a source tarball), or no git.
    pub fn unknown() -> Origin {
        Origin {
            commit: "unknown".into(),
            tree: "unknown",
            watch: Vec::new(),
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    // The repository at `dir`, whatever git's variables say (a build run from a git hook);
    // no optional locks: `status` must not rewrite the index under a developer's git.
    let out = Command::new("git")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .arg("--no-optional-locks")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok().map(|s| s.trim().to_string())
}

/// The origin of the package in `dir`: only a repository whose top is `dir` counts (a
/// package copied inside another repository must not report that repository's commit).
pub fn origin(dir: &Path) -> Origin {
    let Some(top) = git(dir, &["rev-parse", "--show-toplevel"]) else {
        return Origin::unknown();
    };
    if Path::new(&top).canonicalize().ok() != dir.canonicalize().ok() {
        return Origin::unknown();
    }
    let Some(commit) = git(dir, &["rev-parse", "--verify", "-q", "HEAD"]) else {
        return Origin::unknown();
    };
    let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    status.extend(INPUTS);
    let tree = match git(dir, &status) {
        Some(changes) if changes.is_empty() => "clean",
        Some(_) => "dirty",
        None => "unknown",
    };
    let mut watch = Vec::new();
    let branch = git(dir, &["symbolic-ref", "-q", "HEAD"]);
    for name in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", name]) {
            let path = dir.join(path);
            if path.exists() {
                watch.push(path);
            }
        }
    }
    Origin { commit, tree, watch }
}
