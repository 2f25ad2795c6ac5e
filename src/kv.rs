//! JetStream key-value buckets the service keeps its shared state in: created when missing
//! with the configured settings, checked (never silently reused) when they exist.

use std::time::Duration;

use async_nats::jetstream::{self, ErrorCode, context::GetStreamErrorKind, kv};

/// How long a JetStream request may take before the store reports itself unavailable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The JetStream context of `client`, with the service's request timeout.
#[must_use]
pub fn context(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client)
}

/// What a bucket must look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketSpec {
    pub name: String,
    pub description: &'static str,
    /// Values kept per key (1: the latest only).
    pub history: i64,
    /// Every value is removed this long after it was written (zero: never).
    pub max_age: Duration,
    pub replicas: usize,
}

/// Why a bucket could not be had.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("JetStream unavailable: {0}")]
    Unavailable(String),
    #[error(
        "bucket {bucket} exists with {setting} {found}, configured {wanted}: change the \
         configuration, or the bucket (nats kv edit), or remove it"
    )]
    Mismatch {
        bucket: String,
        setting: &'static str,
        found: String,
        wanted: String,
    },
}

/// The bucket `spec` names: created if missing, checked against `spec` if it exists.
///
/// # Errors
/// [`BucketError::Mismatch`] when it exists with other settings; [`BucketError::Unavailable`]
/// when JetStream does not answer (or refuses, e.g. not enabled for the account).
pub async fn ensure(js: &jetstream::Context, spec: &BucketSpec) -> Result<kv::Store, BucketError> {
    let unavailable =
        |e: &dyn std::fmt::Display| BucketError::Unavailable(format!("bucket {}: {e}", spec.name));
    // Two instances starting at once may both find it missing: the loser checks the winner's.
    for _ in 0..2 {
        match js.get_stream(format!("KV_{}", spec.name)).await {
            Ok(stream) => {
                check(spec, &stream.cached_info().config)?;
                return js.get_key_value(&spec.name).await.map_err(|e| unavailable(&e));
            }
            Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
            {
                let created = js
                    .create_key_value(kv::Config {
                        bucket: spec.name.clone(),
                        description: spec.description.to_string(),
                        history: spec.history,
                        max_age: spec.max_age,
                        num_replicas: spec.replicas,
                        storage: jetstream::stream::StorageType::File,
                        ..Default::default()
                    })
                    .await;
                match created {
                    Ok(store) => {
                        tracing::info!(bucket = %spec.name, replicas = spec.replicas, max_age = ?spec.max_age, "created a JetStream bucket");
                        return Ok(store);
                    }
                    Err(e) => {
                        tracing::debug!(bucket = %spec.name, error = %e, "bucket creation lost a race or failed; looking again")
                    }
                }
            }
            Err(e) => return Err(unavailable(&e)),
        }
    }
    Err(BucketError::Unavailable(format!(
        "bucket {} could neither be found nor created",
        spec.name
    )))
}

/// Compares an existing bucket's stream with `spec`.
fn check(spec: &BucketSpec, found: &jetstream::stream::Config) -> Result<(), BucketError> {
    let mismatch = |setting, found: String, wanted: String| BucketError::Mismatch {
        bucket: spec.name.clone(),
        setting,
        found,
        wanted,
    };
    if found.num_replicas.max(1) != spec.replicas.max(1) {
        return Err(mismatch(
            "replicas",
            found.num_replicas.to_string(),
            spec.replicas.to_string(),
        ));
    }
    if found.max_age != spec.max_age {
        return Err(mismatch(
            "max_age",
            format!("{:?}", found.max_age),
            format!("{:?}", spec.max_age),
        ));
    }
    if found.max_messages_per_subject != spec.history {
        return Err(mismatch(
            "history",
            found.max_messages_per_subject.to_string(),
            spec.history.to_string(),
        ));
    }
    Ok(())
}

