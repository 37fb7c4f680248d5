use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::acl::{Operation, ResourceType};

use super::authz::Authz;
use crate::broker::Broker;
use crate::metadata::CONSUMER_OFFSETS;
use crate::network::ConnectionInfo;

const KEY_TYPE_GROUP: i8 = 0;

/// A group's coordinator is the leader of its `__consumer_offsets` partition, as in Kafka. Transactions are
/// not supported, so transaction coordinators are not available.
pub async fn find_coordinator(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let listener = conn.listener.as_str();
    let authz = Authz::new(broker, conn);
    if req.key_type == KEY_TYPE_GROUP
        && !broker
            .metadata
            .image()
            .topics
            .contains_key(CONSUMER_OFFSETS)
        && let Err(e) = broker.create_offsets_topic().await
    {
        tracing::warn!(error = %e, "creating {CONSUMER_OFFSETS} failed");
    }
    let image = broker.metadata.image();
    let endpoints = broker.live_endpoints(listener);
    let answer = |key: StrBytes| {
        let c = Coordinator::default().with_key(key.clone());
        let allowed = if req.key_type == KEY_TYPE_GROUP {
            authz.group(Operation::Describe, key.as_str())
        } else {
            authz.transactional_id(Operation::Describe, key.as_str())
        };
        if !allowed {
            let code = if req.key_type == KEY_TYPE_GROUP {
                ResponseError::GroupAuthorizationFailed
            } else {
                ResponseError::TransactionalIdAuthorizationFailed
            };
            c.with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(code.code())
        } else if req.key_type == KEY_TYPE_GROUP {
            let partition = broker.groups.partition_for(key.as_str());
            let leader = image
                .topics
                .get(CONSUMER_OFFSETS)
                .and_then(|t| image.leader(t, partition));
            match leader.and_then(|l| endpoints.iter().find(|e| e.0 == l)) {
                Some((id, host, port, _)) => c
                    .with_node_id(BrokerId(*id))
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(*port),
                None => c
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
            }
        } else {
            c.with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "transactions are not supported",
                )))
        }
    };
    if version >= 4 {
        let coordinators = req.coordinator_keys.into_iter().map(answer).collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let c = answer(req.key);
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(c.error_message)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    }
}

const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();

/// The group APIs, each checked against the group's ACLs (and the topics' for offsets) before the coordinator
/// sees it: Kafka's rules and error codes.
pub async fn join_group(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: JoinGroupRequest,
    v: i16,
    client_id: &str,
) -> JoinGroupResponse {
    if !Authz::new(broker, conn).group(Operation::Read, r.group_id.as_str()) {
        return JoinGroupResponse::default()
            .with_error_code(GROUP_DENIED)
            .with_generation_id(-1);
    }
    let host = conn.peer.ip().to_string();
    broker.groups.join_group(r, v, client_id, &host).await
}

