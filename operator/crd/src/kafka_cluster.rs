//! The `KafkaCluster` resource: a KRaft cluster of dedicated controllers and brokers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Broker settings in `spec.config` that the operator renders itself. Setting one would break
/// the cluster (node ids, listeners and the quorum must match the Services and pods the operator
/// creates), so the schema rejects them. Keys starting with `controller.quorum.` are rejected too.
pub const OPERATOR_OWNED_CONFIG_KEYS: &[&str] = &[
    "node.id",
    "broker.id",
    "node.id.offset",
    "process.roles",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "controller.listener.names",
    "log.dirs",
    "log.dir",
    "cluster.id",
    "sluice.health.listener",
];

/// Prefix of the quorum settings, all of which the operator owns.
pub const OPERATOR_OWNED_CONFIG_PREFIX: &str = "controller.quorum.";

/// Allowed controller counts: a Raft quorum of an odd size up to 5.
pub const CONTROLLER_REPLICAS: &[i32] = &[1, 3, 5];

/// Brokers take node ids `0..replicas`, controllers `CONTROLLER_NODE_ID_OFFSET + ordinal`, so the
/// broker count must stay below the controller offset.
pub const MAX_BROKERS: i32 = 1000;

/// A Sluice cluster run by the operator: dedicated KRaft controllers plus brokers, each role a
/// StatefulSet.
// Clippy mistakes the repeated `type_` of separate `printcolumn(...)` entries for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    plural = "kafkaclusters",
    shortname = "kc",
    category = "sluice",
    namespaced,
    status = "KafkaClusterStatus",
    derive = "PartialEq",
    doc = "A Kafka-compatible Sluice cluster: KRaft controllers and brokers, each a StatefulSet.",
    printcolumn(
        name = "Ready Brokers",
        type_ = "integer",
        json_path = ".status.brokers.ready",
        description = "Broker pods that are ready"
    ),
    printcolumn(
        name = "Brokers",
        type_ = "integer",
        json_path = ".spec.brokers.replicas",
        description = "Desired broker pods"
    ),
    printcolumn(
        name = "Ready Controllers",
        type_ = "integer",
        json_path = ".status.controllers.ready",
        description = "Controller pods that are ready"
    ),
    printcolumn(
        name = "Controllers",
        type_ = "integer",
        json_path = ".spec.controllers.replicas",
        description = "Desired controller pods"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// Container image of the Sluice broker (its entrypoint must be `sluice-broker`). Defaults to
    /// the image the operator was started with (`--broker-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() > 0").message("spec.image must not be empty"))]
    pub image: Option<String>,

    /// The KRaft controller quorum.
    #[serde(default)]
    pub controllers: ControllersSpec,

    /// The brokers that serve clients.
    #[serde(default)]
    pub brokers: BrokersSpec,

    /// Broker settings merged into every node's `server.properties`, e.g.
    /// `log.retention.hours: "72"`. Settings the operator manages (node ids, listeners,
    /// the quorum, log directories, the cluster id) are rejected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 256))]
    #[x_kube(validation = owned_keys_rule())]
    pub config: BTreeMap<String, String>,

    /// The listeners clients connect to; by default one, `plaintext` on port 9092, without TLS
    /// or authentication. A cluster created with a TLS or authenticated listener, or with
    /// `authorization`, is secured: its nodes talk to each other over mutual TLS with
    /// certificates the operator issues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(
        validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
            .message("spec.listeners: listener names must be unique"),
        validation = Rule::new("self.all(a, self.exists_one(b, b.port == a.port))")
            .message("spec.listeners: listener ports must be unique")
    )]
    pub listeners: Vec<ListenerSpec>,

    /// Turns on authorization: every request is checked against the ACLs (`KafkaUser` resources
    /// grant them). The brokers, the controllers and the operator are super users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationSpec>,
}

/// Ports the operator uses on every pod, which a client listener cannot take.
pub const RESERVED_PORTS: &[i32] = &[9091, 9093, 9095];

/// Listener names the operator uses itself.
pub const RESERVED_LISTENER_NAMES: &[&str] = &["controller", "replication"];

/// A listener clients connect to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.certificateSecret) || self.tls")
        .message("spec.listeners: certificateSecret needs tls: true"),
    validation = Rule::new("!has(self.authentication) || self.authentication != 'tls' || self.tls")
        .message("spec.listeners: authentication tls (client certificates) needs tls: true")
)]
pub struct ListenerSpec {
    /// Name of the listener: 1 to 11 lower-case letters and digits, starting with a letter; not
    /// `controller` or `replication`. Kafka sees it upper-cased.
    #[schemars(length(max = 11))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z][a-z0-9]{0,10}$') && !(self in ['controller', 'replication'])")
        .message("spec.listeners[].name must be 1 to 11 lower-case letters and digits starting with a letter, and not controller or replication"))]
    pub name: String,

    /// Port on every broker pod and on the bootstrap Service.
    #[x_kube(validation = Rule::new("self >= 1024 && self <= 65535 && !(self in [9091, 9093, 9095])")
        .message("spec.listeners[].port must be between 1024 and 65535 and not 9091, 9093 or 9095 (the operator uses those)"))]
    pub port: i32,

    /// Encrypt the listener with TLS.
    #[serde(default)]
    pub tls: bool,

    /// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) in the cluster's namespace with the
    /// brokers' certificate for this listener, e.g. from cert-manager; re-read on every
    /// reconcile, so a renewed certificate reaches the brokers without a restart. Without it the
    /// operator issues one from the cluster CA (`NAME-cluster-ca-cert`) and renews it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub certificate_secret: Option<String>,

    /// How clients prove who they are: `scram-sha-256` or `scram-sha-512` (SASL), or `tls`
    /// (a client certificate from a `KafkaUser`). None when absent: clients are `User:ANONYMOUS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ListenerAuthentication>,
}

