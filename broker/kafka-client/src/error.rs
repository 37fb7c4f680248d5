use kafka_protocol::messages::ApiKey;

/// What one connection can fail with. The connection that failed should be dropped; a new one may work.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// The peer sent something that is not a valid answer (bad frame, wrong correlation id, undecodable body).
    #[error("protocol error: {0}")]
    Protocol(String),

    /// The peer and this client share no version of an API.
    #[error("{api:?} is not usable with this broker: {reason}")]
    UnsupportedVersion { api: ApiKey, reason: String },

    /// The request cannot be sent (for example, larger than a frame can be).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}
