use kafka_protocol::messages::ApiKey;

/// Why a frame could not become a request.
///
/// The variants tell the connection what to do: a request it can name (correlation id known) gets an error
/// answer; anything else means the byte stream can no longer be trusted and the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// A negative API key: no Kafka client sends one, so the stream is not Kafka at all.
    #[error("API key {0} is not a Kafka API key; not a Kafka client")]
    NotKafka(i16),
    #[error("unknown API key {api_key}")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("{api_key:?} version {version} is not supported")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("failed to encode {api_key:?} v{version} response: {reason}")]
    Encode {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}
