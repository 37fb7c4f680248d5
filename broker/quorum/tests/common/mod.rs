//! A quorum of real `QuorumNode`s on real files, connected by the in-memory router, for the cluster tests and
//! the simulation.

#![allow(clippy::unwrap_used, dead_code)] // tests may unwrap (project rule); not every test uses every helper

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use sluice_metadata::{MetadataImage, MetadataRecord};
use sluice_quorum::memory::MemoryRouter;
use sluice_quorum::{MetadataBatch, NodeId, QuorumNode, Settings, Timing};
use sluice_storage::LogConfig;

pub fn timing() -> Timing {
    Timing {
        heartbeat_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        quorum_lost_ms: 1000,
    }
}

pub fn topic(name: &str) -> MetadataBatch {
    MetadataBatch {
        records: vec![MetadataRecord::TopicCreated {
            name: name.into(),
            id: uuid::Uuid::new_v4(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
            internal: false,
            assignment: vec![vec![1]],
        }],
    }
}

pub fn topics(image: &MetadataImage) -> BTreeSet<String> {
    image.topics.keys().cloned().collect()
}

pub struct Cluster {
    pub router: Arc<MemoryRouter>,
    pub dir: tempfile::TempDir,
    /// Every node's address (its controller listener).
    pub voters: BTreeMap<NodeId, String>,
    /// A dynamic quorum: node 1 starts as the only voter, the others join when added.
    pub dynamic: bool,
    pub nodes: BTreeMap<NodeId, Arc<QuorumNode>>,
    pub snapshot_every: u64,
    pub keep_after_snapshot: u64,
}

impl Cluster {
    pub async fn start(size: u64, seed: u64) -> Cluster {
        Self::start_with(size, seed, 5000, 1000, tempfile::tempdir().unwrap()).await
    }

    pub async fn start_with(
        size: u64,
        seed: u64,
        snapshot_every: u64,
        keep: u64,
        dir: tempfile::TempDir,
    ) -> Cluster {
        let voters: BTreeMap<NodeId, String> = (1..=size)
            .map(|id| (id, format!("controller-{id}:9093")))
            .collect();
        let mut cluster = Cluster {
            router: MemoryRouter::new(seed),
            dir,
            voters,
            dynamic: false,
            nodes: BTreeMap::new(),
            snapshot_every,
            keep_after_snapshot: keep,
        };
        for id in 1..=size {
            cluster.open(id).await;
        }
        cluster
    }

    /// A dynamic quorum of `size` nodes: node 1 starts as its only voter (Kafka's `--standalone`), the others
    /// start with no voters and wait to be added.
    pub async fn start_dynamic(size: u64, seed: u64) -> Cluster {
        let mut cluster = Cluster {
            router: MemoryRouter::new(seed),
            dir: tempfile::tempdir().unwrap(),
            voters: (1..=size)
                .map(|id| (id, format!("controller-{id}:9093")))
                .collect(),
            dynamic: true,
            nodes: BTreeMap::new(),
            snapshot_every: 5000,
            keep_after_snapshot: 1000,
        };
        for id in 1..=size {
            cluster.open(id).await;
        }
        cluster
    }

    /// Node `id` as a dynamic quorum's membership holds it: its address and a directory id of its own.
    pub fn member(&self, id: NodeId, address: &str) -> sluice_quorum::Member {
        sluice_quorum::Member::with_directory(address, Some(uuid::Uuid::from_u128(id as u128)))
    }

    pub fn settings(&self, id: NodeId) -> Settings {
        Settings {
            node_id: id,
            dir: self.dir.path().join(format!("node-{id}")),
            cluster_id: Some("test-cluster".into()),
            voters: if self.dynamic {
                BTreeMap::new()
            } else {
                self.voters.clone()
            },
            initial_voters: self.dynamic.then(|| {
                self.voters
                    .iter()
                    .filter(|(voter, _)| **voter == 1 && id == 1)
                    .map(|(voter, address)| (*voter, self.member(*voter, address)))
                    .collect()
            }),
            timing: timing(),
            snapshot_every: self.snapshot_every,
            keep_after_snapshot: self.keep_after_snapshot,
            log: LogConfig::default(),
        }
    }

    /// Opens node `id` from its directory (fresh or as it was left) and connects it.
    pub async fn open(&mut self, id: NodeId) {
        let node = Arc::new(
            QuorumNode::open(&self.settings(id), self.router.clone())
                .await
                .unwrap(),
        );
        self.router.add(node.clone());
        self.nodes.insert(id, node);
    }

    /// Stops node `id` as a crash would for everyone else: it is unreachable at once; its files stay.
    pub async fn crash(&mut self, id: NodeId) {
        self.router.remove(id);
        if let Some(node) = self.nodes.remove(&id) {
            node.shutdown().await;
        }
    }

    pub fn node(&self, id: NodeId) -> &Arc<QuorumNode> {
        &self.nodes[&id]
    }

    /// The one leader among `among` that the others there follow, waiting up to `within` for it.
    pub async fn leader_among(&self, among: &[NodeId], within: Duration) -> NodeId {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let leaders: BTreeSet<Option<NodeId>> =
                among.iter().map(|id| self.node(*id).leader()).collect();
            if let [Some(leader)] = leaders.iter().copied().collect::<Vec<_>>()[..]
                && among.contains(&leader)
                && self.node(leader).metrics().borrow().state == ServerState::Leader
            {
                return leader;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no single leader among {among:?} within {within:?}: they follow {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn leader(&self, within: Duration) -> NodeId {
        let live: Vec<NodeId> = self.nodes.keys().copied().collect();
        self.leader_among(&live, within).await
    }

    /// Waits until every live node has applied at least `index`.
    pub async fn applied_everywhere(&self, index: u64, within: Duration) {
        for node in self.nodes.values() {
            node.raft()
                .wait(Some(within))
                .applied_index_at_least(Some(index), "caught up")
                .await
                .unwrap();
        }
    }

    /// Every live node's image, which must all be equal once they applied the same entries.
    pub async fn images(&self) -> BTreeMap<NodeId, MetadataImage> {
        let mut images = BTreeMap::new();
        for (id, node) in &self.nodes {
            images.insert(*id, node.image().await);
        }
        images
    }

    pub async fn shutdown(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.crash(id).await;
        }
    }
}
