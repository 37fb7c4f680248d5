//! Cluster metadata: which topics exist, their ids, partition counts and config overrides, and the producer ids
//! handed out so far.
//!
//! Every change is a [`MetadataRecord`] appended to the `__cluster_metadata-0` log before it is applied to the
//! in-memory [`MetadataImage`], exactly as KRaft does. On start the log is replayed. Today the log lives on one
//! node; the Raft quorum replaces [`MetadataStore::commit`] with a quorum write and keeps everything else.

mod image;
mod record;
mod store;

pub use image::{MetadataImage, TopicMeta};
pub use record::MetadataRecord;
pub use store::{MetadataStore, now_ms};

/// The internal topic holding committed consumer offsets.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";
/// The partition directory of the metadata log.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Kafka's rule for topic names: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be \"{name}\""));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters long; the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_topic_name;

    #[test]
    fn topic_names() {
        for ok in ["a", "orders", "my.topic_1-x", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "ü", "a/b", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
