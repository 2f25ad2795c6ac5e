//! A TCP proxy in front of a nats-server, to cut one instance off the network while the
//! server and every other instance carry on (a partition, not a crash).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Forwards `127.0.0.1:<port>` to a server port until dropped.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    cutting: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(to: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cutting) = (Arc::new(AtomicBool::new(false)), Arc::new(Notify::new()));
        let (c, n) = (cut.clone(), cutting.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // refused: dropped at once
                }
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", to)).await else {
                    continue;
                };
                let n = n.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = n.notified() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            cut,
            cutting,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Drop every connection through the proxy and refuse new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cutting.notify_waiters();
    }

    /// Let connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
