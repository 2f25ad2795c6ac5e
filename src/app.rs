//! The running service: load keys, tokens and permissions, connect to NATS, serve until shutdown.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tracing::info;

use crate::callout::{self, Callout, decision::Policy};
use crate::config::Config;
use crate::keys::CalloutKeys;
use crate::permissions::Snapshot;
use crate::tokens::TokenKeys;

/// A built service: connected and subscribed, ready to [`App::run`].
pub struct App {
    client: async_nats::Client,
    sub: async_nats::Subscriber,
    callout: Arc<Callout>,
    config: Config,
}

impl App {
    /// Load everything the configuration names and connect. Fails fast with a
    /// message naming the file or setting at fault.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let keys = CalloutKeys::load(
            &config.callout.issuer_seed_file,
            config.callout.xkey_seed_file.as_deref(),
        )
        .context("while loading the callout keys")?;
        let tokens = TokenKeys::from_settings(&config.tokens).context("while loading the token keys")?;
        let snapshot = Snapshot::load_dir(&config.permissions.dir).map_err(|e| {
            anyhow::anyhow!(
                "while loading permissions from {}:\n{e}",
                config.permissions.dir.display()
            )
        })?;
        let policy = Policy::from_settings(&config.callout).map_err(anyhow::Error::msg)?;
        info!(
            users = snapshot.user_count(),
            rooms = snapshot.room_count(),
            issuer = keys.issuer_public(),
            xkey = keys.xkey().is_some(),
            "permissions and keys loaded"
        );
        let callout = Arc::new(Callout::new(keys, tokens, snapshot, policy));
        let mut opts = async_nats::ConnectOptions::new().name(&config.nats.name);
        if let Some(user) = &config.nats.user {
            let password = config
                .nats_password()?
                .map(|s| s.expose().to_string())
                .unwrap_or_default();
            opts = opts.user_and_password(user.clone(), password);
        }
        let client = opts
            .connect(config.nats.url.as_str())
            .await
            .with_context(|| format!("while connecting to NATS at {}", config.nats.url))?;
        let sub = callout::subscribe(&client, &config.callout.queue_group)
            .await
            .context("while subscribing to the authorization subject")?;
        Ok(App {
            client,
            sub,
            callout,
            config,
        })
    }

    /// The shared request handler (to swap snapshots, or to inspect in tests).
    pub fn callout(&self) -> Arc<Callout> {
        self.callout.clone()
    }

    /// Serve until `shutdown` resolves, then finish the requests in flight and drain.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let App {
            client,
            sub,
            callout,
            config,
        } = self;
        callout::serve(
            client.clone(),
            sub,
            callout,
            config.callout.max_in_flight,
            shutdown,
        )
        .await;
        client
            .drain()
            .await
            .context("while draining the NATS connection")?;
        info!("stopped");
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
