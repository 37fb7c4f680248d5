//! sluice-server

pub mod config;
pub mod error;
pub mod meta_properties;

pub use error::Error;
