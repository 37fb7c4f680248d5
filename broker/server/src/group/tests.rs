//! Drives the coordinator through its public API with kafka-protocol request structs, over an
//! `OffsetLog` backed by real files (one per partition).
#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use sluice_storage::StoredRecord;

use super::{GroupConfig, GroupCoordinator, GroupError, GroupState, OffsetLog};

const NONE: i16 = 0;

/// `__consumer_offsets` as one plain file per partition.
struct FileLog {
    dir: PathBuf,
}

impl FileLog {
    fn path(&self, partition: i32) -> PathBuf {
        self.dir.join(format!("__consumer_offsets-{partition}.log"))
    }
}

impl OffsetLog for FileLog {
    fn append(&self, partition: i32, batch: BytesMut) -> Result<crate::group::Committing, String> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(partition))
            .map_err(|e| e.to_string())?;
        file.write_all(&batch).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
        Ok(Box::pin(async { Ok(()) }))
    }

    fn replay(
        &self,
        partition: i32,
        visit: &mut dyn FnMut(StoredRecord<'_>) -> Result<(), GroupError>,
    ) -> Result<(), GroupError> {
        let data = match std::fs::read(self.path(partition)) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(GroupError::LogRead {
                    partition,
                    message: e.to_string(),
                });
            }
        };
        sluice_storage::replay_bytes(&data, 1 << 20, visit)
    }
}

/// A log whose disk is broken.
struct FailingLog;

impl OffsetLog for FailingLog {
    fn append(&self, _: i32, _: BytesMut) -> Result<crate::group::Committing, String> {
        Err("disk on fire".into())
    }

    fn replay(
        &self,
        _: i32,
        _: &mut dyn FnMut(StoredRecord<'_>) -> Result<(), GroupError>,
    ) -> Result<(), GroupError> {
        Ok(())
    }
}

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 60_000,
        offsets_retention_ms: 7 * 24 * 3600 * 1000,
        num_offsets_partitions: 4,
    }
}

fn coordinator_on(dir: &Path, config: GroupConfig) -> Arc<GroupCoordinator> {
    let log = Arc::new(FileLog {
        dir: dir.to_path_buf(),
    });
    let coordinator = GroupCoordinator::new(config, log);
    coordinator.load().unwrap();
    coordinator
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn gid(value: &str) -> GroupId {
    GroupId(s(value))
}

/// Fails the test instead of hanging when a parked request is never answered.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("request was never answered")
}

/// Every response must encode at the version it answers, which proves we only set fields
/// that exist in that version.
fn assert_encodes<T: Encodable>(message: &T, version: i16) {
    let mut buf = BytesMut::new();
    message.encode(&mut buf, version).unwrap();
}

fn join_req(group: &str, member_id: &str, session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(1_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from(format!("range-sub-{member_id}"))),
            JoinGroupRequestProtocol::default()
                .with_name(s("roundrobin"))
                .with_metadata(Bytes::from_static(b"rr-sub")),
        ])
}

async fn join(c: &GroupCoordinator, req: JoinGroupRequest, version: i16) -> JoinGroupResponse {
    let resp = within(c.join_group(req, version, "client", "/127.0.0.1")).await;
    assert_encodes(&resp, version);
    resp
}

/// Joins as a brand-new dynamic member the way a v5 client does: ask for a member id, then
/// join with it.
async fn join_new(c: Arc<GroupCoordinator>, group: &str, session_ms: i32) -> JoinGroupResponse {
    let first = join(&c, join_req(group, "", session_ms), 5).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    join(&c, join_req(group, first.member_id.as_str(), session_ms), 5).await
}

fn spawn_join_new(
    c: &Arc<GroupCoordinator>,
    group: &str,
    session_ms: i32,
) -> tokio::task::JoinHandle<JoinGroupResponse> {
    let c = c.clone();
    let group = group.to_string();
    tokio::spawn(async move { join_new(c, &group, session_ms).await })
}

fn sync_req(
    group: &str,
    member_id: &str,
    generation: i32,
    assignments: &[(&str, &str)],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_generation_id(generation)
        .with_assignments(
            assignments
                .iter()
                .map(|(member, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(member))
                        .with_assignment(Bytes::from(assignment.to_string()))
                })
                .collect(),
        )
}

