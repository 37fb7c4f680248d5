//! The KafkaCluster reconciler, one module per stage: `read` what exists, `validate` the
//! resource, `build` the desired objects, `apply` them, and compute the `status`.

pub mod build;
pub mod properties;
pub mod role;
pub mod validate;
