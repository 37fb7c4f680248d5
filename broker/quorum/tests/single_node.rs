//! One voter on openraft over the real storage: it elects itself, commits metadata changes, and after a
//! restart (a new process, as far as the storage can tell) has every committed change again, with the Raft
//! log laid out as Kafka offsets equal to Raft indexes. A snapshot then lets the log be cut and still
//! restores the image.

#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Config, Raft};
use sluice_metadata::MetadataRecord;
use sluice_quorum::Member;
use sluice_quorum::{LogStore, MetadataBatch, NodeId, Quorum, StateMachine};
use sluice_storage::{Log, LogConfig, StorageError};

/// A one-voter quorum talks to nobody.
struct Alone;
struct NoPeer;

impl RaftNetworkFactory<Quorum> for Alone {
    type Network = NoPeer;
    async fn new_client(&mut self, _: NodeId, _: &Member) -> NoPeer {
        NoPeer
    }
}

fn unreachable<E: std::error::Error>() -> RPCError<NodeId, Member, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(
        "a single voter has no peers",
    )))
}

impl RaftNetwork<Quorum> for NoPeer {
    async fn append_entries(
        &mut self,
        _: AppendEntriesRequest<Quorum>,
        _: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        Err(unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _: InstallSnapshotRequest<Quorum>,
        _: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(unreachable())
    }

    async fn vote(
        &mut self,
        _: VoteRequest<NodeId>,
        _: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        Err(unreachable())
    }
}

fn config() -> Arc<Config> {
    Arc::new(
        Config {
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    )
}

fn topic(name: &str) -> MetadataBatch {
    MetadataBatch {
        records: vec![MetadataRecord::TopicCreated {
            name: name.into(),
            id: uuid::Uuid::new_v4(),
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::new(),
            internal: false,
            assignment: vec![vec![1]],
        }],
    }
}

async fn start(dir: &std::path::Path) -> (Raft<Quorum>, StateMachine) {
    let log = LogStore::open(&dir.join("log"), LogConfig::default()).unwrap();
    let sm = StateMachine::open(&dir.join("sm")).unwrap();
    let raft = Raft::new(1, config(), Alone, log, sm.clone())
        .await
        .unwrap();
    (raft, sm)
}

fn topics(image: &sluice_metadata::MetadataImage) -> BTreeSet<String> {
    image.topics.keys().cloned().collect()
}

#[tokio::test]
async fn a_single_voter_commits_restarts_and_keeps_what_it_committed() {
    let dir = tempfile::tempdir().unwrap();
    let wait = Some(Duration::from_secs(10));
    let last = {
        let (raft, sm) = start(dir.path()).await;
        raft.initialize(BTreeMap::from([(1, Member::new("127.0.0.1:9093"))]))
            .await
            .unwrap();
        raft.wait(wait)
            .current_leader(1, "elects itself")
            .await
            .unwrap();
        raft.client_write(topic("orders")).await.unwrap();
        let written = raft.client_write(topic("payments")).await.unwrap();
        assert_eq!(
            topics(&sm.image().await),
            BTreeSet::from(["orders".into(), "payments".into()])
        );
        raft.shutdown().await.unwrap();
        written.log_id.index
    };

    // Entry i is the batch at offset i, its leader epoch the term.
    let offsets = {
        let log = Log::open(&dir.path().join("log"), LogConfig::default()).unwrap();
        let mut offsets = Vec::new();
        log.replay(&mut |r| {
            offsets.push(r.offset);
            Ok::<(), StorageError>(())
        })
        .unwrap();
        offsets
    };
    assert_eq!(offsets, (0..=last as i64).collect::<Vec<_>>());

    let (raft, sm) = start(dir.path()).await;
    raft.wait(wait)
        .current_leader(1, "leader again")
        .await
        .unwrap();
    raft.wait(wait)
        .applied_index_at_least(Some(last), "re-applies what was committed")
        .await
        .unwrap();
    assert_eq!(
        topics(&sm.image().await),
        BTreeSet::from(["orders".into(), "payments".into()])
    );

    // A snapshot, then the log cut up to it: the image comes back from the snapshot alone.
    raft.client_write(topic("refunds")).await.unwrap();
    raft.trigger().snapshot().await.unwrap();
    let metrics = raft
        .wait(wait)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index > last),
            "snapshot built",
        )
        .await
        .unwrap();
    let snapshot_index = metrics.snapshot.unwrap().index;
    raft.trigger().purge_log(snapshot_index).await.unwrap();
    raft.wait(wait)
        .metrics(
            |m| m.purged.is_some_and(|p| p.index == snapshot_index),
            "log cut",
        )
        .await
        .unwrap();
    raft.shutdown().await.unwrap();
    drop(sm);

    let (raft, sm) = start(dir.path()).await;
    raft.wait(wait)
        .current_leader(1, "leader after the cut")
        .await
        .unwrap();
    assert_eq!(
        topics(&sm.image().await),
        BTreeSet::from(["orders".into(), "payments".into(), "refunds".into()])
    );
    raft.client_write(topic("returns")).await.unwrap();
    assert!(sm.image().await.topics.contains_key("returns"));
    raft.shutdown().await.unwrap();
}
