use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::authz::Authz;
use super::storage_error_code;
use crate::broker::Broker;
use crate::network::ConnectionInfo;
use sluice_metadata::acl::Operation;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub fn list_offsets(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let authz = Authz::new(broker, conn);
    // A follower (replica id >= 0) asks for the leader's log end, a consumer for what is committed.
    let from_replica = req.replica_id.0 >= 0;
    let image = broker.metadata.image();
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_string();
            let allowed = authz.topic(Operation::Describe, &name);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    if !allowed {
                        return resp
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let partition = match broker
                        .replicas
                        .leader(&image, &name, p.partition_index)
                        .and_then(|partition| {
                            let check = if version >= 4 {
                                p.current_leader_epoch
                            } else {
                                -1
                            };
                            partition.check_leader_epoch(check).map(|()| partition)
                        }) {
                        Ok(partition) => partition,
                        Err(code) => return resp.with_error_code(code),
                    };
                    let log = partition.log.lock();
                    let epoch_of = |offset: i64| log.epoch_for_offset(offset).unwrap_or(-1);
                    let resp = match p.timestamp {
                        LATEST if from_replica => resp
                            .with_offset(log.log_end_offset())
                            .with_leader_epoch(log.latest_epoch().unwrap_or(-1)),
                        LATEST => resp
                            .with_offset(log.high_watermark())
                            .with_leader_epoch(log.latest_epoch().unwrap_or(-1)),
                        EARLIEST | EARLIEST_LOCAL => resp
                            .with_offset(log.log_start_offset())
                            .with_leader_epoch(epoch_of(log.log_start_offset())),
                        MAX_TIMESTAMP => match log.max_timestamp() {
                            Some((ts, offset)) => resp
                                .with_timestamp(ts)
                                .with_offset(offset)
                                .with_leader_epoch(epoch_of(offset)),
                            None => resp,
                        },
                        // No tiered storage: nothing is tiered.
                        LATEST_TIERED => resp,
                        ts if ts < 0 => resp.with_error_code(ResponseError::InvalidRequest.code()),
                        ts => match log.offset_for_timestamp(ts) {
                            Ok(Some((offset, ts))) => resp
                                .with_timestamp(ts)
                                .with_offset(offset)
                                .with_leader_epoch(epoch_of(offset)),
                            Ok(None) => resp,
                            Err(e) => resp.with_error_code(storage_error_code(&e)),
                        },
                    };
                    // v0-3 carry no leader epoch.
                    if version < 4 {
                        resp.with_leader_epoch(-1)
                    } else {
                        resp
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
