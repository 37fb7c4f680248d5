//! The crate's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration key is missing, inconsistent with another key, or unsupported.
    #[error("invalid configuration {key}: {message}")]
    Config { key: String, message: String },

    /// A configuration value does not parse or is out of range.
    #[error("invalid value \"{value}\" for {key}: {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: String,
    },

    /// A file (properties file, meta.properties) is syntactically malformed.
    #[error("{0}")]
    Format(String),

    /// A log dir was formatted for a different cluster than this node expects.
    #[error(
        "log dir {} is formatted for cluster id {found}, but the expected cluster id is {expected} ({why})",
        dir.display()
    )]
    ClusterIdMismatch {
        dir: PathBuf,
        found: String,
        expected: String,
        /// Where the expected id came from: the configuration or another log dir.
        why: String,
    },

    /// A log dir was formatted for a different node.
    #[error(
        "log dir {} is formatted for node id {found}, but this node's node.id is {expected}",
        dir.display()
    )]
    NodeIdMismatch {
        dir: PathBuf,
        found: i32,
        expected: i32,
    },

    #[error("{}: {source}", path.display())]
    PathIo {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(transparent)]
    Io(#[from] std::io::Error),

    #[error(transparent)]
    Storage(#[from] sluice_storage::StorageError),

    /// The metadata log holds something this broker cannot read or write.
    #[error("{0}")]
    Metadata(String),

    /// A metadata change reached a node that is not the active controller, and it could not be handed on.
    #[error("{0}")]
    NotController(String),

    /// The controller quorum did not commit a change in time (no majority, or the leader changed).
    #[error("{0}")]
    Timeout(String),

    /// Fewer live brokers than an internal topic's replication factor (the cluster is still starting).
    #[error("{0}")]
    NotEnoughBrokers(String),
}

impl Error {
    /// The Kafka error a client is told when a metadata change fails with this.
    pub fn kafka_error(&self) -> kafka_protocol::error::ResponseError {
        use kafka_protocol::error::ResponseError;
        match self {
            Error::NotController(_) => ResponseError::NotController,
            Error::Timeout(_) => ResponseError::RequestTimedOut,
            Error::NotEnoughBrokers(_) => ResponseError::CoordinatorNotAvailable,
            _ => ResponseError::KafkaStorageError,
        }
    }

    pub(crate) fn config(key: &str, message: impl Into<String>) -> Error {
        Error::Config {
            key: key.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(key: &str, value: &str, expected: impl Into<String>) -> Error {
        Error::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.into(),
        }
    }

    pub(crate) fn path_io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::PathIo { path, source }
    }
}