async fn sync(c: &GroupCoordinator, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let resp = within(c.sync_group(req, version)).await;
    assert_encodes(&resp, version);
    resp
}

fn spawn_sync(
    c: &Arc<GroupCoordinator>,
    req: SyncGroupRequest,
) -> tokio::task::JoinHandle<SyncGroupResponse> {
    let c = c.clone();
    tokio::spawn(async move { sync(&c, req, 5).await })
}

async fn heartbeat(c: &GroupCoordinator, group: &str, member_id: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_generation_id(generation);
    let resp = c.heartbeat(req, 4).await;
    assert_encodes(&resp, 4);
    resp.error_code
}

/// Two members through the first rebalance to Stable; returns (leader, follower, generation).
async fn stable_pair(
    c: &Arc<GroupCoordinator>,
    group: &str,
    session_ms: i32,
) -> (String, String, i32) {
    let a = join_new(c.clone(), group, session_ms).await;
    assert_eq!(a.error_code, NONE);
    let a_id = a.member_id.to_string();
    sync(
        c,
        sync_req(group, &a_id, a.generation_id, &[(&a_id, "a1")]),
        5,
    )
    .await;

    // B joining triggers a rebalance that A takes part in after its heartbeat says so.
    let b = spawn_join_new(c, group, session_ms);
    wait_for_state(c, group, GroupState::PreparingRebalance).await;
    assert_eq!(
        heartbeat(c, group, &a_id, a.generation_id).await,
        ResponseError::RebalanceInProgress.code()
    );
    let a2 = join(c, join_req(group, &a_id, session_ms), 5).await;
    let b2 = within(b).await.unwrap();
    assert_eq!(a2.error_code, NONE);
    assert_eq!(b2.error_code, NONE);
    assert_eq!(a2.generation_id, b2.generation_id);
    let b_id = b2.member_id.to_string();
    let generation = a2.generation_id;
    let follower = spawn_sync(c, sync_req(group, &b_id, generation, &[]));
    let leader = sync(
        c,
        sync_req(group, &a_id, generation, &[(&a_id, "a2"), (&b_id, "b2")]),
        5,
    )
    .await;
    assert_eq!(leader.error_code, NONE);
    assert_eq!(within(follower).await.unwrap().error_code, NONE);
    (a_id, b_id, generation)
}

async fn wait_for_state(c: &GroupCoordinator, group: &str, state: GroupState) {
    within(async {
        while c.group_state(group) != Some(state) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

fn commit_req(
    group: &str,
    member_id: &str,
    generation: i32,
    offsets: &[(&str, i32, i64, &str)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset, metadata) in offsets {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(3)
            .with_committed_metadata(Some(s(metadata)));
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == *topic => t.partitions.push(p),
            _ => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(topics)
}

async fn commit(c: &GroupCoordinator, req: OffsetCommitRequest, version: i16) -> Vec<i16> {
    let resp = c.offset_commit(req, version).await;
    assert_encodes(&resp, version);
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// OffsetFetch v7 of specific partitions, or all when `partitions` is `None`:
/// (topic, partition, offset, leader epoch, metadata).
async fn fetch(
    c: &GroupCoordinator,
    group: &str,
    partitions: Option<&[(&str, i32)]>,
) -> Vec<(String, i32, i64, i32, String)> {
    let topics = partitions.map(|ps| {
        ps.iter()
            .map(|(topic, p)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(vec![*p])
            })
            .collect()
    });
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(topics)
        .with_require_stable(true);
    let resp = c.offset_fetch(req, 7).await;
    assert_encodes(&resp, 7);
    assert_eq!(resp.error_code, NONE);
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                assert_eq!(p.error_code, NONE);
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_deref().unwrap_or("<null>").to_string(),
                )
            })
        })
        .collect()
}

fn offset(
    topic: &str,
    p: i32,
    offset: i64,
    epoch: i32,
    meta: &str,
) -> (String, i32, i64, i32, String) {
    (topic.to_string(), p, offset, epoch, meta.to_string())
}

