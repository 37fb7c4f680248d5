//! The group coordinator: membership APIs (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups, ListGroups) and the background sweep that drives timeouts.
//! Offset APIs and `__consumer_offsets` persistence live in `offsets.rs`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::state::{Group, GroupState, JoinOutcome, Member, MemberSpec, SyncOutcome};
use super::{GroupConfig, OffsetLog};
use crate::repeats::first_of_each;

/// How often sessions, pending member ids and rebalance deadlines are checked.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// How often offsets of empty groups are checked against the retention time
/// (Kafka's `offsets.retention.check.interval.ms` is 10 minutes).
const OFFSET_EXPIRY_INTERVAL: Duration = Duration::from_secs(60);
/// READ | DELETE | DESCRIBE: everything is allowed without an authorizer.
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Coordinates every classic consumer group of the broker. Hold it in an `Arc`; all methods
/// take `&self`.
pub struct GroupCoordinator {
    pub(super) config: GroupConfig,
    pub(super) log: Arc<dyn OffsetLog>,
    /// All groups, behind one lock that is only held for in-memory work, never across an await.
    pub(super) groups: Mutex<HashMap<String, Group>>,
    /// One lock per `__consumer_offsets` partition, held across the append so that the log and
    /// the in-memory offsets see writes of a partition in the same order.
    pub(super) partition_locks: Vec<tokio::sync::Mutex<()>>,
    /// The `__consumer_offsets` partitions whose groups are loaded here: the ones this broker leads.
    pub(super) coordinated: Mutex<HashSet<i32>>,
    me: Weak<GroupCoordinator>,
    sweeper: Mutex<Option<JoinHandle<()>>>,
    shut_down: AtomicBool,
}

