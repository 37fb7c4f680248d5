use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::MetadataRecord;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

/// The metadata as of the last applied record. Applying is pure and never fails: records were validated before
/// they were written, so replay reproduces the same image.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicMeta>,
    pub topic_names: HashMap<Uuid, String>,
    pub next_producer_id: i64,
}

impl MetadataImage {
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::TopicCreated {
                name,
                id,
                partitions,
                replication_factor,
                configs,
                internal,
            } => {
                self.topic_names.insert(*id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicMeta {
                        name: name.clone(),
                        id: *id,
                        partitions: *partitions,
                        replication_factor: *replication_factor,
                        configs: configs.clone(),
                        internal: *internal,
                    },
                );
            }
            MetadataRecord::PartitionsIncreased { name, partitions } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.partitions = (*partitions).max(t.partitions);
                }
            }
            MetadataRecord::TopicConfigChanged { name, configs } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.configs = configs.clone();
                }
            }
            MetadataRecord::TopicDeleted { name } => {
                if let Some(t) = self.topics.remove(name) {
                    self.topic_names.remove(&t.id);
                }
            }
            MetadataRecord::ProducerIdsAllocated { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
        }
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicMeta> {
        self.topic_names.get(id).and_then(|n| self.topics.get(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_is_idempotent_and_tracks_ids() {
        let id = Uuid::from_u128(7);
        let records = vec![
            MetadataRecord::TopicCreated {
                name: "a".into(),
                id,
                partitions: 2,
                replication_factor: 1,
                configs: BTreeMap::new(),
                internal: false,
            },
            MetadataRecord::PartitionsIncreased {
                name: "a".into(),
                partitions: 5,
            },
            MetadataRecord::TopicConfigChanged {
                name: "a".into(),
                configs: [("retention.ms".to_string(), "1000".to_string())].into(),
            },
            MetadataRecord::ProducerIdsAllocated { next: 1000 },
            MetadataRecord::ProducerIdsAllocated { next: 10 },
        ];
        let mut image = MetadataImage::default();
        for r in &records {
            image.apply(r);
        }
        let t = image.topic_by_id(&id).unwrap();
        assert_eq!(t.partitions, 5);
        assert_eq!(t.configs["retention.ms"], "1000");
        assert_eq!(image.next_producer_id, 1000);
        image.apply(&MetadataRecord::TopicDeleted { name: "a".into() });
        assert!(image.topic_by_id(&id).is_none());
        assert!(image.topics.is_empty());
    }
}
