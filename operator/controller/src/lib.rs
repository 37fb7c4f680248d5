//! The Sluice Kubernetes operator: reconciles `KafkaCluster` resources into ConfigMaps,
//! Services, PodDisruptionBudgets and StatefulSets running `sluice-broker`, and `Topic`
//! resources into Kafka topics on those brokers.
//!
//! The binary (`sluice-operator`, `main.rs`) parses the command line and calls [`runner`], which
//! wires up the controllers, leader election and the metrics server; the integration tests start
//! the operator through the same [`runner::start`].

pub mod context;
pub mod duration;
pub mod error;
pub mod inspector;
pub mod kafka_cluster;
pub mod leader;
pub mod metrics;
pub mod pki;
pub mod render;
pub mod runner;
pub mod status_patch;
pub mod topic;
pub mod user;
pub mod yaml;

pub use error::Error;
pub use inspector::{ClusterInspector, KafkaAdminInspector};

/// The broker image used when neither the KafkaCluster nor `--broker-image` names one.
pub const DEFAULT_BROKER_IMAGE: &str = concat!(
    "ghcr.io/sluice-dev/sluice-broker:",
    env!("CARGO_PKG_VERSION")
);
