//! The messages controllers send each other, and their framing.
//!
//! They travel in Kafka's framing on the controller listener (size, request header v1, body), under private API
//! keys far above Kafka's highest, so the listener's frame reader, size limits and request memory serve them as
//! they serve every other request. The keys are never advertised in ApiVersions: only Sluice controllers send
//! them. The body is JSON of openraft's own messages (its `serde` feature), with a header that says who sends,
//! to whom, and in which cluster, so a node that reached the wrong peer, or a peer of another cluster, is told
//! so instead of being believed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::{NodeId, Quorum, QuorumError};

/// Raft's RequestVote.
pub const API_KEY_VOTE: i16 = 30000;
/// Raft's AppendEntries (heartbeats included).
pub const API_KEY_APPEND_ENTRIES: i16 = 30001;
/// A chunk of a snapshot.
pub const API_KEY_INSTALL_SNAPSHOT: i16 = 30002;

/// Whether a frame's API key is one of the quorum's: the listener routes these before Kafka's own parsing.
pub fn is_quorum_api_key(key: i16) -> bool {
    (API_KEY_VOTE..=API_KEY_INSTALL_SNAPSHOT).contains(&key)
}

/// Kafka's INCONSISTENT_CLUSTER_ID: the sender belongs to another cluster.
pub const INCONSISTENT_CLUSTER_ID: i16 = 104;
/// Kafka's INCONSISTENT_VOTER_SET: the sender was started with other `controller.quorum.voters`.
pub const INCONSISTENT_VOTER_SET: i16 = 94;
/// Kafka's INVALID_VOTER_KEY: the message was meant for another node.
pub const INVALID_VOTER_KEY: i16 = 125;

/// Who a node is, as far as its peers must agree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: NodeId,
    /// `None` until the node knows it (a fresh node of a cluster whose id is not configured).
    pub cluster_id: Option<String>,
    /// A fingerprint of the static `controller.quorum.voters` (0 for a dynamic quorum): two nodes started with
    /// different voter lists would each count a different majority.
    pub voters: u64,
}

