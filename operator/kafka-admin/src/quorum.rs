//! The KRaft controller quorum (KIP-853): DescribeQuorum, AddRaftVoter and RemoveRaftVoter, which
//! brokers forward to the active controller, as `kafka-metadata-quorum` uses them.

use kafka_protocol::messages::add_raft_voter_request::Listener;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::{
    AddRaftVoterRequest, ApiKey, DescribeQuorumRequest, RemoveRaftVoterRequest,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::AdminClient;
use crate::client::{check, topic_name};
use crate::error::AdminError;

const METADATA_TOPIC: &str = "__cluster_metadata";

/// One replica of the metadata log as the active controller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub id: i32,
    /// The directory id of its metadata log dir (nil when the node does not report one).
    pub directory_id: Uuid,
    pub log_end_offset: i64,
    /// When it was last caught up with the leader's log end, in ms since the epoch (-1: never).
    pub last_caught_up_ms: i64,
}

/// The quorum: who leads, who votes and who only follows (brokers and controllers not yet voters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    /// The active controller, `None` during an election.
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

fn replica(r: ReplicaState) -> QuorumReplica {
    QuorumReplica {
        id: r.replica_id.0,
        directory_id: r.replica_directory_id,
        log_end_offset: r.log_end_offset,
        last_caught_up_ms: r.last_caught_up_timestamp,
    }
}

impl AdminClient {
    /// The metadata quorum as the active controller reports it.
    pub async fn describe_quorum(&self) -> Result<QuorumInfo, AdminError> {
        let (resp, _) = self
            .call_controller(|_| {
                Ok(DescribeQuorumRequest::default().with_topics(vec![
                    TopicData::default()
                        .with_topic_name(topic_name(METADATA_TOPIC))
                        .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
                ]))
            })
            .await?;
        check(
            ApiKey::DescribeQuorum,
            METADATA_TOPIC,
            resp.error_code,
            resp.error_message,
        )?;
        let partition = resp
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == 0)
            .ok_or_else(|| {
                AdminError::Protocol("DescribeQuorum response has no metadata partition".into())
            })?;
        check(
            ApiKey::DescribeQuorum,
            METADATA_TOPIC,
            partition.error_code,
            partition.error_message,
        )?;
        Ok(QuorumInfo {
            leader: Some(partition.leader_id.0).filter(|id| *id >= 0),
            leader_epoch: partition.leader_epoch,
            high_watermark: partition.high_watermark,
            voters: partition.current_voters.into_iter().map(replica).collect(),
            observers: partition.observers.into_iter().map(replica).collect(),
        })
    }

    /// Makes controller `id` (metadata directory `directory_id`, controller listener `listener`
    /// at `host:port`) a voter. Answered once the new voter set is committed.
    pub async fn add_raft_voter(
        &self,
        id: i32,
        directory_id: Uuid,
        listener: &str,
        host: &str,
        port: u16,
    ) -> Result<(), AdminError> {
        let timeout_ms = self.timeout_ms();
        let (resp, _) = self
            .call_controller(|_| {
                // The wire crate defaults the nullable cluster id to "", which names no cluster: null
                // asks the controller to skip the check.
                Ok(AddRaftVoterRequest::default()
                    .with_cluster_id(None)
                    .with_timeout_ms(timeout_ms)
                    .with_voter_id(id)
                    .with_voter_directory_id(directory_id)
                    .with_listeners(vec![
                        Listener::default()
                            .with_name(StrBytes::from_string(listener.to_owned()))
                            .with_host(StrBytes::from_string(host.to_owned()))
                            .with_port(port),
                    ]))
            })
            .await?;
        check(
            ApiKey::AddRaftVoter,
            &format!("voter {id}"),
            resp.error_code,
            resp.error_message,
        )
    }

    /// Removes voter `id` voting with metadata directory `directory_id` from the quorum.
    pub async fn remove_raft_voter(&self, id: i32, directory_id: Uuid) -> Result<(), AdminError> {
        let (resp, _) = self
            .call_controller(|_| {
                Ok(RemoveRaftVoterRequest::default()
                    .with_cluster_id(None)
                    .with_voter_id(id)
                    .with_voter_directory_id(directory_id))
            })
            .await?;
        check(
            ApiKey::RemoveRaftVoter,
            &format!("voter {id}"),
            resp.error_code,
            resp.error_message,
        )
    }
}