/// Whether a replicated stream can take writes, judged from its leader's view: a leader,
/// and a majority of replicas (the leader among them) current and seen within 3 s. A
/// stream of a lone server has no cluster information and is fine.
///
/// # Errors
/// Why not, for readiness.
pub fn writable(cluster: Option<&jetstream::stream::ClusterInfo>) -> Result<(), String> {
    let Some(c) = cluster else { return Ok(()) };
    if c.leader.is_none() {
        return Err("no stream leader".into());
    }
    let total = 1 + c.replicas.len();
    let live = 1 + c
        .replicas
        .iter()
        .filter(|p| p.current && !p.offline && p.active < Duration::from_secs(3))
        .count();
    if live * 2 > total {
        Ok(())
    } else {
        Err(format!("{live} of {total} replicas reachable: no quorum"))
    }
}

/// The latest state of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Latest {
    Absent,
    /// Deleted or purged, at this revision.
    Deleted(u64),
    Value(bytes::Bytes, u64),
}

/// The latest state of `key` as the stream's leader has it. (`kv::Store::entry` uses a
/// direct get, which any replica may answer with an older value: no ground for a
/// compare-and-set, and a value just written elsewhere may look absent.)
///
/// # Errors
/// JetStream does not answer.
pub async fn latest(bucket: &kv::Store, key: &str) -> Result<Latest, String> {
    let subject = format!("{}{key}", bucket.prefix);
    match bucket.stream.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => {
            let op = m.headers.get("KV-Operation").map(|v| v.as_str().to_owned());
            Ok(match op.as_deref() {
                Some("DEL" | "PURGE") => Latest::Deleted(m.sequence),
                _ => Latest::Value(m.payload, m.sequence),
            })
        }
        Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
            Ok(Latest::Absent)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Whether an update lost a compare-and-set: the key's revision was not the expected one.
/// (A cluster answers with error code 10164, which async-nats 0.51 does not map to
/// `WrongLastRevision`; a single server with 10071, which it does.)
#[must_use]
pub fn lost_race(e: &kv::UpdateError) -> bool {
    e.kind() == kv::UpdateErrorKind::WrongLastRevision || e.to_string().contains("wrong last sequence")
}

/// Creates `key` with `value` unless it holds a value (a deleted key is created again):
/// its revision, or `None` when it already holds one.
///
/// # Errors
/// JetStream does not answer or refuses.
pub async fn create(bucket: &kv::Store, key: &str, value: bytes::Bytes) -> Result<Option<u64>, String> {
    match bucket.update(key, value.clone(), 0).await {
        Ok(rev) => return Ok(Some(rev)),
        Err(e) if lost_race(&e) => {}
        Err(e) => return Err(e.to_string()),
    }
    match latest(bucket, key).await? {
        Latest::Value(..) => Ok(None),
        Latest::Deleted(rev) => match bucket.update(key, value, rev).await {
            Ok(rev) => Ok(Some(rev)),
            Err(e) if lost_race(&e) => Ok(None),
            Err(e) => Err(e.to_string()),
        },
        Latest::Absent => Err(format!("{key}: refused as existing, yet absent")),
    }
}

/// What [`follow`] reports.
#[derive(Debug)]
pub enum Watched {
    /// A value (or a delete marker) of the followed keys, in revision order.
    Entry(kv::Entry),
    /// Every value stored when the watch began has been reported (at once for an empty
    /// bucket, and after a resumption); `empty` when there was none at all.
    CaughtUp { empty: bool },
    /// The watch broke (the `failures`-th time in a row); it resumes after a backoff from
    /// the last revision reported.
    Broken { reason: String, failures: usize },
}

/// Follows `key` (a key or a wildcard such as `>`) of the bucket `open` gives into
/// `events`, until `stop` or until nobody listens: first the latest value of each key, then
/// every change; a broken watch resumes after the last revision reported, so nothing written
/// meanwhile is missed. Spawn it and read `events` where the entries are applied.
pub async fn follow<F, Fut>(
    open: F,
    key: String,
    stop: tokio_util::sync::CancellationToken,
    events: tokio::sync::mpsc::Sender<Watched>,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<kv::Store, String>>,
{
    use futures::StreamExt;
    let mut last: Option<u64> = None;
    let mut failures = 0usize;
    while !stop.is_cancelled() {
        let broke: Result<(), String> = async {
            let bucket = open().await?;
            let mut entries = match last {
                Some(rev) => bucket.watch_from_revision(&key, rev + 1).await,
                None => bucket.watch_with_history(&key).await,
            }
            .map_err(|e| e.to_string())?;
            let stored = bucket.status().await.map_err(|e| e.to_string())?.values();
            let mut caught_up = stored == 0 || last.is_some();
            let send = |w| async { events.send(w).await.map_err(|_| "nobody listens".to_string()) };
            if caught_up {
                send(Watched::CaughtUp { empty: stored == 0 }).await?;
            }
            loop {
                let entry = tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    e = entries.next() => e,
                };
                let entry = match entry {
                    Some(Ok(e)) => e,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("the watch ended".to_string()),
                };
                last = Some(entry.revision);
                failures = 0;
                let delta = entry.delta;
                send(Watched::Entry(entry)).await?;
                if !caught_up && delta == 0 {
                    caught_up = true;
                    send(Watched::CaughtUp { empty: false }).await?;
                }
            }
        }
        .await;
        let Err(reason) = broke else { return };
        if events.is_closed() {
            return;
        }
        failures += 1;
        let _ = events.send(Watched::Broken { reason, failures }).await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(crate::clock::backoff(failures)) => {}
        }
    }
}