async fn describe(
    c: &GroupCoordinator,
    group: &str,
    version: i16,
) -> describe_groups_response::DescribedGroup {
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![gid(group)])
        .with_include_authorized_operations(true);
    let resp = c.describe_groups(req, version).await;
    assert_encodes(&resp, version);
    resp.groups.into_iter().next().unwrap()
}

async fn listed_groups(c: &GroupCoordinator, states: &[&str]) -> Vec<(String, String)> {
    let req =
        ListGroupsRequest::default().with_states_filter(states.iter().map(|x| s(x)).collect());
    let resp = c.list_groups(req, 4).await;
    assert_encodes(&resp, 4);
    resp.groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.group_state.to_string()))
        .collect()
}

async fn delete(c: &GroupCoordinator, group: &str) -> i16 {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(group)]);
    let resp = c.delete_groups(req, 2).await;
    assert_encodes(&resp, 2);
    resp.results[0].error_code
}

async fn leave(c: &GroupCoordinator, group: &str, member_id: &str) -> LeaveGroupResponse {
    let req = LeaveGroupRequest::default()
        .with_group_id(gid(group))
        .with_members(vec![MemberIdentity::default().with_member_id(s(member_id))]);
    let resp = c.leave_group(req, 4).await;
    assert_encodes(&resp, 4);
    resp
}

/// Every (key, value-present) record in a partition file, decoded.
fn log_records(dir: &Path, partition: i32) -> Vec<(Bytes, bool)> {
    let mut out = Vec::new();
    FileLog {
        dir: dir.to_path_buf(),
    }
    .replay(partition, &mut |r| {
        out.push((Bytes::copy_from_slice(r.key.unwrap()), r.value.is_some()));
        Ok(())
    })
    .unwrap();
    out
}

#[tokio::test]
async fn single_member_joins_syncs_and_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());

    // v3: no MEMBER_ID_REQUIRED round trip.
    let joined = join(&c, join_req("g", "", 10_000), 3).await;
    assert_eq!(joined.error_code, NONE);
    assert_eq!(joined.generation_id, 1);
    assert!(joined.member_id.starts_with("client-"));
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(
        joined.members[0].metadata,
        Bytes::from_static(b"range-sub-")
    );
    let me = joined.member_id.to_string();

    let synced = sync(&c, sync_req("g", &me, 1, &[(&me, "my-partitions")]), 3).await;
    assert_eq!(synced.error_code, NONE);
    assert_eq!(synced.assignment, Bytes::from_static(b"my-partitions"));
    assert_eq!(heartbeat(&c, "g", &me, 1).await, NONE);

    // A second sync in Stable returns the same assignment.
    let again = sync(&c, sync_req("g", &me, 1, &[]), 5).await;
    assert_eq!(again.assignment, Bytes::from_static(b"my-partitions"));
    assert_eq!(again.protocol_name.as_deref(), Some("range"));
    assert_eq!(again.protocol_type.as_deref(), Some("consumer"));

    let described = describe(&c, "g", 5).await;
    assert_eq!(described.error_code, NONE);
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.protocol_type.as_str(), "consumer");
    assert_eq!(described.protocol_data.as_str(), "range");
    assert_eq!(described.authorized_operations, 328);
    assert_eq!(described.members.len(), 1);
    assert_eq!(described.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(
        described.members[0].member_metadata,
        Bytes::from_static(b"range-sub-")
    );
    assert_eq!(
        described.members[0].member_assignment,
        Bytes::from_static(b"my-partitions")
    );

    assert_eq!(
        listed_groups(&c, &[]).await,
        vec![("g".into(), "Stable".into())]
    );
    assert_eq!(listed_groups(&c, &["stable"]).await.len(), 1);
    assert!(listed_groups(&c, &["Empty"]).await.is_empty());
}

#[tokio::test]
async fn join_group_v0_uses_session_timeout_as_rebalance_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());
    let joined = join(
        &c,
        join_req("g", "", 10_000).with_rebalance_timeout_ms(-1),
        0,
    )
    .await;
    assert_eq!(joined.error_code, NONE);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
}

