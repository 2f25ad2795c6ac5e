//! Hot reload of the permission files: watch the directory (and SIGHUP), validate the
//! whole set, swap the snapshot atomically; on failure keep the last good one and report
//! `file:line: reason`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_debouncer_full::{DebounceEventResult, new_debouncer, notify::RecursiveMode};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::clock::now_secs;
use crate::enforcement::Enforcement;
use crate::permissions::{Permissions, Snapshot};

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
    dir: PathBuf,
    permissions: Permissions,
    enforcement: Option<Arc<Enforcement>>,
    status: Mutex<ReloadStatus>,
}

impl Reloader {
    pub fn new(dir: PathBuf, permissions: Permissions, enforcement: Option<Arc<Enforcement>>) -> Arc<Self> {
        let s = permissions.load();
        let status = ReloadStatus {
            epoch: permissions.epoch(),
            loaded_at: now_secs(),
            users: s.user_count(),
            rooms: s.room_count(),
            ..Default::default()
        };
        drop(s);
        Arc::new(Reloader {
            dir,
            permissions,
            enforcement,
            status: Mutex::new(status),
        })
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Load, validate and swap once. Safe to repeat (one save can give several events).
    pub async fn reload_once(&self) -> bool {
        let dir = self.dir.clone();
        let loaded = tokio::task::spawn_blocking(move || Snapshot::load_dir(&dir)).await;
        let now = now_secs();
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.last_attempt_at = now;
        match loaded {
            Ok(Ok(new)) => {
                let (users, rooms) = (new.user_count(), new.room_count());
                let (old, epoch) = self.permissions.replace(new);
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
                metrics::counter!("nats_callout_permission_reloads_total", "result" => "ok").increment(1);
                info!(epoch, users, rooms, "permissions reloaded");
                if let Some(e) = &self.enforcement {
                    e.on_snapshot_change(&old);
                }
                true
            }
            Ok(Err(problems)) => {
                st.reloads_failed += 1;
                st.last_errors = problems.0.iter().map(ToString::to_string).collect();
                metrics::counter!("nats_callout_permission_reloads_total", "result" => "failed").increment(1);
                for p in &st.last_errors {
                    error!(problem = %p, "permission reload failed; keeping the last good permissions");
                }
                false
            }
            Err(e) => {
                st.reloads_failed += 1;
                error!(error = %e, "permission reload panicked; keeping the last good permissions");
                false
            }
        }
    }

    /// Watch the directory and SIGHUP until `stop`.
    pub async fn run(self: Arc<Self>, watch: bool, stop: CancellationToken) -> anyhow::Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let _debouncer = if watch {
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
            d.watch(&self.dir, RecursiveMode::NonRecursive)?;
            info!(dir = %self.dir.display(), "watching permission files");
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
                _ = stop.cancelled() => return Ok(()),
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
    }
}