/// A key-safe form of a free-form name (user, device): base64url, never a `.` or `*`.
#[must_use]
pub fn key_part(name: &str) -> String {
    format!("v{}", data_encoding::BASE64URL_NOPAD.encode(name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BucketSpec {
        BucketSpec {
            name: "b".into(),
            description: "",
            history: 1,
            max_age: Duration::from_secs(60),
            replicas: 3,
        }
    }

    #[test]
    fn an_existing_bucket_with_other_settings_is_refused_by_name() {
        let ok = jetstream::stream::Config {
            num_replicas: 3,
            max_age: Duration::from_secs(60),
            max_messages_per_subject: 1,
            ..Default::default()
        };
        assert!(check(&spec(), &ok).is_ok());
        for (bad, setting) in [
            (
                jetstream::stream::Config {
                    num_replicas: 1,
                    ..ok.clone()
                },
                "replicas",
            ),
            (
                jetstream::stream::Config {
                    max_age: Duration::ZERO,
                    ..ok.clone()
                },
                "max_age",
            ),
            (
                jetstream::stream::Config {
                    max_messages_per_subject: 5,
                    ..ok.clone()
                },
                "history",
            ),
        ] {
            let e = check(&spec(), &bad).unwrap_err();
            assert!(
                matches!(e, BucketError::Mismatch { setting: s, .. } if s == setting),
                "{e}"
            );
            assert!(e.to_string().contains("bucket b exists with"), "{e}");
        }
    }

    #[test]
    fn a_stream_is_writable_with_a_leader_and_a_majority() {
        use jetstream::stream::{ClusterInfo, PeerInfo};
        let peer = |current, offline, active| PeerInfo {
            name: "p".into(),
            current,
            offline,
            active: Duration::from_millis(active),
            ..Default::default()
        };
        let cluster = |leader: Option<&str>, replicas| ClusterInfo {
            leader: leader.map(Into::into),
            replicas,
            ..Default::default()
        };
        assert!(writable(None).is_ok(), "a lone server");
        let ok = cluster(Some("n1"), vec![peer(true, false, 100), peer(false, true, 9000)]);
        assert!(writable(Some(&ok)).is_ok(), "2 of 3");
        let lost = cluster(Some("n1"), vec![peer(true, false, 5000), peer(false, true, 9000)]);
        assert!(writable(Some(&lost)).unwrap_err().contains("1 of 3"));
        let stale = cluster(Some("n1"), vec![peer(false, false, 100), peer(false, false, 100)]);
        assert!(writable(Some(&stale)).is_err());
        let headless = cluster(None, vec![peer(true, false, 1), peer(true, false, 1)]);
        assert!(writable(Some(&headless)).unwrap_err().contains("leader"));
    }

    #[test]
    fn key_parts_are_one_safe_token() {
        for name in ["bob", "a.b", "*", ">", "", "ü/x y"] {
            let k = key_part(name);
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{k}"
            );
            assert!(!k.is_empty());
        }
        assert_ne!(key_part("a"), key_part("b"));
    }
}
