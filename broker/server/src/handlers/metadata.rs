use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::broker::Broker;
use crate::metadata::{METADATA_TOPIC, MetadataRecord, TopicMeta, validate_topic_name};
use crate::repeats::first_of_each;

/// Kafka's value for "authorized operations were not asked for".
const AUTHORIZED_OPS_OMITTED: i32 = i32::MIN;

pub fn metadata(broker: &Arc<Broker>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let node = BrokerId(broker.node_id);
    // v0 sends an empty list for "all topics"; v1+ sends null.
    let requested: Option<Vec<(Option<String>, Uuid)>> = match req.topics {
        Some(t) if !(version == 0 && t.is_empty()) => Some(first_of_each(
            t.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id)),
            Clone::clone,
        )),
        _ => None,
    };
    let auto_create =
        broker.config.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);

    let mut topics = Vec::new();
    match requested {
        None => {
            let image = broker.metadata.image();
            topics.extend(image.topics.values().map(|t| topic_entry(t, node, version)));
        }
        Some(wanted) => {
            for (name, id) in wanted {
                // The metadata log is not a topic: Kafka answers it as unknown and never auto-creates it.
                if name.as_deref() == Some(METADATA_TOPIC) {
                    topics.push(error_entry(
                        name,
                        id,
                        ResponseError::UnknownTopicOrPartition.code(),
                    ));
                    continue;
                }
                let found = {
                    let image = broker.metadata.image();
                    match &name {
                        Some(n) => image.topics.get(n).cloned(),
                        None => image.topic_by_id(&id).cloned(),
                    }
                };
                let entry = match (found, name) {
                    (Some(t), _) => topic_entry(&t, node, version),
                    (None, Some(n)) => match validate_topic_name(&n) {
                        Err(_) => {
                            error_entry(Some(n), id, ResponseError::InvalidTopicException.code())
                        }
                        Ok(()) if auto_create => match auto_create_topic(broker, &n) {
                            Ok(t) => topic_entry(&t, node, version),
                            Err(code) => error_entry(Some(n), id, code),
                        },
                        Ok(()) => {
                            error_entry(Some(n), id, ResponseError::UnknownTopicOrPartition.code())
                        }
                    },
                    (None, None) => error_entry(None, id, ResponseError::UnknownTopicId.code()),
                };
                topics.push(entry);
            }
        }
    }

    let (host, port) = &broker.advertised;
    let mut resp = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(node)
                .with_host(StrBytes::from_string(host.clone()))
                .with_port(*port),
        ])
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPS_OMITTED);
    if version >= 1 {
        resp.controller_id = node;
    }
    if version >= 2 {
        resp.cluster_id = Some(StrBytes::from_string(broker.cluster_id.clone()));
    }
    resp
}

fn topic_entry(t: &TopicMeta, node: BrokerId, version: i16) -> MetadataResponseTopic {
    let partitions = (0..t.partitions)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    let mut entry = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_is_internal(t.internal && version >= 1)
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED);
    if version >= 10 {
        entry.topic_id = t.id;
    }
    entry
}

fn error_entry(name: Option<String>, id: Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED)
}

/// Create a topic a client asked metadata for, with the broker's defaults (`auto.create.topics.enable`).
fn auto_create_topic(broker: &Broker, name: &str) -> Result<TopicMeta, i16> {
    let _w = broker.metadata.write_lock();
    if let Some(t) = broker.metadata.image().topics.get(name) {
        return Ok(t.clone());
    }
    let record = MetadataRecord::TopicCreated {
        name: name.to_string(),
        id: Uuid::new_v4(),
        partitions: broker.config.num_partitions,
        replication_factor: 1,
        configs: BTreeMap::new(),
        internal: false,
    };
    let storage_error = |e: crate::error::Error| {
        tracing::error!(topic = name, error = %e, "auto-creating topic failed");
        ResponseError::KafkaStorageError.code()
    };
    broker.metadata.commit(&[record]).map_err(storage_error)?;
    let topic = broker
        .metadata
        .image()
        .topics
        .get(name)
        .cloned()
        .ok_or(ResponseError::UnknownServerError.code())?;
    broker.create_logs(&topic, 0).map_err(storage_error)?;
    tracing::info!(
        topic = name,
        partitions = topic.partitions,
        "auto-created topic"
    );
    Ok(topic)
}
