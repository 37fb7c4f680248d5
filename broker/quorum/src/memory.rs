//! An in-process transport with faults, for tests and the simulation: every message is framed and decoded as
//! on TCP (so the codec is what is tested), then delivered to the target node after a random delay, unless the
//! link is cut, the target is down, or the message is lost. Delays differ per message, so messages overtake
//! each other across connections as they do on a real network. Randomness comes from one seeded generator:
//! a seed names a fault schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::Member;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::network::{PeerConnection, PeerTransport};
use crate::rpc::{self, PeerMessage, PeerReply};
use crate::{NodeId, QuorumNode};

struct Faults {
    /// Links that carry nothing, both ways.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Chance that a request, and separately its reply, is lost.
    loss: f64,
    /// Each message waits between zero and this long before it is delivered.
    max_delay: Duration,
    rng: StdRng,
}

pub struct MemoryRouter {
    nodes: Mutex<BTreeMap<NodeId, Arc<QuorumNode>>>,
    faults: Mutex<Faults>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn link(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl MemoryRouter {
    /// A router with no faults yet; `seed` drives every random choice it makes.
    pub fn new(seed: u64) -> Arc<MemoryRouter> {
        Arc::new(MemoryRouter {
            nodes: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Faults {
                cut: BTreeSet::new(),
                loss: 0.0,
                max_delay: Duration::ZERO,
                rng: StdRng::seed_from_u64(seed),
            }),
        })
    }

    /// Makes `node` reachable (after it was opened, or reopened after a crash).
    pub fn add(&self, node: Arc<QuorumNode>) {
        lock(&self.nodes).insert(node.node_id(), node);
    }

    /// Makes `id` unreachable, as a crashed process is; returns the node so the caller can stop it.
    pub fn remove(&self, id: NodeId) -> Option<Arc<QuorumNode>> {
        lock(&self.nodes).remove(&id)
    }

    /// Cuts every link between `id` and the other nodes.
    pub fn isolate(&self, id: NodeId, others: impl IntoIterator<Item = NodeId>) {
        let mut faults = lock(&self.faults);
        for other in others {
            if other != id {
                faults.cut.insert(link(id, other));
            }
        }
    }

    pub fn cut(&self, a: NodeId, b: NodeId) {
        lock(&self.faults).cut.insert(link(a, b));
    }

    /// Restores every link.
    pub fn heal(&self) {
        lock(&self.faults).cut.clear();
    }

    pub fn set_loss(&self, loss: f64) {
        lock(&self.faults).loss = loss;
    }

    pub fn set_max_delay(&self, max_delay: Duration) {
        lock(&self.faults).max_delay = max_delay;
    }

    /// A random number from the router's generator, for a simulation's own choices.
    pub fn random(&self, below: u64) -> u64 {
        lock(&self.faults).rng.random_range(0..below.max(1))
    }

    /// The fate of one message: its delay, and whether it arrives.
    fn roll(&self, from: NodeId, to: NodeId) -> (Duration, bool) {
        let mut faults = lock(&self.faults);
        let max = faults.max_delay.as_micros() as u64;
        let delay = Duration::from_micros(if max == 0 {
            0
        } else {
            faults.rng.random_range(0..=max)
        });
        let loss = faults.loss.clamp(0.0, 1.0);
        let lost =
            faults.cut.contains(&link(from, to)) || (loss > 0.0 && faults.rng.random_bool(loss));
        (delay, !lost)
    }

    async fn deliver(
        &self,
        from: NodeId,
        to: NodeId,
        message: PeerMessage,
        timeout: Duration,
    ) -> std::io::Result<PeerReply> {
        let lost = || {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("message {from}->{to} lost"),
            )
        };
        let (delay, arrives) = self.roll(from, to);
        tokio::time::sleep(delay).await;
        if !arrives {
            tokio::time::sleep(timeout.saturating_sub(delay)).await;
            return Err(lost());
        }
        let Some(node) = lock(&self.nodes).get(&to).cloned() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("node {to} is down"),
            ));
        };
        // Through the wire format, as TCP would carry it.
        let frame = rpc::encode_request(0, &message).map_err(std::io::Error::other)?;
        let reply = node
            .answer_frame(frame.freeze().slice(4..))
            .await
            .map_err(std::io::Error::other)?;
        let (_, reply) =
            rpc::decode_reply(reply.freeze().slice(4..)).map_err(std::io::Error::other)?;
        let (delay, arrives) = self.roll(to, from);
        tokio::time::sleep(delay).await;
        if !arrives {
            return Err(lost());
        }
        Ok(reply)
    }
}

pub struct MemoryConnection {
    router: Arc<MemoryRouter>,
    target: NodeId,
}

impl PeerTransport for MemoryRouter {
    type Connection = MemoryConnection;

    fn connect(self: &Arc<Self>, target: NodeId, _node: &Member) -> MemoryConnection {
        MemoryConnection {
            router: self.clone(),
            target,
        }
    }
}

impl PeerConnection for MemoryConnection {
    async fn call(
        &mut self,
        message: PeerMessage,
        timeout: Duration,
    ) -> std::io::Result<PeerReply> {
        let from = message.header.from.node_id;
        match tokio::time::timeout(
            timeout,
            self.router.deliver(from, self.target, message, timeout),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no reply from node {} within {timeout:?}", self.target),
            )),
        }
    }
}
