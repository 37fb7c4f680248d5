//! Renders each role's `server.properties`. Pure and deterministic: the same cluster always
//! gives the same bytes, because the file's hash decides whether pods are rolled.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::role::{DATA_DIR, Role, quorum_voters};
use super::validate::ValidCluster;

/// `server.properties` of `role` in `cluster`. Operator-owned settings first, then
/// `spec.config` in key order (validation keeps the two apart).
pub fn render(cluster: &ValidCluster, role: Role, cluster_id: &str) -> String {
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
    line(
        "controller.quorum.voters",
        &quorum_voters(name, ns, cluster.controllers.replicas),
    );
    line("controller.listener.names", "CONTROLLER");
    line(
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    );
    line("listeners", &format!("{listener}://0.0.0.0:{port}"));
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
    if !cluster.config.is_empty() {
        text.push_str("# From spec.config:\n");
        for (key, value) in &cluster.config {
            let _ = writeln!(text, "{key}={}", escape_value(value));
        }
    }
    text
}

/// Java properties treat `\` as an escape; values are written so that they read back verbatim.
fn escape_value(value: &str) -> String {
    value.replace('\\', "\\\\")
}

/// Hex SHA-256 of `text`, put on the pod template so that a config change rolls the pods.
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
    fn cluster_id_is_read_back() {
        assert_eq!(
            cluster_id_of("# x\nprocess.roles=broker\ncluster.id=abc_-1\n").as_deref(),
            Some("abc_-1")
        );
        assert_eq!(cluster_id_of("cluster.id=\n"), None);
        assert_eq!(cluster_id_of("a=b\n"), None);
    }
}
