//! Kafka's `__consumer_offsets` record format: offset commit keys/values and group metadata
//! keys/values, plus wrapping them into v2 record batches.
//!
//! Keys: version 0/1 = offset commit (group, topic, partition), version 2 = group metadata (group).
//! Values: offset commit v0–v4 and group metadata v0–v4 are read; we write offset commit v3 and
//! group metadata v3, which every Kafka version since 2.3 understands. A null value is a
//! tombstone.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, Record,
    RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::GroupError;

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;
/// First value versions that use the flexible (compact + tagged fields) encoding.
const FLEXIBLE_VALUE_VERSION: i16 = 4;

/// A committed offset as stored in an offset commit value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One member inside a group metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// The group metadata value Kafka writes when a group stabilises or becomes empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown.
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// A decoded `__consumer_offsets` record; `None` values are tombstones.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LogRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
    /// Key versions written by newer coordinators (KIP-848, share groups…) that we do not use.
    Other,
}

pub(crate) fn offset_key(group: &str, topic: &str, partition: i32) -> Result<Bytes, GroupError> {
    let mut buf = BytesMut::new();
    buf.put_i16(OFFSET_KEY_VERSION);
    put_str(&mut buf, group)?;
    put_str(&mut buf, topic)?;
    buf.put_i32(partition);
    Ok(buf.freeze())
}

pub(crate) fn offset_value(value: &OffsetValue) -> Result<Bytes, GroupError> {
    let mut buf = BytesMut::new();
    buf.put_i16(OFFSET_VALUE_VERSION);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_str(&mut buf, &value.metadata)?;
    buf.put_i64(value.commit_timestamp_ms);
    Ok(buf.freeze())
}

pub(crate) fn group_key(group: &str) -> Result<Bytes, GroupError> {
    let mut buf = BytesMut::new();
    buf.put_i16(GROUP_KEY_VERSION);
    put_str(&mut buf, group)?;
    Ok(buf.freeze())
}

pub(crate) fn group_value(value: &GroupValue) -> Result<Bytes, GroupError> {
    let mut buf = BytesMut::new();
    buf.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut buf, &value.protocol_type)?;
    buf.put_i32(value.generation);
    put_nullable_str(&mut buf, value.protocol.as_deref())?;
    put_nullable_str(&mut buf, value.leader.as_deref())?;
    buf.put_i64(value.state_timestamp_ms);
    buf.put_i32(len_i32(value.members.len())?);
    for member in &value.members {
        put_str(&mut buf, &member.member_id)?;
        put_nullable_str(&mut buf, member.instance_id.as_deref())?;
        put_str(&mut buf, &member.client_id)?;
        put_str(&mut buf, &member.client_host)?;
        buf.put_i32(member.rebalance_timeout_ms);
        buf.put_i32(member.session_timeout_ms);
        put_bytes(&mut buf, &member.subscription)?;
        put_bytes(&mut buf, &member.assignment)?;
    }
    Ok(buf.freeze())
}

