//! Build information for `nats-callout --version`, the status and the `nats_callout_build_info`
//! metric: the commit the sources come from and whether they differ from it
//! (`NATS_CALLOUT_COMMIT`, `NATS_CALLOUT_TREE`). Without a repository (a `docker build`
//! context) both are `unknown`, unless `NATS_CALLOUT_GIT_COMMIT` names the commit.

#[path = "build/git.rs"]
mod git;

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut origin = git::origin(&dir);
    println!("cargo:rerun-if-env-changed=NATS_CALLOUT_GIT_COMMIT");
    if origin.commit == "unknown"
        && let Ok(commit) = std::env::var("NATS_CALLOUT_GIT_COMMIT")
    {
        if (7..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            origin.commit = commit.to_ascii_lowercase();
        } else if !commit.is_empty() {
            println!("cargo:warning=NATS_CALLOUT_GIT_COMMIT is not a commit id; ignored");
        }
    }
    for input in git::INPUTS {
        if dir.join(input).exists() {
            println!("cargo:rerun-if-changed={input}");
        }
    }
    for path in &origin.watch {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rustc-env=NATS_CALLOUT_COMMIT={}", origin.commit);
    println!("cargo:rustc-env=NATS_CALLOUT_TREE={}", origin.tree);
}
