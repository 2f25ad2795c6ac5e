//! What this binary is: its version, the commit it was built from and whether its sources
//! differed from that commit (`clean`, `dirty` or `unknown`, from `build.rs`), for
//! `--version`, the status and the `nats_callout_build_info` metric.

use serde_json::{Value, json};

/// The package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The full commit id the binary was built from, or `unknown` (built outside a repository).
pub const COMMIT: &str = env!("NATS_CALLOUT_COMMIT");
/// `clean`, `dirty` (the sources differed from [`COMMIT`]) or `unknown`.
pub const TREE: &str = env!("NATS_CALLOUT_TREE");
/// What `nats-callout --version` prints after the name.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NATS_CALLOUT_COMMIT"),
    ", ",
    env!("NATS_CALLOUT_TREE"),
    ")"
);

/// The build as the status reports it.
pub fn json() -> Value {
    json!({ "version": VERSION, "commit": COMMIT, "tree": TREE })
}

/// `nats_callout_build_info{version, commit, tree} 1`.
pub fn record() {
    metrics::gauge!("nats_callout_build_info", "version" => VERSION, "commit" => COMMIT, "tree" => TREE)
        .set(1.0);
}
