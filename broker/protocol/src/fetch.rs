//! The Fetch response, laid out for zero-copy sending.
//!
//! A Fetch response is mostly record bytes that already sit, in wire format, in segment files. Rather than
//! reading them into memory to encode a `FetchResponse`, the response is described as a list of [`Piece`]s: small
//! encoded buffers for the framing, and file ranges the connection hands to `sendfile(2)`. The encoding below
//! follows Kafka's schema for Fetch v4..v16 field by field; a test checks it byte for byte against
//! `kafka-protocol`'s own encoder for every version.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

/// Part of a response: bytes in memory, or record bytes the caller sends from a file.
#[derive(Debug)]
pub enum Piece<F> {
    Bytes(Bytes),
    File(F),
}

/// One partition of a Fetch answer.
#[derive(Debug)]
pub struct FetchPartition<F> {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// The record bytes and their length; `None` encodes as empty records (never null: librdkafka would treat
    /// null as an invalid message set and never report the end of the partition).
    pub records: Option<(F, u64)>,
    /// Leader id and epoch, sent (v12+) with NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH errors.
    pub current_leader: Option<(i32, i32)>,
    /// For a follower (v12+): the epoch and end offset where its log diverges from the leader's.
    pub diverging_epoch: Option<(i32, i64)>,
}

/// One topic of a Fetch answer; v13+ name topics by id, older versions by name.
#[derive(Debug)]
pub struct FetchTopic<F> {
    pub name: StrBytes,
    pub topic_id: Uuid,
    pub partitions: Vec<FetchPartition<F>>,
}

/// A complete Fetch response, size prefix included, as pieces.
#[derive(Debug)]
pub struct FetchResponseLayout<F> {
    pub pieces: Vec<Piece<F>>,
    /// Bytes on the wire, size prefix included.
    pub total_len: u64,
    /// As encoded: the connection is not read from for this long after the answer (a quota's back-off).
    pub throttle_time_ms: i32,
}

/// Accumulates small encoded fields and cuts them into a piece whenever a file range comes in between.
struct Writer<F> {
    buf: BytesMut,
    pieces: Vec<Piece<F>>,
    file_bytes: u64,
}

impl<F> Writer<F> {
    fn file(&mut self, file: F, len: u64) {
        if !self.buf.is_empty() {
            self.pieces.push(Piece::Bytes(self.buf.split().freeze()));
        }
        self.pieces.push(Piece::File(file));
        self.file_bytes += len;
    }

    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    fn array_len(&mut self, flexible: bool, len: usize) {
        if flexible {
            self.uvarint(len as u64 + 1);
        } else {
            self.buf.put_i32(len as i32);
        }
    }
}

