//! One controller of the quorum: openraft over this crate's storage and a transport, opened from Kafka's
//! settings, and the two things the rest of the broker asks of it: propose a change, and answer a peer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, Config, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use sluice_metadata::MetadataImage;
use sluice_storage::LogConfig;
use tokio::sync::watch;

use crate::network::{Network, PeerTransport};
use crate::rpc::{self, Identity, PeerMessage, PeerReply, RaftRequest};
use crate::{LogStore, Member, MetadataBatch, NodeId, Quorum, QuorumError, StateMachine};

/// Raft timing. Kafka's `controller.quorum.election.timeout.ms` (1000) is the lower bound of the election
/// timeout; openraft draws each node's timeout at random between the two bounds, so two followers rarely stand
/// at the same moment.
#[derive(Clone, Debug)]
pub struct Timing {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// A leader that heard from no majority for this long fails new writes at once (Kafka's
    /// `controller.quorum.fetch.timeout.ms`) instead of letting each wait out its own timeout.
    pub quorum_lost_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_ms: 250,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            quorum_lost_ms: 2000,
        }
    }
}

/// What a controller is started with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub node_id: NodeId,
    /// The metadata log's directory (`__cluster_metadata-0`): segments, vote, commit point, snapshot.
    pub dir: PathBuf,
    pub cluster_id: Option<String>,
    /// The static `controller.quorum.voters`, id → `host:port` of the controller listener. Empty for a
    /// dynamic quorum (`controller.quorum.bootstrap.servers`), whose voters live only in the log.
    pub voters: BTreeMap<NodeId, String>,
    /// The voters a fresh log starts with. `None`: the static `voters`, without directory ids. A dynamic
    /// quorum's first controller starts with itself alone (Kafka's `--standalone`), or every node with the same
    /// list (`--initial-controllers`); a node that joins later starts with none and waits to be added.
    pub initial_voters: Option<BTreeMap<NodeId, Member>>,
    pub timing: Timing,
    /// A snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// How many entries a snapshot leaves in the log, so a follower slightly behind catches up from the log
    /// rather than a whole snapshot.
    pub keep_after_snapshot: u64,
    pub log: LogConfig,
}

/// Why a proposal was not committed. Each maps to the Kafka error a client is told.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// NOT_CONTROLLER: this node is not the active controller; `leader` is, if known.
    #[error("node is not the active controller (the leader is {leader:?})")]
    NotLeader {
        leader: Option<NodeId>,
        address: Option<String>,
    },
    /// REQUEST_TIMED_OUT: no majority acknowledged the change in time. It may still commit later (a client
    /// that timed out does not know), exactly as with Kafka.
    #[error("no majority of the controller quorum acknowledged within {0:?}")]
    Timeout(Duration),
    #[error("the controller quorum stopped: {0}")]
    Stopped(String),
    /// DUPLICATE_VOTER: the node to add votes already.
    #[error("node {0} is already a voter")]
    DuplicateVoter(NodeId),
    /// VOTER_NOT_FOUND: the node to remove is not a voter.
    #[error("node {0} is not a voter")]
    VoterNotFound(NodeId),
    /// INVALID_REQUEST: a change the quorum cannot make (removing its last voter).
    #[error("{0}")]
    Invalid(String),
}

/// One controller. Cheap to share behind an `Arc`.
pub struct QuorumNode {
    raft: Raft<Quorum>,
    state: StateMachine,
    images: watch::Receiver<Arc<MetadataImage>>,
    identity: Arc<RwLock<Identity>>,
    timing: Timing,
    contacts: crate::network::Contacts,
    /// Openraft takes one membership change at a time: learners joining at once take turns here.
    membership_changes: tokio::sync::Mutex<()>,
}

/// The quorum as DescribeQuorum reports it, from the leader's point of view.
#[derive(Clone, Debug)]
pub struct QuorumStatus {
    pub leader: Option<NodeId>,
    /// The Raft term: Kafka's leader epoch.
    pub term: u64,
    /// The offset after the last committed entry.
    pub high_watermark: i64,
    pub voters: Vec<VoterStatus>,
    /// Learners: broker-only nodes, which follow the log without voting (Kafka's observers).
    pub observers: Vec<VoterStatus>,
}

#[derive(Clone, Debug)]
pub struct VoterStatus {
    pub id: NodeId,
    pub address: String,
    /// The directory id of its metadata log dir (KIP-853), where the membership holds one.
    pub directory_id: Option<uuid::Uuid>,
    /// The offset after the last entry the leader knows this voter has (-1: unknown).
    pub log_end_offset: i64,
    /// When it last answered the leader, ms since the epoch (-1: never, or this is not the leader's view).
    pub last_fetch_ms: i64,
    /// When it was last known to hold everything committed (-1: not known).
    pub last_caught_up_ms: i64,
}

