//! A real Sluice broker in-process, and a TCP proxy in front of it that can cut or stall a connection.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed setup should panic

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sluice_server::broker::Server;
use sluice_server::config::BrokerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Start a single-node broker storing in `dir`, listening on 127.0.0.1:`port` (0 for any).
pub async fn start_broker(dir: &Path, port: u16, extra: &[(&str, &str)]) -> Server {
    let mut props: BTreeMap<String, String> = [
        ("node.id", "1"),
        ("process.roles", "broker,controller"),
        (
            "listeners",
            &format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:0"),
        ),
        (
            "advertised.listeners",
            &format!("PLAINTEXT://127.0.0.1:{port}"),
        ),
        ("controller.listener.names", "CONTROLLER"),
        ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ("offsets.topic.num.partitions", "3"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    props.insert("log.dirs".into(), dir.display().to_string());
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    let config = BrokerConfig::from_properties(&props, &|_| None, "test-host").unwrap();
    Server::start(config, None).await.unwrap()
}

pub fn address(server: &Server) -> SocketAddr {
    server.addresses[0].1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Close the client's connection, unanswered, when its next request arrives; then back to `Pass`.
    CloseOnNextRequest,
    /// Swallow requests without forwarding them.
    Stall,
}

/// Forwards connections to `upstream`, misbehaving on demand.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (m, a) = (mode.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(forward(client, upstream, m.clone()));
            }
        });
        Proxy {
            addr,
            mode,
            accepted,
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, mode: Arc<Mutex<Mode>>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = *mode.lock().unwrap();
        match now {
            Mode::Pass => {
                if to_server.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            Mode::CloseOnNextRequest => {
                *mode.lock().unwrap() = Mode::Pass;
                break;
            }
            Mode::Stall => {}
        }
    }
    // Dropping every half closes both sockets.
    back.abort();
}
