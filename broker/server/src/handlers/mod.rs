//! One module per family of requests. Each handler takes the decoded request and its version and returns the
//! response body; the connection encodes it.

mod acls;
mod admin;
pub mod authz;
mod configs;
mod fetch;
mod forward;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
mod quorum;
mod quotas;
mod replication;
pub(crate) mod users;

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use sluice_protocol::{FetchResponseLayout, Request};
use sluice_storage::{FileSlice, StorageError};

use crate::broker::Broker;
use crate::network::ConnectionInfo;

/// What goes back on the connection.
pub enum Response {
    Message(Box<ResponseKind>),
    /// A Fetch answer whose records are sent from the segment files.
    Fetch(FetchResponseLayout<FileSlice>),
    /// Produce with acks=0: Kafka sends nothing back.
    None,
    /// A request that has no handler: its correlation id and this error code.
    Error(i16),
}

/// The requests that change cluster metadata: the active controller handles them, and any other node hands
/// them on (Kafka's forwarding, KIP-590).
pub fn is_forwardable(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::CreateTopics
            | ApiKey::DeleteTopics
            | ApiKey::CreatePartitions
            | ApiKey::AlterConfigs
            | ApiKey::IncrementalAlterConfigs
            | ApiKey::DescribeQuorum
            | ApiKey::AddRaftVoter
            | ApiKey::RemoveRaftVoter
            | ApiKey::ElectLeaders
            | ApiKey::AlterPartitionReassignments
            | ApiKey::ListPartitionReassignments
            | ApiKey::AlterUserScramCredentials
            | ApiKey::CreateAcls
            | ApiKey::DeleteAcls
            | ApiKey::AlterClientQuotas
    )
}

pub async fn handle(broker: &Arc<Broker>, conn: &ConnectionInfo, request: Request) -> Response {
    let v = request.version;
    if is_forwardable(request.api_key)
        && let Some(channel) = broker.channel.as_ref()
        && !broker.is_active_controller()
    {
        let body = match channel.forward(broker, &request, Some(conn)).await {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(api = ?request.api_key, error = %e, "forwarding to the controller failed");
                match forward::refusal(&request.body, e.kafka_error().code(), &e.to_string()) {
                    Some(body) => body,
                    None => return Response::Error(e.kafka_error().code()),
                }
            }
        };
        return Response::Message(Box::new(body));
    }
    let client_id = request
        .header
        .client_id
        .as_ref()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let authz = authz::Authz::new(broker, conn);
    if let Some(refusal) = authz::cluster_refusal(&authz, &request.body, v) {
        return Response::Message(Box::new(refusal));
    }
    let msg = match request.body {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(sluice_protocol::api_versions_response(0))
        }
        // A SASL listener answers these in the network loop, before anything gets here.
        RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_) => {
            crate::sasl::illegal_state(request.api_key)
        }
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::metadata(broker, conn, r, v).await)
        }
        RequestKind::Produce(r) => match produce::produce(broker, conn, &client_id, r, v).await {
            Some(resp) => ResponseKind::Produce(resp),
            None => return Response::None,
        },
        RequestKind::Fetch(r) => {
            return Response::Fetch(
                fetch::fetch(
                    broker,
                    conn,
                    &client_id,
                    r,
                    v,
                    request.header.correlation_id,
                )
                .await,
            );
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::list_offsets(broker, conn, r, v))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(produce::init_producer_id(broker, conn, r, v).await)
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(broker, conn, r, v).await)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join_group(broker, conn, r, v, &client_id).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(groups::sync_group(broker, conn, r, v).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(groups::heartbeat(broker, conn, r, v).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(groups::leave_group(broker, conn, r, v).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(groups::offset_commit(broker, conn, r, v).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(broker, conn, r, v).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe_groups(broker, conn, r, v).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(groups::list_groups(broker, conn, r, v).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(groups::delete_groups(broker, conn, r, v).await)
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(broker, conn, r, v).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(broker, conn, r, v).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(broker, conn, r, v).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(admin::delete_records(broker, conn, r, v))
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(quorum::describe_quorum(broker, r, v))
        }
        RequestKind::DescribeCluster(r) if conn.controller => {
            ResponseKind::DescribeCluster(admin::describe_controllers(broker, r))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(admin::describe_cluster(broker, conn, r, v))
        }
        RequestKind::AddRaftVoter(r) => {
            ResponseKind::AddRaftVoter(quorum::add_raft_voter(broker, r).await)
        }
        RequestKind::RemoveRaftVoter(r) => {
            ResponseKind::RemoveRaftVoter(quorum::remove_raft_voter(broker, r).await)
        }
        RequestKind::UpdateRaftVoter(r) => {
            ResponseKind::UpdateRaftVoter(quorum::update_raft_voter(broker, r).await)
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(admin::describe_log_dirs(broker, conn, r))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            let follower = r.replica_id.0 >= 0;
            let mut resp = replication::offset_for_leader_epoch(broker, r);
            authz::patch_offset_for_leader_epoch(&authz, follower, &mut resp);
            ResponseKind::OffsetForLeaderEpoch(resp)
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(replication::elect_leaders(broker, r, v).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            replication::alter_partition_reassignments(broker, r, v).await,
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            replication::list_partition_reassignments(broker, r),
        ),
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe_configs(broker, conn, r, v))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter_configs(broker, conn, r, v).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter_configs(broker, conn, r, v).await,
        ),
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(acls::create_acls(broker, conn, r).await)
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(acls::delete_acls(broker, conn, r).await)
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(acls::describe_acls(broker, conn, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(quotas::alter_client_quotas(broker, conn, r).await)
        }
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(quotas::describe_client_quotas(broker, conn, r))
        }
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            users::alter_user_scram_credentials(broker, r).await,
        ),
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            users::describe_user_scram_credentials(broker, r),
        ),
        // The version table in sluice-protocol lets through only the APIs above, so this is a bug; answer with
        // an error rather than take the connection down.
        _ => {
            tracing::error!(api = ?request.api_key, "request passed the version table but has no handler");
            return Response::Error(ResponseError::UnsupportedVersion.code());
        }
    };
    Response::Message(Box::new(msg))
}

/// The Kafka error code for a storage error.
pub fn storage_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        StorageError::CorruptRecord(_) => ResponseError::CorruptMessage.code(),
        StorageError::RecordTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        StorageError::InvalidRecord { .. } => ResponseError::InvalidRecord.code(),
        StorageError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp.code(),
        StorageError::Undecodable(_) => ResponseError::UnknownServerError.code(),
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
        _ => ResponseError::KafkaStorageError.code(),
    }
}