#[tokio::test]
async fn two_members_in_initial_delay_share_a_generation_and_get_their_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(
        dir.path(),
        GroupConfig {
            initial_rebalance_delay_ms: 300,
            ..config()
        },
    );
    let a = spawn_join_new(&c, "g", 10_000);
    let b = spawn_join_new(&c, "g", 10_000);
    let (a, b) = (within(a).await.unwrap(), within(b).await.unwrap());
    assert_eq!(a.error_code, NONE);
    assert_eq!(b.error_code, NONE);
    assert_eq!(a.generation_id, 1);
    assert_eq!(b.generation_id, 1);
    assert_eq!(a.leader, b.leader);

    let (leader, follower) = if a.leader == a.member_id {
        (a, b)
    } else {
        (b, a)
    };
    let mut member_ids: Vec<&str> = leader
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    member_ids.sort();
    let mut expected = vec![leader.member_id.as_str(), follower.member_id.as_str()];
    expected.sort();
    assert_eq!(member_ids, expected);
    assert!(follower.members.is_empty());

    let leader_id = leader.member_id.to_string();
    let follower_id = follower.member_id.to_string();
    // The follower syncs first and waits for the leader's assignment.
    let follower_sync = spawn_sync(&c, sync_req("g", &follower_id, 1, &[]));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!follower_sync.is_finished());
    let leader_sync = sync(
        &c,
        sync_req(
            "g",
            &leader_id,
            1,
            &[(&leader_id, "L"), (&follower_id, "F")],
        ),
        5,
    )
    .await;
    assert_eq!(leader_sync.assignment, Bytes::from_static(b"L"));
    let follower_sync = within(follower_sync).await.unwrap();
    assert_eq!(follower_sync.error_code, NONE);
    assert_eq!(follower_sync.assignment, Bytes::from_static(b"F"));
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
}

#[tokio::test]
async fn second_member_triggers_rebalance_of_stable_group() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());
    let (a, b, generation) = stable_pair(&c, "g", 10_000).await;
    assert_eq!(generation, 2);
    let described = describe(&c, "g", 5).await;
    let assignments: Vec<(String, Bytes)> = described
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_assignment.clone()))
        .collect();
    assert!(assignments.contains(&(a, Bytes::from_static(b"a2"))));
    assert!(assignments.contains(&(b, Bytes::from_static(b"b2"))));
}

#[tokio::test]
async fn leaving_member_triggers_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());
    let (a, b, generation) = stable_pair(&c, "g", 10_000).await;

    let left = leave(&c, "g", &b).await;
    assert_eq!(left.error_code, NONE);
    assert_eq!(left.members[0].error_code, NONE);
    assert_eq!(
        heartbeat(&c, "g", &a, generation).await,
        ResponseError::RebalanceInProgress.code()
    );
    let rejoined = join(&c, join_req("g", &a, 10_000), 5).await;
    assert_eq!(rejoined.error_code, NONE);
    assert_eq!(rejoined.generation_id, generation + 1);
    assert_eq!(rejoined.leader.as_str(), a);
    assert_eq!(rejoined.members.len(), 1);

    // Leaving twice, or leaving as a stranger, is UNKNOWN_MEMBER_ID (v0–2 report it top-level).
    let req = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_member_id(s(&b));
    let resp = c.leave_group(req, 1).await;
    assert_encodes(&resp, 1);
    assert_eq!(resp.error_code, ResponseError::UnknownMemberId.code());

    // The last member leaving empties the group.
    let _ = sync(&c, sync_req("g", &a, generation + 1, &[]), 5).await;
    assert_eq!(leave(&c, "g", &a).await.members[0].error_code, NONE);
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(
        heartbeat(&c, "g", &a, generation + 1).await,
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test]
async fn silent_member_is_expelled_after_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());
    let (a, b, generation) = stable_pair(&c, "g", 400).await;

    // Only A keeps heartbeating.
    let mut rebalancing = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let error = heartbeat(&c, "g", &a, generation).await;
        if error == ResponseError::RebalanceInProgress.code() {
            rebalancing = true;
            break;
        }
        assert_eq!(error, NONE);
    }
    assert!(rebalancing, "B was never expelled");
    let rejoined = join(&c, join_req("g", &a, 400), 5).await;
    assert_eq!(rejoined.error_code, NONE);
    assert_eq!(rejoined.generation_id, generation + 1);
    assert_eq!(rejoined.members.len(), 1);
    assert_eq!(
        heartbeat(&c, "g", &b, generation).await,
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test]
async fn member_that_does_not_rejoin_is_dropped_at_rebalance_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());
    let (a, b, generation) = stable_pair(&c, "g", 10_000).await;
    // A rejoins; B never does, so the group waits out the rebalance timeout (1 s) without it.
    let started = std::time::Instant::now();
    let rejoined = join(&c, join_req("g", &a, 10_000), 5).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(rejoined.error_code, NONE);
    assert_eq!(rejoined.generation_id, generation + 1);
    assert_eq!(rejoined.members.len(), 1);
    assert_eq!(
        heartbeat(&c, "g", &b, generation).await,
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test]
async fn member_id_required_flow() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());
    let first = join(&c, join_req("g", "", 10_000), 4).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    assert!(first.member_id.starts_with("client-"));
    assert_eq!(first.generation_id, -1);
    assert!(first.members.is_empty());

    // An id we never handed out is rejected.
    let stranger = join(&c, join_req("g", "client-made-up", 10_000), 4).await;
    assert_eq!(stranger.error_code, ResponseError::UnknownMemberId.code());

    let second = join(&c, join_req("g", first.member_id.as_str(), 10_000), 4).await;
    assert_eq!(second.error_code, NONE);
    assert_eq!(second.member_id, first.member_id);
    assert_eq!(second.generation_id, 1);
}

