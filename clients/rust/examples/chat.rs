//! The chat example of contract 12: log in, join the rooms, send TEXT (if given) to each, then
//! print every message heard as a JSON line `{"room", "from", "text"}` until SECONDS passed.
//!
//! `cargo run -p nats-callout-client --example chat -- --api URL --nats URL --user U
//! --password P --room R [--room R2] [--send TEXT] [--listen SECONDS]`

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use nats_callout_client::{ChatClient, Options};

#[derive(Parser, Debug)]
struct Args {
    /// The service's HTTP API (`http://127.0.0.1:8080`).
    #[arg(long)]
    api: String,
    /// nats-server (`nats://127.0.0.1:4222`).
    #[arg(long)]
    nats: String,
    #[arg(long)]
    user: String,
    #[arg(long)]
    password: String,
    /// A room to join (repeat for more).
    #[arg(long = "room", required = true)]
    rooms: Vec<String>,
    /// Send this text to every room once joined.
    #[arg(long)]
    send: Option<String>,
    /// Listen this many seconds, then exit.
    #[arg(long, default_value_t = 0.0)]
    listen: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listen = Duration::try_from_secs_f64(args.listen).context("--listen: a number of seconds")?;
    let chat = ChatClient::connect(Options::password(
        &args.api,
        &args.nats,
        &args.user,
        &args.password,
    ))
    .await
    .context("logging in and connecting")?;
    let heard = futures::stream::select_all(args.rooms.iter().map(|r| chat.messages(r)));
    for room in &args.rooms {
        chat.join(room).await.with_context(|| format!("joining {room}"))?;
    }
    if let Some(text) = &args.send {
        for room in &args.rooms {
            chat.send(room, text)
                .await
                .with_context(|| format!("sending to {room}"))?;
        }
    }
    let until = tokio::time::sleep(listen);
    tokio::pin!(until);
    let mut heard = heard;
    loop {
        tokio::select! {
            () = &mut until => break,
            m = heard.next() => match m {
                Some(m) => println!("{}", serde_json::to_string(&m)?),
                None => break,
            },
        }
    }
    chat.close().await;
    Ok(())
}
