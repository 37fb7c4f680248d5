//! The replica layer (Kafka's `ReplicaManager`): the partitions hosted on this broker, each leading or
//! following as the controller decided (`partition`), the leader's bookkeeping of its followers (`isr`), the
//! fetchers that copy the leaders' logs to this broker (`fetcher`), and the ISR changes sent to the controller
//! (AlterPartition, here). The metadata publisher calls `apply` with every new image; handlers reach the
//! partitions through `leader` and `get`.

mod fetcher;
pub mod isr;
pub mod partition;
pub mod throttle;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, BrokerId};
use parking_lot::{Mutex, RwLock};
use sluice_metadata::{CONSUMER_OFFSETS, MetadataImage};
use sluice_storage::TopicPartition;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::broker::{Broker, now_ms};
use crate::error::Error;
pub use partition::{
    AppendError, IsrAnswer, IsrRequest, Limits, Partition, Transition, Truncation,
};

/// The replica settings, Kafka's keys.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// `replica.lag.time.max.ms`: an ISR member not caught up for this long is dropped.
    pub lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`, `replica.fetch.min.bytes`, `replica.fetch.max.bytes` (per partition),
    /// `replica.fetch.response.max.bytes`, `replica.fetch.backoff.ms`.
    pub fetch_wait_max_ms: i32,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: i32,
    pub fetch_response_max_bytes: i32,
    pub fetch_backoff_ms: u64,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub high_watermark_checkpoint_interval_ms: u64,
}

impl Default for ReplicaConfig {
    fn default() -> ReplicaConfig {
        ReplicaConfig {
            lag_time_max_ms: 30_000,
            fetch_wait_max_ms: 500,
            fetch_min_bytes: 1,
            fetch_max_bytes: 1 << 20,
            fetch_response_max_bytes: 10 << 20,
            fetch_backoff_ms: 1000,
            high_watermark_checkpoint_interval_ms: 5000,
        }
    }
}

/// A partition of `__consumer_offsets` this broker started or stopped leading: the group coordinator loads or
/// unloads its groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetsLeadership {
    pub partition: i32,
    pub leading: bool,
}

pub struct ReplicaManager {
    me: i32,
    pub config: ReplicaConfig,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    fetchers: fetcher::Fetchers,
    /// ISR changes waiting to be sent to the controller.
    isr_queue: Mutex<Vec<IsrRequest>>,
    isr_queued: Notify,
    /// `leader.replication.throttled.rate` and `follower.replication.throttled.rate`.
    pub leader_quota: throttle::Quota,
    pub follower_quota: throttle::Quota,
}

impl ReplicaManager {
    pub fn new(me: i32, config: ReplicaConfig) -> ReplicaManager {
        ReplicaManager {
            me,
            config,
            partitions: RwLock::new(HashMap::new()),
            fetchers: fetcher::Fetchers::default(),
            isr_queue: Mutex::new(Vec::new()),
            isr_queued: Notify::new(),
            leader_quota: throttle::Quota::new(std::time::Instant::now()),
            follower_quota: throttle::Quota::new(std::time::Instant::now()),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            lag_time_max_ms: self.config.lag_time_max_ms,
        }
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    /// The partition if this broker leads it; otherwise the error a client gets (NOT_LEADER_OR_FOLLOWER for a
    /// partition that exists, UNKNOWN_TOPIC_OR_PARTITION for one that does not).
    pub fn leader(
        &self,
        image: &MetadataImage,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Partition>, i16> {
        let tp = TopicPartition::new(topic, partition);
        match self.get(&tp) {
            Some(p) if p.leadership().0 => Ok(p),
            _ => match image.topics.get(topic) {
                Some(t) if (0..t.partitions).contains(&partition) => {
                    Err(ResponseError::NotLeaderOrFollower.code())
                }
                _ => Err(ResponseError::UnknownTopicOrPartition.code()),
            },
        }
    }

    fn leaders(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .values()
            .filter(|p| p.leadership().0)
            .cloned()
            .collect()
    }

    /// Brings every hosted partition of the topics that changed from `old` to `new` to the role `new` gives it:
    /// new partitions appear (their logs already exist: the publisher made them), leaders and followers switch,
    /// fetchers follow; partitions no longer hosted here are dropped. Answers the `__consumer_offsets`
    /// partitions whose leadership here changed.
    pub fn apply(
        &self,
        broker: &Broker,
        old: &MetadataImage,
        new: &MetadataImage,
    ) -> Result<Vec<OffsetsLeadership>, Error> {
        let now = now_ms();
        self.set_throttle_rates(broker, new);
        let mut offsets = Vec::new();
        let mut hosted: HashSet<TopicPartition> = HashSet::new();
        let mut changed: HashSet<&str> = HashSet::new();
        let defaults = broker.log_defaults(new);
        // A dynamic default (min.insync.replicas) may have changed the settings of every topic without an override.
        let defaults_changed = broker.log_defaults(old) != defaults;
        for topic in new.topics.values() {
            if !defaults_changed && old.topics.get(&topic.name) == Some(topic) {
                continue;
            }
            changed.insert(&topic.name);
            let settings = crate::config::topic_log_defaults(&defaults, &topic.configs).ok();
            let min_isr = settings.as_ref().map_or(1, |l| l.min_insync_replicas);
            for (index, state) in topic.partition_states.iter().enumerate() {
                if !state.replicas.contains(&self.me) {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.clone(), index as i32);
                let Some(log) = broker.logs.get(&tp) else {
                    continue;
                };
                hosted.insert(tp.clone());
                let partition = {
                    let mut partitions = self.partitions.write();
                    match partitions.get(&tp) {
                        Some(p) if p.topic_id() == topic.id && Arc::ptr_eq(&p.log, &log) => {
                            p.clone()
                        }
                        stale => {
                            if let Some(old) = stale {
                                old.resign();
                            }
                            let p = Arc::new(Partition::new(tp.clone(), topic.id, self.me, log));
                            partitions.insert(tp.clone(), p.clone());
                            p
                        }
                    }
                };
                if let Some(l) = &settings {
                    partition.set_throttled(
                        crate::config::is_throttled(
                            &l.leader_throttled_replicas,
                            index as i32,
                            self.me,
                        ),
                        crate::config::is_throttled(
                            &l.follower_throttled_replicas,
                            index as i32,
                            self.me,
                        ),
                    );
                }
                let was_leading = partition.leadership().0;
                match partition.apply(state, min_isr, now)? {
                    Transition::BecameLeader => {
                        self.fetchers.remove(&tp);
                        info!(partition = %tp, epoch = state.leader_epoch, isr = ?state.isr, "leading");
                    }
                    Transition::BecameFollower { leader } => {
                        if leader >= 0 {
                            self.fetchers.add(broker, &tp, leader);
                        } else {
                            self.fetchers.remove(&tp);
                        }
                        info!(partition = %tp, leader, epoch = state.leader_epoch, "following");
                    }
                    Transition::Updated | Transition::Unchanged => {}
                }
                if topic.name == CONSUMER_OFFSETS && was_leading != partition.leadership().0 {
                    offsets.push(OffsetsLeadership {
                        partition: index as i32,
                        leading: !was_leading,
                    });
                }
            }
        }
        let gone: Vec<(TopicPartition, Arc<Partition>)> = self
            .partitions
            .read()
            .iter()
            .filter(|(tp, _)| {
                let topic_gone = !new.topics.contains_key(&tp.topic);
                topic_gone || (changed.contains(tp.topic.as_str()) && !hosted.contains(*tp))
            })
            .map(|(tp, p)| (tp.clone(), p.clone()))
            .collect();
        for (tp, p) in gone {
            self.fetchers.remove(&tp);
            if tp.topic == CONSUMER_OFFSETS && p.leadership().0 {
                offsets.push(OffsetsLeadership {
                    partition: tp.partition,
                    leading: false,
                });
            }
            p.resign();
            self.partitions.write().remove(&tp);
        }
        Ok(offsets)
    }

    /// This broker's throttle rates: its dynamic configs (own, then the cluster default), else the file's.
    fn set_throttle_rates(&self, broker: &Broker, image: &MetadataImage) {
        let rate = |key: &str| -> Option<u64> {
            match image.broker_config(self.me, key) {
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|v| *v >= 0 && *v != i64::MAX)
                    .map(|v| v as u64),
                None => broker.config.static_throttle_rate(key),
            }
        };
        let now = std::time::Instant::now();
        self.leader_quota
            .set_rate(rate("leader.replication.throttled.rate"), now);
        self.follower_quota
            .set_rate(rate("follower.replication.throttled.rate"), now);
    }

    /// Queues an ISR change for the controller (sent by `isr_task`).
    pub fn queue_isr_change(&self, request: IsrRequest) {
        self.isr_queue.lock().push(request);
        self.isr_queued.notify_one();
    }

    pub fn shutdown(&self) {
        self.fetchers.shutdown();
        for p in self.partitions.read().values() {
            p.resign();
        }
    }
}

/// Who may join an ISR: registered and unfenced brokers (KIP-841).
pub fn eligible(image: &MetadataImage) -> impl Fn(i32) -> bool + '_ {
    move |r| image.is_live(r)
}

/// Looks for ISR changes every half lag time (Kafka's shrink check) and sends queued changes to the active
/// controller as they come, one AlterPartition for all of them.
pub async fn isr_task(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let rm = &broker.replicas;
    let period = Duration::from_millis((rm.config.lag_time_max_ms / 2).clamp(50, 15_000) as u64);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let image = broker.metadata.image();
                let eligible = eligible(&image);
                for p in rm.leaders() {
                    if let Some(request) = p.maybe_change_isr(now_ms(), rm.limits(), &eligible) {
                        rm.queue_isr_change(request);
                    }
                }
            }
            _ = rm.isr_queued.notified() => {}
            _ = shutdown.changed() => return,
        }
        let batch: Vec<IsrRequest> = std::mem::take(&mut *rm.isr_queue.lock());
        if batch.is_empty() {
            continue;
        }
        send_isr_changes(&broker, batch).await;
    }
}

async fn send_isr_changes(broker: &Broker, batch: Vec<IsrRequest>) {
    let rm = &broker.replicas;
    let refuse_all = |batch: &[IsrRequest]| {
        for r in batch {
            if let Some(p) = rm.get(&r.tp) {
                p.isr_answered(r.leader_epoch, IsrAnswer::Unknown, now_ms());
            }
        }
    };
    let Some(channel) = broker.channel.as_ref() else {
        refuse_all(&batch);
        return;
    };
    let mut topics: BTreeMap<uuid::Uuid, Vec<&IsrRequest>> = BTreeMap::new();
    for r in &batch {
        topics.entry(r.topic_id).or_default().push(r);
    }
    let request = AlterPartitionRequest::default()
        .with_broker_id(BrokerId(broker.node_id))
        .with_broker_epoch(broker.broker_epoch())
        .with_topics(
            topics
                .iter()
                .map(|(id, parts)| {
                    TopicData::default().with_topic_id(*id).with_partitions(
                        parts
                            .iter()
                            .map(|r| {
                                PartitionData::default()
                                    .with_partition_index(r.tp.partition)
                                    .with_leader_epoch(r.leader_epoch)
                                    .with_partition_epoch(r.partition_epoch)
                                    .with_new_isr(r.new_isr.iter().map(|b| BrokerId(*b)).collect())
                            })
                            .collect(),
                    )
                })
                .collect(),
        );
    let response = match channel
        .call(broker, &request, crate::controller_channel::CALL_TIMEOUT)
        .await
    {
        Ok(r) if r.error_code == 0 => r,
        Ok(r) => {
            warn!(
                error = r.error_code,
                "the controller refused the ISR changes"
            );
            refuse_all(&batch);
            return;
        }
        Err(e) => {
            warn!(error = %e, "ISR changes not sent");
            refuse_all(&batch);
            return;
        }
    };
    let now = now_ms();
    for topic in response.topics {
        for part in topic.partitions {
            let Some(request) = batch
                .iter()
                .find(|r| r.topic_id == topic.topic_id && r.tp.partition == part.partition_index)
            else {
                continue;
            };
            let Some(p) = rm.get(&request.tp) else {
                continue;
            };
            if part.error_code == 0 {
                let isr: Vec<i32> = part.isr.iter().map(|b| b.0).collect();
                info!(partition = %request.tp, isr = ?isr, partition_epoch = part.partition_epoch, "ISR changed");
                let moved = p.isr_answered(
                    part.leader_epoch,
                    IsrAnswer::Committed {
                        isr: &isr,
                        partition_epoch: part.partition_epoch,
                    },
                    now,
                );
                if moved {
                    broker
                        .fetch_waiters
                        .appended(&request.tp.topic, request.tp.partition);
                }
            } else {
                warn!(partition = %request.tp, error = part.error_code, "ISR change refused");
                // Refusals that prove nothing changed end the attempt; the others wait for the metadata.
                let definite = [
                    ResponseError::IneligibleReplica.code(),
                    ResponseError::InvalidRequest.code(),
                ];
                let answer = if definite.contains(&part.error_code) {
                    IsrAnswer::Refused
                } else {
                    IsrAnswer::Unknown
                };
                p.isr_answered(request.leader_epoch, answer, now);
            }
        }
    }
}

/// Writes the high watermarks to each log dir's checkpoint periodically, so a restart never exposes records
/// the cluster had not committed.
pub async fn checkpoint_task(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(
        broker
            .replicas
            .config
            .high_watermark_checkpoint_interval_ms
            .max(10),
    );
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let logs = broker.logs.clone();
        if let Ok(Err(e)) =
            tokio::task::spawn_blocking(move || logs.checkpoint_high_watermarks()).await
        {
            warn!(error = %e, "checkpointing high watermarks failed");
        }
    }
}