#[tokio::test]
async fn illegal_generation_and_unknown_member() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());
    let joined = join_new(c.clone(), "g", 10_000).await;
    let me = joined.member_id.to_string();
    assert_eq!(
        sync(&c, sync_req("g", &me, 7, &[]), 5).await.error_code,
        ResponseError::IllegalGeneration.code()
    );
    sync(&c, sync_req("g", &me, 1, &[(&me, "x")]), 5).await;
    assert_eq!(
        heartbeat(&c, "g", &me, 0).await,
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        heartbeat(&c, "g", "nobody", 1).await,
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        heartbeat(&c, "nogroup", &me, 1).await,
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        commit(&c, commit_req("g", &me, 5, &[("t", 0, 1, "")]), 8).await,
        vec![ResponseError::IllegalGeneration.code()]
    );
    assert_eq!(
        commit(&c, commit_req("g", "nobody", 1, &[("t", 0, 1, "")]), 8).await,
        vec![ResponseError::UnknownMemberId.code()]
    );
    // Standalone commits are refused while the group has members.
    assert_eq!(
        commit(&c, commit_req("g", "", -1, &[("t", 0, 1, "")]), 8).await,
        vec![ResponseError::UnknownMemberId.code()]
    );
    assert_eq!(
        commit(&c, commit_req("g", &me, 1, &[("t", 0, 1, "")]), 8).await,
        vec![NONE]
    );
}

