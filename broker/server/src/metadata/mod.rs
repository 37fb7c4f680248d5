//! The metadata log on this node: [`MetadataStore`] appends [`MetadataRecord`]s to `__cluster_metadata-0`
//! before it applies them to the in-memory [`MetadataImage`], exactly as KRaft does, and replays the log on
//! start. The records, the image and the rules they follow are `sluice-metadata`'s; this module is the I/O.
//! The Raft quorum replaces [`MetadataStore::commit`] with a quorum write and keeps everything else.

pub mod raft;
mod store;

pub use sluice_metadata::{
    CONSUMER_OFFSETS, METADATA_TOPIC, MetadataImage, MetadataRecord, TopicMeta, validate_topic_name,
};
pub use store::{Backend, MetadataStore, now_ms};
