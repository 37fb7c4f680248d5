//! The two kinds of node in a cluster, and the names, ports and node ids that follow from them.

use std::collections::BTreeMap;

/// Where the broker keeps its logs inside the data volume (mounted one level up, so that a
/// volume's `lost+found` is not mistaken for a partition directory).
pub const DATA_DIR: &str = "/var/lib/sluice/data";
/// Mount point of the data volume.
pub const DATA_MOUNT: &str = "/var/lib/sluice";
/// Mount point of the role's ConfigMap.
pub const CONFIG_MOUNT: &str = "/etc/sluice";
/// The rendered file inside [`CONFIG_MOUNT`].
pub const PROPERTIES_FILE: &str = "server.properties";

/// Port of the default client listener (`PLAINTEXT`) on brokers.
pub const BROKER_PORT: i32 = 9092;
/// Port of the brokers' `REPLICATION` listener (mutual TLS) in a secured cluster: followers fetch
/// from it and the operator connects to it.
pub const REPLICATION_PORT: i32 = 9091;
/// Mount point of the role's certificates in a secured cluster.
pub const TLS_MOUNT: &str = "/etc/sluice-tls";
/// Port of the quorum listener (`CONTROLLER`) on controllers.
pub const CONTROLLER_PORT: i32 = 9093;
/// Port of the readiness endpoint (`sluice.health.listener`) on every pod.
pub const HEALTH_PORT: i32 = 9095;
pub const HEALTH_PORT_NAME: &str = "health";

/// Node ids: broker `i` is node `i`, as Kafka users expect; controller `i` is node `1000 + i`,
/// which can never collide because brokers are capped at 1000 replicas. Each pod derives its id
/// at start from its StatefulSet ordinal plus `node.id.offset`, so ids are stable per pod.
pub const BROKER_NODE_ID_OFFSET: i32 = 0;
pub const CONTROLLER_NODE_ID_OFFSET: i32 = 1000;

/// Value of `app.kubernetes.io/name` on everything the operator creates.
pub const APP_NAME: &str = "sluice";
/// Value of `app.kubernetes.io/managed-by`.
pub const MANAGED_BY: &str = "sluice-operator";

/// A KRaft process role; each runs as its own StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Controller,
    Broker,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Controller, Role::Broker];

    /// `app.kubernetes.io/component` and the `process.roles` value.
    pub fn component(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Broker => "broker",
        }
    }

    pub fn port(self) -> i32 {
        match self {
            Role::Controller => CONTROLLER_PORT,
            Role::Broker => BROKER_PORT,
        }
    }

    /// The listener this role serves (and the container port's name, lower-cased).
    pub fn listener(self) -> &'static str {
        match self {
            Role::Controller => "CONTROLLER",
            Role::Broker => "PLAINTEXT",
        }
    }

    pub fn port_name(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Broker => "kafka",
        }
    }

    pub fn node_id_offset(self) -> i32 {
        match self {
            Role::Controller => CONTROLLER_NODE_ID_OFFSET,
            Role::Broker => BROKER_NODE_ID_OFFSET,
        }
    }

    /// StatefulSet (and so pod-name prefix): `NAME-broker` → pods `NAME-broker-0`, ….
    pub fn statefulset_name(self, cluster: &str) -> String {
        format!("{cluster}-{}", self.component())
    }

    /// Headless Service giving each pod a DNS name: `NAME-brokers`.
    pub fn headless_service_name(self, cluster: &str) -> String {
        format!("{cluster}-{}s", self.component())
    }

    pub fn config_map_name(self, cluster: &str) -> String {
        format!("{cluster}-{}-config", self.component())
    }

    pub fn pdb_name(self, cluster: &str) -> String {
        format!("{cluster}-{}", self.component())
    }

    /// DNS name of pod `ordinal`: `NAME-broker-2.NAME-brokers.NS.svc`.
    pub fn pod_host(self, cluster: &str, namespace: &str, ordinal: i32) -> String {
        format!(
            "{}-{ordinal}.{}.{namespace}.svc",
            self.statefulset_name(cluster),
            self.headless_service_name(cluster)
        )
    }

    /// Labels that select this role's pods.
    pub fn selector_labels(self, cluster: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), APP_NAME.to_owned()),
            ("app.kubernetes.io/instance".to_owned(), cluster.to_owned()),
            (
                "app.kubernetes.io/component".to_owned(),
                self.component().to_owned(),
            ),
        ])
    }

    /// Labels of every object of this role: the selector labels plus `managed-by`.
    pub fn labels(self, cluster: &str) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels(cluster);
        labels.insert(
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        );
        labels
    }
}

/// Name of the ClusterIP Service clients bootstrap from.
pub fn bootstrap_service_name(cluster: &str) -> String {
    format!("{cluster}-bootstrap")
}

/// `NAME-bootstrap.NS.svc:9092`: the default listener's bootstrap address.
pub fn bootstrap_servers(cluster: &str, namespace: &str) -> String {
    listener_bootstrap_servers(cluster, namespace, BROKER_PORT)
}

/// `NAME-bootstrap.NS.svc:PORT`.
pub fn listener_bootstrap_servers(cluster: &str, namespace: &str, port: i32) -> String {
    format!("{}.{namespace}.svc:{port}", bootstrap_service_name(cluster))
}

/// Where the operator reaches a secured cluster: every broker's `REPLICATION` listener, through
/// the headless Service's name (which resolves to each broker pod).
pub fn replication_bootstrap_servers(cluster: &str, namespace: &str) -> String {
    format!(
        "{}.{namespace}.svc:{REPLICATION_PORT}",
        Role::Broker.headless_service_name(cluster)
    )
}

/// `controller.quorum.bootstrap.servers`: the first `controllers` controllers as `host:9093`.
pub fn quorum_bootstrap_servers(cluster: &str, namespace: &str, controllers: i32) -> String {
    (0..controllers)
        .map(|i| {
            format!(
                "{}:{CONTROLLER_PORT}",
                Role::Controller.pod_host(cluster, namespace, i)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `controller.quorum.voters`: every controller as `id@host:9093`.
pub fn quorum_voters(cluster: &str, namespace: &str, controllers: i32) -> String {
    (0..controllers)
        .map(|i| {
            format!(
                "{}@{}:{CONTROLLER_PORT}",
                CONTROLLER_NODE_ID_OFFSET + i,
                Role::Controller.pod_host(cluster, namespace, i)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}
