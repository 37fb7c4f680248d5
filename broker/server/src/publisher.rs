//! The broker side of a metadata change: what this node's logs must become once the metadata moved from one
//! image to the next. Partitions placed on this node get a log, partitions no longer placed here (a deleted
//! topic, a topic recreated under a new id) lose theirs, and config changes (a topic's, or the dynamic log
//! defaults) reach the logs. Handlers never touch logs for metadata reasons; every change, whichever node
//! proposed it, arrives here in log order.

use sluice_storage::TopicPartition;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::error::Error;
use crate::metadata::{METADATA_TOPIC, MetadataImage, TopicMeta};

fn same_replicas(a: &TopicMeta, b: &TopicMeta) -> bool {
    a.partitions == b.partitions
        && a.partition_states
            .iter()
            .zip(&b.partition_states)
            .all(|(x, y)| x.replicas == y.replicas)
}

fn hosts(topic: &TopicMeta, partition: i32, node_id: i32) -> bool {
    topic.replicas(partition).contains(&node_id)
}

/// Brings this node's logs from `old` to `new`.
pub fn publish(broker: &Broker, old: &MetadataImage, new: &MetadataImage) -> Result<(), Error> {
    let node = broker.node_id;
    // Topics gone first: a topic deleted and recreated under the same name must not keep the old logs.
    for topic in old.topics.values() {
        if new
            .topics
            .get(&topic.name)
            .is_some_and(|t| t.id == topic.id)
        {
            continue;
        }
        for partition in 0..topic.partitions {
            let tp = TopicPartition {
                topic: topic.name.clone(),
                partition,
            };
            if broker.logs.get(&tp).is_some() {
                broker.logs.delete(&tp)?;
            }
        }
    }
    // A changed dynamic log default (the cluster's or this broker's) reaches every log, overridden or not: the
    // override is applied on top again.
    let defaults_changed = broker.log_defaults(old) != broker.log_defaults(new);
    if defaults_changed {
        info!("the dynamic log defaults changed; updating every log");
    }
    for topic in new.topics.values() {
        let before = old.topics.get(&topic.name).filter(|t| t.id == topic.id);
        let unchanged = !defaults_changed
            && before.is_some_and(|b| same_replicas(b, topic) && b.configs == topic.configs);
        if unchanged {
            continue;
        }
        let config = broker.topic_log_config(new, &topic.configs)?;
        let configs_changed =
            defaults_changed || before.is_some_and(|b| b.configs != topic.configs);
        for partition in 0..topic.partitions {
            let tp = TopicPartition {
                topic: topic.name.clone(),
                partition,
            };
            if hosts(topic, partition, node) {
                match broker.logs.get(&tp) {
                    Some(log) if configs_changed => log.lock().update_config(config.clone()),
                    Some(_) => {}
                    None => {
                        broker.logs.get_or_create(&tp, config.clone())?;
                    }
                }
            } else if broker.logs.get(&tp).is_some() {
                info!(partition = %tp, "partition moved off this node; removing its log");
                broker.logs.delete(&tp)?;
            }
        }
    }
    roles(broker, old, new)
}

/// Every hosted partition leads or follows as `new` says, and the group coordinator loads the groups of the
/// `__consumer_offsets` partitions it now leads (and drops those it stopped leading).
fn roles(broker: &Broker, old: &MetadataImage, new: &MetadataImage) -> Result<(), Error> {
    let offsets = broker.replicas.apply(broker, old, new)?;
    broker.groups.leadership_changed(&offsets);
    Ok(())
}

fn publish_topic(broker: &Broker, image: &MetadataImage, topic: &TopicMeta) -> Result<(), Error> {
    let config = broker.topic_log_config(image, &topic.configs)?;
    for partition in 0..topic.partitions {
        if hosts(topic, partition, broker.node_id) {
            let log = broker.logs.get_or_create(
                &TopicPartition {
                    topic: topic.name.clone(),
                    partition,
                },
                config.clone(),
            )?;
            // A log found on disk was opened with the file's defaults, before the metadata was read.
            log.lock().update_config(config.clone());
        }
    }
    Ok(())
}

/// At start-up: every partition placed here gets its log, and the logs of partitions the metadata no longer
/// places here (deleted while the node was down) are removed.
pub fn reconcile(broker: &Broker, image: &MetadataImage) -> Result<(), Error> {
    for topic in image.topics.values() {
        publish_topic(broker, image, topic)?;
    }
    for tp in broker.logs.partitions() {
        if tp.topic == METADATA_TOPIC {
            continue;
        }
        let known = image
            .topics
            .get(&tp.topic)
            .is_some_and(|t| tp.partition < t.partitions && hosts(t, tp.partition, broker.node_id));
        if !known {
            warn!(partition = %tp, "removing the log of a partition the metadata does not place here");
            broker.logs.delete(&tp)?;
        }
    }
    roles(broker, &MetadataImage::default(), image)
}
