//! Committed offsets and everything written to `__consumer_offsets`: OffsetCommit, OffsetFetch,
//! DeleteGroups, offset retention, group metadata records and replay at startup.
//!
//! Every write to a partition happens under that partition's async lock, and the in-memory
//! state is only changed after the append succeeded, so memory never runs ahead of the log and
//! the log order matches the order in which changes became visible.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::GroupError;
use super::coordinator::{GroupCoordinator, now_ms};
use super::records::{self, LogRecord, OffsetValue};
use super::state::{CommittedOffset, Group, GroupState};
use crate::repeats::first_of_each;

/// Kafka's `offset.metadata.max.bytes` default.
const MAX_METADATA_BYTES: usize = 4096;

/// One committed offset as returned by OffsetFetch; `offset == -1` means none.
struct FetchedOffset {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

/// Offsets of one group due for removal by retention.
struct Expiry {
    group_id: String,
    expired: Vec<(String, i32)>,
    /// Nothing is left afterwards, so the group itself goes too.
    removable: bool,
}

impl GroupCoordinator {
    /// Replays every `__consumer_offsets` partition and coordinates all of them (a coordinator on its own,
    /// as the tests run it).
    pub fn load(&self) -> Result<(), GroupError> {
        for partition in 0..self.partition_locks.len() as i32 {
            self.load_partition(partition)?;
            self.coordinated.lock().insert(partition);
        }
        Ok(())
    }

