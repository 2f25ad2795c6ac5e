//! Connections made with minted credentials (operator mode): the decision each user JWT
//! carries, read back from the connect event or the connection list and checked to be one
//! this service signed, so that the connection is enforced like a decided one, and judged
//! again at every connect however old the JWT.
//!
//! nats-server names such a connection's user by its nkey; the record names the user.
//! Without the operator's key the service cannot revoke the JWT itself: a connection whose
//! decision no longer holds is closed at once, at every connect, until the JWT expires or
//! the client fetches new credentials (the kits do).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use tracing::{info, warn};

use super::Enforcement;
use super::assess::{Action, assess};
use super::registry::{ConnKey, DecisionRecord};
use crate::claims::decode_unverified;
use crate::verified::VerifiedCache;
use crate::wire::MintedClaims;

/// JWT decisions remembered per generation (at most twice as many; a JWT of a few rooms
/// and its record take about 2 KiB).
const VERIFIED_GENERATION: usize = 4096;

/// The keys minted credentials are signed with (each target account's signing key), and the
/// decisions of the JWTs already verified: a client reconnecting with the same JWT costs a
/// lookup, not a signature check.
pub(super) struct Mints {
    signers: HashSet<String>,
    verified: VerifiedCache<DecisionRecord>,
}

/// Who a connection made with a JWT is.
#[derive(Debug)]
pub(super) enum JwtUser {
    /// Minted here: its decision.
    Minted(Box<DecisionRecord>),
    /// Any other JWT: its subject (the user nkey nats-server checked the nonce against).
    Other(String),
}

impl Mints {
    fn of(signers: impl IntoIterator<Item = String>) -> Mints {
        Mints {
            signers: signers.into_iter().collect(),
            verified: VerifiedCache::with_generation(VERIFIED_GENERATION),
        }
    }

    /// Who the connection `conn`, which nats-server let in with `jwt`, is: the decision the
    /// JWT carries if this service minted it (signed by one of its keys, checked here once
    /// though nats-server checked it too, then remembered by its text), else the JWT's
    /// subject. Never the CONNECT `user` or `nkey` fields, which a client on a JWT may still
    /// fill with any name and which nats-server then reports as the connection's user.
    /// `None`: no JWT (a callout user).
    fn identify(&self, jwt: &str, conn: ConnKey, now: i64) -> Option<JwtUser> {
        if jwt.is_empty() {
            return None;
        }
        let d = match self.verified.get(jwt) {
            Some(d) => d,
            None => match self.read(jwt, &conn)? {
                JwtUser::Minted(d) => {
                    self.verified.insert(jwt, &d);
                    *d
                }
                other => return Some(other),
            },
        };
        Some(JwtUser::Minted(Box::new(DecisionRecord { conn, at: now, ..d })))
    }

    /// What `jwt` says, its signature checked when one of our keys signed it: the decision
    /// as minted (no connection yet), or the JWT's subject.
    fn read(&self, jwt: &str, conn: &ConnKey) -> Option<JwtUser> {
        let unverified = match decode_unverified::<MintedClaims>(jwt) {
            Ok(u) => u,
            Err(e) => {
                warn!(server = %conn.server, cid = conn.cid, error = %e, "a connection's JWT does not decode");
                return None;
            }
        };
        let sub = unverified.claims.sub.clone();
        // The cheap test first: another signer's JWT is not verified for nothing.
        if !self.signers.contains(unverified.issuer()) {
            return Some(JwtUser::Other(sub));
        }
        match unverified.verify() {
            Ok((
                _,
                MintedClaims {
                    nats_callout: Some(d),
                    ..
                },
            )) => Some(JwtUser::Minted(Box::new(d))),
            Ok(_) => {
                warn!(user = %sub, "a JWT signed here without a decision record");
                Some(JwtUser::Other(sub))
            }
            Err(e) => {
                warn!(user = %sub, error = %e, "a JWT naming one of our keys does not verify");
                Some(JwtUser::Other(sub))
            }
        }
    }
}

impl Enforcement {
    /// Read the decisions of JWTs signed by `signers` (operator mode; the first call wins).
    pub fn read_mints_of(&self, signers: impl IntoIterator<Item = String>) {
        let _ = self.mints.set(Mints::of(signers));
    }

