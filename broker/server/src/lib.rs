//! sluice-server
pub mod group;
