//! Release artifacts (docs/src/release.md): the build information `build.rs` bakes in, as
//! `--version`, the status, service discovery and the metric report it; what git tells the
//! build script with and without a repository; the changelog's shape; the npm packages the
//! book lists against the lock files.

#[path = "../../build/git.rs"]
mod git;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use nats_callout::version::{COMMIT, TREE, VERSION};
use serde_json::{Value, json};

use crate::support::api::get_bearer;
use crate::support::{DEADLINE, EnvOptions, TestEnv, bin};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `nats-callout 0.1.0 (commit <id>, <tree>)` as (version, commit, tree).
fn parse_version(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.strip_prefix("nats-callout ")?;
    let (version, rest) = rest.split_once(" (commit ")?;
    let (commit, tree) = rest.strip_suffix(')')?.split_once(", ")?;
    Some((version, commit, tree))
}

#[test]
fn version_names_the_commit_and_whether_the_sources_differed() {
    for flag in ["--version", "-V"] {
        let out = bin().arg(flag).output().unwrap();
        assert!(out.status.success(), "{flag}");
        let text = String::from_utf8(out.stdout).unwrap();
        let (version, commit, tree) =
            parse_version(text.trim()).unwrap_or_else(|| panic!("{flag} printed {text:?}"));
        assert_eq!((version, commit, tree), (VERSION, COMMIT, TREE), "{text}");
    }
    assert_eq!(VERSION, env!("CARGO_PKG_VERSION"));
    // Built here: what git says of this checkout now (build.rs runs again when HEAD, the
    // branch or an input changes). A copy without .git builds as unknown.
    let here = git::origin(repo());
    assert_eq!((COMMIT, TREE), (here.commit.as_str(), here.tree));
    if COMMIT != "unknown" {
        assert!(
            COMMIT.len() == 40 && COMMIT.bytes().all(|b| b.is_ascii_hexdigit()),
            "{COMMIT}"
        );
        assert!(matches!(TREE, "clean" | "dirty"), "{TREE}");
    }
}

/// The build script's git answers: no repository, a repository without a commit, clean,
/// dirty only through the files the binary is built from, and a folder inside another
/// repository (not its top: unknown, never the outer repository's commit).
#[test]
fn the_build_script_reads_git_and_does_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let git_in = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(git::origin(root), git::Origin::unknown(), "no repository");
    git_in(&["init", "-q"]);
    assert_eq!(git::origin(root), git::Origin::unknown(), "no commit yet");
    let write = |rel: &str, text: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("src/lib.rs", "//! lib\n");
    write("Cargo.toml", "[package]\n");
    write("docs/page.md", "# page\n");
    git_in(&["add", "."]);
    git_in(&["commit", "-q", "-m", "first"]);
    let head = git_in(&["rev-parse", "HEAD"]);
    let clean = git::origin(root);
    assert_eq!((clean.commit.as_str(), clean.tree), (head.as_str(), "clean"));
    assert!(
        clean.watch.iter().any(|p| p.ends_with("HEAD")) && clean.watch.iter().all(|p| p.exists()),
        "{:?}",
        clean.watch
    );
    // Not the binary's sources: a page edited, an untracked file.
    write("docs/page.md", "# page, edited\n");
    write("src/untracked.rs", "\n");
    assert_eq!(git::origin(root).tree, "clean");
    write("src/lib.rs", "//! lib, edited\n");
    assert_eq!(git::origin(root).tree, "dirty");
    git_in(&["add", "src/lib.rs"]);
    assert_eq!(git::origin(root).tree, "dirty", "staged is still not committed");
    write("vendored/Cargo.toml", "[package]\n");
    assert_eq!(git::origin(&root.join("vendored")), git::Origin::unknown());
}