/// FNV-1a over the voters in id order: stable across builds and platforms, unlike `DefaultHasher`.
pub fn voters_fingerprint<'a>(voters: impl IntoIterator<Item = (NodeId, &'a str)>) -> u64 {
    let mut sorted: Vec<(NodeId, &str)> = voters.into_iter().collect();
    sorted.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, address) in sorted {
        for byte in format!("{id}@{address},").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Sender, receiver and cluster of one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHeader {
    pub from: Identity,
    pub to: NodeId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    Vote(VoteRequest<NodeId>),
    AppendEntries(AppendEntriesRequest<Quorum>),
    InstallSnapshot(InstallSnapshotRequest<Quorum>),
}

impl RaftRequest {
    fn api_key(&self) -> i16 {
        match self {
            RaftRequest::Vote(_) => API_KEY_VOTE,
            RaftRequest::AppendEntries(_) => API_KEY_APPEND_ENTRIES,
            RaftRequest::InstallSnapshot(_) => API_KEY_INSTALL_SNAPSHOT,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerMessage {
    pub header: PeerHeader,
    pub request: RaftRequest,
}

type Answer<T, E = openraft::error::Infallible> = Result<T, RaftError<NodeId, E>>;

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerReply {
    Vote(Answer<VoteResponse<NodeId>>),
    AppendEntries(Answer<AppendEntriesResponse<NodeId>>),
    InstallSnapshot(Answer<InstallSnapshotResponse<NodeId>, InstallSnapshotError>),
    /// The receiver would not take the message from this sender; `error_code` is Kafka's.
    Refused {
        error_code: i16,
        message: String,
    },
}

impl Identity {
    /// Why `self` (the receiver) must not act on a message with `header`, if it must not.
    pub fn refuse(&self, header: &PeerHeader) -> Option<PeerReply> {
        let refused = |error_code, message| {
            Some(PeerReply::Refused {
                error_code,
                message,
            })
        };
        if header.to != self.node_id {
            return refused(
                INVALID_VOTER_KEY,
                format!(
                    "node {} was sent a message meant for node {}",
                    self.node_id, header.to
                ),
            );
        }
        if let (Some(ours), Some(theirs)) = (&self.cluster_id, &header.from.cluster_id)
            && ours != theirs
        {
            return refused(
                INCONSISTENT_CLUSTER_ID,
                format!(
                    "node {} is in cluster {ours}, node {} in cluster {theirs}",
                    self.node_id, header.from.node_id
                ),
            );
        }
        if self.voters != header.from.voters {
            return refused(
                INCONSISTENT_VOTER_SET,
                format!(
                    "node {} and node {} were started with different controller.quorum.voters",
                    self.node_id, header.from.node_id
                ),
            );
        }
        None
    }
}

const CLIENT_ID: &str = "sluice-quorum";

fn corrupt(what: &str, e: impl std::fmt::Display) -> QuorumError {
    QuorumError::Corrupt(format!("quorum {what}: {e}"))
}

/// A request, size prefix included, ready for the socket.
pub fn encode_request(correlation_id: i32, message: &PeerMessage) -> Result<BytesMut, QuorumError> {
    let body = serde_json::to_vec(message).map_err(|e| corrupt("request", e))?;
    let mut out = BytesMut::with_capacity(4 + 10 + CLIENT_ID.len() + body.len());
    out.put_i32(0);
    out.put_i16(message.request.api_key());
    out.put_i16(0);
    out.put_i32(correlation_id);
    out.put_i16(CLIENT_ID.len() as i16);
    out.put_slice(CLIENT_ID.as_bytes());
    out.put_slice(&body);
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out)
}

/// A request frame (the bytes after the size prefix): its correlation id and message.
pub fn decode_request(mut frame: Bytes) -> Result<(i32, PeerMessage), QuorumError> {
    if frame.len() < 10 {
        return Err(corrupt("request", "frame shorter than its header"));
    }
    let api_key = frame.get_i16();
    let _version = frame.get_i16();
    let correlation_id = frame.get_i32();
    let client_id_len = frame.get_i16();
    if client_id_len > 0 {
        let len = client_id_len as usize;
        if frame.len() < len {
            return Err(corrupt("request", "client id past the end of the frame"));
        }
        frame.advance(len);
    }
    let message: PeerMessage = serde_json::from_slice(&frame).map_err(|e| corrupt("request", e))?;
    if message.request.api_key() != api_key {
        return Err(corrupt(
            "request",
            format!("API key {api_key} carries another message"),
        ));
    }
    Ok((correlation_id, message))
}

/// A reply, size prefix included.
pub fn encode_reply(correlation_id: i32, reply: &PeerReply) -> Result<BytesMut, QuorumError> {
    let body = serde_json::to_vec(reply).map_err(|e| corrupt("reply", e))?;
    let mut out = BytesMut::with_capacity(8 + body.len());
    out.put_i32((4 + body.len()) as i32);
    out.put_i32(correlation_id);
    out.put_slice(&body);
    Ok(out)
}

/// A reply frame (after the size prefix): its correlation id and reply.
pub fn decode_reply(mut frame: Bytes) -> Result<(i32, PeerReply), QuorumError> {
    if frame.len() < 4 {
        return Err(corrupt("reply", "frame shorter than its header"));
    }
    let correlation_id = frame.get_i32();
    let reply = serde_json::from_slice(&frame).map_err(|e| corrupt("reply", e))?;
    Ok((correlation_id, reply))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use openraft::Vote;

    fn identity(node_id: NodeId) -> Identity {
        Identity {
            node_id,
            cluster_id: Some("c1".into()),
            voters: voters_fingerprint([(1, "a:1"), (2, "b:1")]),
        }
    }

    fn header(from: Identity, to: NodeId) -> PeerHeader {
        PeerHeader { from, to }
    }

    #[test]
    fn a_request_round_trips_through_its_frame() {
        let message = PeerMessage {
            header: header(identity(1), 2),
            request: RaftRequest::Vote(VoteRequest::new(Vote::new(3, 1), None)),
        };
        let frame = encode_request(7, &message).unwrap();
        let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(size, frame.len() - 4);
        assert_eq!(i16::from_be_bytes([frame[4], frame[5]]), API_KEY_VOTE);
        assert!(is_quorum_api_key(API_KEY_VOTE));
        assert!(!is_quorum_api_key(94));
        let (correlation, decoded) = decode_request(frame.freeze().slice(4..)).unwrap();
        assert_eq!(correlation, 7);
        assert_eq!(decoded.header, message.header);
        assert!(matches!(decoded.request, RaftRequest::Vote(v) if v.vote == Vote::new(3, 1)));
    }

    #[test]
    fn a_frame_whose_key_and_body_disagree_is_refused() {
        let message = PeerMessage {
            header: header(identity(1), 2),
            request: RaftRequest::Vote(VoteRequest::new(Vote::new(3, 1), None)),
        };
        let mut frame = encode_request(7, &message).unwrap();
        frame[4..6].copy_from_slice(&API_KEY_APPEND_ENTRIES.to_be_bytes());
        assert!(decode_request(frame.freeze().slice(4..)).is_err());
        assert!(decode_request(Bytes::from_static(b"\x75\x30\0\0\0\0\0\x01\0\x09{")).is_err());
        assert!(decode_reply(Bytes::from_static(b"\0\0")).is_err());
    }

    #[test]
    fn messages_from_another_cluster_voter_set_or_for_another_node_are_refused() {
        let me = identity(2);
        assert!(me.refuse(&header(identity(1), 2)).is_none());

        let code = |reply: Option<PeerReply>| match reply {
            Some(PeerReply::Refused { error_code, .. }) => error_code,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(code(me.refuse(&header(identity(1), 3))), INVALID_VOTER_KEY);
        let other_cluster = Identity {
            cluster_id: Some("c2".into()),
            ..identity(1)
        };
        assert_eq!(
            code(me.refuse(&header(other_cluster, 2))),
            INCONSISTENT_CLUSTER_ID
        );
        let other_voters = Identity {
            voters: voters_fingerprint([(1, "a:1"), (2, "b:2")]),
            ..identity(1)
        };
        assert_eq!(
            code(me.refuse(&header(other_voters, 2))),
            INCONSISTENT_VOTER_SET
        );
        // A node that does not know the cluster id yet is not refused for it.
        let fresh = Identity {
            cluster_id: None,
            ..identity(1)
        };
        assert!(me.refuse(&header(fresh, 2)).is_none());
    }

    #[test]
    fn the_voters_fingerprint_ignores_order_but_not_addresses() {
        let a = voters_fingerprint([(1, "a:1"), (2, "b:1")]);
        assert_eq!(a, voters_fingerprint([(2, "b:1"), (1, "a:1")]));
        assert_ne!(a, voters_fingerprint([(1, "a:1"), (2, "b:2")]));
        assert_ne!(a, voters_fingerprint([(1, "a:1")]));
    }
}
