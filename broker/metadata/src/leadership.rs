//! Who leads each partition and who is in sync, as the active controller decides it: the partition changes
//! that fencing or unfencing a broker calls for, a leader's AlterPartition (its ISR shrinking or growing), leader
//! elections (preferred, unclean, automatic rebalance), and partition reassignment. Each decision reads an
//! image and answers records; nothing here does I/O or reads a clock.
//!
//! The rules are Kafka's (`PartitionChangeBuilder`): a leader comes from the ISR, in replica order, and only a
//! live (registered, unfenced) broker leads; the ISR is never empty (the last member stays when it is fenced,
//! so the partition waits for it); the leader epoch moves when the leader changes or a replica leaves the
//! replica set, the partition epoch on every change. An unclean election (`unclean.leader.election.enable`)
//! may pick a live replica outside the ISR when no ISR member is live, at the cost of what only the ISR had.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::MetadataRecord;
use crate::image::{MetadataImage, NO_LEADER, PartitionState, TopicMeta};

/// The topic config (and broker default) that allows electing a leader outside the ISR.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

/// At most this many preferred-leader elections per automatic rebalance, so one run never makes a huge batch.
pub const MAX_ELECTIONS_PER_REBALANCE: usize = 1000;

fn unclean_allowed(topic: &TopicMeta, default: bool) -> bool {
    topic
        .configs
        .get(UNCLEAN_LEADER_ELECTION)
        .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
}

/// Who may lead: registered and unfenced, with `except` counted as down and `also` as up (a broker whose
/// fencing or unfencing is being decided, before the image has it).
struct Liveness<'a> {
    image: &'a MetadataImage,
    except: Option<i32>,
    also: Option<i32>,
}

impl Liveness<'_> {
    fn live(&self, broker: i32) -> bool {
        if self.except == Some(broker) {
            return false;
        }
        self.also == Some(broker) || self.image.is_live(broker)
    }
}

/// The state after a change: `proposed` carries the new replicas, ISR and reassignment, and the leader to keep
/// if it still may lead; a new one is elected otherwise. `None` when nothing changed.
fn settle(
    current: &PartitionState,
    mut proposed: PartitionState,
    live: &Liveness<'_>,
    unclean: bool,
) -> Option<PartitionState> {
    if proposed.isr.is_empty() {
        proposed.isr = current.isr.clone();
    }
    let keeps = proposed.leader != NO_LEADER
        && proposed.isr.contains(&proposed.leader)
        && proposed.replicas.contains(&proposed.leader)
        && live.live(proposed.leader);
    if !keeps {
        // Replicas being removed lead only when no replica that stays can.
        let order: Vec<i32> = proposed
            .replicas
            .iter()
            .copied()
            .filter(|r| !proposed.removing.contains(r))
            .chain(proposed.removing.iter().copied())
            .collect();
        proposed.leader = match order
            .iter()
            .find(|r| proposed.isr.contains(r) && live.live(**r))
        {
            Some(&r) => r,
            None => match order.iter().find(|r| unclean && live.live(**r)) {
                Some(&r) => {
                    proposed.isr = vec![r];
                    r
                }
                None => NO_LEADER,
            },
        };
    }
    let same = proposed.replicas == current.replicas
        && proposed.isr == current.isr
        && proposed.leader == current.leader
        && proposed.adding == current.adding
        && proposed.removing == current.removing;
    if same {
        return None;
    }
    let replica_left = current
        .replicas
        .iter()
        .any(|r| !proposed.replicas.contains(r));
    proposed.leader_epoch =
        current.leader_epoch + i32::from(proposed.leader != current.leader || replica_left);
    proposed.partition_epoch = current.partition_epoch + 1;
    Some(proposed)
}

fn changed(topic: &TopicMeta, partition: usize, state: PartitionState) -> MetadataRecord {
    MetadataRecord::PartitionChanged {
        topic: topic.name.clone(),
        topic_id: topic.id,
        partition: partition as i32,
        state,
    }
}

