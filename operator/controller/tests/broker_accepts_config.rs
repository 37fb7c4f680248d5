//! The server.properties the operator renders is read by the broker's own configuration code,
//! as each pod would read it: with its pod name as host name and in `POD_NAME`.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic

use std::time::SystemTime;

use sluice_operator::kafka_cluster::certificates::{self, TlsMaterial};
use sluice_operator::kafka_cluster::properties::{self, NodeTransport};
use sluice_operator::kafka_cluster::role::TLS_MOUNT;
use sluice_operator::kafka_cluster::{build, role::Role, validate};
use sluice_operator::pki::Ca;
use sluice_server::config::{BrokerConfig, parse_properties};

const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qg";

fn rendered(role: Role) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/kafkacluster.yaml"
    ))
    .unwrap();
    let mut kc: sluice_crd::KafkaCluster = serde_saphyr::from_str(&text).unwrap();
    // Three controllers, to check every voter.
    kc.spec.controllers.replicas = 3;
    let cluster = validate::validate(&kc, "img", "default").unwrap();
    let counts = build::PodCounts::of(&cluster);
    let quorum = build::quorum_mode(&cluster, false, counts.controllers);
    let desired = build::build(
        &cluster,
        build::Inputs {
            cluster_id: CLUSTER_ID,
            counts,
            quorum,
            nodes: NodeTransport::Plaintext,
            tls: None,
        },
    );
    let cm = desired
        .config_maps
        .iter()
        .find(|cm| cm.metadata.name.as_deref() == Some(role.config_map_name("demo").as_str()))
        .unwrap();
    cm.data.as_ref().unwrap()["server.properties"].clone()
}

fn load(role: Role, ordinal: i32) -> BrokerConfig {
    let props = parse_properties(&rendered(role)).unwrap();
    let pod = format!("{}-{ordinal}", role.statefulset_name("demo"));
    let env = |name: &str| (name == "POD_NAME").then(|| pod.clone());
    BrokerConfig::from_properties(&props, &env, &pod).unwrap()
}

#[test]
fn brokers_get_ordinal_node_ids_and_per_pod_advertised_listeners() {
    for ordinal in 0..3 {
        let config = load(Role::Broker, ordinal);
        assert_eq!(config.node_id, ordinal);
        assert!(config.process_roles.broker && !config.process_roles.controller);
        assert_eq!(config.cluster_id.as_deref(), Some(CLUSTER_ID));
        assert_eq!(
            config.log_dirs,
            [std::path::PathBuf::from("/var/lib/sluice/data")]
        );
        // A dynamic quorum: found through every controller, its voters kept in the metadata log.
        assert!(config.controller_quorum_voters.is_empty());
        assert_eq!(config.controller_quorum_bootstrap_servers.len(), 3);
        let advertised = config.advertised_for("PLAINTEXT").unwrap();
        assert_eq!(
            (advertised.host.as_str(), advertised.port),
            (
                format!("demo-broker-{ordinal}.demo-brokers.kafka.svc").as_str(),
                9092
            )
        );
    }
}

#[test]
fn controllers_get_offset_node_ids_and_find_the_quorum_through_every_controller() {
    for ordinal in 0..3 {
        let config = load(Role::Controller, ordinal);
        assert_eq!(config.node_id, 1000 + ordinal);
        assert!(config.process_roles.controller && !config.process_roles.broker);
        assert_eq!(config.node_id_offset, 1000);
        let hosts: Vec<String> = config
            .controller_quorum_bootstrap_servers
            .iter()
            .map(|h| format!("{}:{}", h.host, h.port))
            .collect();
        assert_eq!(
            hosts,
            (0..3)
                .map(|i| format!("demo-controller-{i}.demo-controllers.kafka.svc:9093"))
                .collect::<Vec<_>>()
        );
        // The address a controller registers under, which the other controllers must resolve.
        let advertised = config.advertised_for("CONTROLLER").unwrap();
        assert_eq!(
            advertised.host,
            format!("demo-controller-{ordinal}.demo-controllers.kafka.svc")
        );
    }
}

#[test]
fn the_keys_the_operator_applies_live_are_exactly_the_ones_the_broker_changes_live() {
    use sluice_operator::kafka_cluster::live_config::{LIVE_KEYS, is_live};
    use sluice_server::config::TOPIC_CONFIGS;
    use sluice_server::dynamic_config;
    for key in LIVE_KEYS {
        assert!(
            dynamic_config::is_dynamic(key),
            "{key} is not dynamic in the broker"
        );
    }
    // Every broker key the broker changes live (each topic config's main broker synonym, and the
    // throttle rates) is one the operator leaves out of the file.
    let broker_keys = TOPIC_CONFIGS
        .iter()
        .filter_map(|d| d.broker_synonyms.first().copied())
        .chain(dynamic_config::THROTTLE_RATES.iter().copied())
        .filter(|k| dynamic_config::is_dynamic(k));
    for key in broker_keys {
        assert!(
            is_live(key),
            "the broker changes {key} live but the operator renders it"
        );
    }
}

