//! Criterion micro-benchmarks of each step of the callout's request path, then the whole
//! path (`Callout::handle`) with and without the production log line and the audit trail.
//!
//! `cargo bench --bench request_path` (make bench runs it with shorter times).
//!
//! Times are the CPU time of the benchmark thread (`CLOCK_THREAD_CPUTIME_ID`), not wall
//! time: the machines this runs on are shared, and time spent waiting for a core is not
//! time the request path costs.

use std::hint::black_box;

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use nats_callout::callout::decision::{Inputs, Policy, decide};
use nats_callout::callout::envelope;
use nats_callout::claims::request;
use nats_callout::claims::response::{Outcome, UserJwt, response_jwt, user_jwt};
use nats_callout::config::CalloutSettings;
use nats_callout::tokens::revocation::RevocationIndex;
use nkeys::XKey;

use nats_callout::clock::now_secs;
use nats_callout::testing::{self, World};

const ROOMS: &str = "all1;bob1;alice1";

/// Thread CPU time as a criterion measurement (same units and formatting as wall time).
pub struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns().saturating_sub(start))
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

type Crit = Criterion<ThreadCpu>;

fn steps(c: &mut Crit) {
    let w = World::random();
    let now = now_secs();
    let token = w.token("bob", now);
    let header = w.server_xkey.public_key();
    let sealed = w.sealed_request(&token, ROOMS, now);
    let issuer_pk = w.issuer_public();
    let jwt = w.request_jwt(&token, ROOMS, now);

    let mut g = c.benchmark_group("step");
    g.bench_function("1_open", |b| {
        b.iter(|| envelope::open(black_box(&sealed), Some(&header), Some(&w.xkey)).unwrap())
    });
    g.bench_function("1_verify_request", |b| {
        b.iter(|| request::verify(black_box(jwt.as_bytes()), &issuer_pk, now).unwrap())
    });
    g.bench_function("1_open_and_verify_request", |b| {
        b.iter(|| {
            let opened = envelope::open(black_box(&sealed), Some(&header), Some(&w.xkey)).unwrap();
            request::verify(&opened.jwt, &issuer_pk, now).unwrap()
        })
    });

    // A fresh token each time: the signature path (a new connection after login).
    g.bench_function("2_verify_access_token_fresh", |b| {
        b.iter_batched(
            || w.token("bob", now),
            |t| w.tokens.verify(&t, now).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // The same token again: a reconnect (the verified-token cache).
    g.bench_function("2_verify_access_token_cached", |b| {
        b.iter(|| w.tokens.verify(black_box(&token), now).unwrap())
    });

    let req = request::verify(jwt.as_bytes(), &issuer_pk, now).unwrap();
    let snapshot = testing::demo_snapshot();
    let revoked = RevocationIndex::default();
    let policy = Policy::from_settings(&CalloutSettings::default()).unwrap();
    let rooms = nats_callout::rooms::RoomIndex::default();
    let inputs = Inputs {
        tokens: &w.tokens,
        snapshot: &snapshot,
        rooms: &rooms,
        revoked: &revoked,
        policy: &policy,
    };
    // decide() verifies the token itself; warm, that is a cache hit.
    g.bench_function("3_decide", |b| {
        b.iter(|| decide(black_box(&req), &inputs, now).unwrap())
    });

    let grant = decide(&req, &inputs, now).unwrap();
    let issuer_pk = w.issuer_public();
    g.bench_function("4_sign_user_jwt_and_response", |b| {
        b.iter(|| {
            let u = UserJwt {
                user_nkey: &req.user_nkey,
                name: &grant.identity.sub,
                account: &policy.account,
                expires_at: grant.expires_at,
                permissions: &grant.permissions,
                issuer_account: None,
                subscriptions: None,
                record: None,
                connection_types: &[],
            };
            let jwt = user_jwt(&w.issuer, &issuer_pk, &u, now).unwrap();
            response_jwt(
                &w.issuer,
                &issuer_pk,
                &req.user_nkey,
                &req.server_id.id,
                Outcome::Allow(&jwt),
                now,
            )
            .unwrap()
        })
    });

    let u = UserJwt {
        user_nkey: &req.user_nkey,
        name: &grant.identity.sub,
        account: &policy.account,
        expires_at: grant.expires_at,
        permissions: &grant.permissions,
        issuer_account: None,
        subscriptions: None,
        record: None,
        connection_types: &[],
    };
    let user = user_jwt(&w.issuer, &issuer_pk, &u, now).unwrap();
    let reply = response_jwt(
        &w.issuer,
        &issuer_pk,
        &req.user_nkey,
        &req.server_id.id,
        Outcome::Allow(&user),
        now,
    )
    .unwrap();
    let server_public = XKey::from_public_key(&header).unwrap();
    g.bench_function("5_seal", |b| {
        b.iter(|| envelope::seal(black_box(reply.clone()), Some(&w.xkey), Some(&server_public)))
    });
    g.finish();
}

fn whole_path(c: &mut Crit) {
    let w = World::random();
    let now = now_secs();
    let token = w.token("bob", now);
    let header = w.server_xkey.public_key();
    let sealed = w.sealed_request(&token, ROOMS, now);
    let callout = w.callout(testing::demo_snapshot(), true);

    let mut g = c.benchmark_group("handle");
    g.bench_function("allow_no_log", |b| {
        b.iter(|| callout.handle(black_box(&sealed), Some(&header), now))
    });
    // The production log line (tracing fmt, info), written to a sink.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("nats_callout=info")
        .with_writer(std::io::sink)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    g.bench_function("allow_logged", |b| {
        tracing::dispatcher::with_default(&dispatch, || {
            b.iter(|| callout.handle(black_box(&sealed), Some(&header), now))
        })
    });
    // The audit trail on: the event built and pushed into the buffer on the path; another
    // thread takes the buffer and serializes the events, as the publishing task does (its
    // cost per event is `audit_event_json` below, off the path).
    let (audit, buffer) = nats_callout::audit::Audit::buffered(10_000);
    let taking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let drain = {
        let (buffer, taking) = (buffer.clone(), taking.clone());
        std::thread::spawn(move || {
            while taking.load(std::sync::atomic::Ordering::Relaxed) {
                for e in buffer.take() {
                    black_box(e.json());
                }
                std::thread::sleep(nats_callout::audit::PUBLISH_EVERY);
            }
        })
    };
    let audited = w.callout(testing::demo_snapshot(), true).with_audit(audit);
    g.bench_function("allow_audited", |b| {
        b.iter(|| audited.handle(black_box(&sealed), Some(&header), now))
    });
    taking.store(false, std::sync::atomic::Ordering::Relaxed);
    drain.join().unwrap();
    let event = buffer.take().pop().expect("an audited decision");
    g.bench_function("audit_event_json", |b| b.iter(|| black_box(&event).json()));
    // A fresh token per connection (cold verified-token cache).
    g.bench_function("allow_fresh_token", |b| {
        b.iter_batched(
            || w.sealed_request(&w.token("bob", now), ROOMS, now),
            |p| callout.handle(&p, Some(&header), now),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The same steps as the code did them before this benchmark's optimizations (X25519 on
/// every open and seal, a key parsed and a verifier built per token), for comparison.
fn before(c: &mut Crit) {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let w = World::random();
    let now = now_secs();
    let token = w.token("bob", now);
    let header = w.server_xkey.public_key();
    let sealed = w.sealed_request(&token, ROOMS, now);
    let server_public = XKey::from_public_key(&header).unwrap();

    let mut g = c.benchmark_group("before");
    g.bench_function("1_open_x25519_each_time", |b| {
        b.iter(|| {
            w.xkey
                .open(black_box(&sealed), &XKey::from_public_key(&header).unwrap())
                .unwrap()
        })
    });
    let reply = "x".repeat(1400);
    g.bench_function("5_seal_x25519_each_time", |b| {
        b.iter(|| w.xkey.seal(black_box(reply.as_bytes()), &server_public).unwrap())
    });
    let public = {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        ed25519_dalek::SigningKey::from_pkcs8_pem(&w.token_pem)
            .unwrap()
            .verifying_key()
            .to_bytes()
    };
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["nats-callout"]);
    validation.set_audience(&["nats"]);
    validation.validate_exp = false;
    g.bench_function("2_verify_access_token_jsonwebtoken", |b| {
        b.iter(|| {
            let _ = jsonwebtoken::decode_header(black_box(&token)).unwrap();
            let key = DecodingKey::from_ed_der(&public);
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = steps, whole_path, before
}
criterion_main!(benches);
