//! A loopback TCP proxy that can hold back what clients send, for making a write land late:
//! while it is paused, bytes from clients wait in the proxy (answers from the server still
//! flow), and they go on, in order, when it resumes. It listens on 127.0.0.1 only.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; it stops accepting when dropped.
pub struct PausableProxy {
    addr: SocketAddr,
    paused: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl PausableProxy {
    /// Starts a proxy to `upstream` on a free 127.0.0.1 port.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (paused, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, watching.clone()));
            }
        });
        PausableProxy { addr, paused, task }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Holds back everything clients send from now on.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Lets what was held back, and what follows, through.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }
}

impl Drop for PausableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, mut paused: watch::Receiver<bool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if paused.wait_for(|p| !*p).await.is_err() {
                return;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::join!(upstream, downstream);
}
