//! Authorization of one request: who asks (`ConnectionInfo::principal`, from `network`), checked against the
//! ACLs of this node's metadata image with Kafka's rules (`sluice_metadata::acl::authorize`). Without
//! `authorizer.class.name` everything is allowed, as in Kafka.

use std::sync::Arc;

use sluice_metadata::MetadataImage;
use sluice_metadata::acl::{self, AuthorizerSettings, Operation, ResourceType};

use crate::broker::Broker;
use crate::network::ConnectionInfo;

/// The checks of one request, against one image.
pub struct Authz<'a> {
    settings: Option<&'a AuthorizerSettings>,
    conn: &'a ConnectionInfo,
    host: String,
    image: Arc<MetadataImage>,
}

impl<'a> Authz<'a> {
    pub fn new(broker: &'a Broker, conn: &'a ConnectionInfo) -> Authz<'a> {
        // A broker's own forwarded request was authorized where it began.
        let settings = broker.config.authorizer.as_ref().filter(|_| !conn.internal);
        Authz {
            settings,
            conn,
            host: conn.peer.ip().to_string(),
            image: if settings.is_some() {
                broker.metadata.image()
            } else {
                Arc::default()
            },
        }
    }

    /// Whether the request's principal may do `op` on the resource.
    pub fn may(&self, op: Operation, resource: ResourceType, name: &str) -> bool {
        let Some(settings) = self.settings else {
            return true;
        };
        let allowed = acl::authorize(
            self.image.acls.values(),
            settings,
            &self.conn.principal,
            &self.host,
            op,
            resource,
            name,
        );
        if !allowed {
            tracing::debug!(principal = %self.conn.principal, host = %self.host, %op, %resource, name,
                "not authorized");
        }
        allowed
    }

    /// Kafka's authorized-operations bit field (bit n: the operation with wire id n) over `ops`.
    pub fn operations(&self, resource: ResourceType, name: &str, ops: &[Operation]) -> i32 {
        ops.iter()
            .filter(|&&op| self.may(op, resource, name))
            .fold(0, |bits, op| bits | (1 << op.id()))
    }

    /// For Describe/Alter(Incremental)Configs: the refusal of `op` on a config resource (2 a topic, 4 a
    /// broker or 8 a broker's loggers, which are the cluster's), if there is one.
    pub fn configs(
        &self,
        op: Operation,
        resource_type: i8,
        name: &str,
    ) -> Option<kafka_protocol::error::ResponseError> {
        use kafka_protocol::error::ResponseError;
        match resource_type {
            2 if !self.topic(op, name) => Some(ResponseError::TopicAuthorizationFailed),
            4 | 8 if !self.cluster(op) => Some(ResponseError::ClusterAuthorizationFailed),
            _ => None,
        }
    }

    pub fn topic(&self, op: Operation, name: &str) -> bool {
        self.may(op, ResourceType::Topic, name)
    }

    pub fn group(&self, op: Operation, name: &str) -> bool {
        self.may(op, ResourceType::Group, name)
    }

    pub fn cluster(&self, op: Operation) -> bool {
        self.may(op, ResourceType::Cluster, acl::CLUSTER_NAME)
    }

    pub fn transactional_id(&self, op: Operation, name: &str) -> bool {
        self.may(op, ResourceType::TransactionalId, name)
    }

    /// Kafka's rule for idempotent producers (KIP-679): IDEMPOTENT_WRITE on the cluster, or WRITE on any topic.
    pub fn idempotent_write(&self) -> bool {
        if self.settings.is_none() || self.cluster(Operation::IdempotentWrite) {
            return true;
        }
        let Some(settings) = self.settings else {
            return true;
        };
        // WRITE on some topic: any ALLOW ACL for WRITE or ALL whose pattern could name a topic, not denied.
        self.image.acls.values().any(|a| {
            a.resource_type == ResourceType::Topic
                && a.permission == acl::Permission::Allow
                && matches!(a.operation, Operation::Write | Operation::All)
                && (a.principal == self.conn.principal || a.principal == acl::WILDCARD_PRINCIPAL)
                && (a.host == self.host || a.host == acl::WILDCARD)
                && (a.pattern_type == acl::PatternType::Prefixed
                    || a.resource_name == acl::WILDCARD
                    || acl::authorize(
                        self.image.acls.values(),
                        settings,
                        &self.conn.principal,
                        &self.host,
                        Operation::Write,
                        ResourceType::Topic,
                        &a.resource_name,
                    ))
        })
    }
}

