//! The Sluice broker: configuration, the network front, request handlers, cluster metadata and the consumer
//! group coordinator, over the log storage of `sluice-storage` and the wire format of `sluice-protocol`.

pub mod bootstrap;
pub mod broker;
pub mod config;
pub mod connection_limits;
pub mod controller;
pub mod controller_channel;
pub mod dynamic_config;
pub mod error;
pub mod fetch_waiters;
pub mod group;
pub mod handlers;
pub mod health;
pub mod kernel_tls;
pub mod lifecycle;
pub mod meta_properties;
pub mod metadata;
pub mod network;
pub mod outbound;
pub mod principal;
pub mod publisher;
pub mod quotas;
pub mod repeats;
pub mod replica;
pub mod request_memory;
pub mod sasl;
pub mod scram;
pub mod tls;
mod transport;
mod zero_copy;

pub use error::Error;
