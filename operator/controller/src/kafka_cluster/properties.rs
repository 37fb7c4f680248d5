//! Renders each role's `server.properties`. Pure and deterministic: the same cluster always
//! gives the same bytes, because the file's hash decides whether pods are rolled.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::live_config;
use super::role::{
    CONTROLLER_NODE_ID_OFFSET, CONTROLLER_PORT, DATA_DIR, HEALTH_PORT, Role,
    quorum_bootstrap_servers, quorum_voters,
};
use super::validate::ValidCluster;

/// The key a dynamic quorum is found by. Its value follows the controller count, and it matters
/// only at a pod's start (a running node knows the voters from its log), so it is left out of the
/// hash that rolls the pods: scaling the controllers restarts nothing.
pub const QUORUM_BOOTSTRAP_KEY: &str = "controller.quorum.bootstrap.servers";

/// How the controllers find each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumMode {
    /// Fixed voters in `controller.quorum.voters`: clusters created before the quorum could grow,
    /// and clusters whose controllers keep no data across restarts.
    Static,
    /// Voters kept in the metadata log (KIP-853): `controller.quorum.bootstrap.servers` lists
    /// `controller_pods` controllers, and the operator adds and removes voters.
    Dynamic { controller_pods: i32 },
}

/// `server.properties` of `role` in `cluster`. Operator-owned settings first, then
/// `spec.config` in key order (validation keeps the two apart), without the keys applied live.
pub fn render(cluster: &ValidCluster, role: Role, cluster_id: &str, quorum: QuorumMode) -> String {
    let name = &cluster.name;
    let ns = &cluster.namespace;
    let listener = role.listener();
    let port = role.port();
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{key}={}", escape_value(value));
    };
    line("process.roles", role.component());
    line("node.id.offset", &role.node_id_offset().to_string());
    line("cluster.id", cluster_id);
    match quorum {
        QuorumMode::Static => line(
            "controller.quorum.voters",
            &quorum_voters(name, ns, cluster.controllers.replicas),
        ),
        QuorumMode::Dynamic { controller_pods } => line(
            QUORUM_BOOTSTRAP_KEY,
            &quorum_bootstrap_servers(name, ns, controller_pods),
        ),
    }
    line("controller.listener.names", "CONTROLLER");
    line(
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    );
    line("listeners", &format!("{listener}://0.0.0.0:{port}"));
    // The pod is Ready only once the node does its job (a broker unfenced, a controller knowing the
    // quorum's leader), not as soon as it listens.
    line("sluice.health.listener", &format!("0.0.0.0:{HEALTH_PORT}"));
    // The broker substitutes ${env:POD_NAME} at start, so one file serves every pod.
    line(
        "advertised.listeners",
        &format!(
            "{listener}://${{env:POD_NAME}}.{}.{ns}.svc:{port}",
            role.headless_service_name(name)
        ),
    );
    line("log.dirs", DATA_DIR);
    // Kafka creates __consumer_offsets only once this many brokers are live; its default of 3 would leave
    // consumer groups of a smaller cluster without a coordinator.
    if role == Role::Broker
        && !cluster
            .config
            .contains_key("offsets.topic.replication.factor")
    {
        line(
            "offsets.topic.replication.factor",
            &cluster.brokers.replicas.clamp(1, 3).to_string(),
        );
    }
    let mut text = format!(
        "# Rendered by sluice-operator for KafkaCluster {ns}/{name} ({} role).\n\
         # Edits are overwritten: change the KafkaCluster's spec.config instead.\n{out}",
        role.component()
    );
    let file_keys: Vec<(&String, &String)> = cluster
        .config
        .iter()
        .filter(|(k, _)| !live_config::is_live(k))
        .collect();
    if !file_keys.is_empty() {
        text.push_str("# From spec.config (the keys brokers change live are applied through the admin API):\n");
        for (key, value) in file_keys {
            let _ = writeln!(text, "{key}={}", escape_value(value));
        }
    }
    text
}

/// The command line of a controller of a dynamic quorum: the first controller starts the quorum,
/// the broker formats the others (which this list leaves out) as joining controllers, and the
/// operator adds them as voters. The directory id is derived from the cluster id, so the command
/// line never changes.
pub fn controller_format_args(cluster: &ValidCluster, cluster_id: &str) -> Vec<String> {
    let host = Role::Controller.pod_host(&cluster.name, &cluster.namespace, 0);
    vec![
        "--initial-controllers".to_owned(),
        format!(
            "{CONTROLLER_NODE_ID_OFFSET}@{host}:{CONTROLLER_PORT}:{}",
            first_directory_id(cluster_id)
        ),
    ]
}

/// A Kafka UUID (base64url, 22 characters) for the first controller's metadata directory, the
/// same for the same cluster id.
pub fn first_directory_id(cluster_id: &str) -> String {
    use base64::Engine as _;
    let digest = Sha256::digest(format!("sluice-metadata-dir/{cluster_id}/0").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // A version-4 layout, as Kafka's random ids have; and never one of the ids Kafka reserves.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    // Kafka refuses ids that start with '-' on the command line; flip a bit of the first byte.
    if id.starts_with('-') {
        bytes[0] ^= 0x80;
        return base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    }
    id
}

/// Java properties treat `\` as an escape; values are written so that they read back verbatim.
fn escape_value(value: &str) -> String {
    value.replace('\\', "\\\\")
}

/// Hex SHA-256 of a rendered file without the quorum bootstrap line, put on the pod template so
/// that a config change rolls the pods.
pub fn config_hash(text: &str) -> String {
    let prefix = format!("{QUORUM_BOOTSTRAP_KEY}=");
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect();
    hash(&kept)
}

/// Whether a rendered file lists fixed voters (a cluster created before the quorum could grow).
pub fn is_static_quorum(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("controller.quorum.voters="))
}

/// Hex SHA-256 of `text`.
pub fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The `cluster.id` of a rendered file, used to recover the id if the status was lost.
pub fn cluster_id_of(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backslashes_are_escaped() {
        assert_eq!(escape_value(r"a\b"), r"a\\b");
        assert_eq!(escape_value("plain"), "plain");
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_config_hash_ignores_only_the_quorum_bootstrap_line() {
        let a = "x=1\ncontroller.quorum.bootstrap.servers=a:1\n";
        let b = "x=1\ncontroller.quorum.bootstrap.servers=a:1,b:1\n";
        assert_eq!(config_hash(a), config_hash(b));
        assert_ne!(
            config_hash(a),
            config_hash("x=2\ncontroller.quorum.bootstrap.servers=a:1\n")
        );
        assert!(is_static_quorum(
            "a=b\ncontroller.quorum.voters=1000@x:9093\n"
        ));
        assert!(!is_static_quorum(b));
    }

    #[test]
    fn the_first_directory_id_is_a_kafka_uuid_fixed_by_the_cluster_id() {
        let a = first_directory_id("MkU3OEVBNTcwNTJENDM2Qg");
        assert_eq!(a, first_directory_id("MkU3OEVBNTcwNTJENDM2Qg"));
        assert_ne!(a, first_directory_id("other"));
        assert_eq!(a.len(), 22);
        for id in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            assert!(!first_directory_id(id).starts_with('-'));
        }
    }

    #[test]
    fn cluster_id_is_read_back() {
        assert_eq!(
            cluster_id_of("# x\nprocess.roles=broker\ncluster.id=abc_-1\n").as_deref(),
            Some("abc_-1")
        );
        assert_eq!(cluster_id_of("cluster.id=\n"), None);
        assert_eq!(cluster_id_of("a=b\n"), None);
    }
}
