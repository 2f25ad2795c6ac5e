//! `[log]`: the log format (the filter is `RUST_LOG`).

use serde::Deserialize;

use super::Section;

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

/// The log format (`log.format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `key=value` text, values quoted where needed.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Section for LogSettings {}
