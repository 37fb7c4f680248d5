use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::{FetchPartition, FetchResponseLayout, FetchTopic};
use sluice_storage::{FileSlice, StorageError};
use uuid::Uuid;

use super::authz::Authz;
use super::storage_error_code;
use crate::broker::Broker;
use crate::network::ConnectionInfo;
use sluice_metadata::acl::Operation;

/// One pass over the requested partitions: what can be sent right now.
struct Gathered {
    topics: Vec<FetchTopic<FileSlice>>,
    bytes: u64,
    errors: bool,
}

/// Serve a Fetch, long-polling up to `max_wait_ms` until `min_bytes` are available. Record bytes are not read
/// here: the answer carries file ranges the connection sends with sendfile(2).
pub async fn fetch(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    client_id: &str,
    req: FetchRequest,
    version: i16,
    correlation_id: i32,
) -> FetchResponseLayout<FileSlice> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as u64;
    let waiter = Arc::new(Notify::new());
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            let name = topic_name(broker, t, version);
            t.partitions
                .iter()
                .map(move |p| (name.clone(), p.partition))
        })
        .collect();
    // Registered before the first look, so an append between a look and the wait is not missed; dropped
    // (unregistered) when the fetch returns.
    let _registration = broker
        .fetch_waiters
        .register(&waiter, partitions.iter().map(|(t, p)| (t.as_str(), *p)));
    // A follower needs CLUSTER_ACTION, a consumer READ on each topic (Kafka's rules).
    let authz = Authz::new(broker, conn);
    let follower_allowed = replica_id(&req, version) < 0 || authz.cluster(Operation::ClusterAction);
    let allowed = |topic: &str| {
        follower_allowed && (replica_id(&req, version) >= 0 || authz.topic(Operation::Read, topic))
    };
    // A consumer's fetched bytes count against its byte-rate quota; replication has its own throttles.
    let answer = |gathered: Gathered| {
        let throttle = if replica_id(&req, version) < 0 {
            broker.quotas.record(
                &broker.metadata.image(),
                crate::quotas::Direction::Fetch,
                &conn.principal,
                client_id,
                gathered.bytes,
                crate::broker::now_ms(),
            )
        } else {
            0
        };
        FetchResponseLayout::encode(correlation_id, version, throttle, 0, 0, gathered.topics)
    };
    loop {
        let gathered = gather(broker, &req, version, &allowed);
        if gathered.bytes >= min_bytes || gathered.errors || tokio::time::Instant::now() >= deadline
        {
            return answer(gathered);
        }
        if tokio::time::timeout_at(deadline, waiter.notified())
            .await
            .is_err()
        {
            return answer(gather(broker, &req, version, &allowed));
        }
    }
}

/// The name a requested topic goes by (v13+ requests name topics by id).
fn topic_name(
    broker: &Broker,
    topic: &kafka_protocol::messages::fetch_request::FetchTopic,
    version: i16,
) -> String {
    if version >= 13 {
        broker
            .metadata
            .image()
            .topic_by_id(&topic.topic_id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    } else {
        topic.topic.0.as_str().to_string()
    }
}

/// An answer without records: where the partition stands (no transactions, so the last stable offset is the
/// high watermark).
fn offsets_only(part: &mut FetchPartition<FileSlice>, log: &sluice_storage::Log) {
    part.high_watermark = log.high_watermark();
    part.last_stable_offset = part.high_watermark;
    part.log_start_offset = log.log_start_offset();
}

/// The replica a Fetch comes from: a follower's broker id, or -1 for a consumer.
fn replica_id(req: &FetchRequest, version: i16) -> i32 {
    if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    }
}

