//! sluice-kafka-client: one outbound Kafka connection (TCP or TLS, size-prefixed frames, correlation ids,
//! ApiVersions negotiation, bounded response sizes) over `kafka-protocol`. The broker uses it to reach the active
//! controller; the operator's admin client (`sluice-kafka-admin`) is built on it.

mod connection;
mod error;
pub mod sasl;
pub mod scram;
mod stream;
mod versions;

pub use connection::{Connection, MAX_RESPONSE_BYTES};
pub use error::ClientError;
pub use stream::{Security, Stream, dial};
pub use versions::{BrokerVersions, client_range};
