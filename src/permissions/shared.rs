//! What live code reads: the current snapshot and its epoch as one handle, and the
//! role-derived privileges a user holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, Guard};

use super::model::{Role, User};
use super::snapshot::Snapshot;

/// The shared, swappable permission snapshot with its epoch (bumped on every swap),
/// read lock-free on the request path. Clones share the same state.
#[derive(Clone)]
pub struct Permissions {
    current: Arc<ArcSwap<Snapshot>>,
    epoch: Arc<AtomicU64>,
}

impl Permissions {
    /// Start at epoch 1 with `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Permissions {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            epoch: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The current snapshot (cheap; for the request path).
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot, owned.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The epoch of the current snapshot. Read it before [`Permissions::load`]: a
    /// decision then never claims a newer epoch than the data it used.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Swap in a new snapshot; returns the old one and the new epoch.
    pub fn replace(&self, new: Snapshot) -> (Arc<Snapshot>, u64) {
        let old = self.current.swap(Arc::new(new));
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        (old, epoch)
    }
}

impl std::fmt::Debug for Permissions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permissions")
            .field("epoch", &self.epoch())
            .field("users", &self.load().user_count())
            .finish()
    }
}

/// Publish rights that come from a user's roles rather than from rooms. Recorded with
/// every decision so that losing the role re-authorizes the live connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Privileges {
    /// The service endpoints (role `service`).
    #[serde(default)]
    pub service: bool,
    /// Token reset (a role in `enforcement.token_reset_roles`).
    #[serde(default)]
    pub token_reset: bool,
}

impl Privileges {
    /// What `user`'s roles give, under the roles allowed to reset tokens.
    pub fn of(user: &User, token_reset_roles: &[Role]) -> Privileges {
        Privileges {
            service: user.has_role(Role::Service),
            token_reset: user.roles().any(|r| token_reset_roles.contains(&r)),
        }
    }

    /// Whether `self` holds something `now` no longer gives.
    pub fn lost_in(self, now: Privileges) -> bool {
        (self.service && !now.service) || (self.token_reset && !now.token_reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replace_bumps_the_epoch_and_returns_the_old_snapshot() {
        let p = Permissions::new(Snapshot::empty());
        let shared = p.clone();
        assert_eq!(p.epoch(), 1);
        let new = Snapshot::from_sources(&[("p.toml".into(), "[users.bob]\n".into())]).unwrap();
        let (old, epoch) = p.replace(new);
        assert_eq!((old.user_count(), epoch), (0, 2));
        assert_eq!(
            (shared.epoch(), shared.load().user_count()),
            (2, 1),
            "clones share the state"
        );
    }

    #[test]
    fn privileges_follow_roles() {
        let snap = Snapshot::from_sources(&[(
            "p.toml".into(),
            "[users.s]\nroles = [\"service\"]\n[users.o]\nroles = [\"sysadmin\"]\n[users.u]\n".into(),
        )])
        .unwrap();
        let reset = [Role::Sysadmin, Role::Service];
        let of = |u: &str| Privileges::of(snap.user(u).unwrap(), &reset);
        assert_eq!(
            of("s"),
            Privileges {
                service: true,
                token_reset: true
            }
        );
        assert_eq!(
            of("o"),
            Privileges {
                service: false,
                token_reset: true
            }
        );
        assert_eq!(of("u"), Privileges::default());
        assert!(of("s").lost_in(of("o")) && !of("o").lost_in(of("s")));
        assert!(!of("u").lost_in(of("u")));
    }
}