/// Fencing `broker` (its session ran out, it asked to shut down, or a new process took its id): it leaves
/// every ISR it is in unless it is the last member, and the partitions it led get a new leader from the rest
/// of the ISR, or none. Answers the fencing record followed by the partition changes.
pub fn fence(image: &MetadataImage, broker: i32, unclean_default: bool) -> Vec<MetadataRecord> {
    let live = Liveness {
        image,
        except: Some(broker),
        also: None,
    };
    let mut records = vec![MetadataRecord::BrokerFenced { broker_id: broker }];
    for topic in image.topics.values() {
        let unclean = unclean_allowed(topic, unclean_default);
        for (p, current) in topic.partition_states.iter().enumerate() {
            if current.leader != broker && !current.isr.contains(&broker) {
                continue;
            }
            let mut proposed = current.clone();
            proposed.isr.retain(|r| *r != broker);
            if let Some(state) = settle(current, proposed, &live, unclean) {
                records.push(changed(topic, p, state));
            }
        }
    }
    records
}

/// Unfencing `broker`: the partitions without a leader that it can lead (it is in their ISR, or an unclean
/// election is allowed) get it. Answers the unfencing record followed by the partition changes.
pub fn unfence(image: &MetadataImage, broker: i32, unclean_default: bool) -> Vec<MetadataRecord> {
    let live = Liveness {
        image,
        except: None,
        also: Some(broker),
    };
    let mut records = vec![MetadataRecord::BrokerUnfenced { broker_id: broker }];
    for topic in image.topics.values() {
        let unclean = unclean_allowed(topic, unclean_default);
        for (p, current) in topic.partition_states.iter().enumerate() {
            if current.leader != NO_LEADER || !current.replicas.contains(&broker) {
                continue;
            }
            if let Some(state) = settle(current, current.clone(), &live, unclean) {
                records.push(changed(topic, p, state));
            }
        }
    }
    records
}

/// Why an AlterPartition is refused, each Kafka's error for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterPartitionError {
    #[error("unknown topic")]
    UnknownTopic,
    #[error("unknown partition")]
    UnknownPartition,
    #[error("broker {0} does not lead this partition")]
    NotLeader(i32),
    #[error("leader epoch {0} is not the current one, {1}")]
    FencedLeaderEpoch(i32, i32),
    #[error("partition epoch {0} is not the current one, {1}")]
    InvalidUpdateVersion(i32, i32),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("replica {0} is fenced or unknown and cannot join the ISR")]
    IneligibleReplica(i32),
}

/// A leader's request to change its partition's ISR.
#[derive(Debug, Clone)]
pub struct IsrChange {
    pub broker_id: i32,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// Decides an AlterPartition: the partition's state afterwards, and the record that makes it so (`None` when
/// the ISR asked for is the current one). An ISR that now holds every replica a reassignment adds completes
/// the reassignment in the same change.
pub fn alter_partition(
    image: &MetadataImage,
    change: &IsrChange,
    unclean_default: bool,
) -> Result<(PartitionState, Option<MetadataRecord>), AlterPartitionError> {
    let topic = image
        .topic_by_id(&change.topic_id)
        .ok_or(AlterPartitionError::UnknownTopic)?;
    let index =
        usize::try_from(change.partition).map_err(|_| AlterPartitionError::UnknownPartition)?;
    let current = topic
        .partition_states
        .get(index)
        .ok_or(AlterPartitionError::UnknownPartition)?;
    if current.leader != change.broker_id {
        return Err(AlterPartitionError::NotLeader(change.broker_id));
    }
    if change.leader_epoch != current.leader_epoch {
        return Err(AlterPartitionError::FencedLeaderEpoch(
            change.leader_epoch,
            current.leader_epoch,
        ));
    }
    if change.partition_epoch != current.partition_epoch {
        return Err(AlterPartitionError::InvalidUpdateVersion(
            change.partition_epoch,
            current.partition_epoch,
        ));
    }
    let mut isr: Vec<i32> = Vec::with_capacity(change.new_isr.len());
    for r in &change.new_isr {
        if !isr.contains(r) {
            isr.push(*r);
        }
    }
    if !isr.contains(&current.leader) {
        return Err(AlterPartitionError::InvalidRequest(format!(
            "the ISR {isr:?} must hold the leader {}",
            current.leader
        )));
    }
    if let Some(r) = isr.iter().find(|r| !current.replicas.contains(r)) {
        return Err(AlterPartitionError::InvalidRequest(format!(
            "replica {r} is not a replica of this partition"
        )));
    }
    if let Some(r) = isr
        .iter()
        .find(|r| !current.isr.contains(r) && !image.is_live(**r))
    {
        return Err(AlterPartitionError::IneligibleReplica(*r));
    }
    let mut proposed = current.clone();
    proposed.isr = isr;
    let proposed = complete_reassignment(proposed);
    let live = Liveness {
        image,
        except: None,
        also: None,
    };
    match settle(
        current,
        proposed,
        &live,
        unclean_allowed(topic, unclean_default),
    ) {
        Some(state) => Ok((state.clone(), Some(changed(topic, index, state)))),
        None => Ok((current.clone(), None)),
    }
}

/// Which election ElectLeaders asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionKind {
    /// The first replica, if it is live and in sync.
    Preferred,
    /// Any live replica, when the partition has no leader.
    Unclean,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("the partition already has the leader this election would pick")]
    ElectionNotNeeded,
    #[error("the preferred leader is not live or not in sync")]
    PreferredLeaderNotAvailable,
    #[error("no live replica can lead")]
    EligibleLeadersNotAvailable,
}