fn gather(
    broker: &Broker,
    req: &FetchRequest,
    version: i16,
    allowed: &dyn Fn(&str) -> bool,
) -> Gathered {
    let mut remaining = req.max_bytes.max(0) as u64;
    let mut out = Gathered {
        topics: Vec::with_capacity(req.topics.len()),
        bytes: 0,
        errors: false,
    };
    let replica = replica_id(req, version);
    let image = broker.metadata.image();
    let eligible = crate::replica::eligible(&image);
    let limits = broker.replicas.limits();
    for topic in &req.topics {
        let (name, id) = if version >= 13 {
            match image.topic_by_id(&topic.topic_id) {
                Some(t) => (Some(t.name.clone()), t.id),
                None => (None, topic.topic_id),
            }
        } else {
            let name = topic.topic.0.as_str();
            (
                image.topics.contains_key(name).then(|| name.to_string()),
                Uuid::nil(),
            )
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let mut part = FetchPartition {
                partition_index: p.partition,
                error_code: 0,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                records: None,
                current_leader: None,
                diverging_epoch: None,
            };
            let leader = match name.as_deref() {
                None if version >= 13 => Err(ResponseError::UnknownTopicId.code()),
                None => Err(ResponseError::UnknownTopicOrPartition.code()),
                Some(n) if !allowed(n) => Err(ResponseError::TopicAuthorizationFailed.code()),
                Some(n) => broker
                    .replicas
                    .leader(&image, n, p.partition)
                    .and_then(|partition| {
                        partition
                            .check_leader_epoch(p.current_leader_epoch)
                            .map(|()| partition)
                    }),
            };
            let partition = match leader {
                Ok(partition) => partition,
                Err(code) => {
                    part.error_code = code;
                    // v12+ tell the client who leads now, so it need not ask Metadata first.
                    if version >= 12
                        && code != ResponseError::TopicAuthorizationFailed.code()
                        && let Some(state) = name
                            .as_deref()
                            .and_then(|n| image.topics.get(n))
                            .and_then(|t| t.partition(p.partition))
                    {
                        part.current_leader = Some((state.leader, state.leader_epoch));
                    }
                    out.errors = true;
                    partitions.push(part);
                    continue;
                }
            };
            // A follower's fetch first tells the leader how far it got (and may show where its log diverges);
            // it reads up to the log end, a consumer up to the high watermark.
            let max_offset = if replica >= 0 {
                let view = match partition.on_follower_fetch(
                    replica,
                    p.fetch_offset,
                    if version >= 12 {
                        p.last_fetched_epoch
                    } else {
                        -1
                    },
                    crate::broker::now_ms(),
                    limits,
                    &eligible,
                ) {
                    Ok(view) => view,
                    Err(code) => {
                        part.error_code = code;
                        offsets_only(&mut part, &partition.log.lock());
                        out.errors = true;
                        partitions.push(part);
                        continue;
                    }
                };
                if let Some(change) = view.isr_change {
                    broker.replicas.queue_isr_change(change);
                }
                if view.high_watermark_moved {
                    broker
                        .fetch_waiters
                        .appended(&partition.tp.topic, p.partition);
                }
                // A replica being added by a throttled reassignment waits while the leader's rate is spent.
                if partition.leader_throttles(replica)
                    && broker
                        .replicas
                        .leader_quota
                        .exceeded(std::time::Instant::now())
                {
                    offsets_only(&mut part, &partition.log.lock());
                    partitions.push(part);
                    continue;
                }
                if let Some(diverging) = view.diverging {
                    part.diverging_epoch = Some(diverging);
                    offsets_only(&mut part, &partition.log.lock());
                    // The follower has to act on it at once.
                    out.errors = true;
                    partitions.push(part);
                    continue;
                }
                i64::MAX
            } else {
                partition.log.lock().high_watermark()
            };
            // Asked before the log lock is taken: the partition's state lock is taken after the log lock
            // nowhere, and the ISR code takes them the other way round.
            let throttled = replica >= 0 && partition.leader_throttles(replica);
            let log = partition.log.lock();
            // KIP-74: the first partition with data may exceed the request's max_bytes by one batch.
            let first = out.bytes == 0;
            let max = (p.partition_max_bytes.max(0) as u64).min(remaining) as u32;
            match log.read(p.fetch_offset, max, max_offset, first) {
                Ok(read) => {
                    part.high_watermark = read.high_watermark;
                    // No transactions: the last stable offset is the high watermark, so
                    // read_committed fetches take the same zero-copy path.
                    part.last_stable_offset = read.high_watermark;
                    part.log_start_offset = read.log_start_offset;
                    if let Some(slice) = read.slice {
                        let len = slice.len;
                        if throttled {
                            broker
                                .replicas
                                .leader_quota
                                .record(len, std::time::Instant::now());
                        }
                        remaining = remaining.saturating_sub(len);
                        out.bytes += len;
                        part.records = Some((slice, len));
                    }
                }
                Err(e @ StorageError::OffsetOutOfRange { .. }) => {
                    part.error_code = storage_error_code(&e);
                    offsets_only(&mut part, &log);
                    out.errors = true;
                }
                Err(e) => {
                    tracing::warn!(topic = ?name, partition = p.partition, error = %e, "fetch failed");
                    part.error_code = storage_error_code(&e);
                    out.errors = true;
                }
            }
            partitions.push(part);
        }
        out.topics.push(FetchTopic {
            name: match &name {
                Some(n) => StrBytes::from_string(n.clone()),
                None => topic.topic.0.clone(),
            },
            topic_id: if version >= 13 { topic.topic_id } else { id },
            partitions,
        });
    }
    out
}