#[tokio::test]
async fn join_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());
    let too_short = join(&c, join_req("g", "", 1), 5).await;
    assert_eq!(
        too_short.error_code,
        ResponseError::InvalidSessionTimeout.code()
    );
    let no_group = join(&c, join_req("", "", 10_000), 5).await;
    assert_eq!(no_group.error_code, ResponseError::InvalidGroupId.code());

    join_new(c.clone(), "g", 10_000).await;
    let other_type = join(
        &c,
        join_req("g", "", 10_000).with_protocol_type(s("connect")),
        3,
    )
    .await;
    assert_eq!(
        other_type.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let no_common = join_req("g", "", 10_000).with_protocols(vec![
        JoinGroupRequestProtocol::default()
            .with_name(s("sticky"))
            .with_metadata(Bytes::new()),
    ]);
    assert_eq!(
        join(&c, no_common, 3).await.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
}

#[tokio::test]
async fn protocol_is_chosen_by_vote_among_common_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(
        dir.path(),
        GroupConfig {
            initial_rebalance_delay_ms: 200,
            ..config()
        },
    );
    let protocols = |names: &[&str]| {
        names
            .iter()
            .map(|n| {
                JoinGroupRequestProtocol::default()
                    .with_name(s(n))
                    .with_metadata(Bytes::from(n.to_string()))
            })
            .collect::<Vec<_>>()
    };
    // Leader prefers range, the two others prefer roundrobin; sticky is not common.
    let mut joins = Vec::new();
    for names in [
        &["range", "roundrobin"][..],
        &["roundrobin", "range", "sticky"][..],
        &["roundrobin", "range"][..],
    ] {
        let c = c.clone();
        let req = join_req("g", "", 10_000).with_protocols(protocols(names));
        joins.push(tokio::spawn(async move { join(&c, req, 3).await }));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for handle in joins {
        let resp = within(handle).await.unwrap();
        assert_eq!(resp.error_code, NONE);
        assert_eq!(resp.protocol_name.as_deref(), Some("roundrobin"));
        if resp.leader == resp.member_id {
            assert!(
                resp.members
                    .iter()
                    .all(|m| m.metadata == Bytes::from_static(b"roundrobin"))
            );
        }
    }
}

#[tokio::test]
async fn static_member_rejoining_fences_its_old_incarnation() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());
    let with_instance = |member_id: &str| {
        join_req("g", member_id, 10_000).with_group_instance_id(Some(s("instance-1")))
    };
    // Static members skip MEMBER_ID_REQUIRED.
    let first = join(&c, with_instance(""), 5).await;
    assert_eq!(first.error_code, NONE);
    assert!(first.member_id.starts_with("instance-1-"));
    assert_eq!(
        first.members[0].group_instance_id.as_deref(),
        Some("instance-1")
    );
    let old_id = first.member_id.to_string();
    sync(
        &c,
        sync_req("g", &old_id, first.generation_id, &[(&old_id, "x")]),
        5,
    )
    .await;

    let second = join(&c, with_instance(""), 5).await;
    assert_eq!(second.error_code, NONE);
    assert_ne!(second.member_id.as_str(), old_id);
    let req = HeartbeatRequest::default()
        .with_group_id(gid("g"))
        .with_member_id(s(&old_id))
        .with_generation_id(second.generation_id)
        .with_group_instance_id(Some(s("instance-1")));
    assert_eq!(
        c.heartbeat(req, 4).await.error_code,
        ResponseError::FencedInstanceId.code()
    );

    // Static leave by instance id alone.
    let req = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_members(vec![
            MemberIdentity::default().with_group_instance_id(Some(s("instance-1"))),
        ]);
    let resp = c.leave_group(req, 3).await;
    assert_encodes(&resp, 3);
    assert_eq!(resp.members[0].error_code, NONE);
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
}

#[tokio::test]
async fn offsets_commit_and_fetch_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_on(dir.path(), config());

    // A standalone consumer (generation -1, no member id) may commit to a group nobody joined.
    let errors = commit(
        &c,
        commit_req(
            "solo",
            "",
            -1,
            &[("t1", 0, 10, "m0"), ("t1", 1, 11, ""), ("t2", 0, 20, "x")],
        ),
        8,
    )
    .await;
    assert_eq!(errors, vec![NONE; 3]);

    assert_eq!(
        fetch(&c, "solo", Some(&[("t1", 1), ("t1", 5), ("nope", 0)])).await,
        vec![
            offset("t1", 1, 11, 3, ""),
            offset("t1", 5, -1, -1, ""),
            offset("nope", 0, -1, -1, ""),
        ]
    );
    assert_eq!(
        fetch(&c, "solo", None).await,
        vec![
            offset("t1", 0, 10, 3, "m0"),
            offset("t1", 1, 11, 3, ""),
            offset("t2", 0, 20, 3, "x"),
        ]
    );
    assert!(fetch(&c, "unknown-group", None).await.is_empty());

    // Overwrite, and a too-large metadata string is refused for that partition only.
    let big = "x".repeat(5000);
    let errors = commit(
        &c,
        commit_req("solo", "", -1, &[("t1", 0, 15, "m1"), ("t1", 1, 99, &big)]),
        2,
    )
    .await;
    assert_eq!(
        errors,
        vec![NONE, ResponseError::OffsetMetadataTooLarge.code()]
    );
    // v2 has no leader epoch.
    assert_eq!(
        fetch(&c, "solo", Some(&[("t1", 0), ("t1", 1)])).await,
        vec![offset("t1", 0, 15, -1, "m1"), offset("t1", 1, 11, 3, "")]
    );

    // OffsetFetch v8 batches groups.
    let req = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(gid("solo"))
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s("t2")))
                    .with_partition_indexes(vec![0]),
            ])),
        OffsetFetchRequestGroup::default().with_group_id(gid("other")),
    ]);
    let resp = c.offset_fetch(req, 8).await;
    assert_encodes(&resp, 8);
    assert_eq!(resp.groups.len(), 2);
    assert_eq!(resp.groups[0].topics[0].partitions[0].committed_offset, 20);
    assert_eq!(
        resp.groups[0].topics[0].partitions[0].metadata.as_deref(),
        Some("x")
    );
    assert_eq!(resp.groups[1].error_code, NONE);
    assert!(resp.groups[1].topics.is_empty());

    // Offsets-only groups are listed as Empty, like Kafka.
    assert_eq!(
        listed_groups(&c, &[]).await,
        vec![("solo".into(), "Empty".into())]
    );

    // A committing member of an unknown group with a real generation is refused.
    assert_eq!(
        commit(&c, commit_req("ghost", "m", 3, &[("t", 0, 1, "")]), 8).await,
        vec![ResponseError::IllegalGeneration.code()]
    );
}

