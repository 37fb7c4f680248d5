//! Followers copy their leaders' logs with the Fetch API, as Kafka's replica fetchers do: one task per leader
//! broker, one connection, one long-polling Fetch at a time for every partition this broker follows there.
//! A fetch names each partition's log end (its offset), the epoch of its last batch (`last_fetched_epoch`) and
//! the leader epoch it follows; the leader answers records from there, or where the logs diverge, and the
//! follower truncates to that point before it fetches again. An offset the leader no longer has (retention
//! ran there, or an unclean election left the leader shorter) is settled with ListOffsets.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use sluice_kafka_client::Connection;
use sluice_storage::TopicPartition;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::partition::Truncation;
use crate::broker::{Broker, now_ms};

/// Fetch v12 brought diverging epochs; followers need it.
const MIN_FETCH_VERSION: i16 = 12;
/// How long connecting to a leader may take before the next try.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How soon a partition is asked for again after an answer that only shows metadata not applied yet.
const METADATA_LAG_RETRY: Duration = Duration::from_millis(50);
/// How long past its own max wait a fetch may take before the connection counts as dead.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

struct Shared {
    leader: i32,
    partitions: Mutex<BTreeSet<TopicPartition>>,
    changed: Notify,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The fetcher tasks, one per leader.
#[derive(Default)]
pub struct Fetchers {
    by_leader: Mutex<HashMap<i32, Arc<Shared>>>,
}

impl Fetchers {
    /// Follow `tp` at `leader` from now on (and nowhere else).
    pub fn add(&self, broker: &Broker, tp: &TopicPartition, leader: i32) {
        let mut by_leader = self.by_leader.lock();
        for (id, shared) in by_leader.iter() {
            if *id != leader && shared.partitions.lock().remove(tp) {
                shared.changed.notify_one();
            }
        }
        let shared = by_leader
            .entry(leader)
            .or_insert_with(|| {
                Arc::new(Shared {
                    leader,
                    partitions: Mutex::new(BTreeSet::new()),
                    changed: Notify::new(),
                    task: Mutex::new(None),
                })
            })
            .clone();
        shared.partitions.lock().insert(tp.clone());
        shared.changed.notify_one();
        let mut task = shared.task.lock();
        if task.as_ref().is_none_or(|t| t.is_finished()) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    *task = Some(runtime.spawn(run(broker.weak(), shared.clone())));
                }
                Err(_) => warn!(leader, "no runtime to start a replica fetcher in"),
            }
        }
    }

    pub fn remove(&self, tp: &TopicPartition) {
        for shared in self.by_leader.lock().values() {
            if shared.partitions.lock().remove(tp) {
                shared.changed.notify_one();
            }
        }
    }

    pub fn shutdown(&self) {
        for shared in self.by_leader.lock().values() {
            if let Some(task) = shared.task.lock().take() {
                task.abort();
            }
        }
    }
}

/// The leader's address for replication, and the listener's name: its listener named
/// `inter.broker.listener.name`, else its first.
fn leader_address(broker: &Broker, leader: i32) -> Option<(String, String)> {
    let image = broker.metadata.image();
    let registration = &image.brokers.get(&leader)?.registration;
    let wanted = broker.config.inter_broker_listener_name.as_deref();
    let listener = registration
        .listeners
        .iter()
        .find(|l| Some(l.name.as_str()) == wanted)
        .or_else(|| registration.listeners.first())?;
    Some((
        crate::config::join_host_port(&listener.host, listener.port),
        listener.name.clone(),
    ))
}

