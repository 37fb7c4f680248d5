//! In-memory state of one consumer group and its rebalance state machine
//! (Empty → PreparingRebalance → CompletingRebalance → Stable, and Dead while being removed).
//!
//! Everything here is synchronous and runs under the coordinator's lock; members waiting for a
//! JoinGroup or SyncGroup answer are parked as `oneshot` senders on their `Member`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::records::{GroupValue, MemberValue, OffsetValue};

/// The states of a classic group, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone)]
pub(crate) struct JoinedMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// Version-independent JoinGroup answer; the caller turns it into the versioned response.
#[derive(Debug)]
pub(crate) struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
}

impl JoinOutcome {
    pub fn error(error: ResponseError, member_id: String) -> Self {
        Self {
            error: error.code(),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id,
            members: Vec::new(),
        }
    }
}

/// Version-independent SyncGroup answer.
#[derive(Debug)]
pub(crate) struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ResponseError) -> Self {
        Self {
            error: error.code(),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// What a JoinGroup request says about the member sending it.
pub(crate) struct MemberSpec {
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
}

pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    pub last_heartbeat: Instant,
}

impl Member {
    pub fn new(id: String, spec: MemberSpec, now: Instant) -> Self {
        Self {
            id,
            instance_id: spec.instance_id,
            client_id: spec.client_id,
            client_host: spec.client_host,
            rebalance_timeout_ms: spec.rebalance_timeout_ms,
            session_timeout_ms: spec.session_timeout_ms,
            protocols: distinct_protocols(spec.protocols),
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            last_heartbeat: now,
        }
    }

    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    pub fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Members parked in a JoinGroup or SyncGroup cannot heartbeat, so they must not expire.
    fn session_expired(&self, now: Instant) -> bool {
        let session = Duration::from_millis(self.session_timeout_ms.max(0) as u64);
        self.join_waiter.is_none()
            && self.sync_waiter.is_none()
            && now.duration_since(self.last_heartbeat) > session
    }

    /// Answers any parked JoinGroup/SyncGroup of a member that is being removed or replaced.
    fn fail_waiters(&mut self, error: ResponseError) {
        if let Some(waiter) = self.join_waiter.take() {
            let _ = waiter.send(JoinOutcome::error(error, self.id.clone()));
        }
        if let Some(waiter) = self.sync_waiter.take() {
            let _ = waiter.send(SyncOutcome::error(error));
        }
    }
}

pub(crate) type CommittedOffset = OffsetValue;

/// Bookkeeping of the PreparingRebalance phase.
struct RebalanceTimer {
    deadline: Instant,
    /// Set while the first rebalance of an empty group is held back by
    /// `group.initial.rebalance.delay.ms`.
    initial_delay: Option<InitialDelay>,
}

struct InitialDelay {
    delay: Duration,
    /// How much of the rebalance timeout is left for further extensions.
    remaining: Duration,
    new_member_added: bool,
}

pub(crate) struct Group {
    pub id: String,
    /// `__consumer_offsets` partition holding this group.
    pub partition: i32,
    pub state: GroupState,
    pub generation: i32,
    /// `None` for groups that only store offsets (standalone consumers, admin tools).
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id → member id of static members.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or their session expires.
    pub pending_members: HashMap<String, Instant>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Wall-clock time of the last transition to Empty, used for offset retention.
    pub state_timestamp_ms: Option<i64>,
    rebalance: Option<RebalanceTimer>,
    /// Set when the group reached a state that Kafka records in `__consumer_offsets`.
    metadata_changed: bool,
    /// How many members support each protocol name, as Kafka keeps it: a join is checked in time linear in
    /// the protocols it names, however many members and protocols the group has.
    supported: HashMap<String, usize>,
}

/// A member's protocols with each name once (its first, preferred, occurrence).
fn distinct_protocols(protocols: Vec<(String, Bytes)>) -> Vec<(String, Bytes)> {
    crate::repeats::first_of_each(protocols, |(name, _)| name.clone())
}

impl Group {
    pub fn new(id: String, partition: i32) -> Self {
        Self {
            id,
            partition,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            offsets: BTreeMap::new(),
            state_timestamp_ms: None,
            rebalance: None,
            metadata_changed: false,
            supported: HashMap::new(),
        }
    }

    fn count_protocols(&mut self, protocols: &[(String, Bytes)]) {
        for (name, _) in protocols {
            *self.supported.entry(name.clone()).or_default() += 1;
        }
    }

    fn uncount_protocols(&mut self, protocols: &[(String, Bytes)]) {
        for (name, _) in protocols {
            if let Some(n) = self.supported.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    self.supported.remove(name);
                }
            }
        }
    }

    /// Supported by every member.
    fn supported_by_all(&self, protocol: &str) -> bool {
        self.supported.get(protocol) == Some(&self.members.len())
    }

    /// A rejoining member's new protocols.
    pub fn replace_protocols(&mut self, member_id: &str, protocols: Vec<(String, Bytes)>) {
        let protocols = distinct_protocols(protocols);
        let Some(old) = self
            .members
            .get_mut(member_id)
            .map(|m| std::mem::replace(&mut m.protocols, protocols))
        else {
            return;
        };
        self.uncount_protocols(&old);
        if let Some(new) = self.members.get(member_id).map(|m| m.protocols.clone()) {
            self.count_protocols(&new);
        }
    }

    pub fn take_metadata_changed(&mut self) -> bool {
        std::mem::take(&mut self.metadata_changed)
    }

    /// Kafka's rule: the first member fixes the protocol type; later members must share it and
    /// at least one protocol that every current member supports.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.supported_by_all(name))
    }

    pub fn add_member(&mut self, member: Member, protocol_type: String) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type);
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.pending_members.remove(&member.id);
        if let Some(RebalanceTimer {
            initial_delay: Some(delay),
            ..
        }) = &mut self.rebalance
        {
            delay.new_member_added = true;
        }
        self.count_protocols(&member.protocols);
        if let Some(replaced) = self.members.insert(member.id.clone(), member) {
            self.uncount_protocols(&replaced.protocols);
        }
    }

    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        self.uncount_protocols(&member.protocols);
        if let Some(instance) = &member.instance_id
            && self.static_members.get(instance) == Some(&member.id)
        {
            self.static_members.remove(instance);
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        Some(member)
    }

    /// Removes a member that left, was fenced or expired, and moves the group on.
    pub fn remove_member_and_rebalance(
        &mut self,
        member_id: &str,
        error_for_waiters: ResponseError,
        now: Instant,
        initial_delay: Duration,
    ) {
        let Some(mut member) = self.remove_member(member_id) else {
            return;
        };
        member.fail_waiters(error_for_waiters);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, initial_delay);
                self.try_complete_join(now);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn max_rebalance_timeout(&self) -> Duration {
        let ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0);
        Duration::from_millis(ms)
    }

    /// Starts a rebalance unless one is already running.
    pub fn maybe_prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        if matches!(
            self.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now, initial_delay);
        }
    }

    fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        if self.state == GroupState::CompletingRebalance {
            // The assignment being synced is for a membership that no longer holds.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let timeout = self.max_rebalance_timeout();
        self.rebalance = Some(
            if self.state == GroupState::Empty && !initial_delay.is_zero() {
                let delay = initial_delay.min(timeout);
                RebalanceTimer {
                    deadline: now + delay,
                    initial_delay: Some(InitialDelay {
                        delay: initial_delay,
                        remaining: timeout.saturating_sub(delay),
                        new_member_added: false,
                    }),
                }
            } else {
                RebalanceTimer {
                    deadline: now + timeout,
                    initial_delay: None,
                }
            },
        );
        self.state = GroupState::PreparingRebalance;
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Finishes the join phase early once every member has rejoined (not during the initial
    /// delay, whose purpose is to wait for members we do not know about yet).
    pub fn try_complete_join(&mut self, now: Instant) {
        let delayed = matches!(
            &self.rebalance,
            Some(RebalanceTimer {
                initial_delay: Some(_),
                ..
            })
        );
        if self.state == GroupState::PreparingRebalance && !delayed && self.all_members_joined() {
            self.complete_join(now);
        }
    }

    /// Periodic check: expires sessions and pending member ids, and ends a join phase whose
    /// deadline passed.
    pub fn tick(&mut self, now: Instant, initial_delay: Duration) {
        let before = self.pending_members.len();
        self.pending_members.retain(|_, deadline| *deadline > now);
        if self.pending_members.len() != before {
            self.try_complete_join(now);
        }

        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_expired(now))
            .map(|m| m.id.clone())
            .collect();
        for member_id in expired {
            tracing::info!(group = %self.id, member = %member_id, "member session expired");
            self.remove_member_and_rebalance(
                &member_id,
                ResponseError::UnknownMemberId,
                now,
                initial_delay,
            );
        }

        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let Some(timer) = &mut self.rebalance else {
            return;
        };
        if timer.deadline > now {
            return;
        }
        if let Some(delay) = &mut timer.initial_delay
            && delay.new_member_added
            && !delay.remaining.is_zero()
        {
            let step = delay.delay.min(delay.remaining);
            delay.remaining -= step;
            delay.new_member_added = false;
            timer.deadline = now + step;
            return;
        }
        self.complete_join(now);
    }

    /// Ends the join phase: drops dynamic members that did not rejoin, bumps the generation and
    /// answers every parked JoinGroup.
    fn complete_join(&mut self, now: Instant) {
        self.rebalance = None;
        // Static members keep their slot until their session expires (KIP-345).
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for member_id in missing {
            tracing::info!(group = %self.id, member = %member_id, "member did not rejoin in time");
            self.remove_member(&member_id);
        }

        if self.members.is_empty() {
            self.generation += 1;
            self.protocol_name = None;
            self.leader = None;
            self.become_empty();
            return;
        }

        let leader_rejoined = self
            .leader
            .as_ref()
            .and_then(|id| self.members.get(id))
            .is_some_and(|m| m.join_waiter.is_some());
        if !leader_rejoined {
            match self.members.values().find(|m| m.join_waiter.is_some()) {
                Some(member) => self.leader = Some(member.id.clone()),
                None => {
                    // Only static members that have not rejoined yet: give them another round.
                    self.rebalance = Some(RebalanceTimer {
                        deadline: now + self.max_rebalance_timeout(),
                        initial_delay: None,
                    });
                    return;
                }
            }
        }

        self.generation += 1;
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;

        let joined: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_some())
            .map(|m| m.id.clone())
            .collect();
        for member_id in joined {
            let outcome = self.current_join_outcome(&member_id);
            if let Some(member) = self.members.get_mut(&member_id) {
                member.last_heartbeat = now;
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(outcome);
                }
            }
        }
    }

    fn become_empty(&mut self) {
        self.state = GroupState::Empty;
        self.state_timestamp_ms = Some(super::coordinator::now_ms());
        self.metadata_changed = true;
    }

    /// Kafka's choice: among protocols every member supports, each member votes for its most
    /// preferred one; most votes wins, ties going to the leader's preference.
    fn select_protocol(&self) -> Option<String> {
        let leader = self.leader.as_ref().and_then(|id| self.members.get(id))?;
        let candidates: Vec<&str> = leader
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.supported_by_all(name))
            .collect();
        let candidate_set: HashSet<&str> = candidates.iter().copied().collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidate_set.contains(name.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for candidate in candidates {
            let count = votes.get(candidate).copied().unwrap_or(0);
            if best.is_none_or(|(_, best_count)| count > best_count) {
                best = Some((candidate, count));
            }
        }
        best.map(|(name, _)| name.to_string())
    }

    /// The JoinGroup answer for the current generation; only the leader gets the member list.
    pub fn current_join_outcome(&self, member_id: &str) -> JoinOutcome {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member_id);
        let members = if is_leader {
            self.members
                .values()
                .map(|m| JoinedMember {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        }
    }

    pub fn sync_outcome(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// The leader's SyncGroup: install the assignments and release every waiting member.
    pub fn complete_sync(&mut self, mut assignments: HashMap<String, Bytes>) {
        for member in self.members.values_mut() {
            member.assignment = assignments.remove(&member.id).unwrap_or_default();
        }
        self.state = GroupState::Stable;
        self.metadata_changed = true;
        let waiting: Vec<String> = self
            .members
            .values()
            .filter(|m| m.sync_waiter.is_some())
            .map(|m| m.id.clone())
            .collect();
        for member_id in waiting {
            let outcome = self.sync_outcome(&member_id);
            if let Some(waiter) = self
                .members
                .get_mut(&member_id)
                .and_then(|m| m.sync_waiter.take())
            {
                let _ = waiter.send(outcome);
            }
        }
    }

    /// True when `instance_id` belongs to a different member than `member_id` (KIP-345 fencing).
    pub fn is_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|instance| self.static_members.get(instance))
            .is_some_and(|owner| owner != member_id)
    }

    /// Answers every parked request, used at shutdown.
    pub fn fail_all_waiters(&mut self, error: ResponseError) {
        for member in self.members.values_mut() {
            member.fail_waiters(error);
        }
    }

    /// What Kafka records for this group in `__consumer_offsets`, if anything: only managed
    /// groups (with a protocol type) in a settled state are written.
    pub fn metadata_value(&self) -> Option<GroupValue> {
        let protocol_type = self.protocol_type.clone()?;
        let members = match self.state {
            GroupState::Empty => Vec::new(),
            GroupState::Stable => {
                let protocol = self.protocol_name.clone().unwrap_or_default();
                self.members
                    .values()
                    .map(|m| MemberValue {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        subscription: m.metadata_for(&protocol),
                        assignment: m.assignment.clone(),
                    })
                    .collect()
            }
            _ => return None,
        };
        Some(GroupValue {
            protocol_type,
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms.unwrap_or(-1),
            members,
        })
    }

    /// Rebuilds membership from a replayed group metadata record. Restored members get a fresh
    /// session, so clients that are still alive carry on without rejoining.
    pub fn restore(&mut self, value: GroupValue, now: Instant) {
        self.members.clear();
        self.supported.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.rebalance = None;
        self.protocol_type = Some(value.protocol_type).filter(|t| !t.is_empty());
        self.generation = value.generation;
        self.protocol_name = value.protocol;
        self.leader = value.leader;
        self.state_timestamp_ms =
            (value.state_timestamp_ms >= 0).then_some(value.state_timestamp_ms);
        let protocol = self.protocol_name.clone().unwrap_or_default();
        for m in value.members {
            if let Some(instance) = &m.instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            self.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    last_heartbeat: now,
                },
            );
        }
        for member in self.members.values() {
            for (name, _) in &member.protocols {
                *self.supported.entry(name.clone()).or_default() += 1;
            }
        }
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader = None;
        } else {
            self.state = GroupState::Stable;
            if self
                .leader
                .as_ref()
                .is_none_or(|l| !self.members.contains_key(l))
            {
                self.leader = self.members.keys().next().cloned();
            }
        }
    }

    /// Forgets membership after a group metadata tombstone; offsets are handled separately.
    pub fn clear_metadata(&mut self) {
        *self = Group {
            offsets: std::mem::take(&mut self.offsets),
            ..Group::new(std::mem::take(&mut self.id), self.partition)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(protocols: &[&str]) -> Vec<(String, Bytes)> {
        protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::new()))
            .collect()
    }

    fn member_with(id: &str, protocols: Vec<(String, Bytes)>) -> Member {
        let spec = MemberSpec {
            instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            rebalance_timeout_ms: 1000,
            session_timeout_ms: 1000,
            protocol_type: "consumer".into(),
            protocols,
        };
        Member::new(id.into(), spec, Instant::now())
    }

    #[test]
    fn protocol_support_follows_joins_leaves_and_rejoins() {
        let mut g = Group::new("g".into(), 0);
        let member = |id, p: &[&str]| member_with(id, names(p));
        g.add_member(
            member("a", &["range", "roundrobin", "range"]),
            "consumer".into(),
        );
        g.add_member(member("b", &["roundrobin", "sticky"]), "consumer".into());
        assert!(g.supports_protocols("consumer", &names(&["roundrobin"])));
        assert!(!g.supports_protocols("consumer", &names(&["range", "sticky"])));
        assert!(!g.supports_protocols("connect", &names(&["roundrobin"])));
        g.replace_protocols("b", names(&["range"]));
        assert!(g.supports_protocols("consumer", &names(&["range"])));
        assert!(!g.supports_protocols("consumer", &names(&["roundrobin"])));
        g.remove_member("b");
        assert!(g.supports_protocols("consumer", &names(&["roundrobin"])));
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
    }

    /// A member naming a huge number of protocols costs time linear in what it names, not the product of
    /// its protocols and everyone else's (hours, when support was checked member by member).
    #[test]
    fn many_protocols_are_matched_without_a_quadratic_scan() {
        let mut g = Group::new("g".into(), 0);
        let first: Vec<(String, Bytes)> = (0..100_000)
            .map(|i| (format!("p{i}"), Bytes::new()))
            .collect();
        g.add_member(member_with("a", first), "consumer".into());
        let mut second: Vec<(String, Bytes)> = (0..100_000)
            .map(|i| (format!("q{i}"), Bytes::new()))
            .collect();
        second.push(("p99999".into(), Bytes::new()));
        assert!(g.supports_protocols("consumer", &second));
        g.add_member(member_with("b", second), "consumer".into());
        assert_eq!(g.select_protocol().as_deref(), Some("p99999"));
    }
}
