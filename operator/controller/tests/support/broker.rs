//! A single-node Sluice broker (KRaft combined mode) in-process on a loopback port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use sluice_server::broker::Server;
use sluice_server::config::BrokerConfig;

/// Starts a broker storing in `dir` on 127.0.0.1, any free port; call inside a tokio runtime.
pub async fn start(dir: &Path) -> Server {
    let props: BTreeMap<String, String> = [
        ("node.id", "1"),
        ("process.roles", "broker,controller"),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
        ),
        ("advertised.listeners", "PLAINTEXT://127.0.0.1:0"),
        ("controller.listener.names", "CONTROLLER"),
        ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ("offsets.topic.num.partitions", "1"),
        ("log.dirs", &dir.display().to_string()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let config = BrokerConfig::from_properties(&props, &|_| None, "test-host").unwrap();
    Server::start(config, None).await.unwrap()
}

/// The client listener's address.
pub fn address(server: &Server) -> SocketAddr {
    server.addresses[0].1
}