#[tokio::test]
async fn offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (member, generation) = {
        let c = coordinator_on(dir.path(), config());
        commit(
            &c,
            commit_req("solo", "", -1, &[("t", 0, 5, "a"), ("t", 1, 6, "b")]),
            8,
        )
        .await;
        commit(&c, commit_req("solo", "", -1, &[("t", 0, 7, "c")]), 8).await;

        let joined = join_new(c.clone(), "consumers", 10_000).await;
        let me = joined.member_id.to_string();
        sync(
            &c,
            sync_req("consumers", &me, joined.generation_id, &[(&me, "asg")]),
            5,
        )
        .await;
        assert_eq!(
            commit(
                &c,
                commit_req(
                    "consumers",
                    &me,
                    joined.generation_id,
                    &[("u", 3, 42, "meta")]
                ),
                8
            )
            .await,
            vec![NONE]
        );
        c.shutdown().await;
        (me, joined.generation_id)
    };

    let c = coordinator_on(dir.path(), config());
    assert_eq!(
        fetch(&c, "solo", None).await,
        vec![offset("t", 0, 7, 3, "c"), offset("t", 1, 6, 3, "b")]
    );
    assert_eq!(
        fetch(&c, "consumers", None).await,
        vec![offset("u", 3, 42, 3, "meta")]
    );

    // The group metadata record brings the stable member back, so it carries on without
    // rejoining.
    let described = describe(&c, "consumers", 5).await;
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.members[0].member_id.as_str(), member);
    assert_eq!(
        described.members[0].member_assignment,
        Bytes::from_static(b"asg")
    );
    assert_eq!(heartbeat(&c, "consumers", &member, generation).await, NONE);

    // Records are in Kafka's layout: offset keys v1, group metadata key v2, in the partition
    // Kafka would pick.
    let records = log_records(dir.path(), c.partition_for("consumers"));
    assert!(records.iter().any(|(key, _)| key[..2] == [0, 1]));
    assert!(records.iter().any(|(key, _)| key[..2] == [0, 2]));
}

