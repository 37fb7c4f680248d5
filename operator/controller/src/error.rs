//! The one error type of the operator crate.

use std::time::Duration;

/// Everything that can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),

    #[error("{kind} has no {field}")]
    MissingField {
        kind: &'static str,
        field: &'static str,
    },

    #[error("invalid KafkaCluster: {}", .0.join("; "))]
    Invalid(Vec<String>),

    #[error("cannot (de)serialise {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot write YAML: {0}")]
    YamlWrite(#[from] serde_saphyr::SerializeError),

    #[error("cannot read YAML: {0}")]
    YamlRead(#[from] serde_saphyr::Error),

    #[error(transparent)]
    Crd(#[from] sluice_crd::Error),

    #[error("cannot inspect the Kafka cluster at {bootstrap}: {reason}")]
    Inspect { bootstrap: String, reason: String },

    #[error("Kafka admin request to {bootstrap} failed: {source}")]
    Admin {
        bootstrap: String,
        #[source]
        source: sluice_kafka_admin::AdminError,
    },

    #[error("certificate {what}: {reason}")]
    Certificate { what: String, reason: String },

    #[error("{secret}: {reason}")]
    Secret { secret: String, reason: String },

    #[error("finalizer {finalizer} of {object}: {reason}")]
    Finalizer {
        finalizer: &'static str,
        object: String,
        reason: String,
    },

    #[error("lost the leader lease {lease}: {reason}")]
    LeaseLost { lease: String, reason: String },

    #[error("lease {lease} is held by {holder} for another {remaining:?}")]
    LeaseHeld {
        lease: String,
        holder: String,
        remaining: Duration,
    },

    #[error("cannot serve metrics on {addr}: {source}")]
    MetricsServer {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Json {
            what: what.into(),
            source,
        }
    }
}
