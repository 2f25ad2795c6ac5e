//! The service in-process, started from a test environment's configuration.

use nats_callout::app::App;
use nats_callout::config::Config;
use tokio::sync::oneshot;

use super::TestEnv;

impl TestEnv {
    /// Start the service in-process; it stops when the handle drops. The first instance
    /// uses `config.tokens.store_path`; later ones get their own store file.
    pub async fn start_callout(&self) -> CalloutHandle {
        let n = self.instances.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut config = self.config.clone();
        if n > 0 {
            config.tokens.store_path = self.dir.path().join(format!("tokens-{n}.redb"));
        }
        self.start_callout_with(config).await
    }

    /// Start the service with `config` and wait until it says it is ready (connected,
    /// subscribed, permissions and store in order).
    pub async fn start_callout_with(&self, config: Config) -> CalloutHandle {
        let handle = self.launch_callout(config).await;
        let deadline = std::time::Instant::now() + super::DEADLINE;
        loop {
            let (ready, body) = handle.ops.readiness().await;
            if ready {
                return handle;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the service never got ready: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Start the service with `config` without waiting for it to be ready.
    pub async fn launch_callout(&self, config: Config) -> CalloutHandle {
        let app = App::build(config).await.expect("service starts");
        let ops = app.ops();
        let callout = app.callout();
        let http_addr = app.http_addr();
        let admin_addr = app.admin_addr();
        let enforcement = app.enforcement();
        let reloader = app.reloader();
        let tokens = app.tokens();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        CalloutHandle {
            stop: Some(tx),
            task: Some(task),
            callout,
            http_addr,
            admin_addr,
            enforcement,
            reloader,
            tokens,
            ops,
        }
    }
}

/// Stops the in-process service when dropped (or explicitly).
pub struct CalloutHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub callout: std::sync::Arc<nats_callout::callout::Callout>,
    pub http_addr: Option<std::net::SocketAddr>,
    pub admin_addr: Option<std::net::SocketAddr>,
    pub enforcement: Option<std::sync::Arc<nats_callout::enforcement::Enforcement>>,
    pub reloader: std::sync::Arc<nats_callout::reload::Reloader>,
    pub tokens: std::sync::Arc<nats_callout::tokens::service::TokenService>,
    pub ops: std::sync::Arc<nats_callout::ops::Ops>,
}

impl CalloutHandle {
    /// Base URL of this instance's HTTP API.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr.expect("HTTP API enabled"))
    }

    /// Base URL of this instance's operations listener.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr.expect("operations listener enabled"))
    }

    pub fn stats(&self) -> nats_callout::callout::Stats {
        self.callout.stats()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for CalloutHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The binary serving this environment's configuration file with the shared JetStream
/// store and the system user (live enforcement), plus `vars` (`NATS_CALLOUT_*`); only the
/// operations listener. Killed on drop.
pub struct ServiceProcess {
    pub child: std::process::Child,
    pub admin_port: u16,
}

impl TestEnv {
    pub fn spawn_shared_service(&self, vars: &[(&str, &str)]) -> ServiceProcess {
        let admin_port = super::free_port();
        let cfg = self.write_config("", &format!("127.0.0.1:{admin_port}"));
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_nats-callout"));
        c.args(["serve", "--config"])
            .arg(&cfg)
            .env("NATS_CALLOUT_STORE__BACKEND", "jetstream")
            .env("NATS_CALLOUT_NATS__SYSTEM_USER", "sys")
            .env(
                "NATS_CALLOUT_NATS__SYSTEM_PASSWORD_FILE",
                self.config.nats.system_password_file.as_ref().unwrap(),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in vars {
            c.env(k, v);
        }
        ServiceProcess {
            child: c.spawn().unwrap(),
            admin_port,
        }
    }
}

impl ServiceProcess {
    /// SIGKILL: a crash, nothing cleaned up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait until its `/readyz` says ready.
    pub async fn ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.admin_port);
        let start = std::time::Instant::now();
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == 200
            {
                return;
            }
            assert!(
                start.elapsed() < super::DEADLINE * 2,
                "the service binary never got ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
