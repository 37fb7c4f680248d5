//! sluice-metadata: what the cluster metadata is, without any I/O. The records a change is made of
//! ([`MetadataRecord`]), the image they replay into ([`MetadataImage`]), and the rules names and changes must
//! follow. Pure and synchronous, so the controller logic built on it is testable without sockets, files or a
//! clock; the broker's `metadata` module and, next, the Raft quorum do the I/O. See README.md.

pub mod acl;
mod image;
pub mod leadership;
pub mod placement;
pub mod quota;
mod record;
pub mod scram;
pub mod sessions;

pub use image::{MetadataImage, NO_LEADER, PartitionState, TopicMeta};
pub use record::MetadataRecord;
pub use scram::{ScramCredential, ScramMechanism};

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
