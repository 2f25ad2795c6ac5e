//! The docs stay true and findable: README is a front page (at most 16,000 bytes); every
//! relative link in README, BENCHMARKS.md and the book (`docs/src`) reaches a file, and a
//! `#anchor` a heading of it; SUMMARY.md lists every chapter; the reference pages name every
//! command, metric, error code and NATS subject the code has, and nothing the code lacks.
//! (The settings table is checked in `config`, the code layout in `architecture`, the
//! nats-server snippet in `cli`.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files under `dir` whose names end in `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path, ext));
        } else if path.to_string_lossy().ends_with(ext) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every Markdown file whose links must resolve: README, BENCHMARKS.md and the book.
fn markdown_files() -> Vec<PathBuf> {
    let mut all = vec![repo().join("README.md"), repo().join("BENCHMARKS.md")];
    all.extend(files(&repo().join("docs/src"), ".md"));
    all
}

/// The text outside fenced code blocks (a fence is a line starting with ``` or ~~~).
fn prose(text: &str) -> String {
    let mut fence: Option<&str> = None;
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        match fence {
            Some(f) if trimmed.starts_with(f) => fence = None,
            Some(_) => {}
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// `text` without its code spans (a run of backticks up to the next run of the same length,
/// across lines too), so that `[a](b)` inside code is not taken for a link.
fn without_code_spans(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let run = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let after = &rest[start + run..];
        let closing = "`".repeat(run);
        let mut search = after;
        let mut end = None;
        while let Some(i) = search.find(&closing) {
            let tail = &search[i + run..];
            if !tail.starts_with('`') {
                end = Some(after.len() - search.len() + i);
                break;
            }
            search = tail.trim_start_matches('`');
        }
        match end {
            Some(e) => rest = &after[e + run..],
            // An unmatched run is literal text.
            None => {
                out.push_str(&closing);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of inline links and images (`[text](target "title")`) and of reference
/// definitions (`[label]: target`) in Markdown prose.
fn link_targets(prose: &str) -> Vec<String> {
    let text = without_code_spans(prose);
    let mut targets = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let mut depth = 0;
        let end = after
            .char_indices()
            .find(|&(_, c)| match c {
                '(' => {
                    depth += 1;
                    false
                }
                ')' if depth == 0 => true,
                ')' => {
                    depth -= 1;
                    false
                }
                '\n' => true,
                _ => false,
            })
            .map_or(after.len(), |(j, _)| j);
        let inside = after[..end].trim();
        let target = inside.split_whitespace().next().unwrap_or("");
        targets.push(target.trim_start_matches('<').trim_end_matches('>').to_string());
        rest = &after[end..];
    }
    for line in text.lines() {
        let line = line.trim_start();
        if let Some((label, target)) = line.strip_prefix('[').and_then(|l| l.split_once("]:"))
            && !label.is_empty()
            && !label.contains(']')
        {
            targets.push(target.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    targets
}

/// A heading's anchor as mdBook and GitHub make it: lowercase; letters, digits, `-` and `_`
/// kept; whitespace becomes `-`; everything else (punctuation, backticks) dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (ATX `#` headings outside code blocks); a
/// repeated anchor gets `-1`, `-2`, ... as in mdBook and on GitHub.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(markdown).lines() {
        let hashes = line.len() - line.trim_start_matches('#').len();
        let Some(text) = line[hashes..]
            .strip_prefix(' ')
            .filter(|_| (1..=6).contains(&hashes))
        else {
            continue;
        };
        let base = slug(text.trim_end_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// Why a link target from `file` does not resolve, if it does not.
fn broken(file: &Path, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("an empty link".into());
    }
    let scheme = target.split_once(':').is_some_and(|(s, _)| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if scheme {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let resolved = if path.is_empty() {
        file.to_path_buf()
    } else if let Some(from_root) = path.strip_prefix('/') {
        repo().join(from_root)
    } else {
        file.parent().unwrap().join(path)
    };
    if !resolved.exists() {
        return Some(format!("{} does not exist", resolved.display()));
    }
    let anchor = anchor?;
    if !resolved.to_string_lossy().ends_with(".md") {
        return Some(format!(
            "#{anchor} points into {}, not Markdown",
            resolved.display()
        ));
    }
    if anchors(&read(&resolved)).contains(anchor) {
        None
    } else {
        Some(format!("{} has no heading #{anchor}", resolved.display()))
    }
}

#[test]
fn the_readme_is_a_front_page() {
    let size = std::fs::metadata(repo().join("README.md")).unwrap().len();
    assert!(
        size <= 16_000,
        "README.md is {size} bytes; at most 16,000: move the rest into the book (docs/src)"
    );
}

#[test]
fn every_relative_link_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        for target in link_targets(&prose(&text)) {
            checked += 1;
            if let Some(why) = broken(&file, &target) {
                problems.push(format!("{}: ({target}): {why}", file.display()));
            }
        }
        // mdBook's includes, wherever they are.
        for include in text.split("{{#include ").skip(1) {
            let path = include.split("}}").next().unwrap().trim();
            let path = path.split(':').next().unwrap();
            if !file.parent().unwrap().join(path).exists() {
                problems.push(format!(
                    "{}: {{{{#include {path}}}}} does not exist",
                    file.display()
                ));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} links found: is the link parser broken?"
    );
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

/// The link checker itself: what it must accept and what it must refuse.
#[test]
fn the_link_checker_finds_what_it_should() {
    let text = "A [link](a.md#b-c) and ![img](x.png \"t\"), `[not](code.md)`, ``[n](`o`)``,\n\
                [ref]: ref.md\n```\n[in](fence.md)\n```\n[url](https://example.com/(x)) [p](a_(b).md)\n";
    assert_eq!(
        link_targets(&prose(text)),
        [
            "a.md#b-c",
            "x.png",
            "https://example.com/(x)",
            "a_(b).md",
            "ref.md"
        ]
    );
    assert_eq!(
        slug("Identity providers (`[[identity.oidc]]`)"),
        "identity-providers-identityoidc"
    );
    assert_eq!(slug("`auth.v1.tokenReset`"), "authv1tokenreset");
    assert_eq!(
        slug("From a clean host to a running service with TLS"),
        "from-a-clean-host-to-a-running-service-with-tls"
    );
    let headings = anchors("# Title\n## Try it\n```sh\n# not a heading\n```\n## Try it\n");
    assert_eq!(
        headings,
        BTreeSet::from(["title".to_string(), "try-it".into(), "try-it-1".into()])
    );
    let readme = repo().join("README.md");
    assert!(broken(&readme, "docs/src/SUMMARY.md").is_none());
    assert!(broken(&readme, "docs/src/nothing-here.md").is_some());
    assert!(broken(&readme, "#no-such-heading").is_some());
    assert!(broken(&readme, "#a-five-minute-tour").is_none());
    assert!(broken(&readme, "docs/src/getting-started/demo.md#requirements").is_none());
    assert!(broken(&readme, "docs/src/getting-started/demo.md#nope").is_some());
    assert!(
        broken(&readme, "Cargo.toml#x").is_some(),
        "anchors only into Markdown"
    );
    assert!(broken(&readme, "").is_some());
}

#[test]
fn the_summary_lists_every_chapter() {
    let src = repo().join("docs/src");
    let summary = src.join("SUMMARY.md");
    let listed: BTreeSet<PathBuf> = link_targets(&prose(&read(&summary)))
        .iter()
        .map(|t| src.join(t))
        .collect();
    for page in files(&src, ".md").into_iter().filter(|p| *p != summary) {
        assert!(
            listed.contains(&page),
            "{} is not in docs/src/SUMMARY.md",
            page.display()
        );
    }
}

/// The Rust sources of the library (the shared test world aside).
fn sources() -> Vec<(PathBuf, String)> {
    files(&repo().join("src"), ".rs")
        .into_iter()
        .filter(|p| !p.starts_with(repo().join("src/testing")))
        .map(|p| {
            let text = read(&p);
            (p, text)
        })
        .collect()
}

/// The string literal at the start of `s` (after whitespace), if there is one.
fn literal_at(s: &str) -> Option<&str> {
    let s = s.trim_start().strip_prefix('"')?;
    s.split('"').next()
}

/// Every string literal that follows `opener` in `text`.
fn literals_after<'a>(text: &'a str, opener: &str) -> Vec<&'a str> {
    text.split(opener).skip(1).filter_map(literal_at).collect()
}

/// The body of every function whose signature starts with `signature` (up to the first line
/// that closes at the signature's indentation).
fn function_bodies<'a>(text: &'a str, signature: &str) -> Vec<&'a str> {
    let mut bodies = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(signature) {
        let line_start = rest[..i].rfind('\n').map_or(0, |n| n + 1);
        let indent = &rest[line_start..i];
        let body = &rest[i..];
        let end = body.find(&format!("\n{indent}}}")).unwrap_or(body.len());
        bodies.push(&body[..end]);
        rest = &body[end..];
    }
    bodies
}

/// The backticked names in the first column of a page's tables.
fn first_column(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_metrics_page_names_every_metric_and_only_those() {
    let mut recorded = BTreeSet::new();
    for (_, text) in sources() {
        for macro_call in ["counter!(", "gauge!(", "histogram!("] {
            recorded.extend(literals_after(&text, macro_call).into_iter().map(str::to_string));
        }
    }
    assert!(recorded.len() > 20, "{recorded:?}");
    let documented = first_column(&read(&repo().join("docs/src/reference/metrics.md")));
    assert_eq!(
        documented, recorded,
        "docs/src/reference/metrics.md against the metrics the code records"
    );
}

/// A code's shape: lowercase words joined by `-`.
fn code_shaped(s: &str) -> bool {
    s.split('-').count() > 1
        && s.split('-')
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
}

const KITS_SECTION: &str = "## Client kits";

/// The code-shaped words in backquotes.
fn codes_named(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| code_shaped(s))
        .map(str::to_string)
        .collect()
}

/// The kits' own codes: the JS kit's `new ChatError("code"` and the Rust kit's `code()` arms.
#[test]
fn the_error_codes_page_names_every_code_of_the_client_kits() {
    let mut given = BTreeSet::new();
    for path in files(&repo().join("clients/js/src"), ".js") {
        let text = read(&path);
        given.extend(
            literals_after(&text, "new ChatError(")
                .into_iter()
                .map(str::to_string),
        );
    }
    let rust = read(&repo().join("clients/rust/src/error.rs"));
    for body in function_bodies(&rust, "pub fn code(&self)") {
        given.extend(literals_after(body, "=> ").into_iter().map(str::to_string));
    }
    assert!(given.len() >= 14, "{given:?}");
    let page = read(&repo().join("docs/src/reference/error-codes.md"));
    let (service_part, kits) = page.split_once(KITS_SECTION).expect("the kits' section");
    // The kits have one-word codes too: their table's first column is what they name.
    let (service, named) = (codes_named(service_part), first_column(kits));
    let missing: Vec<_> = given
        .iter()
        .filter(|c| !named.contains(*c) && !service.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "kit codes missing from the error codes page: {missing:?}"
    );
    let invented: Vec<_> = named
        .iter()
        .filter(|c| !given.contains(*c) && !service.contains(*c))
        .collect();
    assert!(
        invented.is_empty(),
        "the kits' section names codes no kit gives: {invented:?}"
    );
}

#[test]
fn the_error_codes_page_names_every_code_and_only_real_ones() {
    let mut given = BTreeSet::new();
    let sources = sources();
    for (_, text) in &sources {
        let mut found = Vec::new();
        for body in function_bodies(text, "pub fn code(&self)")
            .into_iter()
            .chain(function_bodies(text, "pub fn check_parts("))
        {
            for opener in ["=> ", "Some("] {
                found.extend(literals_after(body, opener).into_iter().map(str::to_string));
            }
        }
        for opener in [
            "ApiError::unauthorized(",
            "ApiError::not_found(",
            "ApiError::unavailable(",
            "Refused(",
            "Kick(",
            "Reauthorize(",
            "\"error_code\": ",
        ] {
            found.extend(literals_after(text, opener).into_iter().map(str::to_string));
        }
        // `Self::new(StatusCode::X, "code", ...)`: the code after the status.
        for call in text.split("Self::new(").skip(1) {
            if let Some((_, after)) = call
                .trim_start()
                .strip_prefix("StatusCode::")
                .and_then(|c| c.split_once(','))
                && let Some(code) = literal_at(after)
            {
                found.push(code.to_string());
            }
        }
        for redirect in text.split("?loginError=").skip(1) {
            let code = redirect.split(['"', '{']).next().unwrap();
            if !code.is_empty() {
                found.push(code.to_string());
            }
        }
        given.extend(found.into_iter().filter(|c| code_shaped(c)));
    }
    assert!(given.len() > 60, "{given:?}");
    let page = read(&repo().join("docs/src/reference/error-codes.md"));
    let (service_part, _kits) = page.split_once(KITS_SECTION).expect("the kits' section");
    let named = codes_named(service_part);
    let missing: Vec<_> = given.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "codes missing from docs/src/reference/error-codes.md: {missing:?}"
    );
    let invented: Vec<_> = named
        .iter()
        .filter(|c| !sources.iter().any(|(_, text)| text.contains(&format!("\"{c}\""))))
        .collect();
    assert!(
        invented.is_empty(),
        "docs/src/reference/error-codes.md names codes the code never gives: {invented:?}"
    );
}

#[test]
fn the_nats_endpoints_page_names_every_subject() {
    let wire = read(&repo().join("src/wire.rs"));
    let subjects: Vec<&str> = literals_after(&wire, ": &str = ");
    assert!(subjects.len() >= 8, "{subjects:?}");
    let page = read(&repo().join("docs/src/reference/nats-endpoints.md"));
    for s in subjects {
        assert!(
            page.contains(&format!("`{s}`")),
            "docs/src/reference/nats-endpoints.md does not name `{s}`"
        );
    }
}

#[test]
fn the_command_line_page_names_every_command_option_and_variable() {
    use clap::CommandFactory;
    let page = read(&repo().join("docs/src/reference/cli.md"));
    let rows: Vec<&str> = page.lines().filter(|l| l.starts_with("| `")).collect();
    let root = nats_callout::cli::Cli::command();
    let mut commands = vec![(String::new(), &root)];
    let mut checked = 0;
    while let Some((prefix, cmd)) = commands.pop() {
        for sub in cmd.get_subcommands() {
            let name = format!("{prefix}{}", sub.get_name());
            if sub.has_subcommands() {
                commands.push((format!("{name} "), sub));
                continue;
            }
            let own_rows: Vec<&&str> = rows
                .iter()
                .filter(|r| r.starts_with(&format!("| `{name}")))
                .collect();
            assert!(
                !own_rows.is_empty(),
                "docs/src/reference/cli.md has no row for `{name}`"
            );
            for arg in sub.get_arguments() {
                let flag = arg.get_long().map(|l| format!("--{l}"));
                let named = |what: &str| own_rows.iter().any(|r| r.contains(what));
                if let Some(flag) = &flag {
                    assert!(
                        named(flag),
                        "docs/src/reference/cli.md: `{name} {flag}` is missing"
                    );
                }
                if let Some(env) = arg.get_env() {
                    let env = env.to_string_lossy();
                    assert!(
                        page.contains(&format!("`{env}`")),
                        "docs/src/reference/cli.md: {env} ({name}) is missing"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} arguments seen");
    for global in root.get_arguments() {
        if let Some(env) = global.get_env() {
            assert!(page.contains(&format!("`{}`", env.to_string_lossy())));
        }
    }
}