/// One election of ElectLeaders: the record that changes the leader.
pub fn elect(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    kind: ElectionKind,
) -> Result<MetadataRecord, ElectionError> {
    let t = image
        .topics
        .get(topic)
        .ok_or(ElectionError::UnknownTopicOrPartition)?;
    let index = usize::try_from(partition).map_err(|_| ElectionError::UnknownTopicOrPartition)?;
    let current = t
        .partition_states
        .get(index)
        .ok_or(ElectionError::UnknownTopicOrPartition)?;
    let live = Liveness {
        image,
        except: None,
        also: None,
    };
    let state = match kind {
        ElectionKind::Preferred => {
            let preferred = *current
                .target_replicas()
                .first()
                .ok_or(ElectionError::PreferredLeaderNotAvailable)?;
            if current.leader == preferred {
                return Err(ElectionError::ElectionNotNeeded);
            }
            if !current.isr.contains(&preferred) || !live.live(preferred) {
                return Err(ElectionError::PreferredLeaderNotAvailable);
            }
            let mut proposed = current.clone();
            proposed.leader = preferred;
            settle(current, proposed, &live, false)
        }
        ElectionKind::Unclean => {
            if current.leader != NO_LEADER {
                return Err(ElectionError::ElectionNotNeeded);
            }
            settle(current, current.clone(), &live, true)
        }
    };
    match state {
        Some(s) if s.leader != NO_LEADER => Ok(changed(t, index, s)),
        _ => Err(ElectionError::EligibleLeadersNotAvailable),
    }
}

/// The automatic leader rebalance (`auto.leader.rebalance.enable`): every partition not led by its preferred
/// leader while that one is live and in sync gets it back, at most `MAX_ELECTIONS_PER_REBALANCE` at a time.
pub fn rebalance(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in 0..topic.partition_states.len() {
            if records.len() >= MAX_ELECTIONS_PER_REBALANCE {
                return records;
            }
            if let Ok(r) = elect(image, &topic.name, p as i32, ElectionKind::Preferred) {
                records.push(r);
            }
        }
    }
    records
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("no reassignment is in progress for this partition")]
    NoReassignmentInProgress,
}

/// A reassignment whose target replicas are all in sync is done: the replicas become the target, the rest
/// leave the ISR (and the leadership, if the leader is one of them).
fn complete_reassignment(mut state: PartitionState) -> PartitionState {
    if !state.is_reassigning() {
        return state;
    }
    let target = state.target_replicas();
    if target.iter().all(|r| state.isr.contains(r)) {
        state.isr.retain(|r| target.contains(r));
        state.replicas = target;
        state.adding.clear();
        state.removing.clear();
    }
    state
}

