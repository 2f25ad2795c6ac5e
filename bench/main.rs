//! `make bench`: the load benchmark of the auth callout (see BENCHMARKS.md).
//!
//! `bench run` starts, on 127.0.0.1 only, three nats-servers: one answered by the real
//! `nats-callout serve`, one by a minimal responder (same crypto, one fixed grant, no
//! store, no token checks: the floor of any callout) and one with static users granted
//! the same subjects; and a fourth in operator mode, where clients bring NATS credentials
//! (a user JWT minted once over HTTP for their own nkey; JWT + nonce signature on every
//! connect, no callout) or go through the callout as before. Raw-protocol clients send
//! CONNECT with `auth_token` and `user` like real clients (or `jwt` and `sig`), then PING;
//! a PONG is an authorized connection. It measures connections/s and connect latency at
//! concurrency 1, 20 and 200 (rounds interleaved so that the ratios come from one run),
//! service CPU per authorization (`/proc`), reconnect storms (every client kicked at once),
//! a generated large permission set, and the scale-out phase (refreshes on redb, JetStream
//! R1 and R3; authorizations with the JetStream store; revocation propagation; enforcer
//! failover) and rooms as data at scale (100,000 data rooms on redb and JetStream R1:
//! start, decisions, notices and kicks), a client reconnecting in a loop beside normal
//! traffic, with and without `limits.connect_rate`, and delegated decisions (connect
//! latency with one delegated room answered at once, after 100 ms and never, beside the
//! plain callout). Everything it starts is stopped when it ends.

mod client;
mod delegation;
mod generate;
mod load;
mod looping;
mod operator;
mod procs;
mod report;
mod responder;
mod rooms;
mod servers;
mod setup;
mod shared;
mod stats;
mod store;
mod storm;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bench", about = "Load benchmark of nats-callout (make bench)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole benchmark (what `make bench` runs).
    Run(RunArgs),
    /// Write a generated permission set (JSON files) into a directory.
    GenPermissions(generate::GenArgs),
    /// Child process: the minimal responder.
    Responder {
        #[arg(long)]
        config: PathBuf,
    },
    /// Child process: load a permission directory, measure load, lookups and memory.
    StoreProbe {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// Rounds of the throughput phases (systems and concurrencies interleaved). Five, because
    /// single rounds move by a third on a shared host and the median of three still drifts.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Seconds per throughput phase.
    #[arg(long, default_value_t = 3.0)]
    pub phase_secs: f64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,20,200")]
    pub concurrency: Vec<usize>,
    /// Clients in the reconnect storm (0 = skip).
    #[arg(long, default_value_t = 5000)]
    pub storm_clients: usize,
    /// Skip the operator-mode systems (NATS credentials, and the callout behind that server).
    #[arg(long)]
    pub skip_credentials: bool,
    /// Skip the large permission set.
    #[arg(long)]
    pub skip_store: bool,
    /// Skip the scale-out phase (JetStream store, revocation propagation, lease failover).
    #[arg(long, conflicts_with = "only_shared")]
    pub skip_shared: bool,
    /// Run only the scale-out phase.
    #[arg(long)]
    pub only_shared: bool,
    /// Users, rooms and grants of the large permission set.
    #[arg(long, default_value_t = 100_000)]
    pub store_users: usize,
    #[arg(long, default_value_t = 10_000)]
    pub store_rooms: usize,
    #[arg(long, default_value_t = 1_000_000)]
    pub store_grants: usize,
    /// The service binary (default: `nats-callout` next to this one's `examples/` folder).
    #[arg(long)]
    pub service_bin: Option<PathBuf>,
    /// nats-server (default: NATS_SERVER_BIN, then .tools/venv/bin, then PATH).
    #[arg(long)]
    pub nats_server: Option<PathBuf>,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: PathBuf,
    #[command(flatten)]
    pub rooms: rooms::RoomsArgs,
    #[command(flatten)]
    pub delegation: delegation::DelegationArgs,
    /// Skip the looping-client phase (`limits.connect_rate`).
    #[arg(long, conflicts_with = "only_looping")]
    pub skip_looping: bool,
    /// Run only the looping-client phase.
    #[arg(long)]
    pub only_looping: bool,
    /// `connects` of the rate-on service's `limits.connect_rate` (10 s window, 60 s cool-down).
    #[arg(long, default_value_t = 20)]
    pub looping_connects: u32,
    /// Keep the work directory (configs, logs) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}

impl RunArgs {
    pub fn phase(&self) -> Duration {
        Duration::from_secs_f64(self.phase_secs)
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            procs::raise_fd_limit();
            // The load generator: one thread, so that it takes as little of the two cores
            // from nats-server and the service as it can.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(load::run(args))
        }
        Command::GenPermissions(args) => generate::write(&args).map(|_| ()),
        Command::Responder { config } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(responder::serve(config))
        }
        Command::StoreProbe { dir } => store::probe(&dir),
    }
}
