use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
};
use kafka_protocol::protocol::StrBytes;
use sluice_storage::StorageError;

use std::time::Duration;

use super::authz::Authz;
use super::storage_error_code;
use crate::broker::{Broker, now_ms};
use crate::metadata::{CONSUMER_OFFSETS, METADATA_TOPIC};
use crate::network::ConnectionInfo;
use crate::replica::AppendError;
use sluice_metadata::acl::Operation;

/// Append each partition's batches as its leader. With acks=-1 the answer waits until every in-sync replica has
/// the records (or the request's timeout passes). `None` for acks=0, which gets no answer.
pub async fn produce(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    client_id: &str,
    req: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let authz = Authz::new(broker, conn);
    // The request's records count against the producer's byte-rate quota (as Kafka counts the request).
    let bytes: usize = req
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    let throttle_time_ms = broker.quotas.record(
        &broker.metadata.image(),
        crate::quotas::Direction::Produce,
        &conn.principal,
        client_id,
        bytes as u64,
        now_ms(),
    );
    let acks = req.acks;
    let transactional = req.transactional_id.is_some() || has_transactional_batch(&req);
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // Appended partitions still waiting for the ISR: (topic index, partition index, partition, end, resignations).
    let mut waiting = Vec::new();
    for topic in req.topic_data {
        let name = topic.name.0.as_str().to_string();
        let image = broker.metadata.image();
        let known = image.topics.contains_key(&name);
        let allowed = authz.topic(Operation::Write, &name);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let mut resp = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            if !allowed {
                resp.error_code = ResponseError::TopicAuthorizationFailed.code();
            } else if !matches!(acks, -1..=1) {
                resp.error_code = ResponseError::InvalidRequiredAcks.code();
            } else if transactional {
                resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
                resp.error_message =
                    Some(StrBytes::from_static_str("transactions are not supported"));
            } else if known && (name == CONSUMER_OFFSETS || name == METADATA_TOPIC) {
                // The broker's own logs: a client's records there would be replayed at the next start.
                resp.error_code = ResponseError::InvalidTopicException.code();
                resp.error_message = Some(StrBytes::from_string(format!(
                    "Cannot append to internal topic {name}"
                )));
            } else {
                match broker.replicas.leader(&image, &name, p.index) {
                    Err(code) => resp.error_code = code,
                    Ok(partition) => {
                        // Straight from the request buffer: storage writes stamped copies of the batch headers
                        // followed by the untouched record bytes.
                        let records = p.records.unwrap_or_default();
                        // Taken before the log's lock, so a wait for a slot holds up no one else's appends.
                        let _slot = if is_compressed(&records) {
                            broker.decompressions.acquire().await.ok()
                        } else {
                            None
                        };
                        // An append that fsyncs (log.flush.interval.messages) blocks for milliseconds: let the
                        // runtime move other connections off this worker meanwhile.
                        let fsyncs = partition
                            .log
                            .lock()
                            .config()
                            .flush_interval_messages
                            .is_some();
                        let append = || partition.append_as_leader(&records, acks, now_ms());
                        let result = if fsyncs {
                            tokio::task::block_in_place(append)
                        } else {
                            append()
                        };
                        match result {
                            Ok((info, resignations, _)) => {
                                resp.base_offset = info.base_offset;
                                resp.log_append_time_ms = info.log_append_time;
                                resp.log_start_offset = info.log_start_offset;
                                if !info.duplicate {
                                    // Followers long-polling for data, and consumers if the high watermark moved.
                                    broker.fetch_waiters.appended(&name, p.index);
                                }
                                if acks == -1 {
                                    waiting.push((
                                        responses.len(),
                                        partitions.len(),
                                        partition.clone(),
                                        info.last_offset + 1,
                                        resignations,
                                    ));
                                }
                            }
                            Err(AppendError::Code(code)) => resp.error_code = code,
                            Err(AppendError::Storage(e)) => {
                                tracing::debug!(topic = %name, partition = p.index, error = %e, "produce rejected");
                                resp.error_code = storage_error_code(&e);
                                resp.error_message = Some(StrBytes::from_string(e.to_string()));
                                resp.record_errors = record_errors(&e);
                            }
                        }
                    }
                }
            }
            partitions.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    // acks=all: every appended partition waits for its ISR, all at once, within the request's timeout.
    let outcomes =
        futures::future::join_all(waiting.iter().map(|(_, _, partition, end, resignations)| {
            partition.wait_committed(*end, *resignations, timeout)
        }))
        .await;
    for ((t, p, _, _, _), code) in waiting.iter().zip(outcomes) {
        if code != 0 {
            let resp = &mut responses[*t].partition_responses[*p];
            resp.error_code = code;
            resp.base_offset = -1;
        }
    }
    for topic in &mut responses {
        for resp in &mut topic.partition_responses {
            // Fields this version does not carry must stay at their defaults or the encoder refuses them.
            if version < 5 {
                resp.log_start_offset = -1;
            }
            if version < 8 {
                resp.error_message = None;
                resp.record_errors.clear();
            }
        }
    }
    (acks != 0).then(|| {
        ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_time_ms)
    })
}

/// A batch with the transactional attribute (bit 4) needs a transactional producer; Kafka refuses the whole
/// request with TRANSACTIONAL_ID_AUTHORIZATION_FAILED when one comes without a transactional id.
fn has_transactional_batch(req: &ProduceRequest) -> bool {
    req.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|p| {
            p.records
                .as_ref()
                .and_then(|r| r.get(21..23))
                .is_some_and(|a| i16::from_be_bytes([a[0], a[1]]) & 0x10 != 0)
        })
    })
}

/// The per-record reasons of a refused batch, as Produce v8+ carries them.
fn record_errors(e: &StorageError) -> Vec<BatchIndexAndErrorMessage> {
    match e {
        StorageError::InvalidRecord { record_errors, .. }
        | StorageError::InvalidTimestamp { record_errors, .. } => record_errors
            .iter()
            .map(|r| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(r.batch_index)
                    .with_batch_index_error_message(r.message.clone().map(StrBytes::from_string))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Idempotent producers get a fresh id (or, v3+, a bumped epoch for the id they have). Transactions are not
/// supported yet, so a transactional id is refused.
pub async fn init_producer_id(
    broker: &Broker,
    conn: &ConnectionInfo,
    req: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !Authz::new(broker, conn).idempotent_write() {
        return resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // KIP-360: a producer that hit an error asks for a new epoch of its id; sequences restart at 0.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return resp
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match broker.allocate_producer_id().await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            resp.with_error_code(e.kafka_error().code())
        }
    }
}

/// A batch whose attributes name a codec; only the first batch is looked at, as validation refuses more.
fn is_compressed(records: &[u8]) -> bool {
    // Attributes: bytes 21-22 of a v2 batch header.
    records.len() >= 23 && i16::from_be_bytes([records[21], records[22]]) & 0x07 != 0
}

#[cfg(test)]
mod tests {
    use super::is_compressed;

    #[test]
    fn compressed_batches_are_told_from_their_attributes() {
        let mut batch = vec![0u8; 61];
        assert!(!is_compressed(&batch));
        batch[22] = 4; // zstd
        assert!(is_compressed(&batch));
        batch[22] = 0x08; // timestamp type only
        assert!(!is_compressed(&batch));
        assert!(!is_compressed(&batch[..20]));
    }
}