/// The running service reports its build: the metric, `GET /api/admin/status` and service
/// discovery (`nats-callout status` is checked in `production`).
#[tokio::test]
async fn the_service_reports_its_build() {
    let env = TestEnv::start(EnvOptions::default()).await;
    let svc = env.start_callout().await;
    let http = reqwest::Client::new();
    let metrics = http
        .get(format!("{}/metrics", svc.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line =
        format!("nats_callout_build_info{{version=\"{VERSION}\",commit=\"{COMMIT}\",tree=\"{TREE}\"}} 1");
    assert!(metrics.lines().any(|l| l == line), "no {line} in:\n{metrics}");

    let (code, status, _) = get_bearer(
        &format!("{}/api/admin/status", svc.admin_url()),
        &env.token("admin"),
    )
    .await;
    assert_eq!(code, 200, "{status}");
    let build = json!({"version": VERSION, "commit": COMMIT, "tree": TREE});
    assert_eq!(status["build"], build, "{status}");

    let client = env.connect_auth_user().await;
    let info = tokio::time::timeout(DEADLINE, client.request("$SRV.INFO.nats-callout", "".into()))
        .await
        .unwrap()
        .unwrap();
    let info: Value = serde_json::from_slice(&info.payload).unwrap();
    assert_eq!(info["version"], VERSION);
    assert_eq!(
        info["metadata"],
        json!({"commit": COMMIT, "tree": TREE}),
        "{info}"
    );
}

/// Keep a Changelog: the title, an Unreleased section first, its changes under the
/// format's own headings only.
#[test]
fn the_changelog_keeps_a_changelog() {
    let text = std::fs::read_to_string(repo().join("CHANGELOG.md")).unwrap();
    assert!(text.starts_with("# Changelog\n"), "the title");
    let sections: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(sections.first(), Some(&"## [Unreleased]"), "{sections:?}");
    let kinds = ["Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"];
    for heading in text.lines().filter_map(|l| l.strip_prefix("### ")) {
        assert!(
            kinds.contains(&heading),
            "### {heading}: not a Keep a Changelog heading"
        );
    }
    let unreleased = text.split("## [Unreleased]").nth(1).unwrap();
    let unreleased = unreleased.split("\n## ").next().unwrap();
    assert!(
        unreleased.lines().filter(|l| l.starts_with("- ")).count() >= 5,
        "{unreleased}"
    );
}

/// Rows `| `name` | version | license | where |` of the npm table.
fn npm_rows(page: &str) -> BTreeSet<(String, String, String, String)> {
    let table = page.split("## npm dependencies").nth(1).expect("the npm section");
    table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((
                cells.first()?.trim_end_matches('`').to_string(),
                cells.get(1)?.to_string(),
                cells.get(2)?.to_string(),
                cells.get(3)?.to_string(),
            ))
        })
        .collect()
}

/// The book lists every npm package of the page (and of the JavaScript kit once it exists)
/// with its version and license, shipped or for development only, and nothing else.
#[test]
fn the_book_lists_every_npm_package_with_its_license() {
    let mut locked = BTreeSet::new();
    for dir in ["web", "clients/js"] {
        let Ok(text) = std::fs::read_to_string(repo().join(dir).join("package-lock.json")) else {
            continue;
        };
        let lock: Value = serde_json::from_str(&text).unwrap();
        for (path, p) in lock["packages"].as_object().unwrap() {
            let Some((_, name)) = path.rsplit_once("node_modules/") else {
                continue;
            };
            let place = if p["dev"] == true {
                format!("{dir} (dev)")
            } else {
                dir.to_string()
            };
            let license = p["license"]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: no license"));
            locked.insert((
                name.to_string(),
                p["version"].as_str().unwrap().to_string(),
                license.to_string(),
                place,
            ));
        }
    }
    assert!(locked.len() > 10, "{locked:?}");
    let page = std::fs::read_to_string(repo().join("docs/src/release.md")).unwrap();
    assert_eq!(
        npm_rows(&page),
        locked,
        "docs/src/release.md's npm table against the lock files"
    );
}