pub async fn sync_group(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: SyncGroupRequest,
    v: i16,
) -> SyncGroupResponse {
    if !Authz::new(broker, conn).group(Operation::Read, r.group_id.as_str()) {
        return SyncGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    broker.groups.sync_group(r, v).await
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: HeartbeatRequest,
    v: i16,
) -> HeartbeatResponse {
    if !Authz::new(broker, conn).group(Operation::Read, r.group_id.as_str()) {
        return HeartbeatResponse::default().with_error_code(GROUP_DENIED);
    }
    broker.groups.heartbeat(r, v).await
}

pub async fn leave_group(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: LeaveGroupRequest,
    v: i16,
) -> LeaveGroupResponse {
    if !Authz::new(broker, conn).group(Operation::Read, r.group_id.as_str()) {
        return LeaveGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    broker.groups.leave_group(r, v).await
}

/// READ on the group, and READ on each topic: a topic the client may not read is not committed.
pub async fn offset_commit(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    mut r: OffsetCommitRequest,
    v: i16,
) -> OffsetCommitResponse {
    let authz = Authz::new(broker, conn);
    let failed = |topic: &offset_commit_request::OffsetCommitRequestTopic, code: i16| {
        OffsetCommitResponseTopic::default()
            .with_name(topic.name.clone())
            .with_topic_id(topic.topic_id)
            .with_partitions(
                topic
                    .partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect(),
            )
    };
    if !authz.group(Operation::Read, r.group_id.as_str()) {
        return OffsetCommitResponse::default()
            .with_topics(r.topics.iter().map(|t| failed(t, GROUP_DENIED)).collect());
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.topics)
        .into_iter()
        .partition(|t| authz.topic(Operation::Read, t.name.as_str()));
    r.topics = allowed;
    let mut resp = broker.groups.offset_commit(r, v).await;
    resp.topics.extend(
        denied
            .iter()
            .map(|t| failed(t, ResponseError::TopicAuthorizationFailed.code())),
    );
    resp
}

/// DESCRIBE on the group, and DESCRIBE on each topic: asked-for topics the client may not describe get
/// TOPIC_AUTHORIZATION_FAILED; from "all topics" they are left out.
pub async fn offset_fetch(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: OffsetFetchRequest,
    v: i16,
) -> OffsetFetchResponse {
    let authz = Authz::new(broker, conn);
    if v < 8 && !authz.group(Operation::Describe, r.group_id.as_str()) {
        // v0-1 carry the error per partition only.
        let topics = r
            .topics
            .iter()
            .flatten()
            .map(|t| {
                offset_fetch_response::OffsetFetchResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|&p| {
                                offset_fetch_response::OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_error_code(GROUP_DENIED)
                            })
                            .collect(),
                    )
            })
            .collect();
        let resp = OffsetFetchResponse::default().with_topics(topics);
        return if v >= 2 {
            resp.with_error_code(GROUP_DENIED)
        } else {
            resp
        };
    }
    let all_topics: Vec<bool> = if v >= 8 {
        r.groups.iter().map(|g| g.topics.is_none()).collect()
    } else {
        vec![r.topics.is_none()]
    };
    let denied_groups: Vec<bool> = r
        .groups
        .iter()
        .map(|g| !authz.group(Operation::Describe, g.group_id.as_str()))
        .collect();
    let mut resp = broker.groups.offset_fetch(r, v).await;
    let denied_topic = ResponseError::TopicAuthorizationFailed.code();
    if v >= 8 {
        for (i, group) in resp.groups.iter_mut().enumerate() {
            if denied_groups.get(i).copied().unwrap_or(true) {
                group.topics.clear();
                group.error_code = GROUP_DENIED;
                continue;
            }
            if all_topics.get(i).copied().unwrap_or(false) {
                group
                    .topics
                    .retain(|t| authz.topic(Operation::Describe, t.name.as_str()));
            }
            for t in &mut group.topics {
                if !authz.topic(Operation::Describe, t.name.as_str()) {
                    for p in &mut t.partitions {
                        p.committed_offset = -1;
                        p.metadata = None;
                        p.error_code = denied_topic;
                    }
                }
            }
        }
    } else {
        if all_topics.first().copied().unwrap_or(false) {
            resp.topics
                .retain(|t| authz.topic(Operation::Describe, t.name.as_str()));
        }
        for t in &mut resp.topics {
            if !authz.topic(Operation::Describe, t.name.as_str()) {
                for p in &mut t.partitions {
                    p.committed_offset = -1;
                    p.metadata = None;
                    p.error_code = denied_topic;
                }
            }
        }
    }
    resp
}

pub async fn describe_groups(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    mut r: DescribeGroupsRequest,
    v: i16,
) -> DescribeGroupsResponse {
    let authz = Authz::new(broker, conn);
    let include_ops = v >= 3 && r.include_authorized_operations;
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups)
        .into_iter()
        .partition(|g| authz.group(Operation::Describe, g.as_str()));
    r.groups = allowed;
    let mut resp = broker.groups.describe_groups(r, v).await;
    if include_ops {
        for g in &mut resp.groups {
            g.authorized_operations = authz.operations(
                ResourceType::Group,
                g.group_id.as_str(),
                &[Operation::Read, Operation::Describe, Operation::Delete],
            );
        }
    }
    resp.groups.extend(denied.into_iter().map(|g| {
        DescribedGroup::default()
            .with_group_id(g)
            .with_error_code(GROUP_DENIED)
            .with_authorized_operations(i32::MIN)
    }));
    resp
}

/// Every group with DESCRIBE on the cluster; otherwise the groups the client may describe.
pub async fn list_groups(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: ListGroupsRequest,
    v: i16,
) -> ListGroupsResponse {
    let authz = Authz::new(broker, conn);
    let mut resp = broker.groups.list_groups(r, v).await;
    if !authz.cluster(Operation::Describe) {
        resp.groups
            .retain(|g| authz.group(Operation::Describe, g.group_id.as_str()));
    }
    resp
}

pub async fn delete_groups(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    mut r: DeleteGroupsRequest,
    v: i16,
) -> DeleteGroupsResponse {
    let authz = Authz::new(broker, conn);
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut r.groups_names)
        .into_iter()
        .partition(|g| authz.group(Operation::Delete, g.as_str()));
    r.groups_names = allowed;
    let mut resp = broker.groups.delete_groups(r, v).await;
    resp.results.extend(denied.into_iter().map(|g| {
        DeletableGroupResult::default()
            .with_group_id(g)
            .with_error_code(GROUP_DENIED)
    }));
    resp
}
