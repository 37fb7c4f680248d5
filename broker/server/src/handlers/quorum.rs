//! DescribeQuorum (KIP-595/KIP-836), what `kafka-metadata-quorum describe` shows: the active controller, its
//! epoch, the high watermark of `__cluster_metadata` and each voter's and observer's (broker-only node's)
//! progress. Answered by the active
//! controller; other brokers forward it there. A single node on its local log is its own only voter.

use std::sync::Arc;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::{Broker, now_ms};
use crate::metadata::METADATA_TOPIC;

pub fn describe_quorum(
    broker: &Arc<Broker>,
    _req: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let controller_listener = broker
        .config
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".into());
    let (partition, nodes) = match broker.metadata.quorum() {
        Some(quorum) => {
            let status = quorum.describe();
            let replica = |v: &sluice_quorum::VoterStatus| {
                ReplicaState::default()
                    .with_replica_id(BrokerId(v.id as i32))
                    .with_log_end_offset(v.log_end_offset)
                    .with_last_fetch_timestamp(v.last_fetch_ms)
                    .with_last_caught_up_timestamp(v.last_caught_up_ms)
            };
            let voters = status.voters.iter().map(replica).collect();
            let observers = status.observers.iter().map(replica).collect();
            let nodes = status
                .voters
                .iter()
                .filter_map(|v| {
                    let (host, port) = v.address.rsplit_once(':')?;
                    Some(
                        Node::default()
                            .with_node_id(BrokerId(v.id as i32))
                            .with_listeners(vec![
                                Listener::default()
                                    .with_name(StrBytes::from_string(controller_listener.clone()))
                                    .with_host(StrBytes::from_string(
                                        host.trim_matches(['[', ']']).to_string(),
                                    ))
                                    .with_port(port.parse().ok()?),
                            ]),
                    )
                })
                .collect();
            (
                PartitionData::default()
                    .with_leader_id(BrokerId(status.leader.map_or(-1, |l| l as i32)))
                    .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
                    .with_high_watermark(status.high_watermark)
                    .with_current_voters(voters)
                    .with_observers(observers),
                nodes,
            )
        }
        None => {
            let end = broker.metadata.image().offset + 1;
            let now = now_ms();
            let me = ReplicaState::default()
                .with_replica_id(BrokerId(broker.node_id))
                .with_log_end_offset(end)
                .with_last_fetch_timestamp(now)
                .with_last_caught_up_timestamp(now);
            let nodes = broker
                .config
                .controller_listeners()
                .first()
                .map(|l| {
                    Node::default()
                        .with_node_id(BrokerId(broker.node_id))
                        .with_listeners(vec![
                            Listener::default()
                                .with_name(StrBytes::from_string(l.name.clone()))
                                .with_host(StrBytes::from_string(l.host.clone()))
                                .with_port(l.port),
                        ])
                })
                .into_iter()
                .collect();
            (
                PartitionData::default()
                    .with_leader_id(BrokerId(broker.node_id))
                    .with_leader_epoch(1)
                    .with_high_watermark(end)
                    .with_current_voters(vec![me]),
                nodes,
            )
        }
    };
    let mut resp = DescribeQuorumResponse::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![partition.with_partition_index(0)]),
    ]);
    if version >= 2 {
        resp.nodes = nodes;
        resp.error_message = None;
    }
    resp
}
