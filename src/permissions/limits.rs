//! Per-user limits from the permission files: `limits = { connections = N, subscriptions = N }`
//! on a user or a group. A user's own value wins over its groups'; otherwise the smallest of
//! its groups' applies; none set means unlimited.

use serde::{Deserialize, Serialize};

/// The largest value a limit may take (a guard against typos such as `1e9`).
pub const MAX_LIMIT: u64 = 1_000_000;

/// What one user (or group) may hold at once; `None` = not limited here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Live connections at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// Subscriptions on one connection (as the server's connection list counts them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<u32>,
}

/// A bad limit value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits.{field} = {value}: must be a whole number from 1 to {MAX_LIMIT}")]
pub struct LimitError {
    pub field: &'static str,
    pub value: i64,
}

impl Limits {
    /// Limits from the raw file values, each checked.
    pub(crate) fn parse(
        connections: Option<i64>,
        subscriptions: Option<i64>,
    ) -> Result<Self, Vec<LimitError>> {
        let mut errors = Vec::new();
        let mut check = |field, v: Option<i64>| match v {
            None => None,
            Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => u32::try_from(n).ok(),
            Some(value) => {
                errors.push(LimitError { field, value });
                None
            }
        };
        let limits = Limits {
            connections: check("connections", connections),
            subscriptions: check("subscriptions", subscriptions),
        };
        if errors.is_empty() {
            Ok(limits)
        } else {
            Err(errors)
        }
    }

    /// Whether nothing is limited.
    #[must_use]
    pub fn is_none(&self) -> bool {
        self.connections.is_none() && self.subscriptions.is_none()
    }

    /// Fold a group's limits into what a user inherits: the smallest of the groups'.
    pub(crate) fn smallest(self, group: Limits) -> Limits {
        let min = |a: Option<u32>, b: Option<u32>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Limits {
            connections: min(self.connections, group.connections),
            subscriptions: min(self.subscriptions, group.subscriptions),
        }
    }

    /// The user's own values, the inherited ones where the user sets none.
    pub(crate) fn over(self, inherited: Limits) -> Limits {
        Limits {
            connections: self.connections.or(inherited.connections),
            subscriptions: self.subscriptions.or(inherited.subscriptions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_values_win_otherwise_the_smallest_group_value() {
        let l = |c, s| Limits {
            connections: c,
            subscriptions: s,
        };
        let groups = l(Some(5), None)
            .smallest(l(Some(3), Some(100)))
            .smallest(l(None, Some(50)));
        assert_eq!(groups, l(Some(3), Some(50)));
        assert_eq!(l(Some(10), None).over(groups), l(Some(10), Some(50)));
        assert_eq!(Limits::default().over(groups), groups);
        assert_eq!(l(None, Some(1)).over(Limits::default()), l(None, Some(1)));
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            Limits::parse(Some(2), Some(1_000_000)).unwrap().connections,
            Some(2)
        );
        for (c, s, want) in [
            (
                Some(0),
                None,
                vec!["limits.connections = 0: must be a whole number from 1 to 1000000"],
            ),
            (
                Some(-1),
                Some(2_000_000),
                vec![
                    "limits.connections = -1: must be a whole number from 1 to 1000000",
                    "limits.subscriptions = 2000000: must be a whole number from 1 to 1000000",
                ],
            ),
        ] {
            let got: Vec<String> = Limits::parse(c, s)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want);
        }
    }
}
