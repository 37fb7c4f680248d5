//! Renders each role's `server.properties`. Pure and deterministic: the same cluster always
//! gives the same bytes, because the file's hash decides whether pods are rolled.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::live_config;
use sluice_crd::ListenerAuthentication;

use super::role::{
    CONTROLLER_NODE_ID_OFFSET, CONTROLLER_PORT, DATA_DIR, HEALTH_PORT, REPLICATION_PORT, Role,
    TLS_MOUNT, quorum_bootstrap_servers, quorum_voters,
};
use super::validate::{ListenerCertificate, ValidCluster};

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

/// How the nodes of a cluster reach each other: in the clear (clusters created without security),
/// or over mutual TLS with the certificates the operator issues (clusters created secured).
/// Decided when the cluster is created and kept: switching it would need every node restarted
/// at once, as nodes of the two kinds cannot talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeTransport {
    Plaintext,
    MutualTls,
}

/// Files in the role's certificate Secret, mounted at [`TLS_MOUNT`].
pub const NODE_KEYSTORE: &str = "node.pem";
pub const CLUSTER_CA_FILE: &str = "cluster-ca.crt";
pub const CLIENTS_CA_FILE: &str = "clients-ca.crt";

/// The keystore file of a listener whose certificate comes from the user's Secret.
pub fn listener_keystore_file(listener: &str) -> String {
    format!("listener-{listener}.pem")
}

/// The common names of the certificates the operator issues to the nodes and to itself.
pub fn node_common_name(cluster: &str, role: Role) -> String {
    format!("{cluster}-{}", role.component())
}
pub const OPERATOR_COMMON_NAME: &str = "sluice-operator";

/// How a client certificate (all issued by the clients CA for a `KafkaUser`, subject `CN=NAME`)
/// becomes the principal `User:NAME`. Anything else is refused.
pub const CLIENT_PRINCIPAL_RULES: &str = "RULE:^CN=([a-z0-9.-]+)$/$1/";

/// `server.properties` of `role` in `cluster`. Operator-owned settings first, then
/// `spec.config` in key order (validation keeps the two apart), without the keys applied live.
pub fn render(
    cluster: &ValidCluster,
    role: Role,
    cluster_id: &str,
    quorum: QuorumMode,
    nodes: NodeTransport,
) -> String {
    let name = &cluster.name;
    let ns = &cluster.namespace;
    let mtls = nodes == NodeTransport::MutualTls;
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
    let internal_protocol = if mtls { "SSL" } else { "PLAINTEXT" };
    let mut map: Vec<String> = cluster
        .listeners
        .iter()
        .map(|l| format!("{}:{}", l.kafka_name(), l.protocol()))
        .collect();
    if mtls {
        map.push(format!("{REPLICATION}:SSL"));
    }
    map.push(format!("CONTROLLER:{internal_protocol}"));
    line("listener.security.protocol.map", &map.join(","));
    // (listener, port) this role serves.
    let served: Vec<(String, i32)> = match role {
        Role::Controller => vec![("CONTROLLER".to_owned(), CONTROLLER_PORT)],
        Role::Broker => cluster
            .listeners
            .iter()
            .map(|l| (l.kafka_name(), l.port))
            .chain(mtls.then(|| (REPLICATION.to_owned(), REPLICATION_PORT)))
            .collect(),
    };
    let join = |host: &str| {
        served
            .iter()
            .map(|(l, port)| format!("{l}://{host}:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    line("listeners", &join("0.0.0.0"));
    // The pod is Ready only once the node does its job (a broker unfenced, a controller knowing the
    // quorum's leader), not as soon as it listens.
    line("sluice.health.listener", &format!("0.0.0.0:{HEALTH_PORT}"));
    // The broker substitutes ${env:POD_NAME} at start, so one file serves every pod.
    line(
        "advertised.listeners",
        &join(&format!(
            "${{env:POD_NAME}}.{}.{ns}.svc",
            role.headless_service_name(name)
        )),
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
    // Nodes in the clear replicate over the listener the operator uses too, the first without TLS
    // or authentication; said only when another listener comes first (Kafka's default).
    if !mtls
        && let Some(plain) = cluster
            .listeners
            .iter()
            .position(|l| l.protocol() == "PLAINTEXT")
            .filter(|&i| i > 0)
    {
        line(
            "inter.broker.listener.name",
            &cluster.listeners[plain].kafka_name(),
        );
    }
    let file = |f: &str| format!("{TLS_MOUNT}/{f}");
    let any_tls =
        mtls || (role == Role::Broker && cluster.listeners.iter().any(|l| l.tls.is_some()));
    if any_tls {
        line("ssl.keystore.type", "PEM");
        line("ssl.truststore.type", "PEM");
    }
    if mtls {
        // Controllers too: they reach each broker's copy of the metadata log at this listener.
        line("inter.broker.listener.name", REPLICATION);
        let internal: &[&str] = match role {
            Role::Controller => &["controller"],
            // A broker dials the controllers with its certificate too.
            Role::Broker => &["controller", "replication"],
        };
        for l in internal {
            line(
                &format!("listener.name.{l}.ssl.keystore.location"),
                &file(NODE_KEYSTORE),
            );
            line(
                &format!("listener.name.{l}.ssl.truststore.location"),
                &file(CLUSTER_CA_FILE),
            );
            line(&format!("listener.name.{l}.ssl.client.auth"), "required");
        }
    }
    if role == Role::Broker {
        for l in &cluster.listeners {
            let key = |k: &str| format!("listener.name.{}.{k}", l.name);
            if let Some(cert) = &l.tls {
                let keystore = match cert {
                    ListenerCertificate::Issued => NODE_KEYSTORE.to_owned(),
                    ListenerCertificate::Secret(_) => listener_keystore_file(&l.name),
                };
                line(&key("ssl.keystore.location"), &file(&keystore));
            }
            match l.authentication {
                None => {}
                Some(ListenerAuthentication::Tls) => {
                    line(&key("ssl.truststore.location"), &file(CLIENTS_CA_FILE));
                    line(&key("ssl.client.auth"), "required");
                    line(&key("ssl.principal.mapping.rules"), CLIENT_PRINCIPAL_RULES);
                }
                Some(scram) => {
                    let mechanism = scram.sasl_mechanism().unwrap_or_default();
                    line(&key("sasl.enabled.mechanisms"), mechanism);
                    // Kafka wants a login module for each mechanism a listener enables; the
                    // credentials themselves are in the cluster metadata.
                    line(
                        &key(&format!(
                            "{}.sasl.jaas.config",
                            mechanism.to_ascii_lowercase()
                        )),
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                    );
                }
            }
        }
    }
    if let Some(super_users) = &cluster.authorization {
        line(
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        );
        let nodes_and_operator = [
            node_common_name(name, Role::Broker),
            node_common_name(name, Role::Controller),
            OPERATOR_COMMON_NAME.to_owned(),
        ];
        let all: Vec<String> = nodes_and_operator
            .iter()
            .map(|cn| crate::pki::node_principal(cn))
            .chain(super_users.iter().cloned())
            .collect();
        line("super.users", &all.join(";"));
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

/// The brokers' internal listener in a secured cluster.
const REPLICATION: &str = "REPLICATION";

/// Whether a rendered file has the nodes talk over mutual TLS.
pub fn is_mutual_tls(text: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix("listener.security.protocol.map=")
            .is_some_and(|map| map.split(',').any(|e| e.trim() == "CONTROLLER:SSL"))
    })
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