impl ListenerSpec {
    /// The listener every cluster has when `spec.listeners` is empty.
    pub fn default_plaintext() -> ListenerSpec {
        ListenerSpec {
            name: "plaintext".to_owned(),
            port: 9092,
            tls: false,
            certificate_secret: None,
            authentication: None,
        }
    }
}

/// How clients of a listener authenticate.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerAuthentication {
    #[serde(rename = "tls")]
    Tls,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

impl ListenerAuthentication {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerAuthentication::Tls => "tls",
            ListenerAuthentication::ScramSha256 => "scram-sha-256",
            ListenerAuthentication::ScramSha512 => "scram-sha-512",
        }
    }

    /// The SASL mechanism, for the SCRAM kinds.
    pub fn sasl_mechanism(self) -> Option<&'static str> {
        match self {
            ListenerAuthentication::Tls => None,
            ListenerAuthentication::ScramSha256 => Some("SCRAM-SHA-256"),
            ListenerAuthentication::ScramSha512 => Some("SCRAM-SHA-512"),
        }
    }
}

/// ACL authorization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationSpec {
    /// Principals allowed everything, e.g. `User:admin` (`super.users`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // The item length bounds the CEL rule's cost, which the API server estimates.
    #[schemars(length(max = 64), extend("items" = {"type": "string", "maxLength": 256}))]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^User:[^;]+$'))")
        .message("spec.authorization.superUsers: each must be User:NAME, without ';'"))]
    pub super_users: Vec<String>,
}

/// The rule rejecting operator-owned keys in `spec.config`, with a message listing the keys found.
///
/// The API server refuses a CRD whose CEL cost estimate is too high, and it estimates `join`,
/// even of a constant list, and joining map keys (which have no length bound) far over the
/// budget. So the message is built from one `'key' in self` test per owned key, each adding a
/// constant string, and the leading `", "` is cut off with `substring`.
fn owned_keys_rule() -> kube::core::Rule {
    let list = OPERATOR_OWNED_CONFIG_KEYS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let prefix = OPERATOR_OWNED_CONFIG_PREFIX;
    let found = OPERATOR_OWNED_CONFIG_KEYS
        .iter()
        .map(|k| format!("('{k}' in self ? ', {k}' : '')"))
        .chain([format!(
            "(self.exists(k, k.startsWith('{prefix}')) ? ', {prefix}*' : '')"
        )])
        .collect::<Vec<_>>()
        .join(" + ");
    kube::core::Rule::new(format!(
        "self.all(k, !(k in [{list}] || k.startsWith('{prefix}')))"
    ))
    .message(kube::core::Message::Expression(format!(
        "'spec.config must not set ' + ({found}).substring(2) + \
         ': the operator manages node ids, listeners, the controller quorum, log directories \
         and the cluster id'"
    )))
}

/// The controller quorum.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControllersSpec {
    /// Number of controllers: 1, 3 or 5. A change adds or removes one voter at a time
    /// (KIP-853), each new one once it has caught up, the active controller handing over before
    /// it goes.
    #[serde(default = "default_controller_replicas")]
    #[x_kube(validation = Rule::new("self == 1 || self == 3 || self == 5")
        .message("spec.controllers.replicas must be 1, 3 or 5 (a quorum needs an odd size)"))]
    pub replicas: i32,

    /// What becomes of the volume of a controller a scale-down removes: `Retain` (the default, as
    /// StatefulSets do) keeps its PersistentVolumeClaim for a later scale-up, `Delete` deletes it.
    #[serde(default)]
    pub pvc_retention: PvcRetention,

    /// Volume of each controller pod (the metadata log).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "spec.controllers.storage cannot change: StatefulSet volume claim templates are immutable"
    ))]
    pub storage: Storage,

    /// CPU and memory requests and limits of each controller container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels a controller pod requires.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints a controller pod tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity and anti-affinity of controller pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

impl Default for ControllersSpec {
    fn default() -> Self {
        ControllersSpec {
            replicas: default_controller_replicas(),
            pvc_retention: PvcRetention::default(),
            storage: Storage::default(),
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: None,
        }
    }
}

fn default_controller_replicas() -> i32 {
    3
}

