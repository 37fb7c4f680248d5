//! openraft's network traits over a `PeerTransport`: TCP between processes (`tcp`), an in-memory router with
//! faults in tests and the simulation (`memory`). The adapter adds the identity header and turns transport
//! failures and refusals into the errors openraft retries on.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::Member;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::rpc::{Identity, PeerHeader, PeerMessage, PeerReply, RaftRequest};
use crate::{NodeId, Quorum};

/// How a message reaches a peer. One connection per target and purpose (openraft asks for one per replication
/// stream and one per election), each used for one request at a time.
pub trait PeerTransport: Send + Sync + 'static {
    type Connection: PeerConnection;

    /// A connection to `target` at `node.addr`; it may connect lazily.
    fn connect(self: &Arc<Self>, target: NodeId, node: &Member) -> Self::Connection;
}

pub trait PeerConnection: Send + Sync + 'static {
    /// Sends one message and waits at most `timeout` for its reply.
    fn call(
        &mut self,
        message: PeerMessage,
        timeout: Duration,
    ) -> impl Future<Output = Result<PeerReply, std::io::Error>> + Send;
}

/// When each peer last answered an AppendEntries (heartbeats included), in ms since the Unix epoch: what
/// DescribeQuorum reports as a voter's last fetch.
pub type Contacts = Arc<std::sync::Mutex<std::collections::HashMap<NodeId, i64>>>;

/// openraft's `RaftNetworkFactory` over a transport.
pub struct Network<T> {
    transport: Arc<T>,
    identity: Arc<std::sync::RwLock<Identity>>,
    contacts: Contacts,
}

impl<T> Network<T> {
    pub fn new(
        transport: Arc<T>,
        identity: Arc<std::sync::RwLock<Identity>>,
        contacts: Contacts,
    ) -> Self {
        Network {
            transport,
            identity,
            contacts,
        }
    }
}

impl<T: PeerTransport> RaftNetworkFactory<Quorum> for Network<T> {
    type Network = Peer<T::Connection>;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Self::Network {
        Peer {
            target,
            connection: self.transport.connect(target, node),
            identity: self.identity.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

/// One peer, as openraft's `RaftNetwork`.
pub struct Peer<C> {
    target: NodeId,
    connection: C,
    identity: Arc<std::sync::RwLock<Identity>>,
    contacts: Contacts,
}

type Rpc<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Member, RaftError<NodeId, E>>>;

fn unreachable<E: std::error::Error>(e: &std::io::Error) -> RPCError<NodeId, Member, E> {
    RPCError::Unreachable(Unreachable::new(e))
}

fn unexpected<E: std::error::Error>(reply: &PeerReply) -> RPCError<NodeId, Member, E> {
    let message = match reply {
        PeerReply::Refused {
            error_code,
            message,
        } => format!("refused (error {error_code}): {message}"),
        other => format!("a reply of the wrong kind: {other:?}"),
    };
    RPCError::Network(NetworkError::new(&std::io::Error::other(message)))
}

impl<C: PeerConnection> Peer<C> {
    async fn call(
        &mut self,
        request: RaftRequest,
        option: &RPCOption,
    ) -> Result<PeerReply, std::io::Error> {
        let from = match self.identity.read() {
            Ok(identity) => identity.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let message = PeerMessage {
            header: PeerHeader {
                from,
                to: self.target,
            },
            request,
        };
        self.connection.call(message, option.hard_ttl()).await
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, Member, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl<C: PeerConnection> RaftNetwork<Quorum> for Peer<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Quorum>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        match self.call(RaftRequest::AppendEntries(rpc), &option).await {
            Ok(PeerReply::AppendEntries(Ok(response))) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                if let Ok(mut contacts) = self.contacts.lock() {
                    contacts.insert(self.target, now);
                }
                Ok(response)
            }
            Ok(PeerReply::AppendEntries(Err(e))) => Err(self.remote(e)),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(unreachable(&e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Quorum>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.call(RaftRequest::InstallSnapshot(rpc), &option).await {
            Ok(PeerReply::InstallSnapshot(Ok(response))) => Ok(response),
            Ok(PeerReply::InstallSnapshot(Err(e))) => Err(self.remote(e)),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(unreachable(&e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        match self.call(RaftRequest::Vote(rpc), &option).await {
            Ok(PeerReply::Vote(Ok(response))) => Ok(response),
            Ok(PeerReply::Vote(Err(e))) => Err(self.remote(e)),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(unreachable(&e)),
        }
    }
}
