//! The server.properties the operator renders is read by the broker's own configuration code,
//! as each pod would read it: with its pod name as host name and in `POD_NAME`.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic

use sluice_operator::kafka_cluster::{build, role::Role, validate};
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
    let desired = build::build(&cluster, CLUSTER_ID, counts, quorum);
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