/// AlterPartitionReassignments for one partition: `target` replicas (the new preferred leader first), or
/// `None` to cancel the reassignment in progress. `brokers`: the broker ids replicas may go to. The new
/// replicas join the replica set at once and catch up as followers; the old ones leave when every new one is
/// in sync (`alter_partition` completes it then). Answers the change, `None` when the target is what the
/// partition already has.
pub fn reassign(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    brokers: &[i32],
    unclean_default: bool,
) -> Result<Option<MetadataRecord>, ReassignError> {
    let t = image
        .topics
        .get(topic)
        .ok_or(ReassignError::UnknownTopicOrPartition)?;
    let index = usize::try_from(partition).map_err(|_| ReassignError::UnknownTopicOrPartition)?;
    let current = t
        .partition_states
        .get(index)
        .ok_or(ReassignError::UnknownTopicOrPartition)?;
    // The replicas before any reassignment in flight.
    let original: Vec<i32> = current
        .replicas
        .iter()
        .copied()
        .filter(|r| !current.adding.contains(r))
        .collect();
    let mut proposed = current.clone();
    match target {
        None => {
            if !current.is_reassigning() {
                return Err(ReassignError::NoReassignmentInProgress);
            }
            proposed.replicas = original;
            proposed.isr.retain(|r| !current.adding.contains(r));
            proposed.adding.clear();
            proposed.removing.clear();
        }
        Some(target) => {
            if target.is_empty() {
                return Err(ReassignError::InvalidReplicaAssignment(
                    "the target replica list is empty".into(),
                ));
            }
            let mut seen = Vec::with_capacity(target.len());
            for r in target {
                if seen.contains(r) {
                    return Err(ReassignError::InvalidReplicaAssignment(format!(
                        "replica {r} is listed twice"
                    )));
                }
                if !brokers.contains(r) {
                    return Err(ReassignError::InvalidReplicaAssignment(format!(
                        "broker {r} is not registered"
                    )));
                }
                seen.push(*r);
            }
            let removing: Vec<i32> = original
                .iter()
                .copied()
                .filter(|r| !target.contains(r))
                .collect();
            proposed.adding = target
                .iter()
                .copied()
                .filter(|r| !original.contains(r))
                .collect();
            proposed.replicas = target
                .iter()
                .copied()
                .chain(removing.iter().copied())
                .collect();
            proposed.removing = removing;
            // Replicas of an earlier target that this one drops were never in sync for it: they go at once.
            proposed.isr.retain(|r| proposed.replicas.contains(r));
            proposed = complete_reassignment(proposed);
        }
    }
    let live = Liveness {
        image,
        except: None,
        also: None,
    };
    Ok(settle(
        current,
        proposed,
        &live,
        unclean_allowed(t, unclean_default),
    )
    .map(|s| changed(t, index, s)))
}

