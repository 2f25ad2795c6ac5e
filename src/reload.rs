//! Hot reload of the permissions: watch the directory (and SIGHUP), or the set published
//! in JetStream KV; validate the whole set, swap the snapshot atomically; on failure keep
//! the last good one and report `file:line: reason`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_debouncer_full::{DebounceEventResult, new_debouncer, notify::RecursiveMode};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::clock::now_secs;
use crate::enforcement::Enforcement;
use async_nats::jetstream::kv::Operation;

use crate::kv::{BucketSpec, Watched};
use crate::permissions::published::{self, PublishedSet};
use crate::permissions::{LoadErrors, Permissions, Snapshot};

/// Where the permissions come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The files of a directory (`permissions.source = "files"`).
    Dir(PathBuf),
    /// The set published with `nats-callout permissions push` (`permissions.source = "kv"`).
    Kv {
        client: async_nats::Client,
        bucket: BucketSpec,
    },
}

/// What the last reloads did (for the admin status endpoint and `status`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadStatus {
    pub epoch: u64,
    pub loaded_at: i64,
    pub users: usize,
    pub rooms: usize,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The problems of the last failed reload, `file:line: reason`; empty once a reload succeeds.
    pub last_errors: Vec<String>,
    pub last_attempt_at: i64,
}

/// Loads the permission directory into the shared permissions and tells live
/// enforcement (when it runs) what changed.
pub struct Reloader {
    source: Source,
    permissions: Permissions,
    /// The accounts the callout places users in (a set naming others gets a warning).
    placements: HashSet<String>,
    enforcement: Option<Arc<Enforcement>>,
    status: Mutex<ReloadStatus>,
    /// True once a set is in force (at once for files: the service loaded them at start).
    loaded: tokio::sync::watch::Sender<bool>,
}

impl Reloader {
    /// A reloader of `source` into `permissions`; for files, `permissions` already holds
    /// the directory's set; from KV nothing is in force until the first set arrives.
    pub fn new(
        source: Source,
        permissions: Permissions,
        placements: HashSet<String>,
        enforcement: Option<Arc<Enforcement>>,
    ) -> Arc<Self> {
        let s = permissions.load();
        warn_placed_outside(&s, &placements);
        let from_files = matches!(source, Source::Dir(_));
        let status = ReloadStatus {
            epoch: permissions.epoch(),
            loaded_at: if from_files { now_secs() } else { 0 },
            users: s.user_count(),
            rooms: s.room_count(),
            ..Default::default()
        };
        drop(s);
        Arc::new(Reloader {
            source,
            permissions,
            placements,
            enforcement,
            status: Mutex::new(status),
            loaded: tokio::sync::watch::channel(from_files).0,
        })
    }

