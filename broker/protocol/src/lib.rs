//! The Kafka wire protocol as Sluice speaks it.
//!
//! Message bodies are encoded and decoded by the `kafka-protocol` crate; this crate adds what a broker needs
//! around it: the table of API versions the broker implements ([`versions`]), turning a raw frame into a request
//! or a precise reason to reject it ([`codec`]), and the Fetch response layout that lets record bytes go from a
//! segment file to the socket without being copied ([`fetch`]).

pub mod codec;
pub mod error;
pub mod fetch;
pub mod versions;

pub use codec::{Request, encode_response, error_response, parse_request, parse_request_on};
pub use error::ProtocolError;
pub use fetch::{FetchPartition, FetchResponseLayout, FetchTopic, Piece};
pub use versions::{Surface, api_versions_response, api_versions_response_on, supported_versions};