#[tokio::test]
async fn deleting_a_group_writes_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = coordinator_on(dir.path(), config());
        commit(
            &c,
            commit_req("doomed", "", -1, &[("t", 0, 5, ""), ("t", 1, 6, "")]),
            8,
        )
        .await;
        commit(&c, commit_req("kept", "", -1, &[("t", 0, 9, "")]), 8).await;

        let joined = join_new(c.clone(), "busy", 10_000).await;
        assert_eq!(
            delete(&c, "busy").await,
            ResponseError::NonEmptyGroup.code()
        );
        assert_eq!(
            delete(&c, "never-existed").await,
            ResponseError::GroupIdNotFound.code()
        );

        assert_eq!(delete(&c, "doomed").await, NONE);
        assert_eq!(
            delete(&c, "doomed").await,
            ResponseError::GroupIdNotFound.code()
        );
        assert_eq!(
            fetch(&c, "doomed", Some(&[("t", 0)])).await,
            vec![offset("t", 0, -1, -1, "")]
        );

        // After everybody left, the consumer group can be deleted too.
        leave(&c, "busy", joined.member_id.as_str()).await;
        assert_eq!(delete(&c, "busy").await, NONE);

        let tombstones = log_records(dir.path(), c.partition_for("doomed"))
            .into_iter()
            .filter(|(_, has_value)| !has_value)
            .count();
        // Two offset tombstones and the group metadata tombstone (plus "busy"'s if it shares
        // the partition).
        assert!(tombstones >= 3, "only {tombstones} tombstones");
    }

    let c = coordinator_on(dir.path(), config());
    assert!(fetch(&c, "doomed", None).await.is_empty());
    assert_eq!(
        fetch(&c, "kept", None).await,
        vec![offset("t", 0, 9, 3, "")]
    );
    assert_eq!(
        listed_groups(&c, &[]).await,
        vec![("kept".into(), "Empty".into())]
    );
    let described = describe(&c, "doomed", 6).await;
    assert_eq!(described.error_code, ResponseError::GroupIdNotFound.code());
    let described = describe(&c, "doomed", 2).await;
    assert_eq!(described.error_code, NONE);
    assert_eq!(described.group_state.as_str(), "Dead");
}

#[tokio::test]
async fn expired_offsets_are_removed_and_stay_removed() {
    let dir = tempfile::tempdir().unwrap();
    let short_retention = GroupConfig {
        offsets_retention_ms: 50,
        ..config()
    };
    {
        let c = coordinator_on(dir.path(), short_retention.clone());
        commit(&c, commit_req("old", "", -1, &[("t", 0, 5, "")]), 8).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        commit(&c, commit_req("young", "", -1, &[("t", 0, 6, "")]), 8).await;
        assert_eq!(c.expire_offsets().await, 1);
        assert!(fetch(&c, "old", None).await.is_empty());
        assert_eq!(c.group_state("old"), None);
        assert_eq!(fetch(&c, "young", None).await.len(), 1);
    }
    let c = coordinator_on(dir.path(), config());
    assert!(fetch(&c, "old", None).await.is_empty());
    assert_eq!(fetch(&c, "young", None).await.len(), 1);
}

#[tokio::test]
async fn failed_append_fails_the_commit_and_changes_nothing() {
    let c = GroupCoordinator::new(config(), Arc::new(FailingLog));
    c.load().unwrap();
    assert_eq!(
        commit(&c, commit_req("g", "", -1, &[("t", 0, 5, "")]), 8).await,
        vec![ResponseError::CoordinatorNotAvailable.code()]
    );
    assert_eq!(
        fetch(&c, "g", Some(&[("t", 0)])).await,
        vec![offset("t", 0, -1, -1, "")]
    );
}

#[tokio::test]
async fn corrupt_log_fails_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("__consumer_offsets-0.log"), [b'x'; 100]).unwrap();
    let c = GroupCoordinator::new(
        config(),
        Arc::new(FileLog {
            dir: dir.path().to_path_buf(),
        }),
    );
    let err = c.load().unwrap_err().to_string();
    assert!(err.contains("corrupt record batch"), "{err}");
}

#[test]
fn partition_matches_kafka() {
    let c = GroupCoordinator::new(
        GroupConfig {
            num_offsets_partitions: 50,
            ..config()
        },
        Arc::new(FailingLog),
    );
    // Java: "hello".hashCode() == 99162322; "polygenelubricants".hashCode() == Integer.MIN_VALUE.
    assert_eq!(c.partition_for("hello"), 99_162_322 % 50);
    assert_eq!(c.partition_for("polygenelubricants"), 0);
    assert_eq!(c.partition_for(""), 0);
    // UTF-16 code units, not bytes: "é" is 233.
    assert_eq!(c.partition_for("é"), 233 % 50);
}