    /// Who the connection `conn` made with `jwt` is (`None`: no JWT, or not operator mode).
    pub(super) fn identify(&self, jwt: &str, conn: ConnKey) -> Option<JwtUser> {
        let now = crate::clock::now_secs();
        self.mints.get()?.identify(jwt, conn, now)
    }

    /// A connection made with minted credentials: record its decision and judge it now.
    /// What no longer holds closes it at once (there is nothing to decide again: it would
    /// come back with the same JWT). A decision holding delegated rooms is returned, for
    /// [`Enforcement::check_minted_delegated`] (their answers may have been invalidated
    /// since the mint).
    pub(super) fn on_minted(&self, d: DecisionRecord) -> Option<DecisionRecord> {
        // What the limits refuse now (a session closed for a limit, a user cooling down),
        // judged before this connection counts, as the callout judges before it exists.
        let refused = self.refused_by_limits(&d);
        let (conn, user, entry) = self.record_decision(d);
        if refused.is_none() {
            self.limits_on_decision(&user, &conn.server);
        }
        let e = entry.filter(|_| self.is_leader())?;
        let why = refused.or_else(|| {
            let (snapshot, revoked) = (self.permissions.load(), self.revocations.load());
            match assess(&e, &self.current(&snapshot, None, &revoked)) {
                Action::Keep => None,
                Action::Reauthorize(why) | Action::Kick(why) => Some(why),
            }
        });
        if let Some(why) = why {
            info!(user = %user, server = %conn.server, cid = conn.cid, reason = why, "credentials no longer hold: closed");
            self.enqueue(conn, Action::Kick(why), Instant::now());
            return None;
        }
        let routes = self.delegated.get()?.delegates.routes();
        let d = e.decision?;
        d.rooms
            .iter()
            .any(|(room, _)| routes.route(room).is_some())
            .then_some(d)
    }

    /// Why the limits refuse `d`'s user and session now, if they do.
    fn refused_by_limits(&self, d: &DecisionRecord) -> Option<&'static str> {
        let snapshot = self.permissions.load();
        let limits = snapshot.effective(&d.user, d.asserted.as_ref())?.limits();
        self.limiter
            .gate()
            .check(&d.user, &d.session, limits, Instant::now())
    }

    /// Ask the delegates about the delegated rooms of `d` (a connection made with minted
    /// credentials) again; one no longer granted closes it.
    pub(super) async fn check_minted_delegated(&self, d: DecisionRecord) {
        let Some(dl) = self.delegated.get() else { return };
        let routes = dl.delegates.routes();
        let delegated = |room: &str| routes.route(room).is_some();
        let user = d.user.clone();
        for conn in self
            .lost_delegated(dl, vec![(d.conn.clone(), d)], &delegated)
            .await
        {
            info!(user = %user, server = %conn.server, cid = conn.cid, "credentials hold a delegated room no longer granted: closed");
            self.enqueue(conn, Action::Kick("room-lost"), Instant::now());
        }
    }

    /// A connection list names its connections' users by what they sent in CONNECT; those
    /// made with a JWT (`jwts`) are named by the JWT instead (its decision's user when minted
    /// here), and the decisions this instance does not know yet are returned, to record.
    pub(super) fn resolve_minted(
        &self,
        listed: &mut [(ConnKey, String)],
        jwts: &HashMap<ConnKey, String>,
    ) -> Vec<DecisionRecord> {
        let mut unknown = Vec::new();
        for (conn, user) in listed.iter_mut() {
            let Some(jwt) = jwts.get(conn) else { continue };
            let known = self
                .registry()
                .get(conn)
                .and_then(|e| e.decision.as_ref().map(|d| d.user.clone()));
            if let Some(known) = known {
                *user = known;
                continue;
            }
            match self.identify(jwt, conn.clone()) {
                Some(JwtUser::Minted(d)) => {
                    user.clone_from(&d.user);
                    unknown.push(*d);
                }
                Some(JwtUser::Other(sub)) => *user = sub,
                None => {}
            }
        }
        unknown
    }
}

#[cfg(test)]
mod tests {
    use nkeys::KeyPair;

    use super::*;
    use crate::claims::response::{Permission, UserJwt, UserPermissions, user_jwt};