/// A secured cluster: a SCRAM listener over TLS, a client-certificate listener, a listener with
/// the user's own certificate, authorization, and the nodes on mutual TLS. Each role's
/// `server.properties` is loaded by the broker with the certificate files the operator issues
/// (written where the pod mounts them, moved to a temporary directory).
#[test]
fn a_secured_cluster_loads_with_the_certificates_the_operator_issues() {
    let spec: sluice_crd::KafkaClusterSpec = serde_json::from_value(serde_json::json!({
        "listeners": [
            {"name": "scram", "port": 9092, "tls": true, "authentication": "scram-sha-512"},
            {"name": "mtls", "port": 9094, "tls": true, "authentication": "tls"},
            {"name": "own", "port": 9096, "tls": true, "certificateSecret": "own-cert"},
        ],
        "authorization": {"superUsers": ["User:admin"]},
    }))
    .unwrap();
    let mut kc = sluice_crd::KafkaCluster::new("demo", spec);
    kc.metadata.namespace = Some("kafka".to_owned());
    let cluster = validate::validate(&kc, "img", "default").unwrap();
    assert!(cluster.wants_security());
    let now = SystemTime::now();
    let cluster_ca = Ca::generate("demo-cluster-ca", now).unwrap();
    let clients_ca = Ca::generate("demo-clients-ca", now).unwrap();
    let own = Ca::generate("user-ca", now).unwrap();
    let own_leaf = own
        .issue(&certificates::node_leaf_spec(&cluster, Role::Broker), now)
        .unwrap();
    let tls = TlsMaterial {
        node_keystores: Role::ALL
            .into_iter()
            .map(|r| {
                let leaf = cluster_ca
                    .issue(&certificates::node_leaf_spec(&cluster, r), now)
                    .unwrap();
                (r, leaf.keystore_pem())
            })
            .collect(),
        listener_keystores: [("own".to_owned(), own_leaf.keystore_pem())].into(),
        cluster_ca,
        clients_ca,
    };
    let counts = build::PodCounts::of(&cluster);
    let desired = build::build(
        &cluster,
        build::Inputs {
            cluster_id: CLUSTER_ID,
            counts,
            quorum: build::quorum_mode(&cluster, false, counts.controllers),
            nodes: NodeTransport::MutualTls,
            tls: Some(&tls),
        },
    );
    for role in Role::ALL {
        let dir = tempfile::tempdir().unwrap();
        let secret_name = certificates::role_tls_secret("demo", role);
        let secret = desired
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(secret_name.as_str()))
            .unwrap();
        for (file, bytes) in secret.data.as_ref().unwrap() {
            std::fs::write(dir.path().join(file), &bytes.0).unwrap();
        }
        let cm = desired
            .config_maps
            .iter()
            .find(|cm| cm.metadata.name.as_deref() == Some(role.config_map_name("demo").as_str()))
            .unwrap();
        let text = cm.data.as_ref().unwrap()["server.properties"]
            .replace(TLS_MOUNT, &dir.path().display().to_string());
        assert!(properties::is_mutual_tls(&text), "{text}");
        let props = parse_properties(&text).unwrap();
        let pod = format!("{}-0", role.statefulset_name("demo"));
        let env = |name: &str| (name == "POD_NAME").then(|| pod.clone());
        let config = BrokerConfig::from_properties(&props, &env, &pod)
            .unwrap_or_else(|e| panic!("{role:?}: {e}\n{text}"));
        // The node reaches the other nodes over TLS with its certificate.
        let outbound =
            sluice_server::outbound::outbound(&config).unwrap_or_else(|e| panic!("{role:?}: {e}"));
        assert!(outbound["CONTROLLER"].tls.is_some(), "{role:?}");
        if role == Role::Broker {
            assert!(outbound["REPLICATION"].tls.is_some());
            assert_eq!(
                config.inter_broker_listener_name.as_deref(),
                Some("REPLICATION")
            );
            assert!(config.advertised_for("SCRAM").is_some());
            assert!(config.advertised_for("MTLS").is_some());
            assert_eq!(config.advertised_for("REPLICATION").unwrap().port, 9091);
        }
        assert!(text.contains("super.users=User:CN=demo-broker,O=sluice.dev;User:CN=demo-controller,O=sluice.dev;User:CN=sluice-operator,O=sluice.dev;User:admin"), "{text}");
    }
}