/// The brokers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BrokersSpec {
    /// Number of brokers; broker `i` has node id `i`. Lowering it waits until the brokers that
    /// would go no longer host partition replicas.
    #[serde(default = "default_broker_replicas")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message(
        "spec.brokers.replicas must be between 1 and 1000 (controllers use node ids from 1000)"
    ))]
    pub replicas: i32,

    /// Bytes per second each broker may spend copying the replicas the operator moves (to spread
    /// partitions onto new brokers, or off brokers that go), as `kafka-reassign-partitions
    /// --throttle` sets it; replicas in sync are never held back. Default 52428800 (50 MiB/s);
    /// 0 moves them unthrottled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message(
        "spec.brokers.moveThrottleBytesPerSecond must not be negative"
    ))]
    pub move_throttle_bytes_per_second: Option<i64>,

    /// What becomes of the volume of a broker a scale-down removes: `Retain` (the default, as
    /// StatefulSets do) keeps its PersistentVolumeClaim for a later scale-up, `Delete` deletes it.
    #[serde(default)]
    pub pvc_retention: PvcRetention,

    /// Volume of each broker pod (the partition logs).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "spec.brokers.storage cannot change: StatefulSet volume claim templates are immutable"
    ))]
    pub storage: Storage,

    /// CPU and memory requests and limits of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels a broker pod requires.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints a broker pod tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity and anti-affinity of broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

impl Default for BrokersSpec {
    fn default() -> Self {
        BrokersSpec {
            replicas: default_broker_replicas(),
            move_throttle_bytes_per_second: None,
            pvc_retention: PvcRetention::default(),
            storage: Storage::default(),
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: None,
        }
    }
}

fn default_broker_replicas() -> i32 {
    3
}

/// The fate of a removed pod's PersistentVolumeClaim (a StatefulSet's `whenScaled` policy).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PvcRetention {
    #[default]
    Retain,
    Delete,
}

impl PvcRetention {
    pub fn as_str(self) -> &'static str {
        match self {
            PvcRetention::Retain => "Retain",
            PvcRetention::Delete => "Delete",
        }
    }
}

/// Default size of a pod's persistent volume when `storage.size` is not given.
pub const DEFAULT_STORAGE_SIZE: &str = "10Gi";

/// Default of `spec.brokers.moveThrottleBytesPerSecond`: 50 MiB/s.
pub const DEFAULT_MOVE_THROTTLE: i64 = 50 * 1024 * 1024;

/// Where a pod keeps its data: a PersistentVolumeClaim per pod (the default), or an emptyDir
/// that is lost with the pod (`ephemeral: true`, for tests).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.ephemeral || (!has(self.size) && !has(self.storageClassName))")
    .message("storage: ephemeral storage takes neither size nor storageClassName"))]
pub struct Storage {
    /// Size of each pod's volume, a Kubernetes quantity such as `10Gi` (default 10Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))")
        .message("storage.size must be a positive quantity such as 10Gi"))]
    pub size: Option<String>,

    /// StorageClass of the volumes; the cluster's default class when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,

    /// Keep data in an emptyDir instead of a PersistentVolumeClaim: it is lost when a pod is
    /// deleted or rescheduled.
    #[serde(default)]
    pub ephemeral: bool,
}

/// An omitted `storage` is a persistent volume of the default size, spelled out so that writing
/// the same size explicitly later is not a change (storage cannot change).
impl Default for Storage {
    fn default() -> Self {
        Storage {
            size: Some(DEFAULT_STORAGE_SIZE.to_owned()),
            storage_class_name: None,
            ephemeral: false,
        }
    }
}

/// Observed state of a `KafkaCluster`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The Kafka cluster id (22-character base64url UUID), generated once and never changed: the
    /// brokers' data directories are formatted with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,

    /// Address clients bootstrap from, e.g. `NAME-bootstrap.NS.svc:9092` (the first listener's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,

    /// Each listener's bootstrap address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,

    /// Broker pods wanted and ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers: Option<ReplicaCounts>,

    /// Controller pods wanted and ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controllers: Option<ReplicaCounts>,

    /// The controller quorum's voters, `id@host:port` (as `controller.quorum.voters` writes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voters: Option<String>,

    /// Topics whose replication the operator throttles while it moves their partitions; the
    /// throttle is lifted once no move runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttled_topics: Vec<String>,

    /// The day-2 operation in progress (a scale, a quorum change, a rolling restart), absent when
    /// the cluster is settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationStatus>,
}

/// A day-2 operation in progress and how far it has come.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// `ScaleDown`, `ScaleUp`, `QuorumChange`, `Roll` or `LiveConfig`.
    #[serde(rename = "type")]
    pub type_: String,
    /// What is happening now, or what it waits for.
    pub message: String,
    /// Partition replicas still to move (scale-down and scale-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions_to_move: Option<i32>,
    /// Pods still to restart (rolling restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_to_restart: Option<i32>,
}

/// Pods of one role.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCounts {
    /// Pods the StatefulSet is asked to run.
    pub desired: i32,
    /// Pods that are ready.
    pub ready: i32,
}

/// Where clients reach one listener.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    /// `NAME-bootstrap.NS.svc:PORT`.
    pub bootstrap_servers: String,
}
