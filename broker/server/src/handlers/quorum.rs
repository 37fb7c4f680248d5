//! DescribeQuorum (KIP-595/KIP-836), what `kafka-metadata-quorum describe` shows: the active controller, its
//! epoch, the high watermark of `__cluster_metadata` and each voter's and observer's (broker-only node's)
//! progress. Answered by the active
//! controller; other brokers forward it there. A single node on its local log is its own only voter.
//!
//! And KIP-853's voter changes (`kafka-metadata-quorum add-controller` / `remove-controller`), which only a
//! dynamic quorum (`controller.quorum.bootstrap.servers`) takes.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::update_raft_voter_response::CurrentLeader;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
    UpdateRaftVoterRequest, UpdateRaftVoterResponse,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use sluice_quorum::{Member, ProposeError};
use tracing::{info, warn};
use uuid::Uuid;

use crate::broker::{Broker, now_ms};
use crate::metadata::METADATA_TOPIC;

pub fn describe_quorum(
    broker: &Arc<Broker>,
    _req: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let controller_listener = broker
        .config
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".into());
    let (partition, nodes) = match broker.metadata.quorum() {
        Some(quorum) => {
            let status = quorum.describe();
            let replica = |v: &sluice_quorum::VoterStatus| {
                ReplicaState::default()
                    .with_replica_id(BrokerId(v.id as i32))
                    .with_replica_directory_id(v.directory_id.unwrap_or_default())
                    .with_log_end_offset(v.log_end_offset)
                    .with_last_fetch_timestamp(v.last_fetch_ms)
                    .with_last_caught_up_timestamp(v.last_caught_up_ms)
            };
            let voters = status.voters.iter().map(replica).collect();
            let observers = status.observers.iter().map(replica).collect();
            let nodes = status
                .voters
                .iter()
                .filter_map(|v| {
                    let (host, port) = v.address.rsplit_once(':')?;
                    Some(
                        Node::default()
                            .with_node_id(BrokerId(v.id as i32))
                            .with_listeners(vec![
                                Listener::default()
                                    .with_name(StrBytes::from_string(controller_listener.clone()))
                                    .with_host(StrBytes::from_string(
                                        host.trim_matches(['[', ']']).to_string(),
                                    ))
                                    .with_port(port.parse().ok()?),
                            ]),
                    )
                })
                .collect();
            (
                PartitionData::default()
                    .with_leader_id(BrokerId(status.leader.map_or(-1, |l| l as i32)))
                    .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
                    .with_high_watermark(status.high_watermark)
                    .with_current_voters(voters)
                    .with_observers(observers),
                nodes,
            )
        }
        None => {
            let end = broker.metadata.image().offset + 1;
            let now = now_ms();
            let me = ReplicaState::default()
                .with_replica_id(BrokerId(broker.node_id))
                .with_log_end_offset(end)
                .with_last_fetch_timestamp(now)
                .with_last_caught_up_timestamp(now);
            let nodes = broker
                .config
                .controller_listeners()
                .first()
                .map(|l| {
                    Node::default()
                        .with_node_id(BrokerId(broker.node_id))
                        .with_listeners(vec![
                            Listener::default()
                                .with_name(StrBytes::from_string(l.name.clone()))
                                .with_host(StrBytes::from_string(l.host.clone()))
                                .with_port(l.port),
                        ])
                })
                .into_iter()
                .collect();
            (
                PartitionData::default()
                    .with_leader_id(BrokerId(broker.node_id))
                    .with_leader_epoch(1)
                    .with_high_watermark(end)
                    .with_current_voters(vec![me]),
                nodes,
            )
        }
    };
    let mut resp = DescribeQuorumResponse::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![partition.with_partition_index(0)]),
    ]);
    if version >= 2 {
        resp.nodes = nodes;
        resp.error_message = None;
    }
    resp
}

/// Why a voter change cannot even be tried here, as Kafka answers it: a node without a dynamic quorum (its
/// voters fixed by `controller.quorum.voters`, Kafka's `kraft.version` 0) cannot change them, and a request
/// for another cluster changes nothing.
fn voter_change_quorum<'a>(
    broker: &'a Broker,
    cluster_id: Option<&StrBytes>,
) -> Result<&'a Arc<sluice_quorum::QuorumNode>, (ResponseError, String)> {
    let quorum = broker
        .metadata
        .quorum()
        .filter(|_| crate::bootstrap::is_dynamic(&broker.config));
    let Some(quorum) = quorum else {
        return Err((
            ResponseError::UnsupportedVersion,
            "the voters of this cluster are fixed by controller.quorum.voters; a quorum that changes its \
             voters is started with controller.quorum.bootstrap.servers"
                .into(),
        ));
    };
    if let Some(theirs) = cluster_id
        && theirs.as_str() != broker.cluster_id
    {
        return Err((
            ResponseError::InconsistentClusterId,
            format!(
                "the request is for cluster {theirs}, this is cluster {}",
                broker.cluster_id
            ),
        ));
    }
    Ok(quorum)
}

/// The Kafka error a refused voter change answers, with its message.
fn voter_change_error(e: ProposeError) -> (ResponseError, String) {
    let code = match &e {
        ProposeError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
        ProposeError::Timeout(_) => ResponseError::RequestTimedOut,
        ProposeError::DuplicateVoter(_) => ResponseError::DuplicateVoter,
        ProposeError::VoterNotFound(_) => ResponseError::VoterNotFound,
        ProposeError::Invalid(_) => ResponseError::InvalidRequest,
        ProposeError::Stopped(_) => ResponseError::UnknownServerError,
    };
    (code, e.to_string())
}

/// How long a voter change may take: the request's timeout, within reason.
fn voter_change_timeout(timeout_ms: i32) -> Duration {
    Duration::from_millis(timeout_ms.clamp(1_000, 600_000) as u64)
}

