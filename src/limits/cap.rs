//! Which connections of a user over its connection cap to close (pure).
//!
//! Oldest first, with two exceptions while they are younger than the join grace: a
//! connection of a login session that already has an older live connection (a
//! make-before-break join: the kit closes the old one itself), together with that older
//! one; and a connection whose decision is not known yet (its session may make it one).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::wire::ConnKey;

/// One live connection of a user, as the registry knows it.
#[derive(Debug, Clone)]
pub struct Conn<'a> {
    pub key: &'a ConnKey,
    /// Registry order: smaller is older.
    pub order: u64,
    /// When the registry first recorded it.
    pub since: Instant,
    /// Its login session, when its decision is known.
    pub session: Option<&'a str>,
}

/// What to do about one user's connections.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Close these now (oldest first).
    pub close: Vec<ConnKey>,
    /// Look again then (a tolerated connection's grace ends).
    pub recheck_at: Option<Instant>,
}

/// The plan for `conns` under a cap of `cap` connections, tolerating joins for `grace`.
#[must_use]
pub fn plan(conns: &[Conn<'_>], cap: usize, grace: Duration, now: Instant) -> Plan {
    if conns.len() <= cap {
        return Plan::default();
    }
    let mut sorted: Vec<&Conn<'_>> = conns.iter().collect();
    sorted.sort_by_key(|c| (c.order, c.key));
    let mut protected: HashSet<usize> = HashSet::new();
    let mut tolerated = 0;
    let mut recheck_at: Option<Instant> = None;
    let mut last_of_session: HashMap<&str, usize> = HashMap::new();
    for (i, c) in sorted.iter().enumerate() {
        let young = now < c.since + grace;
        let older = c.session.and_then(|s| last_of_session.insert(s, i));
        let pair = match (c.session, older) {
            (Some(_), Some(older)) => Some(older),
            (None, _) => None,
            (Some(_), None) => continue,
        };
        if !young {
            continue;
        }
        tolerated += 1;
        protected.insert(i);
        protected.extend(pair);
        let end = c.since + grace;
        recheck_at = Some(recheck_at.map_or(end, |t| t.min(end)));
    }
    let excess = sorted.len().saturating_sub(cap + tolerated);
    let close = sorted
        .iter()
        .enumerate()
        .filter(|(i, _)| !protected.contains(i))
        .take(excess)
        .map(|(_, c)| c.key.clone())
        .collect();
    Plan { close, recheck_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(5);

    fn keys(n: u64) -> Vec<ConnKey> {
        (1..=n)
            .map(|cid| ConnKey {
                server: "S".into(),
                cid,
            })
            .collect()
    }

    /// Connections `(age in seconds, session)`, oldest first.
    fn conns<'a>(keys: &'a [ConnKey], spec: &[(u64, Option<&'a str>)], now: Instant) -> Vec<Conn<'a>> {
        spec.iter()
            .zip(keys)
            .enumerate()
            .map(|(i, ((age, session), key))| Conn {
                key,
                order: i as u64,
                since: now - Duration::from_secs(*age),
                session: *session,
            })
            .collect()
    }

    fn closed(p: &Plan) -> Vec<u64> {
        p.close.iter().map(|k| k.cid).collect()
    }

    #[test]
    fn the_oldest_go_the_newest_stay() {
        let now = Instant::now() + Duration::from_secs(100);
        let k = keys(4);
        let c = conns(
            &k,
            &[(60, Some("a")), (50, Some("b")), (40, Some("c")), (1, Some("d"))],
            now,
        );
        assert_eq!(closed(&plan(&c, 4, GRACE, now)), Vec::<u64>::new());
        assert_eq!(closed(&plan(&c, 3, GRACE, now)), vec![1]);
        assert_eq!(closed(&plan(&c, 1, GRACE, now)), vec![1, 2, 3]);
        assert_eq!(plan(&c, 1, GRACE, now).recheck_at, None);
    }

    #[test]
    fn a_join_is_tolerated_for_the_grace_then_the_old_connection_goes() {
        let now = Instant::now() + Duration::from_secs(100);
        let k = keys(2);
        // The kit's new connection (same session) a second old.
        let c = conns(&k, &[(60, Some("s")), (1, Some("s"))], now);
        let p = plan(&c, 1, GRACE, now);
        assert_eq!(closed(&p), Vec::<u64>::new());
        assert_eq!(p.recheck_at, Some(now + Duration::from_secs(4)));
        // The old one never closed: after the grace it goes, the new one stays.
        let later = now + Duration::from_secs(5);
        assert_eq!(closed(&plan(&c, 1, GRACE, later)), vec![1]);
    }

    #[test]
    fn a_join_does_not_shield_another_session() {
        let now = Instant::now() + Duration::from_secs(100);
        let k = keys(3);
        // Another device holds the cap; the joining pair stays, the other device goes.
        let c = conns(&k, &[(90, Some("other")), (60, Some("s")), (1, Some("s"))], now);
        assert_eq!(closed(&plan(&c, 1, GRACE, now)), vec![1]);
        // A new session over the cap: the oldest goes at once.
        let c = conns(&k, &[(90, Some("a")), (60, Some("b")), (0, Some("c"))], now);
        assert_eq!(closed(&plan(&c, 2, GRACE, now)), vec![1]);
    }

    #[test]
    fn an_undecided_young_connection_waits_for_its_decision() {
        let now = Instant::now() + Duration::from_secs(100);
        let k = keys(2);
        let c = conns(&k, &[(60, Some("s")), (0, None)], now);
        let p = plan(&c, 1, GRACE, now);
        assert_eq!(closed(&p), Vec::<u64>::new());
        assert!(p.recheck_at.is_some());
        let c = conns(&k, &[(60, None), (30, None)], now);
        assert_eq!(closed(&plan(&c, 1, GRACE, now)), vec![1]);
    }
}
