//! A single-node Sluice broker (KRaft combined mode) in-process on a loopback port, with ACLs on and
//! every (anonymous) client a super user.

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
            "PLAINTEXT://127.0.0.1:0,SCRAM://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SCRAM:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        ),
        // Where KafkaUsers' SCRAM passwords are tried.
        (
            "listener.name.scram.sasl.enabled.mechanisms",
            "SCRAM-SHA-256,SCRAM-SHA-512",
        ),
        ("advertised.listeners", "PLAINTEXT://127.0.0.1:0"),
        ("controller.listener.names", "CONTROLLER"),
        ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ("offsets.topic.num.partitions", "1"),
        // ACLs on, so that KafkaUsers can be given theirs; clients here are all anonymous.
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:ANONYMOUS"),
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

/// The SASL/SCRAM listener's address.
pub fn scram_address(server: &Server) -> SocketAddr {
    server
        .addresses
        .iter()
        .find(|(name, _)| name == "SCRAM")
        .map(|(_, a)| *a)
        .unwrap()
}