    /// Turns true once a permission set is in force.
    pub fn loaded(&self) -> tokio::sync::watch::Receiver<bool> {
        self.loaded.subscribe()
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The texts of the permission set as the source holds it now (for `explain`'s file
    /// lines): the directory read again, or the newest published set.
    ///
    /// # Errors
    /// The source cannot be read (a message).
    pub async fn sources(&self) -> Result<crate::permissions::Sources, String> {
        match &self.source {
            Source::Dir(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || crate::permissions::read_files(&dir))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            Source::Kv { client, bucket } => {
                let js = crate::kv::context(client.clone());
                let bucket = crate::kv::ensure(&js, bucket).await.map_err(|e| e.to_string())?;
                match published::current(&bucket).await.map_err(|e| e.to_string())? {
                    Some((_, set)) => Ok(set.sources()),
                    None => Err("nothing published yet".into()),
                }
            }
        }
    }

    /// Load, validate and swap once. Safe to repeat (one save can give several events).
    pub async fn reload_once(&self) -> bool {
        match &self.source {
            Source::Dir(dir) => {
                let dir = dir.clone();
                match tokio::task::spawn_blocking(move || Snapshot::load_dir(&dir)).await {
                    Ok(loaded) => self.apply(loaded, "files"),
                    Err(e) => {
                        self.failed(vec![format!("loading panicked: {e}")]);
                        false
                    }
                }
            }
            Source::Kv { client, bucket } => {
                let js = crate::kv::context(client.clone());
                let current = match crate::kv::ensure(&js, bucket).await {
                    Ok(b) => published::current(&b).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match current {
                    Ok(Some((revision, set))) => self.apply_published(revision, set).await,
                    Ok(None) => {
                        self.failed(vec![
                            "nothing published yet (nats-callout permissions push)".into(),
                        ]);
                        false
                    }
                    Err(e) => {
                        self.failed(vec![e]);
                        false
                    }
                }
            }
        }
    }

    /// Validate and apply revision `revision` of the published set.
    async fn apply_published(&self, revision: u64, set: PublishedSet) -> bool {
        let checked = tokio::task::spawn_blocking(move || set.snapshot()).await;
        match checked {
            Ok(loaded) => self.apply(loaded, &format!("revision {revision}")),
            Err(e) => {
                self.failed(vec![format!("loading panicked: {e}")]);
                false
            }
        }
    }

    /// Swap in a set that validated, or keep the last good one and report why not.
    fn apply(&self, loaded: Result<Snapshot, LoadErrors>, origin: &str) -> bool {
        let now = now_secs();
        match loaded {
            Ok(new) => {
                warn_placed_outside(&new, &self.placements);
                let (users, rooms) = (new.user_count(), new.room_count());
                let (old, epoch) = self.permissions.replace(new);
                let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
                *st = ReloadStatus {
                    epoch,
                    loaded_at: now,
                    users,
                    rooms,
                    reloads_ok: st.reloads_ok + 1,
                    reloads_failed: st.reloads_failed,
                    last_errors: vec![],
                    last_attempt_at: now,
                };
                drop(st);
                self.loaded.send_replace(true);
                metrics::counter!("nats_callout_permission_reloads_total", "result" => "ok").increment(1);
                info!(epoch, users, rooms, origin, "permissions reloaded");
                if let Some(e) = &self.enforcement {
                    e.on_snapshot_change(&old);
                }
                true
            }
            Err(problems) => {
                self.failed(problems.0.iter().map(|p| format!("{origin}: {p}")).collect());
                false
            }
        }
    }

    fn failed(&self, problems: Vec<String>) {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.last_attempt_at = now_secs();
        st.reloads_failed += 1;
        metrics::counter!("nats_callout_permission_reloads_total", "result" => "failed").increment(1);
        for p in &problems {
            error!(problem = %p, "permission reload failed; keeping the last good permissions");
        }
        st.last_errors = problems;
    }

    /// Watch the source (the directory when `watch`, the published set always) and
    /// SIGHUP until `stop`.
    pub async fn run(self: Arc<Self>, watch: bool, stop: CancellationToken) -> anyhow::Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        // The published set is followed beside the loop below, and both end with `stop`.
        let follow = self.clone().follow(stop.clone());
        tokio::pin!(follow);
        let mut following = true;
        let dir = match &self.source {
            Source::Dir(dir) => Some(dir.clone()),
            Source::Kv { .. } => None,
        };
        let _debouncer = if let Some(dir) = dir.filter(|_| watch) {
            let tx = tx.clone();
            let mut d = new_debouncer(
                Duration::from_millis(200),
                None,
                move |res: DebounceEventResult| match res {
                    Ok(events) if events.iter().any(|e| !e.kind.is_access()) => {
                        let _ = tx.send(());
                    }
                    Ok(_) => {}
                    Err(errors) => {
                        for e in errors {
                            warn!(error = %e, "permission watch error");
                        }
                    }
                },
            )?;
            d.watch(&dir, RecursiveMode::NonRecursive)?;
            info!(dir = %dir.display(), "watching permission files");
            Some(d)
        } else {
            None
        };
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        loop {
            #[cfg(unix)]
            let hangup = hup.recv();
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = stop.cancelled() => break,
                () = &mut follow, if following => following = false,
                Some(()) = rx.recv() => {
                    // Coalesce a burst of events into one reload.
                    while rx.try_recv().is_ok() {}
                    self.reload_once().await;
                }
                _ = hangup => {
                    info!("SIGHUP: reloading permissions");
                    self.reload_once().await;
                }
            }
        }
        if following {
            follow.await;
        }
        Ok(())
    }

    /// Follow the published set: every revision is validated and applied as it arrives;
    /// a broken watch resumes after the last revision seen.
    async fn follow(self: Arc<Self>, stop: CancellationToken) {
        let Source::Kv { client, bucket } = &self.source else {
            return;
        };
        let js = crate::kv::context(client.clone());
        let bucket = bucket.clone();
        let open = move || {
            let (js, bucket) = (js.clone(), bucket.clone());
            async move { crate::kv::ensure(&js, &bucket).await.map_err(|e| e.to_string()) }
        };
        let (events, mut seen) = tokio::sync::mpsc::channel(16);
        // The watch ends with `stop` and closes the channel, which ends the loop below.
        let watch = crate::kv::follow(open, published::KEY.into(), stop, events);
        let apply = async {
            while let Some(event) = seen.recv().await {
                match event {
                    Watched::Entry(entry) if entry.operation == Operation::Put => {
                        match serde_json::from_slice::<PublishedSet>(&entry.value) {
                            Ok(set) => {
                                self.apply_published(entry.revision, set).await;
                            }
                            Err(e) => self.failed(vec![format!(
                                "revision {}: not a permission set: {e}",
                                entry.revision
                            )]),
                        }
                    }
                    Watched::Entry(_) | Watched::CaughtUp { empty: false } => {}
                    Watched::CaughtUp { empty: true } => {
                        self.failed(vec![
                            "nothing published yet (nats-callout permissions push)".into(),
                        ]);
                    }
                    Watched::Broken { reason, failures } => {
                        if failures == 1 || failures.is_power_of_two() {
                            warn!(error = %reason, attempt = failures, "permission watch interrupted; resuming");
                        }
                    }
                }
            }
        };
        tokio::join!(watch, apply);
    }
}

/// Log each user the files place in an account the callout does not serve: the set is
/// valid, but those users' connections will be denied (`account-not-served`).
fn warn_placed_outside(snapshot: &crate::permissions::Snapshot, placements: &HashSet<String>) {
    for (user, account) in snapshot.placed_outside(placements) {
        warn!(
            user,
            account,
            "a user is placed in an account not served (callout.user_accounts, [callout.accounts]): \
             its connections will be denied"
        );
    }
}