/// The `host:port` of `listeners`' endpoint for this cluster's controller listener (the first of
/// `controller.listener.names`), which is where the quorum reaches a voter.
fn controller_endpoint<'a>(
    broker: &Broker,
    listeners: impl Iterator<Item = (&'a StrBytes, &'a StrBytes, u16)>,
) -> Result<String, (ResponseError, String)> {
    let wanted = broker
        .config
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".into());
    let mut named = Vec::new();
    for (name, host, port) in listeners {
        if name.as_str().eq_ignore_ascii_case(&wanted) {
            return Ok(crate::config::join_host_port(host.as_str(), port));
        }
        named.push(name.to_string());
    }
    Err((
        ResponseError::InvalidRequest,
        format!(
            "the voter has no endpoint for the controller listener {wanted} (it named {named:?})"
        ),
    ))
}

fn directory(id: Uuid) -> Result<Uuid, (ResponseError, String)> {
    if id.is_nil() {
        return Err((
            ResponseError::InvalidRequest,
            "a voter of a dynamic quorum is named with the directory id of its metadata log dir"
                .into(),
        ));
    }
    Ok(id)
}

/// A voter as AddRaftVoter and UpdateRaftVoter name it: its directory id and its controller endpoint.
fn voter_member<'a>(
    broker: &Broker,
    directory_id: Uuid,
    listeners: impl Iterator<Item = (&'a StrBytes, &'a StrBytes, u16)>,
) -> Result<Member, (ResponseError, String)> {
    let directory_id = directory(directory_id)?;
    let address = controller_endpoint(broker, listeners)?;
    Ok(Member::with_directory(address, Some(directory_id)))
}

/// AddRaftVoter (KIP-853, `kafka-metadata-quorum add-controller`): the new controller catches up as a learner,
/// then votes; answered once the new voter set is committed.
pub async fn add_raft_voter(
    broker: &Arc<Broker>,
    req: AddRaftVoterRequest,
) -> AddRaftVoterResponse {
    let result = async {
        let quorum = voter_change_quorum(broker, req.cluster_id.as_ref())?;
        let member = voter_member(
            broker,
            req.voter_directory_id,
            req.listeners.iter().map(|l| (&l.name, &l.host, l.port)),
        )?;
        info!(voter = req.voter_id, %member, "adding a voter");
        quorum
            .add_voter(
                req.voter_id as u64,
                member,
                voter_change_timeout(req.timeout_ms),
            )
            .await
            .map_err(voter_change_error)
    }
    .await;
    let (code, message) = answer("adding voter", req.voter_id, result);
    AddRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

/// RemoveRaftVoter (`kafka-metadata-quorum remove-controller`): the voter named by id and directory id leaves
/// the voters; the leader removing itself hands over once the change commits.
pub async fn remove_raft_voter(
    broker: &Arc<Broker>,
    req: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    let result = async {
        let quorum = voter_change_quorum(broker, req.cluster_id.as_ref())?;
        let directory_id = directory(req.voter_directory_id)?;
        info!(voter = req.voter_id, %directory_id, "removing a voter");
        let removed = quorum
            .remove_voter(
                req.voter_id as u64,
                Some(directory_id),
                crate::broker::METADATA_WRITE_TIMEOUT,
            )
            .await;
        match removed {
            // Say which disk votes, so the operator sees a stale directory id for what it is.
            Err(ProposeError::VoterNotFound(id)) if quorum.is_voter(id) => Err((
                ResponseError::VoterNotFound,
                format!(
                    "node {id} votes with another metadata directory than {}",
                    crate::meta_properties::kafka_uuid(&directory_id)
                ),
            )),
            other => other.map_err(voter_change_error),
        }
    }
    .await;
    let (code, message) = answer("removing voter", req.voter_id, result);
    RemoveRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

/// UpdateRaftVoter: a voter tells the leader where its controller listener is now.
pub async fn update_raft_voter(
    broker: &Arc<Broker>,
    req: UpdateRaftVoterRequest,
) -> UpdateRaftVoterResponse {
    let result = async {
        let quorum = voter_change_quorum(broker, req.cluster_id.as_ref())?;
        let member = voter_member(
            broker,
            req.voter_directory_id,
            req.listeners.iter().map(|l| (&l.name, &l.host, l.port)),
        )?;
        quorum
            .update_voter(
                req.voter_id as u64,
                member,
                crate::broker::METADATA_WRITE_TIMEOUT,
            )
            .await
            .map_err(voter_change_error)
    }
    .await;
    let (code, _) = answer("updating voter", req.voter_id, result);
    let mut leader = CurrentLeader::default().with_leader_id(BrokerId(-1));
    if let Some(quorum) = broker.metadata.quorum() {
        let (_, term) = quorum.leadership();
        leader.leader_epoch = i32::try_from(term).unwrap_or(i32::MAX);
        if let Some((id, member)) = quorum.leader_member()
            && let Some((host, port)) = member.addr.rsplit_once(':')
        {
            leader.leader_id = BrokerId(id as i32);
            leader.host = StrBytes::from_string(host.trim_matches(['[', ']']).to_string());
            leader.port = port.parse().unwrap_or(-1);
        }
    }
    UpdateRaftVoterResponse::default()
        .with_error_code(code)
        .with_current_leader(leader)
}

fn answer(
    what: &str,
    voter: i32,
    result: Result<(), (ResponseError, String)>,
) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => {
            info!(voter, "{what}: done");
            (0, None)
        }
        Err((code, message)) => {
            warn!(voter, error = %message, "{what}: refused");
            (code.code(), Some(StrBytes::from_string(message)))
        }
    }
}