async fn run(broker: Weak<Broker>, shared: Arc<Shared>) {
    let mut connection: Option<Connection> = None;
    // Partitions that answered an error: left out until then, so one cannot hold up the rest.
    let mut delayed: HashMap<TopicPartition, tokio::time::Instant> = HashMap::new();
    loop {
        let Some(broker) = broker.upgrade() else {
            return;
        };
        if broker.metadata.stopping() {
            return;
        }
        let backoff = Duration::from_millis(broker.replicas.config.fetch_backoff_ms);
        let now = tokio::time::Instant::now();
        delayed.retain(|_, until| *until > now);
        let wanted: Vec<TopicPartition> = shared
            .partitions
            .lock()
            .iter()
            .filter(|tp| !delayed.contains_key(*tp))
            .cloned()
            .collect();
        if wanted.is_empty() {
            let wait = delayed
                .values()
                .min()
                .map_or(Duration::from_secs(1), |u| u.saturating_duration_since(now));
            drop(broker);
            let _ = tokio::time::timeout(wait, shared.changed.notified()).await;
            continue;
        }
        if connection.is_none() {
            let Some((address, listener)) = leader_address(&broker, shared.leader) else {
                drop(broker);
                tokio::time::sleep(backoff).await;
                continue;
            };
            let client_id = format!("sluice-replica-fetcher-{}", broker.node_id);
            let security = broker.security_for(&listener);
            match tokio::time::timeout(
                CONNECT_TIMEOUT,
                Connection::open_with(&address, &client_id, &security),
            )
            .await
            {
                Ok(Ok(c)) => connection = Some(c),
                Ok(Err(e)) => {
                    debug!(leader = shared.leader, error = %e, "cannot reach the leader");
                    drop(broker);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                Err(_) => {
                    drop(broker);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        match fetch_once(&broker, &shared, conn, &wanted, &mut delayed, backoff).await {
            Ok(()) => {}
            Err(e) => {
                debug!(leader = shared.leader, error = %e, "replica fetch failed; reconnecting");
                connection = None;
                drop(broker);
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// One Fetch for `wanted` and what follows from its answer.
async fn fetch_once(
    broker: &Arc<Broker>,
    shared: &Shared,
    conn: &mut Connection,
    wanted: &[TopicPartition],
    delayed: &mut HashMap<TopicPartition, tokio::time::Instant>,
    backoff: Duration,
) -> Result<(), String> {
    let version = conn
        .versions
        .pick(ApiKey::Fetch)
        .map_err(|e| e.to_string())?;
    if version < MIN_FETCH_VERSION {
        return Err(format!("the leader speaks Fetch v{version} only"));
    }
    let config = &broker.replicas.config;
    let mut topics: Vec<FetchTopic> = Vec::new();
    // (topic id, partition index) -> (tp, fetch offset, leader epoch)
    let mut asked: HashMap<(uuid::Uuid, String, i32), (TopicPartition, i64, i32)> = HashMap::new();
    for tp in wanted {
        let Some(partition) = broker.replicas.get(tp) else {
            continue;
        };
        let Some((offset, last_epoch, leader_epoch)) = partition.fetch_position(shared.leader)
        else {
            continue;
        };
        // Catching up under a throttled reassignment: wait while the follower rate is spent.
        if partition.follower_throttles()
            && broker
                .replicas
                .follower_quota
                .exceeded(std::time::Instant::now())
        {
            continue;
        }
        let topic_id = partition.topic_id();
        let entry = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(leader_epoch)
            .with_fetch_offset(offset)
            .with_last_fetched_epoch(last_epoch)
            .with_log_start_offset(partition.log.lock().log_start_offset())
            .with_partition_max_bytes(config.fetch_max_bytes);
        let key_name = if version >= 13 {
            String::new()
        } else {
            tp.topic.clone()
        };
        match topics.iter_mut().find(|t| {
            if version >= 13 {
                t.topic_id == topic_id
            } else {
                t.topic.0.as_str() == tp.topic
            }
        }) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_topic_id(topic_id)
                    .with_partitions(vec![entry]),
            ),
        }
        asked.insert(
            (
                if version >= 13 {
                    topic_id
                } else {
                    uuid::Uuid::nil()
                },
                key_name,
                tp.partition,
            ),
            (tp.clone(), offset, leader_epoch),
        );
    }
    if topics.is_empty() {
        let _ = tokio::time::timeout(Duration::from_millis(200), shared.changed.notified()).await;
        return Ok(());
    }
    let mut request = FetchRequest::default()
        .with_max_wait_ms(config.fetch_wait_max_ms)
        .with_min_bytes(config.fetch_min_bytes)
        .with_max_bytes(config.fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    if version >= 15 {
        request.replica_state = ReplicaState::default()
            .with_replica_id(BrokerId(broker.node_id))
            .with_replica_epoch(broker.broker_epoch());
    } else {
        request.replica_id = BrokerId(broker.node_id);
    }
    let wait = Duration::from_millis(config.fetch_wait_max_ms.max(0) as u64) + SOCKET_TIMEOUT;
    let response = tokio::time::timeout(wait, conn.send(&request, version))
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|e| e.to_string())?;
    if response.error_code != 0 {
        return Err(format!("Fetch answered error {}", response.error_code));
    }
    let mut out_of_range: Vec<(TopicPartition, i32)> = Vec::new();
    for topic in response.responses {
        for part in topic.partitions {
            let key = (
                if version >= 13 {
                    topic.topic_id
                } else {
                    uuid::Uuid::nil()
                },
                if version >= 13 {
                    String::new()
                } else {
                    topic.topic.0.to_string()
                },
                part.partition_index,
            );
            let Some((tp, _offset, leader_epoch)) = asked.get(&key).cloned() else {
                continue;
            };
            let Some(partition) = broker.replicas.get(&tp) else {
                continue;
            };
            let now = now_ms();
            let result = match part.error_code {
                0 if part.diverging_epoch.epoch >= 0 || part.diverging_epoch.end_offset >= 0 => {
                    partition.truncate_to_diverging(
                        shared.leader,
                        leader_epoch,
                        (part.diverging_epoch.epoch, part.diverging_epoch.end_offset),
                    )
                }
                0 => {
                    let records = part.records.as_deref().unwrap_or(&[]);
                    if partition.follower_throttles() {
                        broker
                            .replicas
                            .follower_quota
                            .record(records.len() as u64, std::time::Instant::now());
                    }
                    partition
                        .append_from_leader(
                            shared.leader,
                            leader_epoch,
                            records,
                            part.high_watermark,
                            part.log_start_offset,
                            now,
                        )
                        .map(|_| ())
                }
                code if code == ResponseError::OffsetOutOfRange.code() => {
                    out_of_range.push((tp.clone(), leader_epoch));
                    Ok(())
                }
                code => {
                    debug!(partition = %tp, leader = shared.leader, error = code, "replica fetch refused");
                    // The leader (or this follower) has not applied the latest metadata yet: it will in
                    // moments, so ask again soon rather than after the full backoff.
                    let metadata_lag = [
                        ResponseError::UnknownTopicId,
                        ResponseError::UnknownTopicOrPartition,
                        ResponseError::NotLeaderOrFollower,
                        ResponseError::UnknownLeaderEpoch,
                        ResponseError::FencedLeaderEpoch,
                    ]
                    .iter()
                    .any(|e| e.code() == code);
                    let wait = if metadata_lag {
                        METADATA_LAG_RETRY.min(backoff)
                    } else {
                        backoff
                    };
                    delayed.insert(tp.clone(), tokio::time::Instant::now() + wait);
                    Ok(())
                }
            };
            if let Err(e) = result {
                warn!(partition = %tp, error = %e, "replicating from the leader failed");
                delayed.insert(tp.clone(), tokio::time::Instant::now() + backoff);
            }
        }
    }
    for (tp, leader_epoch) in out_of_range {
        if let Err(e) = settle_out_of_range(broker, shared.leader, conn, &tp, leader_epoch).await {
            warn!(partition = %tp, error = %e, "cannot settle an offset the leader does not have");
            delayed.insert(tp, tokio::time::Instant::now() + backoff);
        }
    }
    Ok(())
}

/// The leader has no record at our log end: either it is shorter than us (truncate to its end) or it no longer
/// has what we lack (start over at its log start).
async fn settle_out_of_range(
    broker: &Broker,
    leader: i32,
    conn: &mut Connection,
    tp: &TopicPartition,
    leader_epoch: i32,
) -> Result<(), String> {
    let Some(partition) = broker.replicas.get(tp) else {
        return Ok(());
    };
    let version = conn
        .versions
        .pick(ApiKey::ListOffsets)
        .map_err(|e| e.to_string())?;
    let ask = |timestamp: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(broker.node_id))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(tp.partition)
                            .with_current_leader_epoch(leader_epoch)
                            .with_timestamp(timestamp),
                    ]),
            ])
    };
    let mut offsets = [0i64; 2];
    for (slot, timestamp) in [(0, -2i64), (1, -1i64)] {
        let resp = conn
            .send(&ask(timestamp), version)
            .await
            .map_err(|e| e.to_string())?;
        let part = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or("empty ListOffsets answer")?;
        if part.error_code != 0 {
            return Err(format!("ListOffsets answered error {}", part.error_code));
        }
        offsets[slot] = part.offset;
    }
    let [leader_start, leader_end] = offsets;
    let mine = partition.log.lock().log_end_offset();
    let to = if mine > leader_end {
        Truncation::To(leader_end)
    } else {
        Truncation::StartAt(leader_start)
    };
    partition
        .truncate(leader, leader_epoch, to)
        .map_err(|e| e.to_string())
}