/// A write openraft refused: NOT_CONTROLLER with the leader it names, or the quorum stopped.
fn write_refused(e: RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            ProposeError::NotLeader {
                leader: forward.leader_id,
                address: forward.leader_node.map(|n| n.addr),
            }
        }
        e => ProposeError::Stopped(e.to_string()),
    }
}

/// Openraft refused a membership change because another is still committing: worth retrying.
fn membership_in_progress(e: &RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> bool {
    matches!(
        e,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            openraft::error::ChangeMembershipError::InProgress(_),
        ))
    )
}

fn raft_error(e: impl std::fmt::Display) -> QuorumError {
    QuorumError::Raft(e.to_string())
}

impl QuorumNode {
    /// Opens the node's log and state in `settings.dir`, starts Raft, and on a fresh static quorum proposes the
    /// initial membership: every voter does so with the same voters, which openraft accepts once.
    pub async fn open<T: PeerTransport>(
        settings: &Settings,
        transport: Arc<T>,
    ) -> Result<QuorumNode, QuorumError> {
        let timing = settings.timing.clone();
        let config = Config {
            cluster_name: "sluice".into(),
            heartbeat_interval: timing.heartbeat_ms,
            election_timeout_min: timing.election_timeout_min_ms,
            election_timeout_max: timing.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
            max_in_snapshot_log_to_keep: settings.keep_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(raft_error)?;
        let mut log = LogStore::open(&settings.dir, settings.log.clone())?;
        let committed = openraft::storage::RaftLogStorage::read_committed(&mut log)
            .await
            .map_err(raft_error)?;
        let state = StateMachine::open(&settings.dir)?;
        let identity = Arc::new(RwLock::new(Identity {
            node_id: settings.node_id,
            cluster_id: settings.cluster_id.clone(),
            voters: rpc::voters_fingerprint(
                settings.voters.iter().map(|(id, a)| (*id, a.as_str())),
            ),
        }));
        let contacts = crate::network::Contacts::default();
        let network = Network::new(transport, identity.clone(), contacts.clone());
        let raft = Raft::new(
            settings.node_id,
            Arc::new(config),
            network,
            log,
            state.clone(),
        )
        .await
        .map_err(raft_error)?;
        // Everything this node knew committed is applied before anyone reads the image: a broker that
        // reconciled its logs against a half-replayed image would delete partitions that exist.
        if let Some(committed) = committed {
            raft.wait(Some(Duration::from_secs(60)))
                .applied_index_at_least(Some(committed.index), "replay of the committed metadata")
                .await
                .map_err(raft_error)?;
        }
        let images = state.subscribe().await;
        let node = QuorumNode {
            raft,
            state,
            images,
            identity,
            timing,
            contacts,
            membership_changes: tokio::sync::Mutex::new(()),
        };
        let initial = settings.initial_voters.clone().unwrap_or_else(|| {
            settings
                .voters
                .iter()
                .map(|(id, address)| (*id, Member::new(address)))
                .collect()
        });
        if initial.contains_key(&settings.node_id)
            && !node.raft.is_initialized().await.map_err(raft_error)?
        {
            let members = initial.clone();
            // Every voter started at once and standing at once splits the vote, round after round. So the
            // lowest id proposes the membership (and stands) first; each other voter waits its turn and does
            // so only if nobody has reached it by then, which keeps a quorum whose first voter is down from
            // never forming.
            let rank = initial
                .keys()
                .position(|id| *id == settings.node_id)
                .unwrap_or(0) as u64;
            let raft = node.raft.clone();
            let wait = Duration::from_millis(rank * 2 * settings.timing.election_timeout_max_ms);
            let initialize = async move {
                tokio::time::sleep(wait).await;
                if raft.is_initialized().await.unwrap_or(true) {
                    return;
                }
                match raft.initialize(members).await {
                    Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                    Err(e) => tracing::warn!(error = %e, "proposing the initial voters failed"),
                }
            };
            if rank == 0 {
                initialize.await;
            } else {
                tokio::spawn(initialize);
            }
        }
        Ok(node)
    }

    pub fn node_id(&self) -> NodeId {
        self.identity().node_id
    }

    pub fn identity(&self) -> Identity {
        match self.identity.read() {
            Ok(identity) => identity.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The leader, term, high watermark and each voter's progress, as this node knows them (complete on the
    /// leader).
    pub fn describe(&self) -> QuorumStatus {
        let m = self.raft.metrics().borrow().clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let end = m.last_log_index.map_or(0, |i| i as i64 + 1);
        let leading = m.state == ServerState::Leader;
        // On the leader every entry up to its last is acknowledged or about to be; the committed index is
        // what followers apply, and what a new leader's blank entry proves.
        let high_watermark = m.last_applied.map_or(0, |l| l.index as i64 + 1);
        let contacts = self.contacts.lock().map(|c| c.clone()).unwrap_or_default();
        let membership = m.membership_config.membership().clone();
        let progress = |id: NodeId| {
            let member = membership.get_node(&id).cloned().unwrap_or_default();
            let (address, directory_id) = (member.addr, member.directory_id);
            if id == m.id {
                return VoterStatus {
                    id,
                    address,
                    directory_id,
                    log_end_offset: end,
                    last_fetch_ms: now,
                    last_caught_up_ms: now,
                };
            }
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned().flatten())
                .map_or(-1, |l| l.index as i64 + 1);
            let fetched = if leading {
                contacts.get(&id).copied().unwrap_or(-1)
            } else {
                -1
            };
            VoterStatus {
                id,
                address,
                directory_id,
                log_end_offset: matched,
                last_fetch_ms: fetched,
                last_caught_up_ms: if matched >= high_watermark {
                    fetched
                } else {
                    -1
                },
            }
        };
        let voters = membership.voter_ids().map(progress).collect();
        let observers = membership.learner_ids().map(progress).collect();
        QuorumStatus {
            leader: m.current_leader,
            term: m.current_term,
            high_watermark,
            voters,
            observers,
        }
    }

    /// Whether `id` is a voter of the membership this node knows.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id)
    }

    /// On the leader: makes `id` a learner reached at `address` (a broker-only node, which follows the log
    /// without voting), or moves a learner to its new address. Nothing to do for a voter or a learner already
    /// there. Answers once the membership change is committed; replication to it goes on in the background.
    pub async fn ensure_learner(
        &self,
        id: NodeId,
        address: &str,
        timeout: Duration,
    ) -> Result<(), ProposeError> {
        self.ensure_learner_member(id, Member::new(address), timeout)
            .await
    }

    /// As `ensure_learner`, for a member that names its metadata directory (a controller waiting to be
    /// added as a voter, which `DescribeQuorum` then lists with its directory id).
    pub async fn ensure_learner_member(
        &self,
        id: NodeId,
        member: Member,
        timeout: Duration,
    ) -> Result<(), ProposeError> {
        let known = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            if m.state != ServerState::Leader {
                return Err(self.not_leader(&m));
            }
            let membership = m.membership_config.membership();
            if membership.voter_ids().any(|v| v == id) {
                return Ok(());
            }
            membership.get_node(&id).cloned()
        };
        if known.as_ref() == Some(&member) {
            return Ok(());
        }
        let change = ChangeMembers::SetNodes(BTreeMap::from([(id, member)]));
        match tokio::time::timeout(timeout, self.change_membership(change, true)).await {
            Err(_) => Err(ProposeError::Timeout(timeout)),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(write_refused(e)),
        }
    }