/// Wraps key/value pairs into one uncompressed v2 record batch with base offset 0.
pub(crate) fn encode_batch(
    entries: Vec<(Bytes, Option<Bytes>)>,
    timestamp_ms: i64,
) -> Result<BytesMut, GroupError> {
    let records: Vec<Record> = entries
        .into_iter()
        .enumerate()
        .map(|(index, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // The encoder starts a new batch whenever `offset - sequence` changes; keeping it
            // constant puts all records in one batch (one atomic append) with base sequence -1.
            sequence: index as i32 - 1,
            timestamp: timestamp_ms,
            key: Some(key),
            value,
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .map_err(|e| GroupError::Encode(e.to_string()))?;
    Ok(buf)
}

pub(crate) fn decode_record(key: &[u8], value: Option<&[u8]>) -> Result<LogRecord, GroupError> {
    let mut key = Reader::new(key);
    match key.i16()? {
        0 | 1 => {
            let group = key.string()?;
            let topic = key.string()?;
            let partition = key.i32()?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(LogRecord::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = key.string()?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(LogRecord::Group { group, value })
        }
        _ => Ok(LogRecord::Other),
    }
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, GroupError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=FLEXIBLE_VALUE_VERSION).contains(&version) {
        return Err(GroupError::Record(format!(
            "unknown offset commit value version {version}"
        )));
    }
    r.flexible = version >= FLEXIBLE_VALUE_VERSION;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    // v1's expire timestamp and v4's tagged fields follow; nothing we need.
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, GroupError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=FLEXIBLE_VALUE_VERSION).contains(&version) {
        return Err(GroupError::Record(format!(
            "unknown group metadata value version {version}"
        )));
    }
    r.flexible = version >= FLEXIBLE_VALUE_VERSION;
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.array_len()?;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = r.string()?;
        let instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let session_timeout_first = version == 0;
        let (rebalance_timeout_ms, session_timeout_ms) = if session_timeout_first {
            let session = r.i32()?;
            (session, session)
        } else {
            let rebalance = r.i32()?;
            (rebalance, r.i32()?)
        };
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.skip_tagged_fields()?;
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

fn len_i32(len: usize) -> Result<i32, GroupError> {
    i32::try_from(len).map_err(|_| GroupError::Encode(format!("length {len} too large")))
}

fn put_str(buf: &mut BytesMut, s: &str) -> Result<(), GroupError> {
    let len = i16::try_from(s.len())
        .map_err(|_| GroupError::Encode(format!("string of {} bytes too long", s.len())))?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn put_nullable_str(buf: &mut BytesMut, s: Option<&str>) -> Result<(), GroupError> {
    match s {
        Some(s) => put_str(buf, s),
        None => {
            buf.put_i16(-1);
            Ok(())
        }
    }
}

fn put_bytes(buf: &mut BytesMut, bytes: &[u8]) -> Result<(), GroupError> {
    buf.put_i32(len_i32(bytes.len())?);
    buf.put_slice(bytes);
    Ok(())
}

/// Bounds-checked reader of Kafka's schema types, classic or flexible (compact) encoding.
struct Reader<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            flexible: false,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], GroupError> {
        if self.buf.len() < n {
            return Err(GroupError::Record(format!(
                "truncated: wanted {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GroupError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, GroupError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, GroupError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, GroupError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn unsigned_varint(&mut self) -> Result<u32, GroupError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let [byte] = self.array::<1>()?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(GroupError::Record("varint too long".into()))
    }

    /// Length of a string/bytes/array field; `None` means null.
    fn length(
        &mut self,
        classic_len: impl FnOnce(&mut Self) -> Result<i64, GroupError>,
    ) -> Result<Option<usize>, GroupError> {
        let len = if self.flexible {
            i64::from(self.unsigned_varint()?) - 1
        } else {
            classic_len(self)?
        };
        if len < 0 {
            return Ok(None);
        }
        usize::try_from(len)
            .map(Some)
            .map_err(|_| GroupError::Record(format!("bad length {len}")))
    }

    fn nullable_string(&mut self) -> Result<Option<String>, GroupError> {
        let Some(len) = self.length(|r| r.i16().map(i64::from))? else {
            return Ok(None);
        };
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| GroupError::Record("string is not UTF-8".into()))
    }

    fn string(&mut self) -> Result<String, GroupError> {
        self.nullable_string()?
            .ok_or_else(|| GroupError::Record("null where a string is required".into()))
    }

    fn bytes(&mut self) -> Result<Bytes, GroupError> {
        let len = self.length(|r| r.i32().map(i64::from))?.unwrap_or(0);
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }

    fn array_len(&mut self) -> Result<usize, GroupError> {
        Ok(self.length(|r| r.i32().map(i64::from))?.unwrap_or(0))
    }

    fn skip_tagged_fields(&mut self) -> Result<(), GroupError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint()?;
        for _ in 0..count {
            self.unsigned_varint()?;
            let size = self.unsigned_varint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn offset_record_round_trips_in_kafka_layout() {
        let key = offset_key("g", "t", 3).unwrap();
        // version 1, "g", "t", partition 3 — byte layout of Kafka's OffsetCommitKey.
        assert_eq!(&key[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        let value = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "meta".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        let encoded = offset_value(&value).unwrap();
        assert_eq!(&encoded[..2], &[0, 3]);
        assert_eq!(
            decode_record(&key, Some(&encoded)).unwrap(),
            LogRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(value),
            }
        );
        assert_eq!(
            decode_record(&key, None).unwrap(),
            LogRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: None,
            }
        );
    }

    #[test]
    fn offset_value_v1_with_expire_timestamp_decodes() {
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        buf.put_i64(5);
        put_str(&mut buf, "m").unwrap();
        buf.put_i64(100);
        buf.put_i64(200);
        let value = decode_offset_value(&buf).unwrap();
        assert_eq!(value.offset, 5);
        assert_eq!(value.leader_epoch, -1);
        assert_eq!(value.metadata, "m");
        assert_eq!(value.commit_timestamp_ms, 100);
    }

    #[test]
    fn group_record_round_trips() {
        let value = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp_ms: 99,
            members: vec![MemberValue {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 10_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let key = group_key("g").unwrap();
        let encoded = group_value(&value).unwrap();
        assert_eq!(
            decode_record(&key, Some(&encoded)).unwrap(),
            LogRecord::Group {
                group: "g".into(),
                value: Some(value),
            }
        );
    }

    #[test]
    fn truncated_value_is_an_error() {
        let key = offset_key("g", "t", 0).unwrap();
        assert!(decode_record(&key, Some(&[0, 3, 0, 0])).is_err());
        assert!(decode_record(&[0], None).is_err());
    }

    #[test]
    fn batch_holds_all_records_in_one_batch() {
        let entries = (0..3)
            .map(|p| (offset_key("g", "t", p).unwrap(), None))
            .collect();
        let batch = encode_batch(entries, 1234).unwrap();
        let mut bytes = batch.freeze();
        let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].records.len(), 3);
        assert!(sets[0].records.iter().all(|r| r.value.is_none()));
    }
}
