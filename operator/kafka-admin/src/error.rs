use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

/// Everything an admin call can fail with.
///
/// Transport failures (`Io`, `Timeout`, `NoBroker`, `Protocol`) leave the client usable: the broken connection
/// is dropped and the next call dials again. `Kafka` is the broker's own answer and is matchable, e.g.
/// `err.is_topic_already_exists()` or `err.kafka_error() == Some(ResponseError::InvalidPartitions)`.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{op} timed out after {after:?}")]
    Timeout { op: String, after: Duration },

    /// The peer sent something that is not a valid answer (bad frame, wrong correlation id, undecodable body).
    #[error("protocol error: {0}")]
    Protocol(String),

    /// The broker refused the request for one topic.
    #[error("{api:?} for topic '{topic}' failed: {} (code {}){}", error_name(*.error), .error.code(), message_suffix(.message))]
    Kafka {
        api: ApiKey,
        topic: String,
        error: ResponseError,
        message: Option<String>,
    },

    /// None of the bootstrap addresses (or the controller's advertised address) could be reached.
    #[error("no broker reachable: {0}")]
    NoBroker(String),

    /// The broker and this client share no version of an API, or a request needs a newer version than the broker has.
    #[error("{api:?} is not usable with this broker: {reason}")]
    UnsupportedVersion { api: ApiKey, reason: String },

    /// The caller asked for something that cannot be sent (e.g. an empty bootstrap list).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl From<sluice_kafka_client::ClientError> for AdminError {
    fn from(e: sluice_kafka_client::ClientError) -> Self {
        use sluice_kafka_client::ClientError;
        match e {
            ClientError::Io { addr, source } => AdminError::Io { addr, source },
            ClientError::Protocol(m) => AdminError::Protocol(m),
            ClientError::UnsupportedVersion { api, reason } => {
                AdminError::UnsupportedVersion { api, reason }
            }
            ClientError::InvalidRequest(m) => AdminError::InvalidRequest(m),
        }
    }
}

impl AdminError {
    /// The broker's error, when the broker answered with one.
    pub fn kafka_error(&self) -> Option<ResponseError> {
        match self {
            AdminError::Kafka { error, .. } => Some(*error),
            _ => None,
        }
    }

    pub fn is_topic_already_exists(&self) -> bool {
        self.kafka_error() == Some(ResponseError::TopicAlreadyExists)
    }

    pub fn is_unknown_topic(&self) -> bool {
        matches!(
            self.kafka_error(),
            Some(ResponseError::UnknownTopicOrPartition | ResponseError::UnknownTopicId)
        )
    }

    pub fn is_invalid_partitions(&self) -> bool {
        self.kafka_error() == Some(ResponseError::InvalidPartitions)
    }

    /// Whether trying the same call again later may succeed (transport trouble, or a retriable Kafka error).
    pub fn is_retriable(&self) -> bool {
        match self {
            AdminError::Io { .. }
            | AdminError::Timeout { .. }
            | AdminError::NoBroker(_)
            | AdminError::Protocol(_) => true,
            AdminError::Kafka { error, .. } => error.is_retriable(),
            AdminError::UnsupportedVersion { .. } | AdminError::InvalidRequest(_) => false,
        }
    }
}

/// The name Kafka's own tools print for an error (`TOPIC_ALREADY_EXISTS`), derived from the variant name.
pub fn error_name(error: ResponseError) -> String {
    if let ResponseError::Unknown(_) = error {
        return "UNKNOWN".to_string();
    }
    let camel = format!("{error:?}");
    let mut out = String::with_capacity(camel.len() + 8);
    let mut prev_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn message_suffix(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_kafka_constants() {
        assert_eq!(
            error_name(ResponseError::TopicAlreadyExists),
            "TOPIC_ALREADY_EXISTS"
        );
        assert_eq!(
            error_name(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            error_name(ResponseError::InvalidPartitions),
            "INVALID_PARTITIONS"
        );
        assert_eq!(error_name(ResponseError::Unknown(999)), "UNKNOWN");
    }

    #[test]
    fn kafka_display_names_error_topic_and_message() {
        let e = AdminError::Kafka {
            api: ApiKey::CreateTopics,
            topic: "orders".into(),
            error: ResponseError::TopicAlreadyExists,
            message: Some("Topic 'orders' already exists.".into()),
        };
        assert_eq!(
            e.to_string(),
            "CreateTopics for topic 'orders' failed: TOPIC_ALREADY_EXISTS (code 36): Topic 'orders' already exists."
        );
        assert!(e.is_topic_already_exists());
        assert!(!e.is_unknown_topic());
        assert!(!e.is_retriable());
    }
}