/// The answer to a request that acts on the cluster as a whole when its principal lacks the operation it
/// needs there (Kafka's: ALTER to change, DESCRIBE to look), or `None` to serve it.
pub fn cluster_refusal(
    authz: &Authz<'_>,
    body: &kafka_protocol::messages::RequestKind,
    version: i16,
) -> Option<kafka_protocol::messages::ResponseKind> {
    use kafka_protocol::messages::*;
    let code = kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code();
    let op = match body {
        RequestKind::DescribeQuorum(_)
        | RequestKind::ListPartitionReassignments(_)
        | RequestKind::DescribeUserScramCredentials(_) => Operation::Describe,
        RequestKind::AddRaftVoter(_)
        | RequestKind::RemoveRaftVoter(_)
        | RequestKind::ElectLeaders(_)
        | RequestKind::AlterPartitionReassignments(_)
        | RequestKind::AlterUserScramCredentials(_) => Operation::Alter,
        _ => return None,
    };
    if authz.cluster(op) {
        return None;
    }
    Some(match body {
        RequestKind::DescribeQuorum(_) => {
            ResponseKind::DescribeQuorum(DescribeQuorumResponse::default().with_error_code(code))
        }
        RequestKind::ListPartitionReassignments(_) => ResponseKind::ListPartitionReassignments(
            ListPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        RequestKind::DescribeUserScramCredentials(_) => ResponseKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsResponse::default().with_error_code(code),
        ),
        RequestKind::AddRaftVoter(_) => {
            ResponseKind::AddRaftVoter(AddRaftVoterResponse::default().with_error_code(code))
        }
        RequestKind::RemoveRaftVoter(_) => {
            ResponseKind::RemoveRaftVoter(RemoveRaftVoterResponse::default().with_error_code(code))
        }
        RequestKind::AlterPartitionReassignments(_) => ResponseKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        RequestKind::ElectLeaders(r) => {
            // v0 has no top-level error: each partition carries it.
            use kafka_protocol::messages::elect_leaders_response::{
                PartitionResult, ReplicaElectionResult,
            };
            let results = r
                .topic_partitions
                .iter()
                .flatten()
                .map(|t| {
                    ReplicaElectionResult::default()
                        .with_topic(t.topic.clone())
                        .with_partition_result(
                            t.partitions
                                .iter()
                                .map(|&p| {
                                    PartitionResult::default()
                                        .with_partition_id(p)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            let resp = ElectLeadersResponse::default().with_replica_election_results(results);
            ResponseKind::ElectLeaders(if version >= 1 {
                resp.with_error_code(code)
            } else {
                resp
            })
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(super::users::refuse_all(r, code, None))
        }
        _ => return None,
    })
}

/// OffsetForLeaderEpoch: a follower (replica id >= 0) needs CLUSTER_ACTION, a client DESCRIBE on each
/// topic; the partitions of a refused topic get TOPIC_AUTHORIZATION_FAILED in place of their answer.
pub fn patch_offset_for_leader_epoch(
    authz: &Authz<'_>,
    follower: bool,
    resp: &mut kafka_protocol::messages::OffsetForLeaderEpochResponse,
) {
    let code = kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code();
    let follower_allowed = !follower || authz.cluster(Operation::ClusterAction);
    for t in &mut resp.topics {
        if follower_allowed && (follower || authz.topic(Operation::Describe, t.topic.as_str())) {
            continue;
        }
        for p in &mut t.partitions {
            p.error_code = code;
            p.leader_epoch = -1;
            p.end_offset = -1;
        }
    }
}