/// A request either answered on the spot or parked until the group moves on.
enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, log: Arc<dyn OffsetLog>) -> Arc<Self> {
        let partitions = config.num_offsets_partitions.max(1) as usize;
        Arc::new_cyclic(|me| Self {
            config,
            log,
            groups: Mutex::new(HashMap::new()),
            partition_locks: (0..partitions)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            coordinated: Mutex::new(HashSet::new()),
            me: me.clone(),
            sweeper: Mutex::new(None),
            shut_down: AtomicBool::new(false),
        })
    }

    /// `__consumer_offsets` partition of a group: `Utils.abs(groupId.hashCode) % partitions`,
    /// with Java's UTF-16 `String.hashCode`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        let hash = group_id.encode_utf16().fold(0i32, |h, unit| {
            h.wrapping_mul(31).wrapping_add(i32::from(unit))
        });
        (hash & 0x7fff_ffff) % self.partition_locks.len() as i32
    }

    /// NOT_COORDINATOR unless this broker coordinates `group_id` (leads its `__consumer_offsets` partition and
    /// has loaded it).
    pub(super) fn not_coordinating(&self, group_id: &str) -> Option<ResponseError> {
        let partition = self.partition_for(group_id);
        (!self.coordinated.lock().contains(&partition)).then_some(ResponseError::NotCoordinator)
    }

    /// This broker started or stopped leading some `__consumer_offsets` partitions: load their groups from the
    /// log, or drop them (their members are told to find the new coordinator).
    pub fn leadership_changed(&self, changes: &[crate::replica::OffsetsLeadership]) {
        for change in changes {
            if change.partition < 0 || change.partition as usize >= self.partition_locks.len() {
                continue;
            }
            if change.leading {
                match self.load_partition(change.partition) {
                    Ok(()) => {
                        self.coordinated.lock().insert(change.partition);
                    }
                    Err(e) => tracing::error!(
                        partition = change.partition,
                        error = %e,
                        "cannot load the groups of a __consumer_offsets partition; not coordinating them"
                    ),
                }
            } else {
                self.coordinated.lock().remove(&change.partition);
                let mut groups = self.groups.lock();
                for group in groups
                    .values_mut()
                    .filter(|g| g.partition == change.partition)
                {
                    group.fail_all_waiters(ResponseError::NotCoordinator);
                }
                groups.retain(|_, g| g.partition != change.partition);
                tracing::info!(
                    partition = change.partition,
                    "no longer coordinating the groups of this partition"
                );
            }
        }
    }

    fn initial_delay(&self) -> Duration {
        Duration::from_millis(self.config.initial_rebalance_delay_ms)
    }

    /// Starts the background sweep on first use, from inside the runtime.
    pub(super) fn ensure_sweeper(&self) {
        if self.shut_down.load(Ordering::Acquire) {
            return;
        }
        let mut sweeper = self.sweeper.lock();
        if sweeper.is_some() {
            return;
        }
        let me = self.me.clone();
        *sweeper = Some(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_expiry = Instant::now();
            loop {
                ticker.tick().await;
                let Some(coordinator) = me.upgrade() else {
                    return;
                };
                coordinator.sweep(Instant::now());
                if last_expiry.elapsed() >= OFFSET_EXPIRY_INTERVAL {
                    last_expiry = Instant::now();
                    coordinator.expire_offsets().await;
                }
            }
        }));
    }

    pub(super) fn sweep(&self, now: Instant) {
        let initial_delay = self.initial_delay();
        let mut changed = Vec::new();
        {
            let mut groups = self.groups.lock();
            for group in groups.values_mut() {
                group.tick(now, initial_delay);
                if group.take_metadata_changed() {
                    changed.push(group.id.clone());
                }
            }
        }
        for group_id in changed {
            self.spawn_persist_group(group_id);
        }
    }

    /// Writes the group's metadata record in the background (offsets never depend on it).
    pub(super) fn spawn_persist_group(&self, group_id: String) {
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(async move {
                if let Err(e) = me.persist_group(&group_id).await {
                    tracing::warn!(group = %group_id, error = %e, "writing group metadata failed");
                }
            });
        }
    }

    /// Stops the background sweep and answers every parked JoinGroup/SyncGroup with
    /// COORDINATOR_NOT_AVAILABLE so clients look for the coordinator again.
    pub async fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        if let Some(handle) = self.sweeper.lock().take() {
            handle.abort();
        }
        for group in self.groups.lock().values_mut() {
            group.fail_all_waiters(ResponseError::CoordinatorNotAvailable);
        }
    }

    pub async fn join_group(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinGroupResponse {
        self.ensure_sweeper();
        let member_id = req.member_id.to_string();
        let outcome = match self.join_locked(req, version, client_id, client_host) {
            Reply::Now(outcome) => outcome,
            Reply::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| JoinOutcome::error(ResponseError::UnknownMemberId, member_id)),
        };
        join_response(outcome, version)
    }

    fn join_locked(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> Reply<JoinOutcome> {
        let group_id = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        let fail = |error| Reply::Now(JoinOutcome::error(error, member_id.clone()));
        if group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        if let Some(e) = self.not_coordinating(&group_id) {
            return fail(e);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        let spec = MemberSpec {
            instance_id: if version >= 5 {
                req.group_instance_id.as_ref().map(|s| s.to_string())
            } else {
                None
            },
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
            // v0 has no rebalance timeout; Kafka uses the session timeout instead.
            rebalance_timeout_ms: if version >= 1 {
                req.rebalance_timeout_ms
            } else {
                req.session_timeout_ms
            },
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
        };

        let now = Instant::now();
        let partition = self.partition_for(&group_id);
        let mut groups = self.groups.lock();
        let group = match groups.entry(group_id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                if !member_id.is_empty() {
                    return fail(ResponseError::UnknownMemberId);
                }
                if spec.protocol_type.is_empty() || spec.protocols.is_empty() {
                    return fail(ResponseError::InconsistentGroupProtocol);
                }
                let group_id = entry.key().clone();
                entry.insert(Group::new(group_id, partition))
            }
        };
        if group.state == GroupState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        if !group.supports_protocols(&spec.protocol_type, &spec.protocols) {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let reply = if member_id.is_empty() {
            self.join_new_member(group, spec, version, now)
        } else {
            self.join_known_member(group, member_id, spec, now)
        };
        if group.take_metadata_changed() {
            self.spawn_persist_group(group.id.clone());
        }
        reply
    }

    fn join_new_member(
        &self,
        group: &mut Group,
        spec: MemberSpec,
        version: i16,
        now: Instant,
    ) -> Reply<JoinOutcome> {
        let uuid = uuid::Uuid::new_v4();
        if let Some(instance) = spec.instance_id.clone() {
            let new_id = format!("{instance}-{uuid}");
            // A static member coming back (e.g. after a restart) takes over its old slot.
            if let Some(old_id) = group.static_members.get(&instance).cloned() {
                let was_leader = group.leader.as_deref() == Some(old_id.as_str());
                if let Some(mut old) = group.remove_member(&old_id) {
                    if let Some(waiter) = old.join_waiter.take() {
                        let _ = waiter.send(JoinOutcome::error(
                            ResponseError::FencedInstanceId,
                            old_id.clone(),
                        ));
                    }
                    if let Some(waiter) = old.sync_waiter.take() {
                        let _ = waiter.send(SyncOutcome::error(ResponseError::FencedInstanceId));
                    }
                }
                let reply = self.add_member_and_rebalance(group, new_id.clone(), spec, now);
                if was_leader {
                    group.leader = Some(new_id);
                }
                return reply;
            }
            return self.add_member_and_rebalance(group, new_id, spec, now);
        }
        let new_id = format!("{}-{uuid}", spec.client_id);
        if version >= 4 {
            // KIP-394: hand out the id first so a client that retries after a lost response
            // cannot leave stale members behind.
            let session = Duration::from_millis(spec.session_timeout_ms.max(0) as u64);
            group.pending_members.insert(new_id.clone(), now + session);
            return Reply::Now(JoinOutcome::error(ResponseError::MemberIdRequired, new_id));
        }
        self.add_member_and_rebalance(group, new_id, spec, now)
    }

    fn join_known_member(
        &self,
        group: &mut Group,
        member_id: String,
        spec: MemberSpec,
        now: Instant,
    ) -> Reply<JoinOutcome> {
        if group.pending_members.contains_key(&member_id) {
            return self.add_member_and_rebalance(group, member_id, spec, now);
        }
        let fail = |error| Reply::Now(JoinOutcome::error(error, member_id.clone()));
        let Some(member) = group.members.get(&member_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        if group.is_fenced(&member_id, spec.instance_id.as_deref()) {
            return fail(ResponseError::FencedInstanceId);
        }
        let unchanged = member.same_protocols(&spec.protocols);
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        match group.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(group, &member_id, spec, now)
            }
            // The member probably lost our JoinGroup response: send it again.
            GroupState::CompletingRebalance if unchanged => {
                Reply::Now(group.current_join_outcome(&member_id))
            }
            GroupState::Stable if unchanged && !is_leader => {
                Reply::Now(group.current_join_outcome(&member_id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(group, &member_id, spec, now)
            }
            GroupState::Empty | GroupState::Dead => fail(ResponseError::UnknownMemberId),
        }
    }

    fn add_member_and_rebalance(
        &self,
        group: &mut Group,
        member_id: String,
        spec: MemberSpec,
        now: Instant,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let protocol_type = spec.protocol_type.clone();
        let mut member = Member::new(member_id, spec, now);
        member.join_waiter = Some(tx);
        group.add_member(member, protocol_type);
        group.maybe_prepare_rebalance(now, self.initial_delay());
        group.try_complete_join(now);
        Reply::Wait(rx)
    }

    fn update_member_and_rebalance(
        &self,
        group: &mut Group,
        member_id: &str,
        spec: MemberSpec,
        now: Instant,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        group.replace_protocols(member_id, spec.protocols);
        if let Some(member) = group.members.get_mut(member_id) {
            member.session_timeout_ms = spec.session_timeout_ms;
            member.rebalance_timeout_ms = spec.rebalance_timeout_ms;
            member.last_heartbeat = now;
            if let Some(previous) = member.join_waiter.replace(tx) {
                let _ = previous.send(JoinOutcome::error(
                    ResponseError::RebalanceInProgress,
                    member_id.to_string(),
                ));
            }
        }
        group.maybe_prepare_rebalance(now, self.initial_delay());
        group.try_complete_join(now);
        Reply::Wait(rx)
    }

    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        self.ensure_sweeper();
        let (reply, leader_completed) = self.sync_locked(&req, version);
        if leader_completed {
            // Kafka stores the new assignment before answering the leader.
            if let Err(e) = self.persist_group(&req.group_id.0).await {
                tracing::warn!(group = %req.group_id.0.as_str(), error = %e, "writing group metadata failed");
            }
        }
        let outcome = match reply {
            Reply::Now(outcome) => outcome,
            Reply::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| SyncOutcome::error(ResponseError::UnknownMemberId)),
        };
        let mut resp = SyncGroupResponse::default()
            .with_error_code(outcome.error)
            .with_assignment(outcome.assignment);
        if version >= 5 {
            resp.protocol_type = outcome.protocol_type.map(StrBytes::from_string);
            resp.protocol_name = outcome.protocol_name.map(StrBytes::from_string);
        }
        resp
    }

    /// Returns the reply and whether this was the leader's sync that stabilised the group.
    fn sync_locked(&self, req: &SyncGroupRequest, version: i16) -> (Reply<SyncOutcome>, bool) {
        let fail = |error| (Reply::Now(SyncOutcome::error(error)), false);
        if let Some(e) = self.not_coordinating(req.group_id.0.as_str()) {
            return fail(e);
        }
        let member_id = req.member_id.as_str();
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(req.group_id.0.as_str()) else {
            return fail(ResponseError::UnknownMemberId);
        };
        if group.state == GroupState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        if !group.members.contains_key(member_id) {
            return fail(ResponseError::UnknownMemberId);
        }
        let instance_id = if version >= 3 {
            req.group_instance_id.as_deref()
        } else {
            None
        };
        if group.is_fenced(member_id, instance_id) {
            return fail(ResponseError::FencedInstanceId);
        }
        if req.generation_id != group.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        if version >= 5 {
            let type_mismatch = req
                .protocol_type
                .as_deref()
                .is_some_and(|t| group.protocol_type.as_deref() != Some(t));
            let name_mismatch = req
                .protocol_name
                .as_deref()
                .is_some_and(|n| group.protocol_name.as_deref() != Some(n));
            if type_mismatch || name_mismatch {
                return fail(ResponseError::InconsistentGroupProtocol);
            }
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                if let Some(member) = group.members.get_mut(member_id) {
                    member.last_heartbeat = now;
                }
                (Reply::Now(group.sync_outcome(member_id)), false)
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(member) = group.members.get_mut(member_id) {
                    member.last_heartbeat = now;
                    if let Some(previous) = member.sync_waiter.replace(tx) {
                        let _ =
                            previous.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
                    }
                }
                let is_leader = group.leader.as_deref() == Some(member_id);
                if is_leader {
                    let assignments: HashMap<String, Bytes> = req
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                        .collect();
                    group.complete_sync(assignments);
                    // Persisted by the caller, after the lock is released.
                    group.take_metadata_changed();
                }
                (Reply::Wait(rx), is_leader)
            }
        }
    }

    pub async fn heartbeat(&self, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
        self.ensure_sweeper();
        let instance_id = if version >= 3 {
            req.group_instance_id.as_deref()
        } else {
            None
        };
        let error = self.heartbeat_locked(&req, instance_id);
        HeartbeatResponse::default().with_error_code(error.map_or(0, |e| e.code()))
    }

    fn heartbeat_locked(
        &self,
        req: &HeartbeatRequest,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        let member_id = req.member_id.as_str();
        if let Some(e) = self.not_coordinating(req.group_id.0.as_str()) {
            return Some(e);
        }
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(req.group_id.0.as_str()) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if group.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(member_id, instance_id) {
            return Some(ResponseError::FencedInstanceId);
        }
        if !group.members.contains_key(member_id) {
            return Some(ResponseError::UnknownMemberId);
        }
        if req.generation_id != group.generation {
            return Some(ResponseError::IllegalGeneration);
        }
        let state = group.state;
        if let Some(member) = group.members.get_mut(member_id) {
            member.last_heartbeat = Instant::now();
        }
        match state {
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => None,
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
        }
    }

    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        self.ensure_sweeper();
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let (top_error, results) = self.leave_locked(req.group_id.0.as_str(), &leaving);
        if version >= 3 {
            LeaveGroupResponse::default()
                .with_error_code(top_error.map_or(0, |e| e.code()))
                .with_members(
                    leaving
                        .into_iter()
                        .zip(results)
                        .map(|((member_id, instance_id), error)| {
                            MemberResponse::default()
                                .with_member_id(StrBytes::from_string(member_id))
                                .with_group_instance_id(instance_id.map(StrBytes::from_string))
                                .with_error_code(error.map_or(0, |e| e.code()))
                        })
                        .collect(),
                )
        } else {
            let error = top_error.or_else(|| results.into_iter().next().flatten());
            LeaveGroupResponse::default().with_error_code(error.map_or(0, |e| e.code()))
        }
    }

    /// Returns the group-level error and one result per leaving member.
    fn leave_locked(
        &self,
        group_id: &str,
        leaving: &[(String, Option<String>)],
    ) -> (Option<ResponseError>, Vec<Option<ResponseError>>) {
        if let Some(e) = self.not_coordinating(group_id) {
            return (Some(e), vec![None; leaving.len()]);
        }
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return (
                None,
                vec![Some(ResponseError::UnknownMemberId); leaving.len()],
            );
        };
        if group.state == GroupState::Dead {
            return (
                Some(ResponseError::CoordinatorNotAvailable),
                vec![None; leaving.len()],
            );
        }
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, instance_id) in leaving {
            let target = match instance_id {
                Some(instance) => match group.static_members.get(instance) {
                    Some(owner) if member_id.is_empty() || owner == member_id => Ok(owner.clone()),
                    Some(_) => Err(ResponseError::FencedInstanceId),
                    None => Err(ResponseError::UnknownMemberId),
                },
                None if group.members.contains_key(member_id) => Ok(member_id.clone()),
                None => Err(ResponseError::UnknownMemberId),
            };
            if instance_id.is_none() && group.pending_members.remove(member_id).is_some() {
                group.try_complete_join(now);
                results.push(None);
                continue;
            }
            match target {
                Ok(target) => {
                    tracing::info!(group = %group_id, member = %target, "member left the group");
                    group.remove_member_and_rebalance(
                        &target,
                        ResponseError::UnknownMemberId,
                        now,
                        self.initial_delay(),
                    );
                    results.push(None);
                }
                Err(error) => results.push(Some(error)),
            }
        }
        if group.take_metadata_changed() {
            self.spawn_persist_group(group.id.clone());
        }
        (None, results)
    }

    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        self.ensure_sweeper();
        let groups = self.groups.lock();
        let described = first_of_each(&req.groups, |g| g.0.clone())
            .into_iter()
            .map(|group_id| {
                let mut described = match groups.get(group_id.0.as_str()) {
                    _ if self.not_coordinating(group_id.0.as_str()).is_some() => {
                        DescribedGroup::default()
                            .with_group_id(group_id.clone())
                            .with_error_code(ResponseError::NotCoordinator.code())
                    }
                    Some(group) if group.state != GroupState::Dead => describe(group, version),
                    _ if version >= 6 => DescribedGroup::default()
                        .with_group_id(group_id.clone())
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Group {} not found.",
                            group_id.0.as_str()
                        ))))
                        .with_group_state(StrBytes::from_static_str("Dead")),
                    _ => DescribedGroup::default()
                        .with_group_id(group_id.clone())
                        .with_group_state(StrBytes::from_static_str("Dead")),
                };
                if version >= 3 && req.include_authorized_operations {
                    described.authorized_operations = GROUP_AUTHORIZED_OPERATIONS;
                }
                described
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(described)
    }

    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        self.ensure_sweeper();
        let states: Vec<String> = if version >= 4 {
            req.states_filter
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if version >= 5 {
            req.types_filter
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect()
        } else {
            Vec::new()
        };
        let groups = self.groups.lock();
        let mut listed: Vec<ListedGroup> = groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .filter(|g| states.is_empty() || states.contains(&g.state.name().to_ascii_lowercase()))
            .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
            .map(|g| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.id.clone())))
                    .with_protocol_type(StrBytes::from_string(
                        g.protocol_type.clone().unwrap_or_default(),
                    ));
                if version >= 4 {
                    listed.group_state = StrBytes::from_static_str(g.state.name());
                }
                if version >= 5 {
                    listed.group_type = StrBytes::from_static_str("classic");
                }
                listed
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        ListGroupsResponse::default().with_groups(listed)
    }

    /// Test and diagnostics helper: current state of a group, if it exists.
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.lock().get(group_id).map(|g| g.state)
    }
}

