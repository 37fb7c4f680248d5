//! Custom resources of the Sluice operator, group `sluice.dev`, version `v1alpha1`:
//! [`KafkaCluster`] (short name `kc`), [`Topic`] (short name `kt`) and [`KafkaUser`] (short name `ku`).
//!
//! The CRD manifests in the repository's `crds/` folder are generated from these types
//! ([`crds`], [`crds_yaml`]); a test fails when they are stale.

mod kafka_cluster;
mod kafka_user;
mod topic;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use kafka_cluster::{
    AuthorizationSpec, BrokersSpec, CONTROLLER_REPLICAS, ControllersSpec, DEFAULT_MOVE_THROTTLE,
    DEFAULT_STORAGE_SIZE, KafkaCluster, KafkaClusterSpec, KafkaClusterStatus,
    ListenerAuthentication, ListenerSpec, ListenerStatus, MAX_BROKERS, OPERATOR_OWNED_CONFIG_KEYS,
    OPERATOR_OWNED_CONFIG_PREFIX, OperationStatus, PvcRetention, RESERVED_LISTENER_NAMES,
    RESERVED_PORTS, ReplicaCounts, Storage,
};
pub use kafka_user::{
    AclOperation, AclPatternType, AclResource, AclResourceType, AclRule, AclType, KafkaUser,
    KafkaUserSpec, KafkaUserStatus, UserAuthentication,
};
pub use topic::{ClusterRef, TOPIC_NAME_PATTERN, Topic, TopicSpec, TopicStatus};

/// The API group of every Sluice resource.
pub const GROUP: &str = "sluice.dev";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot render CRD {name} as YAML: {source}")]
    Yaml {
        name: String,
        #[source]
        source: serde_saphyr::SerializeError,
    },
}

/// Every CRD the operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![KafkaCluster::crd(), Topic::crd(), KafkaUser::crd()]
}

/// One CRD as a YAML document (no leading `---`).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, Error> {
    serde_saphyr::to_string(crd).map_err(|source| Error::Yaml {
        name: crd.metadata.name.clone().unwrap_or_default(),
        source,
    })
}

/// Every CRD as one multi-document YAML stream, as `sluice-operator crd` prints it.
pub fn crds_yaml() -> Result<String, Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&crd_yaml(&crd)?);
    }
    Ok(out)
}

/// What the repository's `crds/` file of `crd` holds: a do-not-edit header and the YAML.
pub fn crd_file_contents(crd: &CustomResourceDefinition) -> Result<String, Error> {
    Ok(format!(
        "# Generated from operator/crd by its tests (SLUICE_UPDATE_CRDS=1 cargo test -p sluice-crd).\n\
         # Do not edit by hand.\n{}",
        crd_yaml(crd)?
    ))
}

/// The file in `crds/` that holds `crd`, e.g. `kafkaclusters.sluice.dev.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}