impl<F> FetchResponseLayout<F> {
    /// Lay out a Fetch response of `version` (4..=16).
    pub fn encode(
        correlation_id: i32,
        version: i16,
        throttle_time_ms: i32,
        error_code: i16,
        session_id: i32,
        topics: Vec<FetchTopic<F>>,
    ) -> Self {
        let flexible = version >= 12;
        let mut w = Writer {
            buf: BytesMut::with_capacity(128),
            pieces: Vec::new(),
            file_bytes: 0,
        };
        w.buf.put_i32(0); // size, patched below
        w.buf.put_i32(correlation_id);
        if flexible {
            w.uvarint(0); // response header tagged fields
        }
        w.buf.put_i32(throttle_time_ms);
        if version >= 7 {
            w.buf.put_i16(error_code);
            w.buf.put_i32(session_id);
        }
        w.array_len(flexible, topics.len());
        for topic in topics {
            if version >= 13 {
                w.buf.put_slice(topic.topic_id.as_bytes());
            } else if flexible {
                w.uvarint(topic.name.len() as u64 + 1);
                w.buf.put_slice(topic.name.as_bytes());
            } else {
                w.buf.put_i16(topic.name.len() as i16);
                w.buf.put_slice(topic.name.as_bytes());
            }
            w.array_len(flexible, topic.partitions.len());
            for p in topic.partitions {
                w.buf.put_i32(p.partition_index);
                w.buf.put_i16(p.error_code);
                w.buf.put_i64(p.high_watermark);
                w.buf.put_i64(p.last_stable_offset);
                if version >= 5 {
                    w.buf.put_i64(p.log_start_offset);
                }
                w.array_len(flexible, 0); // aborted transactions: none, Sluice has no transactions yet
                if version >= 11 {
                    w.buf.put_i32(-1); // preferred read replica
                }
                let len = p.records.as_ref().map_or(0, |(_, len)| *len);
                if flexible {
                    w.uvarint(len + 1);
                } else {
                    w.buf.put_i32(len as i32);
                }
                if let Some((file, len)) = p.records {
                    w.file(file, len);
                }
                if flexible {
                    // Tagged fields, in tag order.
                    let tags = u64::from(p.diverging_epoch.is_some())
                        + u64::from(p.current_leader.is_some());
                    w.uvarint(tags);
                    if let Some((epoch, end_offset)) = p.diverging_epoch {
                        w.uvarint(0); // tag 0: diverging epoch
                        w.uvarint(13); // its size: i32 + i64 + empty tagged fields
                        w.buf.put_i32(epoch);
                        w.buf.put_i64(end_offset);
                        w.uvarint(0);
                    }
                    if let Some((leader_id, leader_epoch)) = p.current_leader {
                        w.uvarint(1); // tag 1: current leader
                        w.uvarint(9); // its size: i32 + i32 + empty tagged fields
                        w.buf.put_i32(leader_id);
                        w.buf.put_i32(leader_epoch);
                        w.uvarint(0);
                    }
                }
            }
            if flexible {
                w.uvarint(0); // topic tagged fields
            }
        }
        if flexible {
            w.uvarint(0); // response tagged fields
        }
        let mut pieces = w.pieces;
        let mem_len: u64 = pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.len() as u64,
                Piece::File(_) => 0,
            })
            .sum::<u64>()
            + w.buf.len() as u64;
        let total_len = mem_len + w.file_bytes;
        let size = ((total_len - 4) as i32).to_be_bytes();
        if !w.buf.is_empty() {
            pieces.push(Piece::Bytes(w.buf.freeze()));
        }
        // The size prefix lives at the start of the first piece, which is always a memory piece.
        if let Some(Piece::Bytes(first)) = pieces.first_mut() {
            let mut patched = BytesMut::from(&first[..]);
            patched[..4].copy_from_slice(&size);
            *first = patched.freeze();
        }
        FetchResponseLayout {
            pieces,
            total_len,
            throttle_time_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        EpochEndOffset, FetchResponse, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
    };
    use kafka_protocol::messages::{ApiKey, ResponseHeader, TopicName};
    use kafka_protocol::protocol::Encodable;

    fn flatten(layout: FetchResponseLayout<Bytes>) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in layout.pieces {
            match piece {
                Piece::Bytes(b) | Piece::File(b) => out.extend_from_slice(&b),
            }
        }
        assert_eq!(out.len() as u64, layout.total_len);
        out
    }

    /// (partition, error code, records, tagged fields: 1 = current leader, 2 = diverging epoch)
    type PartSpec = (i32, i16, Option<Bytes>, u8);

    /// What kafka-protocol itself produces for the same answer, records inlined.
    fn reference(version: i16, topics: &[(&str, Uuid, Vec<PartSpec>)]) -> Vec<u8> {
        let responses = topics
            .iter()
            .map(|(name, id, parts)| {
                let mut t = FetchableTopicResponse::default();
                if version < 13 {
                    t.topic = TopicName(StrBytes::from_string(name.to_string()));
                } else {
                    t.topic_id = *id;
                }
                t.partitions = parts
                    .iter()
                    .map(|(idx, err, recs, leader)| {
                        let mut p = PartitionData::default()
                            .with_partition_index(*idx)
                            .with_error_code(*err)
                            .with_high_watermark(100)
                            .with_last_stable_offset(100)
                            .with_aborted_transactions(Some(vec![]))
                            .with_records(Some(recs.clone().unwrap_or_default()));
                        if version >= 5 {
                            p.log_start_offset = 3;
                        }
                        if leader & 1 != 0 && version >= 12 {
                            p.current_leader = LeaderIdAndEpoch::default()
                                .with_leader_id(kafka_protocol::messages::BrokerId(2))
                                .with_leader_epoch(5);
                        }
                        if leader & 2 != 0 && version >= 12 {
                            p.diverging_epoch = EpochEndOffset::default()
                                .with_epoch(4)
                                .with_end_offset(1234);
                        }
                        p
                    })
                    .collect();
                t
            })
            .collect();
        let resp = FetchResponse::default()
            .with_throttle_time_ms(0)
            .with_session_id(if version >= 7 { 77 } else { 0 })
            .with_responses(responses);
        let mut body = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(5)
            .encode(&mut body, ApiKey::Fetch.response_header_version(version))
            .unwrap();
        resp.encode(&mut body, version).unwrap();
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn matches_kafka_protocol_for_every_version() {
        let id_a = Uuid::from_u128(0x1234);
        let id_b = Uuid::from_u128(0x5678);
        let recs = |n: u8| Some(Bytes::from(vec![n; 70 + n as usize]));
        let spec = vec![
            (
                "alpha",
                id_a,
                vec![
                    (0, 0, recs(1), 0),
                    (1, 0, None, 0),
                    (2, 6, None, 1),
                    (3, 0, None, 2),
                    (4, 74, None, 3),
                ],
            ),
            ("beta-topic", id_b, vec![(0, 0, recs(2), 0)]),
        ];
        for version in 4..=16 {
            let topics = spec
                .iter()
                .map(|(name, id, parts)| FetchTopic {
                    name: StrBytes::from_string(name.to_string()),
                    topic_id: *id,
                    partitions: parts
                        .iter()
                        .map(|(idx, err, r, leader)| FetchPartition {
                            partition_index: *idx,
                            error_code: *err,
                            high_watermark: 100,
                            last_stable_offset: 100,
                            log_start_offset: 3,
                            records: r.clone().map(|b| {
                                let len = b.len() as u64;
                                (b, len)
                            }),
                            current_leader: (leader & 1 != 0).then_some((2, 5)),
                            diverging_epoch: (leader & 2 != 0 && version >= 12)
                                .then_some((4, 1234)),
                        })
                        .collect(),
                })
                .collect();
            let ours = flatten(FetchResponseLayout::encode(
                5,
                version,
                0,
                0,
                if version >= 7 { 77 } else { 0 },
                topics,
            ));
            assert_eq!(ours, reference(version, &spec), "Fetch v{version}");
        }
    }

    #[test]
    fn empty_answer_is_all_memory() {
        let layout: FetchResponseLayout<Bytes> =
            FetchResponseLayout::encode(1, 12, 0, 0, 0, vec![]);
        assert_eq!(layout.pieces.len(), 1);
        assert!(matches!(layout.pieces[0], Piece::Bytes(_)));
    }
}