    fn decision() -> DecisionRecord {
        serde_json::from_value(serde_json::json!({
            "conn": {"server": "", "cid": 0},
            "user": "bob", "session": "s1", "device": "phone", "tid": "t1", "iat": 100,
            "rooms": [["all1", "readwrite"]], "leafnode": false, "expires_at": 2000,
            "snapshot_epoch": 0, "revocation_epoch": 0,
        }))
        .unwrap()
    }

    /// A user JWT for `key` signed by `signer`, carrying `record`.
    fn jwt(signer: &KeyPair, key: &str, record: Option<&DecisionRecord>) -> String {
        let permissions = UserPermissions {
            publish: Permission::only(vec!["chat.all1.bob".into()]),
            subscribe: Permission::only(vec!["chat.all1.>".into()]),
        };
        let u = UserJwt {
            user_nkey: key,
            name: "bob",
            account: "APP",
            issuer_account: Some("AAPP"),
            expires_at: 2000,
            permissions: &permissions,
            subscriptions: None,
            record,
            connection_types: &[],
        };
        user_jwt(signer, &signer.public_key(), &u, 1000).unwrap()
    }

    /// Mints signed by a fresh key: the key and the mints.
    fn ours() -> (KeyPair, Mints) {
        let ours = KeyPair::new_account();
        let mints = Mints::of([ours.public_key()]);
        (ours, mints)
    }

    fn conn() -> ConnKey {
        ConnKey {
            server: "NSERVER".into(),
            cid: 7,
        }
    }

    #[test]
    fn a_jwt_minted_here_gives_its_decision_for_the_connection() {
        let (ours, mints) = ours();
        let key = KeyPair::new_user().public_key();
        let Some(JwtUser::Minted(d)) = mints.identify(&jwt(&ours, &key, Some(&decision())), conn(), 1500)
        else {
            panic!("ours")
        };
        assert_eq!((d.conn, d.at, d.user.as_str()), (conn(), 1500, "bob"));
        assert_eq!(d.session, "s1");
    }

    #[test]
    fn a_jwt_seen_again_gives_its_decision_for_the_new_connection() {
        let (ours, mints) = ours();
        let key = KeyPair::new_user().public_key();
        let token = jwt(&ours, &key, Some(&decision()));
        assert!(matches!(
            mints.identify(&token, conn(), 1500),
            Some(JwtUser::Minted(_))
        ));
        assert_eq!(mints.verified.len(), 1, "remembered once verified");
        let again = ConnKey {
            server: "NOTHER".into(),
            cid: 9,
        };
        let Some(JwtUser::Minted(d)) = mints.identify(&token, again.clone(), 1600) else {
            panic!("ours, from memory")
        };
        assert_eq!((d.conn, d.at, d.user.as_str()), (again, 1600, "bob"));
        // Only what verified is remembered: another signer's and a forged JWT are not.
        let other = jwt(&KeyPair::new_account(), &key, Some(&decision()));
        assert!(matches!(
            mints.identify(&other, conn(), 1500),
            Some(JwtUser::Other(_))
        ));
        assert_eq!(mints.verified.len(), 1);
    }

    #[test]
    fn any_other_jwt_is_its_subject_and_no_jwt_is_nobody() {
        let (ours, mints) = ours();
        let key = KeyPair::new_user().public_key();
        let record = decision();
        let good = jwt(&ours, &key, Some(&record));
        // A signature that does not verify (the claims changed after signing).
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_claims = {
            use base64::Engine;
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut c: serde_json::Value = serde_json::from_slice(&e.decode(parts[1]).unwrap()).unwrap();
            c["nats_callout"]["user"] = "alice".into();
            e.encode(c.to_string())
        };
        parts[1] = &forged_claims;
        let forged = parts.join(".");
        for (what, jwt) in [
            (
                "another signer of the account",
                jwt(&KeyPair::new_account(), &key, Some(&record)),
            ),
            ("signed here without a record", jwt(&ours, &key, None)),
            ("claims changed after signing", forged),
        ] {
            match mints.identify(&jwt, conn(), 1500) {
                Some(JwtUser::Other(sub)) => assert_eq!(sub, key, "{what}"),
                other => panic!("{what}: {other:?}"),
            }
        }
        assert!(
            mints.identify("", conn(), 1500).is_none(),
            "no JWT: a callout user"
        );
        assert!(mints.identify("a.b.c", conn(), 1500).is_none(), "not a JWT");
        assert!(mints.verified.is_empty(), "nothing that failed is remembered");
    }
}
