//! Three controllers on real files, in one process, connected by the in-memory router (every message framed
//! and decoded as on TCP): they elect one leader, replicate, survive the loss of any one of them, refuse
//! writes without a majority, never diverge when the leader is cut off, and bring a node that fell behind
//! back from a snapshot. The last test runs the same quorum over TCP on loopback.

#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Cluster, topic, topics};
use openraft::Vote;
use openraft::raft::VoteRequest;
use sluice_quorum::network::{PeerConnection, PeerTransport};
use sluice_quorum::rpc::{
    self, Identity, PeerHeader, PeerMessage, PeerReply, RaftRequest, voters_fingerprint,
};
use sluice_quorum::tcp::{self, TcpTransport};
use sluice_quorum::{Member, NodeId};
use sluice_quorum::{ProposeError, QuorumNode, Settings};

const WAIT: Duration = Duration::from_secs(10);
const WRITE: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_one_leader_and_replicate_every_change_in_order() {
    let mut cluster = Cluster::start(3, 1).await;
    let leader = cluster.leader(WAIT).await;

    let mut offsets = Vec::new();
    for name in ["orders", "payments", "refunds"] {
        offsets.push(
            cluster
                .node(leader)
                .propose(topic(name), WRITE)
                .await
                .unwrap(),
        );
    }
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets in order: {offsets:?}"
    );

    // A follower is not the controller and says who is.
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    match cluster.node(follower).propose(topic("nope"), WRITE).await {
        Err(ProposeError::NotLeader {
            leader: Some(l),
            address: Some(a),
        }) => {
            assert_eq!(l, leader);
            assert_eq!(a, cluster.voters[&leader]);
        }
        other => panic!("a follower accepted a write or did not name the leader: {other:?}"),
    }

    cluster
        .applied_everywhere(*offsets.last().unwrap(), WAIT)
        .await;
    let images = cluster.images().await;
    for image in images.values() {
        assert_eq!(image, &images[&leader]);
        assert_eq!(topics(image).len(), 3);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_leader_elects_another_within_seconds_and_loses_nothing_committed() {
    let mut cluster = Cluster::start(3, 2).await;
    let first = cluster.leader(WAIT).await;
    let mut last = 0;
    for i in 0..5 {
        last = cluster
            .node(first)
            .propose(topic(&format!("before-{i}")), WRITE)
            .await
            .unwrap();
    }

    let lost_at = Instant::now();
    cluster.crash(first).await;
    let second = cluster.leader(WAIT).await;
    let failover = lost_at.elapsed();
    assert_ne!(second, first);
    // The election timeout is 300-600 ms here; a new leader well within a few of those.
    println!("failover to node {second} took {failover:?}");
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );

    let after = cluster
        .node(second)
        .propose(topic("after"), WRITE)
        .await
        .unwrap();
    assert!(after > last);
    let image = cluster.node(second).image().await;
    for i in 0..5 {
        assert!(
            image.topics.contains_key(&format!("before-{i}")),
            "committed topic before-{i} lost"
        );
    }

    // The old leader comes back as a follower and catches up.
    cluster.open(first).await;
    cluster.applied_everywhere(after, WAIT).await;
    let images = cluster.images().await;
    assert_eq!(images[&first], images[&second]);
    assert_eq!(topics(&images[&first]).len(), 6);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_follows_every_change_without_voting() {
    let mut cluster = Cluster::start(3, 7).await;
    let leader = cluster.leader(WAIT).await;
    cluster
        .node(leader)
        .propose(topic("before"), WRITE)
        .await
        .unwrap();

    // Node 4 is no voter (a broker-only node): it opens, and waits until the leader adds it.
    cluster.open(4).await;
    let follower = *cluster.voters.keys().find(|id| **id != leader).unwrap();
    assert!(matches!(
        cluster
            .node(follower)
            .ensure_learner(4, "broker-4:9092", WRITE)
            .await,
        Err(ProposeError::NotLeader { .. })
    ));
    let quorum = cluster.node(leader).clone();
    quorum
        .ensure_learner(4, "broker-4:9092", WRITE)
        .await
        .unwrap();
    let end = quorum.metrics().borrow().last_log_index;
    // Again at the same address: nothing to change, no membership entry.
    quorum
        .ensure_learner(4, "broker-4:9092", WRITE)
        .await
        .unwrap();
    assert_eq!(quorum.metrics().borrow().last_log_index, end);
    let after = quorum.propose(topic("after"), WRITE).await.unwrap();
    cluster.applied_everywhere(after, WAIT).await;
    assert_eq!(
        topics(&cluster.node(4).image().await),
        ["after".to_string(), "before".to_string()].into()
    );
    assert!(!cluster.node(4).is_voter(4));
    assert_eq!(cluster.node(4).leader(), Some(leader));
    let status = quorum.describe();
    let ids = |v: &[sluice_quorum::VoterStatus]| v.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(&status.voters), [1, 2, 3]);
    assert_eq!(ids(&status.observers), [4]);
    assert_eq!(status.observers[0].address, "broker-4:9092");

    // The learner does not count towards a majority: with both other voters down, nothing commits.
    let others: Vec<u64> = cluster
        .voters
        .keys()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    for id in &others {
        cluster.crash(*id).await;
    }
    assert!(matches!(
        quorum.propose(topic("no-quorum"), WRITE).await,
        Err(ProposeError::Timeout(_))
    ));
    for id in &others {
        cluster.open(*id).await;
    }
    let leader = cluster.leader_among(&[1, 2, 3], WAIT).await;
    let quorum = cluster.node(leader).clone();

    // A learner that moved is followed at its new address; one forgotten is replicated to no more.
    quorum
        .ensure_learner(4, "broker-4b:9092", WRITE)
        .await
        .unwrap();
    assert_eq!(quorum.describe().observers[0].address, "broker-4b:9092");
    quorum.forget_learner(4, WRITE).await.unwrap();
    assert!(quorum.describe().observers.is_empty());
    let last = quorum.propose(topic("unseen"), WRITE).await.unwrap();
    for id in [1, 2, 3] {
        cluster
            .node(id)
            .raft()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(last), "the write after the learner left")
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!topics(&cluster.node(4).image().await).contains("unseen"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_quorum_grows_from_one_voter_to_three_and_shrinks_back() {
    let mut cluster = Cluster::start_dynamic(3, 5).await;
    // Node 1 alone is the quorum; 2 and 3 run but have no voters and never stand.
    assert_eq!(cluster.leader_among(&[1], WAIT).await, 1);
    let first = cluster
        .node(1)
        .propose(topic("alone"), WRITE)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in [2, 3] {
        assert_eq!(cluster.node(id).leader(), None, "node {id} joined unasked");
        assert!(!cluster.node(1).is_voter(id));
    }
    let voters = |cluster: &Cluster| -> Vec<u64> {
        cluster
            .node(1)
            .describe()
            .voters
            .iter()
            .map(|v| v.id)
            .collect()
    };

    // One voter at a time, each holding the log before it votes.
    for id in [2, 3] {
        cluster
            .node(1)
            .add_voter(id, cluster.member(id, &cluster.voters[&id]), WAIT)
            .await
            .unwrap();
        assert!(cluster.node(id).image().await.topics.contains_key("alone"));
    }
    assert_eq!(voters(&cluster), vec![1, 2, 3]);
    match cluster
        .node(1)
        .add_voter(2, cluster.member(2, "controller-2:9093"), WRITE)
        .await
    {
        Err(ProposeError::DuplicateVoter(2)) => {}
        other => panic!("adding a voter twice: {other:?}"),
    }
    // A voter's address moves only under its own directory id (UpdateRaftVoter).
    let elsewhere = Member::with_directory("moved-2:9093", Some(uuid::Uuid::from_u128(99)));
    match cluster.node(1).update_voter(2, elsewhere, WRITE).await {
        Err(ProposeError::VoterNotFound(2)) => {}
        other => panic!("moving a voter named by another disk: {other:?}"),
    }
    cluster
        .node(1)
        .update_voter(2, cluster.member(2, "moved-2:9093"), WRITE)
        .await
        .unwrap();
    let moved = cluster.node(1).describe();
    let two = moved.voters.iter().find(|v| v.id == 2).unwrap();
    assert_eq!(two.address, "moved-2:9093");
    assert_eq!(two.directory_id, Some(uuid::Uuid::from_u128(2)));
    let three = cluster
        .node(1)
        .propose(topic("three"), WRITE)
        .await
        .unwrap();
    cluster.applied_everywhere(three, WAIT).await;

    // Three voters survive the loss of the one that started alone.
    cluster.crash(1).await;
    let leader = cluster.leader_among(&[2, 3], WAIT).await;
    let after = cluster
        .node(leader)
        .propose(topic("after-1"), WRITE)
        .await
        .unwrap();
    cluster.open(1).await;
    cluster.applied_everywhere(after, WAIT).await;

    // Shrink back to node 1 alone. The leader is one of 2 and 3 (1 came back as a follower) and removes
    // itself first: it leads until the change commits, then leaves, and the other two elect one of themselves.
    let leader = cluster.leader(WAIT).await;
    assert_ne!(leader, 1, "node 1 came back as a follower");
    let other = 5 - leader; // the one of 2 and 3 that is not the leader
    // A request naming another disk of the voter removes nothing.
    match cluster
        .node(leader)
        .remove_voter(other, Some(uuid::Uuid::from_u128(99)), WRITE)
        .await
    {
        Err(ProposeError::VoterNotFound(id)) if id == other => {}
        r => panic!("removing a voter by a wrong directory id: {r:?}"),
    }
    assert!(cluster.node(leader).is_voter(other));
    let directory = |id: NodeId| Some(uuid::Uuid::from_u128(id as u128));
    cluster
        .node(leader)
        .remove_voter(leader, directory(leader), WRITE)
        .await
        .unwrap();
    let next = cluster.leader_among(&[1, other], WAIT).await;
    assert!(!cluster.node(next).is_voter(leader));
    cluster.crash(leader).await; // it left the quorum; nothing of it is needed any more
    cluster
        .node(next)
        .remove_voter(other, directory(other), WRITE)
        .await
        .unwrap();
    if next == other {
        cluster.leader_among(&[1], WAIT).await;
        cluster.crash(other).await;
    }
    assert_eq!(cluster.leader(WAIT).await, 1);
    assert_eq!(voters(&cluster), vec![1]);
    match cluster.node(1).remove_voter(1, None, WRITE).await {
        Err(ProposeError::Invalid(_)) => {}
        other => panic!("removing the last voter: {other:?}"),
    }
    match cluster.node(1).remove_voter(leader, None, WRITE).await {
        Err(ProposeError::VoterNotFound(id)) if id == leader => {}
        other => panic!("removing a non-voter: {other:?}"),
    }
    // Alone again, node 1 commits by itself and nothing committed on the way was lost. A voter removed by
    // another follows on as a learner; one that removed itself while leading has left.
    let end = cluster
        .node(1)
        .propose(topic("alone-again"), WRITE)
        .await
        .unwrap();
    assert!(end > first);
    let learners: Vec<u64> = cluster
        .node(1)
        .describe()
        .observers
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(learners, if next == 1 { vec![other] } else { vec![] });
    cluster.applied_everywhere(end, WAIT).await;
    let images = cluster.images().await;
    for (id, image) in &images {
        assert_eq!(
            topics(image),
            ["after-1", "alone", "alone-again", "three"]
                .map(String::from)
                .into(),
            "node {id}"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_majority_writes_fail_with_a_timeout_and_work_again_once_it_is_back() {
    let mut cluster = Cluster::start(3, 3).await;
    let leader = cluster.leader(WAIT).await;
    cluster
        .node(leader)
        .propose(topic("kept"), WRITE)
        .await
        .unwrap();

    let followers: Vec<u64> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    for id in &followers {
        cluster.crash(*id).await;
    }
    let started = Instant::now();
    match cluster
        .node(leader)
        .propose(topic("no-quorum"), WRITE)
        .await
    {
        Err(ProposeError::Timeout(_)) => {}
        other => panic!("a write without a majority did not time out: {other:?}"),
    }
    assert!(started.elapsed() < WRITE + Duration::from_secs(1));
    // Once the leader has heard from nobody for `quorum_lost_ms` (1 s), a write waits no longer than that,
    // whatever the caller's timeout.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let started = Instant::now();
    match cluster
        .node(leader)
        .propose(topic("no-quorum-2"), Duration::from_secs(30))
        .await
    {
        Err(ProposeError::Timeout(_)) | Err(ProposeError::NotLeader { .. }) => {}
        other => panic!("a write without a majority did not fail: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );

    for id in &followers {
        cluster.open(*id).await;
    }
    // As a client would: retry the retriable errors until the quorum answers again.
    let deadline = Instant::now() + WAIT;
    let last = loop {
        let leader = cluster.leader(WAIT).await;
        match cluster.node(leader).propose(topic("again"), WRITE).await {
            Ok(offset) => break offset,
            Err(e) => assert!(Instant::now() < deadline, "writes never came back: {e}"),
        }
    };
    let leader = cluster.leader(WAIT).await;
    cluster.applied_everywhere(last, WAIT).await;
    let images = cluster.images().await;
    let reference = &images[&leader];
    assert!(reference.topics.contains_key("kept") && reference.topics.contains_key("again"));
    for image in images.values() {
        assert_eq!(image, reference);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_others_commits_nothing_and_rejoins_without_divergence() {
    let mut cluster = Cluster::start(3, 4).await;
    let old = cluster.leader(WAIT).await;
    cluster
        .node(old)
        .propose(topic("before"), WRITE)
        .await
        .unwrap();

    let others: Vec<u64> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|id| *id != old)
        .collect();
    cluster.router.isolate(old, others.clone());
    // The old leader cannot commit: its write times out (and must not appear once it rejoins).
    let stale = cluster
        .node(old)
        .propose(topic("stale"), Duration::from_millis(1500))
        .await;
    assert!(matches!(stale, Err(ProposeError::Timeout(_))), "{stale:?}");

    let new = cluster.leader_among(&others, WAIT).await;
    assert_ne!(new, old);
    let last = cluster
        .node(new)
        .propose(topic("during"), WRITE)
        .await
        .unwrap();

    cluster.router.heal();
    cluster.applied_everywhere(last, WAIT).await;
    let leader = cluster.leader(WAIT).await;
    let last = cluster
        .node(leader)
        .propose(topic("after"), WRITE)
        .await
        .unwrap();
    cluster.applied_everywhere(last, WAIT).await;
    let images = cluster.images().await;
    for image in images.values() {
        assert_eq!(image, &images[&leader]);
    }
    let names = topics(&images[&leader]);
    assert!(names.contains("before") && names.contains("during") && names.contains("after"));
    assert!(
        !names.contains("stale"),
        "an uncommitted write of the cut-off leader survived: {names:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_fell_behind_a_snapshot_catches_up_from_it() {
    // A snapshot every 20 entries, keeping none behind it, so the leader's log no longer has what the lagging
    // node misses.
    let mut cluster = Cluster::start_with(3, 5, 20, 0, tempfile::tempdir().unwrap()).await;
    let leader = cluster.leader(WAIT).await;
    let lagging = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    cluster.crash(lagging).await;
    let mut last = 0;
    for i in 0..60 {
        last = cluster
            .node(leader)
            .propose(topic(&format!("t{i}")), WRITE)
            .await
            .unwrap();
    }
    let metrics = cluster
        .node(leader)
        .raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= 40),
            "log cut by a snapshot",
        )
        .await
        .unwrap();
    let purged = metrics.purged.unwrap().index;

    cluster.open(lagging).await;
    cluster.applied_everywhere(last, WAIT).await;
    let metrics = cluster.node(lagging).metrics().borrow().clone();
    let snapshot = metrics
        .snapshot
        .expect("the lagging node installed a snapshot");
    assert!(
        snapshot.index >= purged,
        "snapshot at {} below the leader's cut {purged}",
        snapshot.index
    );
    let images = cluster.images().await;
    assert_eq!(images[&lagging], images[&leader]);
    assert_eq!(topics(&images[&lagging]).len(), 60);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_over_tcp_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut listeners = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listeners.insert(id, listener);
    }
    let voters: BTreeMap<u64, String> = listeners
        .iter()
        .map(|(id, l)| (*id, l.local_addr().unwrap().to_string()))
        .collect();
    let transport = Arc::new(TcpTransport::new());
    let mut nodes = BTreeMap::new();
    let mut servers = Vec::new();
    for (id, listener) in listeners {
        let settings = Settings {
            node_id: id,
            dir: dir.path().join(format!("node-{id}")),
            cluster_id: Some("tcp-cluster".into()),
            voters: voters.clone(),
            initial_voters: None,
            timing: common::timing(),
            snapshot_every: 5000,
            keep_after_snapshot: 1000,
            log: Default::default(),
        };
        let node = Arc::new(
            QuorumNode::open(&settings, transport.clone())
                .await
                .unwrap(),
        );
        servers.push(tokio::spawn(tcp::serve(listener, node.clone())));
        nodes.insert(id, node);
    }
    let deadline = Instant::now() + WAIT;
    let leader = loop {
        let leaders: Vec<_> = nodes.values().map(|n| n.leader()).collect();
        if let Some(Some(l)) = leaders.first()
            && leaders.iter().all(|x| x == &Some(*l))
        {
            break *l;
        }
        assert!(Instant::now() < deadline, "no leader over TCP: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let last = nodes[&leader]
        .propose(topic("over-tcp"), WRITE)
        .await
        .unwrap();
    for node in nodes.values() {
        node.raft()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(last), "applied")
            .await
            .unwrap();
        assert!(node.image().await.topics.contains_key("over-tcp"));
    }

    // Over the real socket: a message from a node started with other voters, or of another cluster, is
    // refused with Kafka's error for it; the same message from a peer in good standing is answered.
    let target = nodes[&1].identity();
    let mut connection = transport.connect(1, &Member::new(&voters[&1]));
    let ask = |from: Identity| PeerMessage {
        header: PeerHeader { from, to: 1 },
        request: RaftRequest::Vote(VoteRequest::new(Vote::new(1, 2), None)),
    };
    let peer = Identity {
        node_id: 2,
        ..target.clone()
    };
    let mut wrong_voters = voters.clone();
    wrong_voters.insert(4, "127.0.0.1:1".into());
    let cases = [
        (
            Identity {
                voters: voters_fingerprint(wrong_voters.iter().map(|(i, a)| (*i, a.as_str()))),
                ..peer.clone()
            },
            Some(rpc::INCONSISTENT_VOTER_SET),
        ),
        (
            Identity {
                cluster_id: Some("another".into()),
                ..peer.clone()
            },
            Some(rpc::INCONSISTENT_CLUSTER_ID),
        ),
        (peer.clone(), None),
    ];
    for (from, refused) in cases {
        match (connection.call(ask(from), WRITE).await.unwrap(), refused) {
            (PeerReply::Refused { error_code, .. }, Some(expected)) => {
                assert_eq!(error_code, expected)
            }
            (PeerReply::Vote(Ok(_)), None) => {}
            (reply, expected) => panic!("expected refusal {expected:?}, got {reply:?}"),
        }
    }
    assert_eq!(nodes[&leader].leader(), Some(leader));

    for server in servers {
        server.abort();
    }
    for node in nodes.values() {
        node.shutdown().await;
    }
}
