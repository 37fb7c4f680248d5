//! The Sluice Kubernetes operator: reconciles `KafkaCluster` resources into ConfigMaps,
//! Services, PodDisruptionBudgets and StatefulSets running `sluice-broker`.
//!
//! The binary (`sluice-operator`) is in `main.rs`; everything it calls lives here so that it
//! can be tested without a cluster.

pub mod error;
pub mod kafka_cluster;
pub mod yaml;

pub use error::Error;
