//! The `Topic` resource: a Kafka topic in a `KafkaCluster` of the same namespace.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Kafka's rule for topic names (`Topic.validate` in Kafka): 1 to 249 of `[a-zA-Z0-9._-]`,
/// and neither `.` nor `..`.
pub const TOPIC_NAME_PATTERN: &str = "^[a-zA-Z0-9._-]{1,249}$";

/// A Kafka topic, created and kept in line by the operator.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Topic",
    plural = "topics",
    shortname = "kt",
    category = "sluice",
    namespaced,
    status = "TopicStatus",
    derive = "PartialEq",
    doc = "A Kafka topic in a KafkaCluster of the same namespace.",
    validation = Rule::new("has(self.spec.topicName) || self.metadata.name.size() <= 249")
        .message("metadata.name is longer than the 249 characters Kafka allows in a topic name: set spec.topicName"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef.name"),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".spec.partitions"),
    printcolumn(
        name = "Replication",
        type_ = "integer",
        json_path = ".status.replicationFactor"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.topicName) == has(oldSelf.topicName)")
    .message("spec.topicName cannot be added or removed: a topic cannot be renamed"))]
pub struct TopicSpec {
    /// The `KafkaCluster` (same namespace) that holds the topic.
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "spec.clusterRef is immutable: a topic cannot move to another cluster"
    ))]
    pub cluster_ref: ClusterRef,

    /// The topic's name in Kafka; defaults to `metadata.name`. Use it for names Kubernetes does
    /// not allow, e.g. with upper-case letters or underscores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 249))]
    #[x_kube(
        validation = Rule::new(format!("self.matches('{TOPIC_NAME_PATTERN}') && self != '.' && self != '..'")).message(
            "spec.topicName must be 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-', and not '.' or '..'"
        ),
        validation = Rule::new("self == oldSelf").message("spec.topicName is immutable: a topic cannot be renamed")
    )]
    pub topic_name: Option<String>,

    /// Number of partitions. It can grow but never shrink (Kafka cannot remove partitions).
    #[x_kube(
        validation = Rule::new("self >= 1").message("spec.partitions must be at least 1"),
        validation = Rule::new("self >= oldSelf").message(
            "spec.partitions can only grow: Kafka cannot remove partitions"
        )
    )]
    pub partitions: i32,

    /// Copies of each partition; the cluster's `default.replication.factor` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 32767").message(
        "spec.replicationFactor must be between 1 and 32767"
    ))]
    pub replication_factor: Option<i32>,

    /// Topic-level configs such as `retention.ms` or `cleanup.policy`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 256))]
    pub config: BTreeMap<String, String>,
}

/// Names a `KafkaCluster` in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// Name of the `KafkaCluster`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Observed state of a `Topic`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The topic's id in the cluster (base64url UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,

    /// Partitions the topic has in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,

    /// Replication factor the topic has in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
}

impl Topic {
    /// The topic's name in Kafka: `spec.topicName`, else `metadata.name`.
    pub fn kafka_name(&self) -> &str {
        match &self.spec.topic_name {
            Some(name) => name,
            None => self.metadata.name.as_deref().unwrap_or_default(),
        }
    }
}