fn describe(group: &Group, version: i16) -> DescribedGroup {
    let stable = group.state == GroupState::Stable;
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let members = group
        .members
        .values()
        .map(|m| {
            let mut member = DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(m.id.clone()))
                .with_client_id(StrBytes::from_string(m.client_id.clone()))
                .with_client_host(StrBytes::from_string(m.client_host.clone()));
            // Like Kafka, metadata and assignment are only meaningful once the group is Stable.
            if stable {
                member.member_metadata = m.metadata_for(&protocol);
                member.member_assignment = m.assignment.clone();
            }
            if version >= 4 {
                member.group_instance_id = m.instance_id.clone().map(StrBytes::from_string);
            }
            member
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(group.id.clone())))
        .with_group_state(StrBytes::from_static_str(group.state.name()))
        .with_protocol_type(StrBytes::from_string(
            group.protocol_type.clone().unwrap_or_default(),
        ))
        .with_protocol_data(StrBytes::from_string(if stable {
            protocol
        } else {
            String::new()
        }))
        .with_members(members)
}

fn join_response(outcome: JoinOutcome, version: i16) -> JoinGroupResponse {
    let members = outcome
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.group_instance_id = m.instance_id.map(StrBytes::from_string);
            }
            member
        })
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(outcome.error)
        .with_generation_id(outcome.generation)
        .with_leader(StrBytes::from_string(outcome.leader))
        .with_member_id(StrBytes::from_string(outcome.member_id))
        .with_members(members);
    if version >= 7 {
        resp.protocol_type = outcome.protocol_type.map(StrBytes::from_string);
        resp.protocol_name = outcome.protocol_name.map(StrBytes::from_string);
    } else {
        // Not nullable before v7.
        resp.protocol_name = Some(StrBytes::from_string(
            outcome.protocol_name.unwrap_or_default(),
        ));
    }
    resp
}

/// Wall-clock milliseconds since the epoch, as Kafka timestamps are.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