    /// Replays one `__consumer_offsets` partition: committed offsets, group metadata, and the tombstones of
    /// deleted groups and expired offsets. Its groups are replaced by what the log holds.
    pub fn load_partition(&self, partition: i32) -> Result<(), GroupError> {
        let now = Instant::now();
        let mut loaded = 0usize;
        {
            let mut groups = self.groups.lock();
            groups.retain(|_, g| g.partition != partition);
            // Groups that exist after replay because of a metadata record (they may have no
            // offsets, e.g. an Empty consumer group that never committed).
            let mut with_metadata: HashSet<String> = HashSet::new();
            self.log.replay(partition, &mut |record| {
                // We never write transactional offset commits; markers carry no key we use.
                if record.control || record.transactional {
                    return Ok(());
                }
                let Some(key) = record.key else {
                    return Ok(());
                };
                loaded += 1;
                match records::decode_record(key, record.value)? {
                    LogRecord::Offset {
                        group,
                        topic,
                        partition: p,
                        value: Some(value),
                    } => {
                        let owner = self.partition_for(&group);
                        groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(group, owner))
                            .offsets
                            .insert((topic, p), value);
                    }
                    LogRecord::Offset {
                        group,
                        topic,
                        partition: p,
                        value: None,
                    } => {
                        if let Some(g) = groups.get_mut(&group) {
                            g.offsets.remove(&(topic, p));
                        }
                    }
                    LogRecord::Group {
                        group,
                        value: Some(value),
                    } => {
                        let owner = self.partition_for(&group);
                        groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(group.clone(), owner))
                            .restore(value, now);
                        with_metadata.insert(group);
                    }
                    LogRecord::Group { group, value: None } => {
                        if let Some(g) = groups.get_mut(&group) {
                            g.clear_metadata();
                        }
                        with_metadata.remove(&group);
                    }
                    LogRecord::Other => {}
                }
                Ok(())
            })?;
            groups.retain(|id, g| {
                g.partition != partition || !g.offsets.is_empty() || with_metadata.contains(id)
            });
        }
        if loaded > 0 {
            tracing::info!(
                partition,
                records = loaded,
                "loaded the groups of a __consumer_offsets partition"
            );
        }
        Ok(())
    }

    /// Appends one batch to a `__consumer_offsets` partition without blocking the runtime.
    /// The caller holds that partition's lock.
    async fn append(&self, partition: i32, batch: BytesMut) -> Result<(), GroupError> {
        let log = self.log.clone();
        let committing = tokio::task::spawn_blocking(move || log.append(partition, batch))
            .await
            .map_err(|e| GroupError::LogAppend {
                partition,
                message: e.to_string(),
            })?
            .map_err(|message| GroupError::LogAppend { partition, message })?;
        committing
            .await
            .map_err(|message| GroupError::LogAppend { partition, message })
    }

    fn partition_lock(&self, partition: i32) -> &tokio::sync::Mutex<()> {
        // partition_for always returns an index below the number of locks.
        &self.partition_locks[partition as usize]
    }

    /// Writes the group's current metadata record, if it is in a state Kafka records.
    pub(super) async fn persist_group(&self, group_id: &str) -> Result<(), GroupError> {
        let partition = self.partition_for(group_id);
        let _guard = self.partition_lock(partition).lock().await;
        let value = {
            let groups = self.groups.lock();
            match groups.get(group_id) {
                Some(g) if g.state != GroupState::Dead => g.metadata_value(),
                _ => None,
            }
        };
        let Some(value) = value else { return Ok(()) };
        let batch = records::encode_batch(
            vec![(
                records::group_key(group_id)?,
                Some(records::group_value(&value)?),
            )],
            now_ms(),
        )?;
        self.append(partition, batch).await
    }

    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        self.ensure_sweeper();
        let group_id = req.group_id.0.to_string();
        let partition = self.partition_for(&group_id);
        let _guard = self.partition_lock(partition).lock().await;

        let verdict = match self.not_coordinating(&group_id) {
            Some(e) if !group_id.is_empty() => Err(e),
            _ => self.validate_commit(&req, version),
        };
        let commit_timestamp_ms = now_ms();
        // (topic, partition, error) in request order; `None` = to be written.
        let mut results: Vec<(StrBytes, i32, Option<ResponseError>)> = Vec::new();
        let mut to_write: Vec<(String, i32, CommittedOffset)> = Vec::new();
        for topic in &req.topics {
            for p in &topic.partitions {
                let metadata = p.committed_metadata.as_deref().unwrap_or("");
                let error = match verdict {
                    Err(error) => Some(error),
                    Ok(()) if metadata.len() > MAX_METADATA_BYTES => {
                        Some(ResponseError::OffsetMetadataTooLarge)
                    }
                    Ok(()) => {
                        to_write.push((
                            topic.name.0.to_string(),
                            p.partition_index,
                            OffsetValue {
                                offset: p.committed_offset,
                                leader_epoch: if version >= 6 {
                                    p.committed_leader_epoch
                                } else {
                                    -1
                                },
                                metadata: metadata.to_string(),
                                commit_timestamp_ms,
                            },
                        ));
                        None
                    }
                };
                results.push((topic.name.0.clone(), p.partition_index, error));
            }
        }

        if !to_write.is_empty() {
            let written = self
                .write_offsets(&group_id, partition, &to_write, commit_timestamp_ms)
                .await;
            match written {
                Ok(()) => {
                    let mut groups = self.groups.lock();
                    let group = groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(group_id.clone(), partition));
                    for (topic, p, value) in to_write {
                        group.offsets.insert((topic, p), value);
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %group_id, error = %e, "offset commit not persisted");
                    for result in results.iter_mut().filter(|r| r.2.is_none()) {
                        result.2 = Some(ResponseError::CoordinatorNotAvailable);
                    }
                }
            }
        }

        let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
        for (topic, p, error) in results {
            let entry = OffsetCommitResponsePartition::default()
                .with_partition_index(p)
                .with_error_code(error.map_or(0, |e| e.code()));
            match topics.last_mut() {
                Some(last) if last.name.0 == topic => last.partitions.push(entry),
                _ => topics.push(
                    OffsetCommitResponseTopic::default()
                        .with_name(TopicName(topic))
                        .with_partitions(vec![entry]),
                ),
            }
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    async fn write_offsets(
        &self,
        group_id: &str,
        partition: i32,
        offsets: &[(String, i32, CommittedOffset)],
        timestamp_ms: i64,
    ) -> Result<(), GroupError> {
        let mut entries = Vec::with_capacity(offsets.len());
        for (topic, p, value) in offsets {
            entries.push((
                records::offset_key(group_id, topic, *p)?,
                Some(records::offset_value(value)?),
            ));
        }
        let batch = records::encode_batch(entries, timestamp_ms)?;
        self.append(partition, batch).await
    }

    /// Kafka's rules for who may commit: group members of the current generation, or anyone
    /// with generation -1 while the group has no members (standalone consumers, admin tools).
    fn validate_commit(
        &self,
        req: &OffsetCommitRequest,
        version: i16,
    ) -> Result<(), ResponseError> {
        let group_id = req.group_id.0.as_str();
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let generation = req.generation_id_or_member_epoch;
        let member_id = req.member_id.as_str();
        let instance_id = if version >= 7 {
            req.group_instance_id.as_deref()
        } else {
            None
        };
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration)
            };
        };
        if group.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(member_id, instance_id) {
            return Err(ResponseError::FencedInstanceId);
        }
        if generation < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        let current_generation = group.generation;
        let Some(member) = group.members.get_mut(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if generation != current_generation {
            return Err(ResponseError::IllegalGeneration);
        }
        // A commit proves the member is alive, as in Kafka.
        member.last_heartbeat = Instant::now();
        Ok(())
    }

    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        self.ensure_sweeper();
        if version >= 8 {
            // Each group once: a group without a topic list answers with every offset it committed.
            let groups = first_of_each(&req.groups, |g| g.group_id.0.clone())
                .into_iter()
                .map(|g| {
                    let requested = g.topics.as_ref().map(|topics| {
                        topics
                            .iter()
                            .map(|t| (t.name.0.clone(), t.partition_indexes.clone()))
                            .collect::<Vec<_>>()
                    });
                    let topics = self
                        .fetch_offsets(g.group_id.0.as_str(), requested)
                        .into_iter()
                        .map(|(name, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(name))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|f| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(f.partition)
                                                .with_committed_offset(f.offset)
                                                .with_committed_leader_epoch(f.leader_epoch)
                                                .with_metadata(Some(StrBytes::from_string(
                                                    f.metadata,
                                                )))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    match self.not_coordinating(g.group_id.0.as_str()) {
                        Some(e) => OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(e.code()),
                        None => OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_topics(topics),
                    }
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }

        if let Some(e) = self.not_coordinating(req.group_id.0.as_str()) {
            // v2+ carry a top-level error; older versions only per partition, so answer each requested one.
            let mut resp = OffsetFetchResponse::default();
            if version >= 2 {
                resp.error_code = e.code();
            } else {
                resp.topics = req
                    .topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(-1)
                                            .with_error_code(e.code())
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            }
            return resp;
        }
        let requested = req.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.0.clone(), t.partition_indexes.clone()))
                .collect::<Vec<_>>()
        });
        let topics = self
            .fetch_offsets(req.group_id.0.as_str(), requested)
            .into_iter()
            .map(|(name, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(name))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|f| {
                                let mut partition = OffsetFetchResponsePartition::default()
                                    .with_partition_index(f.partition)
                                    .with_committed_offset(f.offset)
                                    .with_metadata(Some(StrBytes::from_string(f.metadata)));
                                if version >= 5 {
                                    partition.committed_leader_epoch = f.leader_epoch;
                                }
                                partition
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetFetchResponse::default().with_topics(topics)
    }

    /// Committed offsets of the requested partitions (or all of them when `requested` is
    /// `None`), grouped by topic. Unknown groups and partitions yield offset -1.
    fn fetch_offsets(
        &self,
        group_id: &str,
        requested: Option<Vec<(StrBytes, Vec<i32>)>>,
    ) -> Vec<(StrBytes, Vec<FetchedOffset>)> {
        let groups = self.groups.lock();
        let offsets = groups
            .get(group_id)
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| &g.offsets);
        let fetched = |topic: &str, partition: i32| {
            let value = offsets.and_then(|o| o.get(&(topic.to_string(), partition)));
            FetchedOffset {
                partition,
                offset: value.map_or(-1, |v| v.offset),
                leader_epoch: value.map_or(-1, |v| v.leader_epoch),
                metadata: value.map(|v| v.metadata.clone()).unwrap_or_default(),
            }
        };
        match requested {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let fetched = partitions.into_iter().map(|p| fetched(&topic, p)).collect();
                    (topic, fetched)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<&str, Vec<FetchedOffset>> = BTreeMap::new();
                for (topic, partition) in offsets.into_iter().flat_map(|o| o.keys()) {
                    by_topic
                        .entry(topic.as_str())
                        .or_default()
                        .push(fetched(topic, *partition));
                }
                by_topic
                    .into_iter()
                    .map(|(topic, fetched)| (StrBytes::from_string(topic.to_string()), fetched))
                    .collect()
            }
        }
    }

    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        self.ensure_sweeper();
        let mut results = Vec::with_capacity(req.groups_names.len());
        for group_id in &req.groups_names {
            let error = self.delete_group(group_id.0.as_str()).await.err();
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id.clone())
                    .with_error_code(error.map_or(0, |e| e.code())),
            );
        }
        DeleteGroupsResponse::default().with_results(results)
    }

    async fn delete_group(&self, group_id: &str) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if let Some(e) = self.not_coordinating(group_id) {
            return Err(e);
        }
        let partition = self.partition_for(group_id);
        let _guard = self.partition_lock(partition).lock().await;
        let offsets: Vec<(String, i32)> = {
            let mut groups = self.groups.lock();
            let group = match groups.get_mut(group_id) {
                None => return Err(ResponseError::GroupIdNotFound),
                Some(g) if g.state == GroupState::Dead => {
                    return Err(ResponseError::GroupIdNotFound);
                }
                Some(g) if g.state != GroupState::Empty || !g.members.is_empty() => {
                    return Err(ResponseError::NonEmptyGroup);
                }
                Some(g) => g,
            };
            // Dead keeps joins and commits away while the tombstones are written.
            group.state = GroupState::Dead;
            group.offsets.keys().cloned().collect()
        };
        match self
            .write_tombstones(group_id, partition, &offsets, true)
            .await
        {
            Ok(()) => {
                self.groups.lock().remove(group_id);
                tracing::info!(group = %group_id, "group deleted");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(group = %group_id, error = %e, "group deletion not persisted");
                if let Some(g) = self.groups.lock().get_mut(group_id) {
                    g.state = GroupState::Empty;
                }
                Err(ResponseError::CoordinatorNotAvailable)
            }
        }
    }

    async fn write_tombstones(
        &self,
        group_id: &str,
        partition: i32,
        offsets: &[(String, i32)],
        with_group: bool,
    ) -> Result<(), GroupError> {
        let mut entries = Vec::with_capacity(offsets.len() + 1);
        for (topic, p) in offsets {
            entries.push((records::offset_key(group_id, topic, *p)?, None::<Bytes>));
        }
        if with_group {
            entries.push((records::group_key(group_id)?, None));
        }
        if entries.is_empty() {
            return Ok(());
        }
        self.append(partition, records::encode_batch(entries, now_ms())?)
            .await
    }

    /// Removes offsets of member-less groups that are older than `offsets_retention_ms`
    /// (counted from when the group became empty, or from the commit for standalone groups),
    /// and drops groups left with neither members nor offsets. Returns how many offsets expired.
    pub(super) async fn expire_offsets(&self) -> usize {
        let mut expired_total = 0;
        for partition in 0..self.partition_locks.len() as i32 {
            let _guard = self.partition_lock(partition).lock().await;
            let now = now_ms();
            let plan: Vec<Expiry> = {
                let mut groups = self.groups.lock();
                let mut plan = Vec::new();
                for group in groups.values_mut() {
                    if group.partition != partition
                        || group.state != GroupState::Empty
                        || !group.members.is_empty()
                        || !group.pending_members.is_empty()
                    {
                        continue;
                    }
                    let base = |o: &CommittedOffset| match (
                        &group.protocol_type,
                        group.state_timestamp_ms,
                    ) {
                        (Some(_), Some(empty_since)) => empty_since,
                        _ => o.commit_timestamp_ms,
                    };
                    let expired: Vec<(String, i32)> = group
                        .offsets
                        .iter()
                        .filter(|(_, o)| now - base(o) >= self.config.offsets_retention_ms)
                        .map(|(k, _)| k.clone())
                        .collect();
                    let removable = expired.len() == group.offsets.len();
                    if expired.is_empty() && !removable {
                        continue;
                    }
                    if removable {
                        group.state = GroupState::Dead;
                    }
                    plan.push(Expiry {
                        group_id: group.id.clone(),
                        expired,
                        removable,
                    });
                }
                plan
            };
            for Expiry {
                group_id,
                expired,
                removable,
            } in plan
            {
                let written = self
                    .write_tombstones(&group_id, partition, &expired, removable)
                    .await;
                let mut groups = self.groups.lock();
                match written {
                    Ok(()) => {
                        expired_total += expired.len();
                        if removable {
                            groups.remove(&group_id);
                        } else if let Some(g) = groups.get_mut(&group_id) {
                            for key in &expired {
                                g.offsets.remove(key);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(group = %group_id, error = %e, "offset expiry not persisted");
                        if let Some(g) = groups.get_mut(&group_id) {
                            g.state = GroupState::Empty;
                        }
                    }
                }
            }
        }
        expired_total
    }
}