    /// One membership change, after any other this node is making; one still committing from before (a new
    /// leader's, say) is waited out. `retain`: a voter removed stays a learner.
    async fn change_membership(
        &self,
        change: ChangeMembers<NodeId, Member>,
        retain: bool,
    ) -> Result<(), RaftError<NodeId, ClientWriteError<NodeId, Member>>> {
        let _turn = self.membership_changes.lock().await;
        self.change_membership_in_turn(change, retain).await
    }

    /// `change_membership` for a caller that already holds `membership_changes`.
    async fn change_membership_in_turn(
        &self,
        change: ChangeMembers<NodeId, Member>,
        retain: bool,
    ) -> Result<(), RaftError<NodeId, ClientWriteError<NodeId, Member>>> {
        loop {
            match self.raft.change_membership(change.clone(), retain).await {
                Err(e) if membership_in_progress(&e) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => return other.map(drop),
            }
        }
    }

    /// On the leader: makes `id`, reached at `address`, a voter (KIP-853's AddRaftVoter). It first follows as a
    /// learner until it holds the log, so the quorum never waits on a voter that is still catching up, then
    /// joins the voters. Answers once the new voter set is committed; `timeout` bounds the whole change.
    pub async fn add_voter(
        &self,
        id: NodeId,
        member: Member,
        timeout: Duration,
    ) -> Result<(), ProposeError> {
        self.leader_membership(|membership| {
            if membership.voter_ids().any(|v| v == id) {
                return Err(ProposeError::DuplicateVoter(id));
            }
            Ok(())
        })?;
        let stale = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            m.membership_config
                .membership()
                .get_node(&id)
                .is_some_and(|n| *n != member)
        };
        let add = async {
            let _turn = self.membership_changes.lock().await;
            // A learner known by another address or disk (a controller that followed as a learner before it
            // was added) is moved to the one asked for first: adding a node that exists keeps the old entry.
            if stale {
                let set = ChangeMembers::SetNodes(BTreeMap::from([(id, member.clone())]));
                self.change_membership_in_turn(set, true)
                    .await
                    .map_err(write_refused)?;
            }
            loop {
                match self.raft.add_learner(id, member.clone(), true).await {
                    Err(e) if membership_in_progress(&e) => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    other => break other.map(drop).map_err(write_refused)?,
                }
            }
            let promote = ChangeMembers::AddVoterIds(std::collections::BTreeSet::from([id]));
            self.change_membership_in_turn(promote, true)
                .await
                .map_err(write_refused)
        };
        tokio::time::timeout(timeout, add)
            .await
            .unwrap_or(Err(ProposeError::Timeout(timeout)))
    }

    /// On the leader: takes `id` out of the voters (KIP-853's RemoveRaftVoter). Another node stays a learner,
    /// as a removed Kafka controller stays an observer, until it is forgotten. The leader removing itself
    /// leaves the membership altogether: openraft lets a learner go on leading, so only that makes it step
    /// down once the change commits, and the others elect a leader among themselves (Kafka's leader resigns
    /// the same way). A combined node registers again as a broker and is a learner once more.
    /// `directory_id`, when given, must be the voter's (`None` in the membership matches the nil id), so a
    /// request naming a controller's old disk removes nothing.
    pub async fn remove_voter(
        &self,
        id: NodeId,
        directory_id: Option<uuid::Uuid>,
        timeout: Duration,
    ) -> Result<(), ProposeError> {
        self.leader_membership(|membership| {
            let voter = membership
                .get_node(&id)
                .filter(|_| membership.voter_ids().any(|v| v == id));
            let Some(voter) = voter else {
                return Err(ProposeError::VoterNotFound(id));
            };
            if let Some(wanted) = directory_id
                && voter.directory_id.unwrap_or_default() != wanted
            {
                return Err(ProposeError::VoterNotFound(id));
            }
            if membership.voter_ids().count() == 1 {
                return Err(ProposeError::Invalid(format!(
                    "node {id} is the only voter; a quorum cannot remove its last voter"
                )));
            }
            Ok(())
        })?;
        let change = ChangeMembers::RemoveVoters(std::collections::BTreeSet::from([id]));
        let retain = id != self.node_id();
        match tokio::time::timeout(timeout, self.change_membership(change, retain)).await {
            Err(_) => Err(ProposeError::Timeout(timeout)),
            Ok(result) => result.map_err(write_refused),
        }
    }

    /// On the leader: moves the voter `id` to the address in `member` (KIP-853's UpdateRaftVoter, sent by a
    /// controller whose listener moved). The directory id must be the voter's: another disk is another voter.
    pub async fn update_voter(
        &self,
        id: NodeId,
        member: Member,
        timeout: Duration,
    ) -> Result<(), ProposeError> {
        let unchanged = self.leader_membership(|membership| {
            let voter = membership
                .get_node(&id)
                .filter(|_| membership.voter_ids().any(|v| v == id));
            match voter {
                Some(v) if v.directory_id == member.directory_id => Ok(*v == member),
                _ => Err(ProposeError::VoterNotFound(id)),
            }
        })?;
        if unchanged {
            return Ok(());
        }
        let change = ChangeMembers::SetNodes(BTreeMap::from([(id, member)]));
        match tokio::time::timeout(timeout, self.change_membership(change, true)).await {
            Err(_) => Err(ProposeError::Timeout(timeout)),
            Ok(result) => result.map_err(write_refused),
        }
    }

    /// Checks, on the leader, the membership this node knows; NOT_CONTROLLER elsewhere.
    fn leader_membership<T>(
        &self,
        check: impl FnOnce(&openraft::Membership<NodeId, Member>) -> Result<T, ProposeError>,
    ) -> Result<T, ProposeError> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        if m.state != ServerState::Leader {
            return Err(self.not_leader(&m));
        }
        check(m.membership_config.membership())
    }

    /// On the leader: stops replicating to the learner `id` (a broker unregistered for good). Voters are
    /// left alone: they leave only through a voter change.
    pub async fn forget_learner(&self, id: NodeId, timeout: Duration) -> Result<(), ProposeError> {
        {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            if m.state != ServerState::Leader {
                return Err(self.not_leader(&m));
            }
            let membership = m.membership_config.membership();
            if membership.voter_ids().any(|v| v == id) || membership.get_node(&id).is_none() {
                return Ok(());
            }
        }
        let change = ChangeMembers::RemoveNodes(std::collections::BTreeSet::from([id]));
        match tokio::time::timeout(timeout, self.change_membership(change, true)).await {
            Err(_) => Err(ProposeError::Timeout(timeout)),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(write_refused(e)),
        }
    }

    /// Whether this node leads, and in which term (Kafka's epoch).
    pub fn leadership(&self) -> (bool, u64) {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        (m.state == ServerState::Leader, m.current_term)
    }

    /// The active controller as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// The active controller as this node knows it, with the address the membership gives it.
    pub fn leader_member(&self) -> Option<(NodeId, Member)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let leader = m.current_leader?;
        let member = m.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, member))
    }

    /// This node's entry in the membership it knows, and whether it votes there.
    pub fn own_member(&self) -> Option<(Member, bool)> {
        self.member(self.raft.metrics().borrow().id)
    }

    /// Node `id`'s entry in the membership this node knows, and whether it votes there.
    pub fn member(&self, id: NodeId) -> Option<(Member, bool)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let member = membership.get_node(&id)?.clone();
        Some((member, membership.voter_ids().any(|v| v == id)))
    }

    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, Member>> {
        self.raft.metrics()
    }

    /// The metadata as of the last entry this node applied.
    pub async fn image(&self) -> MetadataImage {
        self.state.image().await
    }

    /// Every image this node applies, newest last.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.clone()
    }

    /// The image this node applied last.
    pub fn published_image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// The underlying Raft, for what this type does not wrap yet (membership changes, snapshots).
    pub fn raft(&self) -> &Raft<Quorum> {
        &self.raft
    }

    /// Commits `batch` through the quorum; answers the offset it has in the metadata log once this node has
    /// applied it.
    pub async fn propose(
        &self,
        batch: MetadataBatch,
        timeout: Duration,
    ) -> Result<u64, ProposeError> {
        let timeout = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            if metrics.state != ServerState::Leader {
                return Err(self.not_leader(&metrics));
            }
            // A leader that has not heard from a majority for a while gives the write only a short budget, so a
            // client with a 30 s timeout learns at once that the quorum is gone. Not an outright refusal: the
            // figure is as of openraft's last metrics report, and the majority may just have come back.
            match metrics.millis_since_quorum_ack {
                Some(since) if since > self.timing.quorum_lost_ms => {
                    timeout.min(Duration::from_millis(self.timing.quorum_lost_ms))
                }
                _ => timeout,
            }
        };
        match tokio::time::timeout(timeout, self.raft.client_write(batch)).await {
            Err(_) => Err(ProposeError::Timeout(timeout)),
            Ok(Ok(written)) => Ok(written.data.index),
            Ok(Err(e)) => Err(write_refused(e)),
        }
    }

    fn not_leader(&self, metrics: &RaftMetrics<NodeId, Member>) -> ProposeError {
        let leader = metrics.current_leader;
        let address = leader.and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())
        });
        ProposeError::NotLeader { leader, address }
    }

    /// Answers a peer's message, unless its header says it is not for this node or cluster.
    pub async fn answer(&self, message: PeerMessage) -> PeerReply {
        if let Some(refusal) = self.identity().refuse(&message.header) {
            return refusal;
        }
        match message.request {
            RaftRequest::Vote(vote) => PeerReply::Vote(self.raft.vote(vote).await),
            RaftRequest::AppendEntries(append) => {
                PeerReply::AppendEntries(self.raft.append_entries(append).await)
            }
            RaftRequest::InstallSnapshot(chunk) => {
                PeerReply::InstallSnapshot(self.raft.install_snapshot(chunk).await)
            }
        }
    }

    /// Answers one request frame (the bytes after the size prefix) with a reply frame, size prefix included.
    /// A frame that does not decode is an error: the connection it came on is closed.
    pub async fn answer_frame(&self, frame: Bytes) -> Result<BytesMut, QuorumError> {
        let (correlation_id, message) = rpc::decode_request(frame)?;
        let reply = self.answer(message).await;
        rpc::encode_reply(correlation_id, &reply)
    }

    /// Stops Raft; the files stay as they are, so opening the directory again resumes.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::debug!(error = %e, "raft stopped with an error");
        }
    }
}
