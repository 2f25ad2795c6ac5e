//! `[permissions]`: where the permission set comes from.

use std::path::PathBuf;

use serde::Deserialize;

use super::Section;

/// Where the permission set comes from.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PermissionSource {
    /// The files in `permissions.dir`, watched.
    #[default]
    Files,
    /// The set `nats-callout permissions push` published in JetStream KV, watched.
    Kv,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionSettings {
    /// The permission files (the source with `files`; what `permissions push` publishes).
    pub dir: PathBuf,
    pub source: PermissionSource,
}

impl Default for PermissionSettings {
    fn default() -> Self {
        PermissionSettings {
            dir: PathBuf::from("permissions"),
            source: PermissionSource::Files,
        }
    }
}

impl Section for PermissionSettings {
    fn paths(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.dir]
    }
}
