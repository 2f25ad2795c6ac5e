//! The command line: `serve`, `check`, `keys`, `hash-password`, `token`, `revoke`, `token-reset`,
//! `status`, `explain`.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{App, shutdown_signal};
use crate::config::Config;
use crate::permissions::Snapshot;
use crate::tokens::revocation::RevokeRequest;
use crate::tokens::{MintRequest, TokenKeys};
use crate::wire::{ADMIN_EXPLAIN_SUBJECT, ADMIN_REVOKE_SUBJECT, ADMIN_STATUS_SUBJECT, TOKEN_RESET_SUBJECT};

#[derive(Debug, Parser)]
#[command(
    name = "nats-callout",
    version = crate::version::LONG,
    about = "NATS auth-callout service: tokens in, room permissions out"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "NATS_CALLOUT_CONFIG",
        default_value = "callout.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve,
    /// Validate permission files; prints `file:line: reason` per problem.
    Check {
        /// Directory (default: `permissions.dir` from the configuration).
        #[arg(env = "NATS_CALLOUT_CHECK_DIR")]
        dir: Option<PathBuf>,
    },
    /// Generate the issuer nkey, the xkey and the token signing key (0600 files)
    /// and print the nats-server.conf snippet.
    Keys {
        #[arg(long, env = "NATS_CALLOUT_KEYS_DIR", default_value = ".demo")]
        dir: PathBuf,
        /// Replace existing keys.
        #[arg(long, env = "NATS_CALLOUT_KEYS_FORCE", conflicts_with = "keep")]
        force: bool,
        /// Keep the keys when they already exist (exit 0 without writing): for a one-shot
        /// container run at every start.
        #[arg(long, env = "NATS_CALLOUT_KEYS_KEEP")]
        keep: bool,
        /// An operator-mode set-up instead (operator, AUTH/APP/APP2/SYS accounts, sentinel,
        /// creds, nats-server.conf and callout.toml in --dir; the access-token keys stay
        /// those `keys` made in .demo).
        #[arg(long, env = "NATS_CALLOUT_KEYS_OPERATOR")]
        operator: bool,
    },
    /// Exit 0 when the running service is ready (`/readyz` on the operations listener):
    /// a container health check that needs no HTTP client in the image.
    Healthcheck {
        /// Default: `http://<http.admin_listen>/readyz` (an unspecified address as 127.0.0.1).
        #[arg(long, env = "NATS_CALLOUT_HEALTHCHECK_URL")]
        url: Option<String>,
    },
    /// Hash a password (argon2id) for the permission files; reads it from stdin.
    HashPassword,
    /// Revoke sessions through the running service (NATS, with the service's credentials).
    Revoke {
        #[arg(long, env = "NATS_CALLOUT_REVOKE_USER", group = "target")]
        user: Option<String>,
        /// Every user's sessions on this device id; with --user, only that user's.
        #[arg(long, env = "NATS_CALLOUT_REVOKE_DEVICE", conflicts_with_all = ["session", "before", "client"])]
        device: Option<String>,
        #[arg(long, env = "NATS_CALLOUT_REVOKE_SESSION", group = "target")]
        session: Option<String>,
        /// Everything issued at or before this time (unix seconds or RFC 3339).
        #[arg(long, env = "NATS_CALLOUT_REVOKE_BEFORE", group = "target")]
        before: Option<String>,
        /// With --user: only that user's sessions of this application (`clientId`).
        #[arg(long, env = "NATS_CALLOUT_REVOKE_CLIENT", requires = "user")]
        client: Option<String>,
    },
    /// Make the connections holding these access-token ids re-authorize (running service).
    #[command(group(clap::ArgGroup::new("ids").required(true).multiple(true).args(["tids", "users", "sessions"])))]
    TokenReset {
        /// Token ids (`tid` claim); repeat the flag for several.
        #[arg(long = "tid", env = "NATS_CALLOUT_TOKEN_RESET_TIDS", value_delimiter = ',')]
        tids: Vec<String>,
        /// User ids: every connection of these users decides again.
        #[arg(long = "user", env = "NATS_CALLOUT_TOKEN_RESET_USERS", value_delimiter = ',')]
        users: Vec<String>,
        /// Login session ids (`sid` claim).
        #[arg(
            long = "session",
            env = "NATS_CALLOUT_TOKEN_RESET_SESSIONS",
            value_delimiter = ','
        )]
        sessions: Vec<String>,
        #[arg(long, env = "NATS_CALLOUT_TOKEN_RESET_REASON", default_value = "operator")]
        reason: String,
    },
    /// Ask the running service how it is (readiness, reloads, enforcement); exit 1 if not ready.
    Status,
    /// The permission set published in JetStream KV for instances with
    /// `permissions.source = "kv"`.
    #[command(subcommand)]
    Permissions(PermissionsCommand),
    /// What a connection of a user asking for rooms would get, room by room, and why (the
    /// file and line granting it, or the reason it is refused). Offline it reads only the
    /// configuration and the permission files; `--live` asks the running service.
    Explain {
        #[arg(long, env = "NATS_CALLOUT_EXPLAIN_USER")]
        user: String,
        /// The rooms, as a client puts them in `user`: `a;b` (`,` accepted).
        #[arg(long, env = "NATS_CALLOUT_EXPLAIN_ROOMS", default_value = "")]
        rooms: String,
        /// The application (`clientId`) the connection's session was opened with.
        #[arg(long, env = "NATS_CALLOUT_EXPLAIN_CLIENT")]
        client: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long, env = "NATS_CALLOUT_EXPLAIN_JSON")]
        json: bool,
        /// Ask the running service (rooms in data, sessions, revocations) over NATS.
        #[arg(long, env = "NATS_CALLOUT_EXPLAIN_LIVE", conflicts_with = "dir")]
        live: bool,
        /// Permission directory (default: `permissions.dir`); offline only.
        #[arg(long, env = "NATS_CALLOUT_EXPLAIN_DIR")]
        dir: Option<PathBuf>,
    },
    /// Mint an access token for a user (for operators and tests).
    Token {
        #[arg(long, env = "NATS_CALLOUT_TOKEN_USER")]
        user: String,
        /// Lifetime, e.g. `5m`, `1h` (default: `tokens.access_ttl`).
        #[arg(long, env = "NATS_CALLOUT_TOKEN_TTL", value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        #[arg(long, env = "NATS_CALLOUT_TOKEN_DEVICE")]
        device: Option<String>,
        /// The application (`clientId`) the token is for: its connections reach only the
        /// application's rooms (an `[applications.NAME]` when the files define some).
        #[arg(long, env = "NATS_CALLOUT_TOKEN_CLIENT")]
        client: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PermissionsCommand {
    /// Validate a directory and publish it as the new revision (nothing is published
    /// if a file has a problem).
    Push {
        /// Directory (default: `permissions.dir`).
        dir: Option<PathBuf>,
        /// Who pushes (default: `$USER`).
        #[arg(long, env = "NATS_CALLOUT_PERMISSIONS_BY")]
        by: Option<String>,
    },
    /// List the revisions kept: revision, time, who, checksum, files.
    History,
    /// Publish an earlier revision again as the newest.
    Rollback {
        revision: u64,
        #[arg(long, env = "NATS_CALLOUT_PERMISSIONS_BY")]
        by: Option<String>,
    },
}

/// Run one command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = &cli.config;
    match cli.command {
        Command::Serve => serve(load(config)?).await,
        Command::Check { dir } => check_command(config, dir),
        Command::Keys {
            dir,
            force,
            keep,
            operator,
        } if operator => operator_keys(dir, force, keep),
        Command::Keys { dir, force, keep, .. } => keys(dir, force, keep),
        Command::Healthcheck { url } => healthcheck(config, url).await,
        Command::HashPassword => {
            println!("{}", crate::password::hash_password(&read_password()?)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke {
            user,
            device,
            session,
            before,
            client,
        } => {
            // The service checks that exactly one target is named, as for HTTP.
            let req = RevokeRequest {
                user_id: user,
                device_id: device,
                session_id: session,
                before: before.map(serde_json::Value::String),
                client_id: client,
            };
            ask_service(&load(config)?, ADMIN_REVOKE_SUBJECT, serde_json::to_vec(&req)?).await
        }
        Command::Status => ask_service(&load(config)?, ADMIN_STATUS_SUBJECT, Vec::new()).await,
        Command::Permissions(cmd) => permissions(&load(config)?, cmd).await,
        Command::TokenReset {
            tids,
            users,
            sessions,
            reason,
        } => {
            let req = crate::wire::TokenResetRequest {
                tids,
                users,
                sessions,
                reason,
                subject: None,
            };
            ask_service(&load(config)?, TOKEN_RESET_SUBJECT, serde_json::to_vec(&req)?).await
        }
        Command::Token {
            user,
            ttl,
            device,
            client,
        } => token(&load(config)?, &user, ttl, device.as_deref(), client.as_deref()),
        Command::Explain {
            user,
            rooms,
            client,
            json,
            live,
            dir,
        } => {
            let q = crate::explain::Question {
                user_id: user,
                rooms: rooms
                    .split([';', ','])
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect(),
                client_id: client,
            };
            q.check()?;
            let config = load(config)?;
            let answer: crate::explain::Explanation = if live {
                let body = request_service(&config, ADMIN_EXPLAIN_SUBJECT, serde_json::to_vec(&q)?).await?;
                if let Some(e) = body.get("error") {
                    anyhow::bail!("the service answered: {e}");
                }
                serde_json::from_value(body)?
            } else {
                let dir = dir.unwrap_or_else(|| config.permissions.dir.clone());
                crate::explain::offline(&config.callout, &config.access.delegate, &dir, &q)?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print!("{}", crate::explain::render(&answer));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `serve`: the service until Ctrl-C or SIGTERM (a second one exits at once).
async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_tracing(config.log.format);
    let first_then_second = async {
        shutdown_signal().await;
        tracing::info!("shutting down (a second signal exits at once)");
        // Detached on purpose: it only ever ends the process.
        tokio::spawn(async {
            shutdown_signal().await;
            eprintln!("second signal: exiting now");
            std::process::exit(130);
        });
    };
    App::build(config).await?.run(first_then_second).await?;
    Ok(ExitCode::SUCCESS)
}

/// `check [DIR]`: with a configuration that loads, users placed in accounts it does not
/// serve are named too.
fn check_command(config: &Path, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (dir, placements) = match dir {
        Some(d) => (d, load(config).ok().map(|c| c.callout.placements())),
        None => {
            let c = load(config)?;
            (c.permissions.dir, Some(c.callout.placements()))
        }
    };
    Ok(check(&dir, placements))
}

/// `keys --operator --dir DIR`: a whole operator-mode set-up; public keys printed.
fn operator_keys(dir: PathBuf, force: bool, keep: bool) -> anyhow::Result<ExitCode> {
    if keep && dir.join("nats-server.conf").exists() {
        eprintln!("operator set-up already in {}: kept", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let opts = crate::operator::setup::SetupOptions {
        force,
        ..crate::operator::setup::SetupOptions::demo(dir)
    };
    let g = crate::operator::setup::generate(&opts)?;
    eprintln!(
        "operator set-up written to {} (seeds and creds in 0600 files)",
        g.dir.display()
    );
    println!("operator      {}", g.operator);
    println!("AUTH          {}", g.auth);
    for (name, key) in &g.targets {
        println!("{name:<13} {key}");
    }
    println!("SYS           {}", g.system);
    println!("nats-server -c {}", g.server_config.display());
    println!("nats-callout serve --config {}", g.callout_config.display());
    Ok(ExitCode::SUCCESS)
}

/// `keys --dir DIR`: the keys, a complete nats-server.conf, and the snippet printed.
fn keys(dir: PathBuf, force: bool, keep: bool) -> anyhow::Result<ExitCode> {
    if keep && crate::keys::complete(&dir) {
        eprintln!("keys already in {}: kept", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let g = crate::keys::generate(&dir, force)?;
    eprintln!(
        "keys written to {} (0600 files), and {}",
        g.dir.display(),
        g.server_config.display()
    );
    print!("{}", g.snippet);
    Ok(ExitCode::SUCCESS)
}

/// `healthcheck [--url URL]`: exit 0 when readiness answers 200.
async fn healthcheck(config: &Path, url: Option<String>) -> anyhow::Result<ExitCode> {
    let url = match url {
        Some(u) => u,
        None => {
            let config = load(config)?;
            let addr = config.http.admin_listen.replace("0.0.0.0", "127.0.0.1");
            anyhow::ensure!(!addr.is_empty(), "http.admin_listen is off: give --url");
            format!("http://{addr}/readyz")
        }
    };
    let (status, body) = crate::ops::http_get(&url)
        .await
        .with_context(|| format!("while asking {url}"))?;
    println!("{body}");
    Ok(if status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `token --user NAME [--ttl D] [--device ID] [--client APP]`: mint an access token.
fn token(
    config: &Config,
    user: &str,
    ttl: Option<Duration>,
    device: Option<&str>,
    client: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let keys = TokenKeys::from_settings(&config.tokens).context("while loading the token signing key")?;
    if let Some(c) = client {
        crate::names::validate_name(c).map_err(|e| anyhow::anyhow!("--client {c:?}: {e}"))?;
    }
    match Snapshot::load_dir(&config.permissions.dir) {
        Ok(s) => {
            if s.user(user).is_none() {
                eprintln!("warning: {user} is not in the permission files");
            }
            // As a login would: an application the files do not define is refused.
            s.check_application(client)
                .map_err(|e| anyhow::anyhow!("--client: {e}"))?;
        }
        Err(e) if client.is_some() => {
            anyhow::bail!("--client cannot be checked: the permission files do not load:\n{e}")
        }
        Err(e) => eprintln!("warning: permission files do not load:\n{e}"),
    }
    let ttl = ttl.unwrap_or(config.tokens.access_ttl);
    let max = config.tokens.max_token_ttl;
    if ttl > max {
        anyhow::bail!(
            "--ttl {} is longer than tokens.max_token_ttl ({}): revocations are kept only that long, \
             so a longer token would be accepted again after a revocation expired; raise \
             tokens.max_token_ttl if you need it",
            humantime::format_duration(ttl),
            humantime::format_duration(max)
        );
    }
    let session = crate::tokens::access::new_id();
    let (token, _) = keys.mint(
        &MintRequest {
            user,
            session: &session,
            device,
            ttl,
            session_expires_at: None,
            asserted: None,
            client_id: client,
        },
        crate::clock::now_secs(),
    )?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// Send a request to the running service with its own credentials; print the JSON answer.
async fn ask_service(config: &Config, subject: &'static str, body: Vec<u8>) -> anyhow::Result<ExitCode> {
    let body = request_service(config, subject, body).await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    let failed = body.get("error").is_some() || body.get("ready") == Some(&serde_json::Value::Bool(false));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
/// The running service's JSON answer to a request, asked with its own credentials.
async fn request_service(
    config: &Config,
    subject: &'static str,
    body: Vec<u8>,
) -> anyhow::Result<serde_json::Value> {
    let client = crate::app::connect(config).await?;
    let reply = client
        .request(subject, body.into())
        .await
        .context("while asking the running service (is `nats-callout serve` up?)")?;
    Ok(serde_json::from_slice(&reply.payload)?)
}

/// `permissions push|history|rollback` against the configured NATS.
async fn permissions(config: &Config, cmd: PermissionsCommand) -> anyhow::Result<ExitCode> {
    use crate::permissions::published::{self, PublishError, PublishedSet};
    let who = |by: Option<String>| {
        by.or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".into())
    };
    let client = crate::app::connect(config).await?;
    let js = crate::kv::context(client);
    let spec = published::bucket(&config.store.bucket_prefix, config.store.replicas);
    let bucket = crate::kv::ensure(&js, &spec).await?;
    let now = crate::clock::now_secs();
    let pushed = match cmd {
        PermissionsCommand::Push { dir, by } => {
            let dir = dir.unwrap_or_else(|| config.permissions.dir.clone());
            let files = match crate::permissions::read_files(&dir) {
                Ok(f) => f,
                Err(e) => {
                    println!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let set = PublishedSet::new(files, &who(by), now);
            published::push(&bucket, &set)
                .await
                .map(|rev| (rev, set.checksum))
        }
        PermissionsCommand::Rollback { revision, by } => {
            let rev = published::rollback(&bucket, revision, &who(by), now).await;
            match rev {
                Ok(rev) => published::current(&bucket)
                    .await
                    .map(|c| (rev, c.map(|(_, s)| s.checksum).unwrap_or_default())),
                Err(e) => Err(e),
            }
        }
        PermissionsCommand::History => {
            for v in published::history(&bucket).await? {
                let rollback = v
                    .rollback_of
                    .map(|r| format!(" (rollback of {r})"))
                    .unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{} files{rollback}",
                    v.revision,
                    crate::clock::rfc3339(v.at),
                    v.by,
                    &v.checksum[..v.checksum.len().min(12)],
                    v.files
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    match pushed {
        Ok((rev, checksum)) => {
            println!("published revision {rev} (checksum {checksum})");
            Ok(ExitCode::SUCCESS)
        }
        Err(PublishError::Invalid(problems)) => {
            println!("{problems}");
            println!("nothing published");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("while loading configuration {}", path.display()))
}

/// Validate a permission directory, print the outcome, and return the exit code. With the
/// accounts the service places users in (from the configuration, or its defaults when the
/// file is missing), users placed elsewhere are named: a warning, as the set is valid and
/// only their connections will be denied.
pub fn check(dir: &Path, placements: Option<Vec<String>>) -> ExitCode {
    match Snapshot::load_dir(dir) {
        Ok(s) => {
            println!(
                "{}: ok ({} users, {} rooms)",
                dir.display(),
                s.user_count(),
                s.room_count()
            );
            if let Some(served) = placements.map(|p| p.into_iter().collect()) {
                for (user, account) in s.placed_outside(&served) {
                    println!(
                        "warning: user {user:?}: account {account:?} is not served (callout.user_accounts, \
                         or [callout.accounts] in operator mode): its connections will be denied"
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("while reading the password from stdin")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    anyhow::ensure!(!pw.is_empty(), "empty password");
    Ok(pw)
}
