//! The permission set published in JetStream KV, for many hosts: every file of a
//! directory in one versioned entry (bucket `<prefix>_permissions`, key `set`), pushed
//! only when it validates; its history (who, when, checksum) and a rollback that
//! publishes an earlier revision again. Instances with `permissions.source = "kv"` watch it.

use async_nats::jetstream::kv::{self, Operation};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{LoadErrors, Snapshot};
use crate::kv::{BucketError, BucketSpec};

/// The key of the set.
pub const KEY: &str = "set";
/// Revisions kept (JetStream's most per key).
pub const HISTORY: i64 = 64;

/// The bucket of the published set.
#[must_use]
pub fn bucket(prefix: &str, replicas: usize) -> BucketSpec {
    BucketSpec {
        name: format!("{prefix}_permissions"),
        description: "nats-callout permission files, versioned",
        history: HISTORY,
        max_age: std::time::Duration::ZERO,
        replicas,
    }
}

/// One permission file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedFile {
    /// Its name (`rooms.toml`); `.json` names are read as JSON.
    pub name: String,
    pub text: String,
}

/// The whole set, as one KV value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedSet {
    pub files: Vec<PublishedFile>,
    /// Who pushed it.
    pub by: String,
    /// When (unix seconds).
    pub at: i64,
    /// SHA-256 (hex) of the files, names and texts (see [`checksum`]).
    pub checksum: String,
    /// The revision this one republishes, for a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
}

/// A revision as `permissions history` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    pub revision: u64,
    pub by: String,
    pub at: i64,
    pub checksum: String,
    pub files: usize,
    pub rollback_of: Option<u64>,
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the permission files do not validate:\n{0}")]
    Invalid(LoadErrors),
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error("JetStream: {0}")]
    Unavailable(String),
    #[error("no revision {0} of the permission set")]
    NoSuchRevision(u64),
    #[error("revision {revision} is not a permission set: {reason}")]
    Corrupt { revision: u64, reason: String },
}

/// The checksum of `files`: SHA-256 over each name and text, each followed by a NUL.
#[must_use]
pub fn checksum(files: &[PublishedFile]) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.name.as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    data_encoding::HEXLOWER.encode(&h.finalize())
}

impl PublishedSet {
    /// A set from `(path, contents)` pairs (as [`super::read_files`] gives them), named by
    /// their file names.
    #[must_use]
    pub fn new(sources: Vec<(String, String)>, by: &str, at: i64) -> Self {
        let files: Vec<PublishedFile> = sources
            .into_iter()
            .map(|(path, text)| PublishedFile {
                name: std::path::Path::new(&path)
                    .file_name()
                    .map_or(path.clone(), |n| n.to_string_lossy().into_owned()),
                text,
            })
            .collect();
        PublishedSet {
            checksum: checksum(&files),
            files,
            by: by.to_owned(),
            at,
            rollback_of: None,
        }
    }

    /// The validated snapshot of this set (its checksum checked first).
    ///
    /// # Errors
    /// Every problem, by file name and line, or a checksum that does not match.
    pub fn snapshot(&self) -> Result<Snapshot, LoadErrors> {
        if checksum(&self.files) != self.checksum {
            return Err(LoadErrors(vec![super::Problem {
                file: "(published set)".into(),
                line: 0,
                reason: "checksum does not match the files".into(),
            }]));
        }
        Snapshot::from_sources(&self.sources())
    }

    /// The files as `(name, text)` pairs.
    #[must_use]
    pub fn sources(&self) -> super::Sources {
        self.files
            .iter()
            .map(|f| (f.name.clone(), f.text.clone()))
            .collect()
    }

