//! The operator-mode world of the credentials phase (issue 31): a nats-server with
//! decentralized JWT authentication (the set-up `nats-callout keys --operator` writes), the
//! service in operator mode with NATS credentials on (`tokens.credentials_ttl`), and each
//! bench user's credentials minted once over HTTP (`POST /api/auth/nats-credentials`) for a
//! user nkey of its own. Clients then connect with the JWT and the nonce signed by that key:
//! nats-server checks both signatures and asks no callout. The same server also answers
//! clients without a JWT through the callout (its sentinel), so that both ways in are
//! measured on one server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use nats_callout::operator::setup::{SetupOptions, generate};
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::Cred;
use crate::procs::{self, Proc, free_port};
use crate::servers::{self, Server};
use crate::setup::{Setup, USERS};

/// How long minted credentials live (`tokens.credentials_ttl`): the whole run.
const CREDENTIALS_TTL: &str = "1h";
/// Mints in flight at once while the bench users fetch their credentials.
const MINT_CONCURRENCY: usize = 20;

/// The operator-mode nats-server and the service behind it.
pub struct Operator {
    /// Declared first: stopped before its server.
    pub service: Proc,
    pub server: Server,
    /// The generated set-up (the system user's `sys.creds` for KICK).
    pub dir: PathBuf,
    /// The service's HTTP API.
    pub http: String,
}

/// What minting every bench user's credentials measured (not part of the connect rates).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Mint {
    pub minted: usize,
    pub failed: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Service CPU per mint (HTTP, access token, decision, JWT signature, audit).
    pub service_cpu_ms_per_mint: f64,
}

impl Operator {
    /// Generate the set-up under the run's directory, start nats-server and the service
    /// (token keys of `setup`, permission files `perms`).
    pub fn start(setup: &Setup, perms: &Path) -> anyhow::Result<Operator> {
        let dir = setup.dir.join("operator");
        // nats-server picks its port: the set-up is generated again for each port tried.
        let server = servers::start(&setup.nats_bin, &setup.dir, "nats-operator", |port| {
            let g = generate(&SetupOptions {
                dir: dir.clone(),
                force: true,
                client_port: port,
                http_port: free_port(),
                websocket_port: free_port(),
                allowed_origins: vec!["http://127.0.0.1".into()],
                xkey: true,
                tokens_dir: setup.keydir.clone(),
                permissions_dir: perms.to_path_buf(),
            })
            .expect("the operator set-up is written");
            std::fs::read_to_string(g.server_config).expect("the generated nats-server.conf")
        })?;
        let http_port = free_port();
        let generated = std::fs::read_to_string(dir.join("callout.toml"))?;
        // Two lines into the generated file: one into [tokens], two at its end, in [http].
        anyhow::ensure!(
            generated.contains("\n[tokens]\n") && generated.rfind("\n[") == generated.find("\n[http]\n"),
            "the generated callout.toml changed shape (a [tokens] section, [http] last)"
        );
        let config = generated.replacen(
            "\n[tokens]\n",
            &format!("\n[tokens]\ncredentials_ttl = \"{CREDENTIALS_TTL}\"\n"),
            1,
        ) + &format!("listen = \"127.0.0.1:{http_port}\"\nadmin_listen = \"\"\n");
        let config_path = dir.join("callout-bench.toml");
        std::fs::write(&config_path, config)?;
        let service = setup.start_service("service-operator", &config_path)?;
        Ok(Operator {
            server,
            service,
            dir,
            http: format!("http://127.0.0.1:{http_port}"),
        })
    }

    /// A system-account connection (for KICK).
    pub async fn sys_client(&self) -> anyhow::Result<async_nats::Client> {
        Ok(
            async_nats::ConnectOptions::with_credentials_file(self.dir.join("sys.creds"))
                .await?
                .connect(self.server.url())
                .await?,
        )
    }

    /// Credentials for a fresh user nkey: `token`'s holder asks for `rooms` (`;`-separated).
    async fn mint_one(&self, http: &reqwest::Client, token: &str, rooms: &str) -> anyhow::Result<Cred> {
        let key = nkeys::KeyPair::new_user();
        let rooms: Vec<&str> = rooms.split(';').filter(|r| !r.is_empty()).collect();
        let r = http
            .post(format!("{}/api/auth/nats-credentials", self.http))
            .bearer_auth(token)
            .json(&json!({"publicKey": key.public_key(), "rooms": rooms}))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "credentials refused: {status} {body}");
        let jwt = body["jwt"].as_str().context("no jwt in the answer")?.to_string();
        Ok(Cred::Jwt {
            jwt,
            key: Arc::new(key),
        })
    }

    /// Wait until the HTTP API mints (the service is up).
    pub async fn wait_minting(&self, token: &str, rooms: &str, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            match self.mint_one(&http, token, rooms).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!("the service mints no credentials after {timeout:?}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Credentials for every bench user `b{i}` asking for `requested[i]`, each for its own
    /// nkey, fetched [`MINT_CONCURRENCY`] at a time; the access tokens are made beforehand
    /// so that the time is the service's.
    pub async fn mint_all(&self, setup: &Setup, requested: &[String]) -> anyhow::Result<(Vec<Cred>, Mint)> {
        let tokens: Vec<String> = (0..USERS)
            .map(|i| setup.token(&format!("b{i}"), &format!("cred{i}")))
            .collect();
        let http = reqwest::Client::new();
        let cpu0 = procs::cpu_seconds(self.service.pid());
        let start = Instant::now();
        let results: Vec<(usize, Duration, anyhow::Result<Cred>)> = futures::stream::iter(0..USERS)
            .map(|i| {
                let (http, token, rooms) = (&http, &tokens[i], &requested[i]);
                async move {
                    let t = Instant::now();
                    let r = self.mint_one(http, token, rooms).await;
                    (i, t.elapsed(), r)
                }
            })
            .buffer_unordered(MINT_CONCURRENCY)
            .collect()
            .await;
        let seconds = start.elapsed().as_secs_f64();
        let cpu = procs::cpu_seconds(self.service.pid()) - cpu0;
        let mut creds: Vec<Option<Cred>> = vec![None; USERS];
        let mut latencies = Vec::with_capacity(USERS);
        let mut failed = 0;
        let mut first_error = None;
        for (i, took, r) in results {
            latencies.push(took.as_secs_f64() * 1e3);
            match r {
                Ok(c) => creds[i] = Some(c),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.context(format!("{failed} of {USERS} mints failed")));
        }
        latencies.sort_by(f64::total_cmp);
        let minted = USERS - failed;
        let mint = Mint {
            minted,
            failed,
            concurrency: MINT_CONCURRENCY,
            seconds,
            per_second: minted as f64 / seconds.max(1e-9),
            p50_ms: crate::stats::percentile(&latencies, 0.5),
            p99_ms: crate::stats::percentile(&latencies, 0.99),
            service_cpu_ms_per_mint: cpu * 1e3 / minted.max(1) as f64,
        };
        Ok((creds.into_iter().flatten().collect(), mint))
    }
}