/// The partitions with a reassignment in progress, by topic: (partition, replicas, adding, removing).
pub fn reassignments(image: &MetadataImage) -> BTreeMap<String, Vec<(i32, &PartitionState)>> {
    let mut out: BTreeMap<String, Vec<(i32, &PartitionState)>> = BTreeMap::new();
    for topic in image.topics.values() {
        for (p, s) in topic.partition_states.iter().enumerate() {
            if s.is_reassigning() {
                out.entry(topic.name.clone())
                    .or_default()
                    .push((p as i32, s));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::{Endpoint, RegisteredBroker, Registration};

    const TOPIC: Uuid = Uuid::from_u128(42);

    /// Brokers 1..=n registered and unfenced, and topic "t" with these replica lists.
    fn image(n: i32, assignment: &[&[i32]]) -> MetadataImage {
        let mut image = MetadataImage::default();
        let mut offset = 0;
        let mut apply = |image: &mut MetadataImage, r: MetadataRecord| {
            image.apply_at(&r, offset);
            offset += 1;
        };
        for id in 1..=n {
            apply(
                &mut image,
                MetadataRecord::BrokerRegistered {
                    broker: RegisteredBroker {
                        registration: Registration {
                            broker_id: id,
                            incarnation: Uuid::from_u128(id as u128),
                            listeners: vec![Endpoint {
                                name: "PLAINTEXT".into(),
                                host: "localhost".into(),
                                port: 9000 + id as u16,
                                security_protocol: 0,
                            }],
                            rack: None,
                        },
                        epoch: -1,
                        fenced: false,
                    },
                },
            );
        }
        apply(
            &mut image,
            MetadataRecord::TopicCreated {
                name: "t".into(),
                id: TOPIC,
                partitions: assignment.len() as i32,
                replication_factor: assignment[0].len() as i16,
                configs: BTreeMap::new(),
                internal: false,
                assignment: assignment.iter().map(|a| a.to_vec()).collect(),
            },
        );
        image
    }

    fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            let next = image.offset + 1;
            image.apply_at(r, next);
        }
    }

    fn run(image: &mut MetadataImage, decide: impl FnOnce(&MetadataImage) -> Vec<MetadataRecord>) {
        let records = decide(image);
        apply_all(image, &records);
    }

    fn state(image: &MetadataImage, p: usize) -> PartitionState {
        image.topics["t"].partition_states[p].clone()
    }

    #[test]
    fn a_fenced_leader_hands_over_to_the_next_in_sync_replica() {
        let mut img = image(3, &[&[1, 2, 3], &[2, 3, 1], &[3]]);
        let records = fence(&img, 2, false);
        assert_eq!(records[0], MetadataRecord::BrokerFenced { broker_id: 2 });
        assert_eq!(
            records.len(),
            3,
            "partitions 0 and 1 hold broker 2: {records:?}"
        );
        apply_all(&mut img, &records);
        let p0 = state(&img, 0);
        assert_eq!((p0.leader, p0.isr.clone()), (1, vec![1, 3]));
        assert_eq!(
            (p0.leader_epoch, p0.partition_epoch),
            (0, 1),
            "a follower leaving bumps no leader epoch"
        );
        let p1 = state(&img, 1);
        assert_eq!((p1.leader, p1.isr.clone()), (3, vec![3, 1]));
        assert_eq!((p1.leader_epoch, p1.partition_epoch), (1, 1));
        assert_eq!(state(&img, 2).partition_epoch, 0, "untouched");
    }

    #[test]
    fn the_last_in_sync_replica_stays_and_leads_again_when_it_returns() {
        let mut img = image(2, &[&[1, 2]]);
        run(&mut img, |i| fence(i, 2, false));
        run(&mut img, |i| fence(i, 1, false));
        let p = state(&img, 0);
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
        // Broker 2 is back but was not in sync: it may not lead (no unclean election by default).
        let back = unfence(&img, 2, false);
        assert_eq!(back, vec![MetadataRecord::BrokerUnfenced { broker_id: 2 }]);
        apply_all(&mut img, &back);
        // Broker 1, the last in sync, returns and leads.
        let back = unfence(&img, 1, false);
        apply_all(&mut img, &back);
        let p = state(&img, 0);
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (1, vec![1], 2));
    }

    #[test]
    fn an_unclean_election_takes_a_live_replica_outside_the_isr() {
        let mut img = image(2, &[&[1, 2]]);
        run(&mut img, |i| fence(i, 2, false));
        run(&mut img, |i| fence(i, 1, false));
        // The broker default allows it.
        let back = unfence(&img, 2, true);
        apply_all(&mut img, &back);
        let p = state(&img, 0);
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
        // ElectLeaders(UNCLEAN) does the same when the default does not.
        let mut img = image(2, &[&[1, 2]]);
        run(&mut img, |i| fence(i, 2, false));
        run(&mut img, |i| fence(i, 1, false));
        run(&mut img, |i| unfence(i, 2, false));
        assert_eq!(
            elect(&img, "t", 0, ElectionKind::Preferred),
            Err(ElectionError::PreferredLeaderNotAvailable)
        );
        let r = elect(&img, "t", 0, ElectionKind::Unclean).unwrap();
        apply_all(&mut img, &[r]);
        assert_eq!(state(&img, 0).leader, 2);
        assert_eq!(
            elect(&img, "t", 0, ElectionKind::Unclean),
            Err(ElectionError::ElectionNotNeeded)
        );
    }

    #[test]
    fn the_topic_config_overrides_the_unclean_default() {
        let mut img = image(2, &[&[1, 2]]);
        img.topics
            .get_mut("t")
            .unwrap()
            .configs
            .insert(UNCLEAN_LEADER_ELECTION.into(), "true".into());
        run(&mut img, |i| fence(i, 2, false));
        run(&mut img, |i| fence(i, 1, false));
        run(&mut img, |i| unfence(i, 2, false));
        assert_eq!(state(&img, 0).leader, 2);
    }

    fn isr_change(img: &MetadataImage, broker: i32, isr: &[i32]) -> IsrChange {
        let s = state(img, 0);
        IsrChange {
            broker_id: broker,
            topic_id: TOPIC,
            partition: 0,
            leader_epoch: s.leader_epoch,
            partition_epoch: s.partition_epoch,
            new_isr: isr.to_vec(),
        }
    }

    #[test]
    fn alter_partition_checks_who_asks_and_on_which_state() {
        let mut img = image(3, &[&[1, 2, 3]]);
        let shrink = isr_change(&img, 1, &[1, 2]);
        let (after, record) = alter_partition(&img, &shrink, false).unwrap();
        assert_eq!(
            (after.isr.clone(), after.partition_epoch, after.leader_epoch),
            (vec![1, 2], 1, 0)
        );
        apply_all(&mut img, &[record.unwrap()]);
        // The same request again is built on a stale partition epoch.
        assert_eq!(
            alter_partition(&img, &shrink, false).unwrap_err(),
            AlterPartitionError::InvalidUpdateVersion(0, 1)
        );
        assert_eq!(
            alter_partition(&img, &isr_change(&img, 2, &[1, 2]), false).unwrap_err(),
            AlterPartitionError::NotLeader(2)
        );
        let mut stale = isr_change(&img, 1, &[1, 2, 3]);
        stale.leader_epoch -= 1;
        assert!(matches!(
            alter_partition(&img, &stale, false).unwrap_err(),
            AlterPartitionError::FencedLeaderEpoch(..)
        ));
        assert!(matches!(
            alter_partition(&img, &isr_change(&img, 1, &[2, 3]), false).unwrap_err(),
            AlterPartitionError::InvalidRequest(_)
        ));
        assert!(matches!(
            alter_partition(&img, &isr_change(&img, 1, &[1, 4]), false).unwrap_err(),
            AlterPartitionError::InvalidRequest(_)
        ));
        // A fenced broker cannot join.
        apply_all(&mut img, &[MetadataRecord::BrokerFenced { broker_id: 3 }]);
        assert_eq!(
            alter_partition(&img, &isr_change(&img, 1, &[1, 2, 3]), false).unwrap_err(),
            AlterPartitionError::IneligibleReplica(3)
        );
        apply_all(&mut img, &[MetadataRecord::BrokerUnfenced { broker_id: 3 }]);
        let (after, record) =
            alter_partition(&img, &isr_change(&img, 1, &[1, 2, 3, 3]), false).unwrap();
        assert_eq!(after.isr, vec![1, 2, 3]);
        apply_all(&mut img, &[record.unwrap()]);
        // Asking for the ISR it already has changes nothing.
        let (same, record) =
            alter_partition(&img, &isr_change(&img, 1, &[1, 2, 3]), false).unwrap();
        assert!(record.is_none());
        assert_eq!(same, state(&img, 0));
        let mut unknown = isr_change(&img, 1, &[1]);
        unknown.topic_id = Uuid::from_u128(7);
        assert_eq!(
            alter_partition(&img, &unknown, false).unwrap_err(),
            AlterPartitionError::UnknownTopic
        );
    }

    #[test]
    fn preferred_elections_and_rebalance_bring_leadership_back() {
        let mut img = image(3, &[&[1, 2, 3], &[2, 3, 1]]);
        run(&mut img, |i| fence(i, 1, false));
        assert_eq!(state(&img, 0).leader, 2);
        assert!(
            rebalance(&img).is_empty(),
            "broker 1 is down and out of sync"
        );
        run(&mut img, |i| unfence(i, 1, false));
        // Back, but not in sync yet: the preferred leader is not available.
        assert_eq!(
            elect(&img, "t", 0, ElectionKind::Preferred),
            Err(ElectionError::PreferredLeaderNotAvailable)
        );
        let (_, r) = alter_partition(&img, &isr_change(&img, 2, &[2, 3, 1]), false).unwrap();
        apply_all(&mut img, &[r.unwrap()]);
        let records = rebalance(&img);
        assert_eq!(records.len(), 1);
        apply_all(&mut img, &records);
        let p = state(&img, 0);
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
        assert_eq!(
            elect(&img, "t", 1, ElectionKind::Preferred),
            Err(ElectionError::ElectionNotNeeded)
        );
        assert_eq!(
            elect(&img, "nope", 0, ElectionKind::Preferred),
            Err(ElectionError::UnknownTopicOrPartition)
        );
    }

    #[test]
    fn a_reassignment_adds_first_and_removes_once_the_new_replicas_are_in_sync() {
        let mut img = image(4, &[&[1, 2, 3]]);
        let brokers = [1, 2, 3, 4];
        let r = reassign(&img, "t", 0, Some(&[4, 2, 3]), &brokers, false)
            .unwrap()
            .unwrap();
        apply_all(&mut img, &[r]);
        let p = state(&img, 0);
        assert_eq!(p.replicas, vec![4, 2, 3, 1]);
        assert_eq!((p.adding.clone(), p.removing.clone()), (vec![4], vec![1]));
        assert_eq!(
            (p.leader, p.isr.clone()),
            (1, vec![1, 2, 3]),
            "the old leader leads until the end"
        );
        assert_eq!(reassignments(&img)["t"].len(), 1);
        // Broker 4 caught up: the leader adds it to the ISR, which completes the move.
        let (after, r) = alter_partition(&img, &isr_change(&img, 1, &[1, 2, 3, 4]), false).unwrap();
        apply_all(&mut img, &[r.unwrap()]);
        assert_eq!(after.replicas, vec![4, 2, 3]);
        assert!(!after.is_reassigning());
        assert_eq!(after.isr, vec![2, 3, 4]);
        assert_eq!(
            (after.leader, after.leader_epoch),
            (4, 1),
            "broker 1 left, so the new preferred leader leads"
        );
        assert!(reassignments(&img).is_empty());
    }

    #[test]
    fn reassignments_are_validated_cancelled_and_replaced() {
        let mut img = image(5, &[&[1, 2, 3]]);
        let brokers = [1, 2, 3, 4, 5];
        for (target, what) in [
            (&[][..], "empty"),
            (&[1, 1, 2][..], "twice"),
            (&[1, 2, 9][..], "not registered"),
        ] {
            let e = reassign(&img, "t", 0, Some(target), &brokers, false).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
        assert_eq!(
            reassign(&img, "t", 0, None, &brokers, false).unwrap_err(),
            ReassignError::NoReassignmentInProgress
        );
        assert_eq!(
            reassign(&img, "t", 0, Some(&[1, 2, 3]), &brokers, false).unwrap(),
            None
        );
        // A reorder moves no data: done at once.
        let r = reassign(&img, "t", 0, Some(&[3, 1, 2]), &brokers, false)
            .unwrap()
            .unwrap();
        apply_all(&mut img, &[r]);
        assert_eq!(state(&img, 0).replicas, vec![3, 1, 2]);
        assert!(!state(&img, 0).is_reassigning());
        // Start one, then replace its target: broker 4 (never in sync) goes, 5 comes.
        let r = reassign(&img, "t", 0, Some(&[4, 1, 2]), &brokers, false)
            .unwrap()
            .unwrap();
        apply_all(&mut img, &[r]);
        let r = reassign(&img, "t", 0, Some(&[5, 1, 2]), &brokers, false)
            .unwrap()
            .unwrap();
        apply_all(&mut img, &[r]);
        let p = state(&img, 0);
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
            (vec![5, 1, 2, 3], vec![5], vec![3])
        );
        // Cancelled: back to the replicas before it (in the order the replica list holds them, as in Kafka).
        let r = reassign(&img, "t", 0, None, &brokers, false)
            .unwrap()
            .unwrap();
        apply_all(&mut img, &[r]);
        let p = state(&img, 0);
        assert_eq!(p.replicas, vec![1, 2, 3]);
        assert!(!p.is_reassigning());
        assert_eq!(p.isr, vec![1, 2, 3]);
    }

    #[test]
    fn epochs_move_as_kafka_moves_them() {
        let img = image(3, &[&[1, 2, 3]]);
        let current = state(&img, 0);
        let live = Liveness {
            image: &img,
            except: None,
            also: None,
        };
        assert_eq!(settle(&current, current.clone(), &live, false), None);
        let mut grow = current.clone();
        grow.isr = vec![1, 2];
        let s = settle(&current, grow, &live, false).unwrap();
        assert_eq!((s.leader_epoch, s.partition_epoch), (0, 1));
        let mut lead = current.clone();
        lead.leader = 3;
        let s = settle(&current, lead, &live, false).unwrap();
        assert_eq!((s.leader, s.leader_epoch, s.partition_epoch), (3, 1, 1));
    }
}