    fn version(&self, revision: u64) -> Version {
        Version {
            revision,
            by: self.by.clone(),
            at: self.at,
            checksum: self.checksum.clone(),
            files: self.files.len(),
            rollback_of: self.rollback_of,
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> PublishError {
    PublishError::Unavailable(e.to_string())
}

fn decode(revision: u64, bytes: &[u8]) -> Result<PublishedSet, PublishError> {
    serde_json::from_slice(bytes).map_err(|e| PublishError::Corrupt {
        revision,
        reason: e.to_string(),
    })
}

/// Publishes `set` once it validates; returns its revision.
///
/// # Errors
/// [`PublishError::Invalid`] (nothing published), or JetStream's refusal (a set larger
/// than the server's `max_payload`, say).
pub async fn push(bucket: &kv::Store, set: &PublishedSet) -> Result<u64, PublishError> {
    set.snapshot().map_err(PublishError::Invalid)?;
    let body = serde_json::to_vec(set).map_err(unavailable)?;
    bucket.put(KEY, body.into()).await.map_err(unavailable)
}

/// The current set with its revision, if one was ever pushed.
///
/// # Errors
/// JetStream does not answer, or the stored value is not a set.
pub async fn current(bucket: &kv::Store) -> Result<Option<(u64, PublishedSet)>, PublishError> {
    match crate::kv::latest(bucket, KEY).await.map_err(unavailable)? {
        crate::kv::Latest::Value(bytes, revision) => Ok(Some((revision, decode(revision, &bytes)?))),
        _ => Ok(None),
    }
}

/// Every revision kept, oldest first.
///
/// # Errors
/// JetStream does not answer.
pub async fn history(bucket: &kv::Store) -> Result<Vec<Version>, PublishError> {
    let mut out = Vec::new();
    let mut entries = bucket.history(KEY).await.map_err(unavailable)?;
    while let Some(e) = entries.next().await {
        let e = e.map_err(unavailable)?;
        if e.operation == Operation::Put {
            out.push(decode(e.revision, &e.value)?.version(e.revision));
        }
    }
    Ok(out)
}

/// Publishes revision `revision` again as the newest (after validating it again).
///
/// # Errors
/// [`PublishError::NoSuchRevision`] when it is not kept (or not the set's).
pub async fn rollback(bucket: &kv::Store, revision: u64, by: &str, at: i64) -> Result<u64, PublishError> {
    let entry = bucket
        .entry_for_revision(KEY, revision)
        .await
        .map_err(unavailable)?
        .filter(|e| e.operation == Operation::Put)
        .ok_or(PublishError::NoSuchRevision(revision))?;
    let old = decode(revision, &entry.value)?;
    let set = PublishedSet {
        by: by.to_owned(),
        at,
        rollback_of: Some(revision),
        ..old
    };
    push(bucket, &set).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: &str = "[users.bob]\n";
    const ROOMS: &str = "[rooms.all1]\nmembers = [\"bob\"]\n";

    #[test]
    fn a_set_is_named_by_file_and_checked_by_its_checksum() {
        let set = PublishedSet::new(
            vec![
                ("/etc/p/users.toml".into(), USERS.into()),
                ("/etc/p/rooms.toml".into(), ROOMS.into()),
            ],
            "ops",
            5,
        );
        assert_eq!(set.files[0].name, "users.toml");
        let s = set.snapshot().unwrap();
        assert_eq!((s.user_count(), s.room_count()), (1, 1));
        let mut tampered = set.clone();
        tampered.files[1].text = "[rooms.all1]\nmembers = [\"eve\"]\n".into();
        assert!(tampered.snapshot().unwrap_err().to_string().contains("checksum"));
        // The checksum covers names as well as texts.
        let mut renamed = set.files.clone();
        renamed[0].name = "other.toml".into();
        assert_ne!(checksum(&renamed), set.checksum);
    }

    #[test]
    fn problems_name_the_file_and_line() {
        let set = PublishedSet::new(
            vec![(
                "rooms.toml".into(),
                "[rooms.all1]\nmembers = [\"ghost\"]\n".into(),
            )],
            "ops",
            5,
        );
        let e = set.snapshot().unwrap_err().to_string();
        assert!(e.starts_with("rooms.toml:2:"), "{e}");
    }
}
