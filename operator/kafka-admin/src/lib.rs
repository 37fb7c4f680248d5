//! A small async Kafka admin client for the Sluice operator: topics, partitions, configs, partition
//! reassignments and the controller quorum over the
//! Kafka wire protocol (via `kafka-protocol`), with no native library, so the operator stays a static binary.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sluice_kafka_admin::AdminError> {
//! use std::time::Duration;
//! use sluice_kafka_admin::{AdminClient, NewTopic};
//!
//! let admin = AdminClient::connect("kafka:9092", "sluice-operator", Duration::from_secs(10)).await?;
//! match admin.create_topic(&NewTopic::new("orders").partitions(6).config("retention.ms", "86400000")).await {
//!     Ok(created) => println!("created, id {:?}", created.id),
//!     Err(e) if e.is_topic_already_exists() => {}
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```

mod client;
mod error;
mod quorum;
mod reassignments;
mod types;
mod users;

pub use client::AdminClient;
pub use error::{AdminError, error_name};
pub use kafka_protocol::error::ResponseError;
pub use kafka_protocol::messages::ApiKey;
pub use quorum::{QuorumInfo, QuorumReplica};
pub use reassignments::Reassignment;
pub use sluice_kafka_client::MAX_RESPONSE_BYTES;
pub use types::{
    BrokerInfo, ClusterInfo, ConfigSource, ConfigValue, NewTopic, PartitionInfo, TopicCreated,
    TopicInfo,
};
pub use users::{Acl, SCRAM_ITERATIONS, ScramMechanism};
pub use uuid::Uuid;
