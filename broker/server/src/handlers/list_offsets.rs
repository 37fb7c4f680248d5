use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::storage_error_code;
use crate::broker::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub fn list_offsets(
    broker: &Arc<Broker>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_string();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    if version >= 4 {
                        resp.leader_epoch = 0;
                    }
                    let Some(log) = broker.log(&name, p.partition_index) else {
                        return resp.with_error_code(
                            broker.missing_partition_error(&name, p.partition_index),
                        );
                    };
                    let log = log.lock();
                    match p.timestamp {
                        LATEST => resp.with_offset(log.high_watermark()),
                        EARLIEST | EARLIEST_LOCAL => resp.with_offset(log.log_start_offset()),
                        MAX_TIMESTAMP => match log.max_timestamp() {
                            Some((ts, offset)) => resp.with_timestamp(ts).with_offset(offset),
                            None => resp,
                        },
                        // No tiered storage: nothing is tiered.
                        LATEST_TIERED => resp,
                        ts if ts < 0 => resp.with_error_code(ResponseError::InvalidRequest.code()),
                        ts => match log.offset_for_timestamp(ts) {
                            Ok(Some((offset, ts))) => resp.with_timestamp(ts).with_offset(offset),
                            Ok(None) => resp,
                            Err(e) => resp.with_error_code(storage_error_code(&e)),
                        },
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
