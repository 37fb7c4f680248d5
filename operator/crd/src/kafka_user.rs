//! The `KafkaUser` resource: a Kafka principal of a `KafkaCluster` in the same namespace, with
//! its credential (a SCRAM password or a client certificate, kept in a Secret) and its ACLs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ClusterRef;

/// A user of a Kafka cluster: the principal `User:NAME`, a credential the operator generates
/// into a Secret named like the user, and the ACLs the user is granted.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "KafkaUser",
    plural = "kafkausers",
    shortname = "ku",
    category = "sluice",
    namespaced,
    status = "KafkaUserStatus",
    derive = "PartialEq",
    doc = "A user of a KafkaCluster in the same namespace: its credential and its ACLs.",
    validation = Rule::new("self.metadata.name.size() <= 64")
        .message("metadata.name: a KafkaUser's name is its Kafka user name, at most 64 characters"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef.name"),
    printcolumn(name = "Authentication", type_ = "string", json_path = ".spec.authentication"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserSpec {
    /// The `KafkaCluster` (same namespace) the user belongs to.
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "spec.clusterRef is immutable: a user cannot move to another cluster"
    ))]
    pub cluster_ref: ClusterRef,

    /// How the user authenticates: `scram-sha-512`, `scram-sha-256` (a generated password), or
    /// `tls` (a client certificate from the cluster's clients CA). Absent: the user has no
    /// credential, only ACLs (e.g. for a principal authenticated elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<UserAuthentication>,

    /// What the user may do. Replaces every ACL of `User:NAME` on the cluster: ACLs of the
    /// principal that are not listed here are deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub acls: Vec<AclRule>,
}

/// A user's credential: the same kinds a listener authenticates with.
pub type UserAuthentication = crate::ListenerAuthentication;

/// One ACL rule: operations on a resource, allowed or denied.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    pub resource: AclResource,
    /// Kafka operations: `All`, `Read`, `Write`, `Create`, `Delete`, `Alter`, `Describe`,
    /// `ClusterAction`, `DescribeConfigs`, `AlterConfigs`, `IdempotentWrite`.
    #[schemars(length(min = 1, max = 11))]
    pub operations: Vec<AclOperation>,
    /// The client address the rule applies to; `*` (the default) for any.
    #[serde(default = "any_host")]
    #[schemars(length(min = 1, max = 255))]
    pub host: String,
    /// `allow` (the default) or `deny`; a deny wins over any allow.
    #[serde(default, rename = "type")]
    pub type_: AclType,
}

fn any_host() -> String {
    "*".to_owned()
}

/// What an ACL rule is about.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'cluster' ? !has(self.name) : has(self.name)")
        .message("spec.acls[].resource: name is required, except for type cluster which takes none"),
    validation = Rule::new("self.type != 'cluster' || self.patternType == 'literal'")
        .message("spec.acls[].resource: the cluster takes patternType literal")
)]
pub struct AclResource {
    #[serde(rename = "type")]
    pub type_: AclResourceType,
    /// The resource's name, or its prefix with `patternType: prefixed`; `*` for every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum AclPatternType {
    #[default]
    Literal,
    Prefixed,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum AclType {
    #[default]
    Allow,
    Deny,
}

/// Kafka's ACL operations, as `kafka-acls --operation` names them.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

/// Observed state of a `KafkaUser`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The Kafka user name; the principal is `User:` and this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,

    /// The Secret holding the credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
