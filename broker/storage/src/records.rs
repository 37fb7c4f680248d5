//! Walking the records inside one batch without trusting a length in it.
//!
//! A batch's header says how many records it holds, and every record says how long it is and how long its
//! key, value and headers are. All of those are claims. This walker reads them one field at a time, checks
//! each against the bytes actually there, and allocates nothing that a claim sizes: keys and values are
//! skipped, not copied. Compressed records are read through a streaming decoder whose output is capped, so a
//! small batch that inflates to gigabytes costs at most `max_decompressed_bytes` of work and a bounded
//! decoder window, never that much memory.
//!
//! The checks and their wording follow Kafka's `DefaultRecord.readFrom` and `DefaultRecordBatch`'s record
//! iterator, so a client sees the same refusal from Sluice as from Kafka.

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;

use crate::batch::{BatchHeader, HEADER_SIZE};

/// Upper bound on the zstd window a batch may ask for (2^24 = 16 MiB). zstd's own default limit is 2^27;
/// producers at their default levels use 2^21 or less, and the window is memory the decoder allocates up
/// front on the say-so of the frame header.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// The most a snappy block can inflate per byte: its densest element, a 3-byte copy, writes 64 bytes.
const SNAPPY_MAX_EXPANSION: u64 = 22;

/// The xerial framing that Kafka's Java client puts around snappy blocks.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_SIZE: usize = 16;

/// The compression codec in a batch's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec of attribute bits 0-2; `None` for the ids Kafka does not define (5-7).
    pub fn from_attributes(attributes: i16) -> Option<Codec> {
        match attributes & 0x07 {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// The fields of one record that validation and timestamp lookups use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordFields {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// Key length; negative means a null key.
    pub key_len: i32,
    pub value_len: i32,
    pub header_count: i32,
    /// Where the key's bytes start in the (decompressed) record stream.
    pub key_at: u64,
    /// Where the value's bytes start.
    pub value_at: u64,
}

/// Why the records of a batch could not be walked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The record bytes do not hold what the header and the record lengths claim.
    #[error("{0}")]
    Invalid(String),
    /// The compressed bytes do not decompress.
    #[error("cannot decompress {codec:?} records: {reason}")]
    Decompression { codec: Codec, reason: String },
    /// The records inflate past the limit.
    #[error("compressed records inflate past the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Attribute bits 0-2 name no codec.
    #[error("unknown compression type id: {0}")]
    UnknownCodec(i16),
}

/// Called with each record's index in its batch and its fields; `Break` ends the walk early.
pub(crate) type Visitor<'a> =
    dyn FnMut(usize, &RecordFields) -> Result<ControlFlow<()>, RecordsError> + 'a;

fn invalid(message: impl Into<String>) -> RecordsError {
    RecordsError::Invalid(message.into())
}

/// Where record bytes come from: the batch itself, or a decompressing stream.
trait Input {
    /// The next byte, `None` at the end of the records.
    fn byte(&mut self) -> Result<Option<u8>, RecordsError>;
    /// Skips `n` bytes; false when the records end first.
    fn skip(&mut self, n: usize) -> Result<bool, RecordsError>;
    /// Bytes read so far.
    fn position(&self) -> u64;
    /// Bytes known to be left, when the input knows (a plain batch does, a stream does not).
    fn remaining_hint(&self) -> Option<usize>;
}

struct SliceInput<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Input for SliceInput<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, RecordsError> {
        let b = self.bytes.get(self.pos).copied();
        if b.is_some() {
            self.pos += 1;
        }
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<bool, RecordsError> {
        if n > self.bytes.len() - self.pos {
            self.pos = self.bytes.len();
            return Ok(false);
        }
        self.pos += n;
        Ok(true)
    }

    fn position(&self) -> u64 {
        self.pos as u64
    }

    fn remaining_hint(&self) -> Option<usize> {
        Some(self.bytes.len() - self.pos)
    }
}

/// Decompressed bytes, counted, with the count capped.
struct StreamInput<R: BufRead> {
    reader: R,
    codec: Codec,
    pos: u64,
    limit: u64,
}

impl<R: BufRead> StreamInput<R> {
    fn fill(&mut self) -> Result<&[u8], RecordsError> {
        let codec = self.codec;
        self.reader
            .fill_buf()
            .map_err(|e| RecordsError::Decompression {
                codec,
                reason: e.to_string(),
            })
    }

    fn advance(&mut self, n: usize) -> Result<(), RecordsError> {
        self.reader.consume(n);
        self.pos += n as u64;
        if self.pos > self.limit {
            return Err(RecordsError::TooLarge { limit: self.limit });
        }
        Ok(())
    }
}

impl<R: BufRead> Input for StreamInput<R> {
    fn byte(&mut self) -> Result<Option<u8>, RecordsError> {
        let Some(&b) = self.fill()?.first() else {
            return Ok(None);
        };
        self.advance(1)?;
        Ok(Some(b))
    }

    fn skip(&mut self, mut n: usize) -> Result<bool, RecordsError> {
        while n > 0 {
            let available = self.fill()?.len();
            if available == 0 {
                return Ok(false);
            }
            let step = available.min(n);
            self.advance(step)?;
            n -= step;
        }
        Ok(true)
    }

    fn position(&self) -> u64 {
        self.pos
    }

    fn remaining_hint(&self) -> Option<usize> {
        None
    }
}

/// Kafka's zig-zag varint, at most 5 bytes.
fn varint(input: &mut impl Input) -> Result<i32, RecordsError> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let b = input.byte()?.ok_or_else(structure)?;
        value |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i32) ^ -((value & 1) as i32));
        }
    }
    Err(structure())
}

/// Kafka's zig-zag varlong, at most 10 bytes.
fn varlong(input: &mut impl Input) -> Result<i64, RecordsError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let b = input.byte()?.ok_or_else(structure)?;
        value |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(structure())
}

fn structure() -> RecordsError {
    invalid("Found invalid record structure")
}

/// Skips a field of `len` bytes (a negative length is a null field), within the record's body.
fn skip_field(input: &mut impl Input, len: i32, body_end: u64) -> Result<(), RecordsError> {
    if len <= 0 {
        return Ok(());
    }
    if input.position() + len as u64 > body_end || !input.skip(len as usize)? {
        return Err(structure());
    }
    Ok(())
}

/// Reads one record, `DefaultRecord.readFrom`'s checks included.
fn read_record(input: &mut impl Input) -> Result<RecordFields, RecordsError> {
    let size = varint(input)?;
    if let Some(remaining) = input.remaining_hint()
        && (size < 0 || size as usize > remaining)
    {
        return Err(invalid(format!(
            "Invalid record size: expected {size} bytes in record payload, but instead the buffer has only \
             {remaining} remaining bytes."
        )));
    }
    if size < 0 {
        return Err(invalid(format!("Invalid record size {size}")));
    }
    let start = input.position();
    let body_end = start + size as u64;
    let attributes = input.byte()?.ok_or_else(structure)? as i8;
    let timestamp_delta = varlong(input)?;
    let offset_delta = varint(input)?;
    let key_len = varint(input)?;
    let key_at = input.position();
    skip_field(input, key_len, body_end)?;
    let value_len = varint(input)?;
    let value_at = input.position();
    skip_field(input, value_len, body_end)?;
    let header_count = varint(input)?;
    if header_count < 0 {
        return Err(invalid(format!(
            "Found invalid number of record headers {header_count}"
        )));
    }
    let body_left = body_end.saturating_sub(input.position());
    if header_count as u64 > body_left {
        return Err(invalid(format!(
            "Found invalid number of record headers. {header_count} is larger than the remaining size of \
             the buffer"
        )));
    }
    for _ in 0..header_count {
        let key_len = varint(input)?;
        if key_len < 0 {
            return Err(invalid(format!(
                "Invalid negative header key size {key_len}"
            )));
        }
        skip_field(input, key_len, body_end)?;
        let value_len = varint(input)?;
        skip_field(input, value_len, body_end)?;
    }
    let read = input.position() - start;
    if read != size as u64 {
        return Err(invalid(format!(
            "Invalid record size: expected to read {size} bytes in record payload, but instead read {read}"
        )));
    }
    Ok(RecordFields {
        attributes,
        timestamp_delta,
        offset_delta,
        key_len,
        value_len,
        header_count,
        key_at,
        value_at,
    })
}

/// Reads exactly `count` records and then demands the end of the input, as Kafka's record iterator does;
/// `visit` may stop the walk early.
fn walk(input: &mut impl Input, count: i32, visit: &mut Visitor<'_>) -> Result<(), RecordsError> {
    for index in 0..count.max(0) as usize {
        let record = read_record(input)?;
        if visit(index, &record)?.is_break() {
            return Ok(());
        }
    }
    if input.byte()?.is_some() {
        return Err(invalid(
            "Incorrect declared batch size, records still remaining in file",
        ));
    }
    Ok(())
}

/// The decompressing reader of a batch's record bytes; `None` for an uncompressed batch.
fn decoder<'r>(
    body: &'r [u8],
    codec: Codec,
    max_decompressed_bytes: u64,
) -> Result<Option<Box<dyn Read + 'r>>, RecordsError> {
    let decompression = |reason: String| RecordsError::Decompression { codec, reason };
    Ok(Some(match codec {
        Codec::None => return Ok(None),
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Codec::Lz4 => Box::new(lz4::Decoder::new(body).map_err(|e| decompression(e.to_string()))?),
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(body)
                .map_err(|e| decompression(e.to_string()))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| decompression(e.to_string()))?;
            Box::new(decoder)
        }
        Codec::Snappy => Box::new(SnappyReader::new(body, max_decompressed_bytes)?),
    }))
}

/// The record bytes of a batch and its codec, after the header checks every walk makes.
fn body_and_codec<'b>(
    batch: &'b [u8],
    header: &BatchHeader,
) -> Result<(&'b [u8], Codec), RecordsError> {
    let body = batch
        .get(HEADER_SIZE..)
        .ok_or_else(|| invalid("batch is shorter than its header"))?;
    let codec = Codec::from_attributes(header.attributes)
        .ok_or(RecordsError::UnknownCodec(header.attributes & 0x07))?;
    Ok((body, codec))
}

/// Walks every record of `batch` (one whole batch, header included), calling `visit` with each record's
/// index and fields. Compressed records are decompressed as a stream and may inflate to at most
/// `max_decompressed_bytes`.
pub(crate) fn walk_batch(
    batch: &[u8],
    header: &BatchHeader,
    max_decompressed_bytes: u64,
    visit: &mut Visitor<'_>,
) -> Result<(), RecordsError> {
    let (body, codec) = body_and_codec(batch, header)?;
    let count = header.record_count;
    match decoder(body, codec, max_decompressed_bytes)? {
        None => walk(
            &mut SliceInput {
                bytes: body,
                pos: 0,
            },
            count,
            visit,
        ),
        Some(reader) => walk(
            &mut StreamInput {
                reader: BufReader::with_capacity(16 * 1024, reader),
                codec,
                pos: 0,
                limit: max_decompressed_bytes,
            },
            count,
            visit,
        ),
    }
}

/// One record with its key and value bytes, for the readers that need them (replaying an internal log).
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Like [`walk_batch`], but hands each record's key and value to `visit`. Compressed records are inflated
/// into one buffer first, which `max_decompressed_bytes` caps, so memory is bounded by the limit, not by
/// anything the batch claims.
pub(crate) fn read_batch_records(
    batch: &[u8],
    header: &BatchHeader,
    max_decompressed_bytes: u64,
    visit: &mut dyn FnMut(RecordView<'_>) -> Result<(), RecordsError>,
) -> Result<(), RecordsError> {
    let (body, codec) = body_and_codec(batch, header)?;
    let inflated;
    let bytes = match decoder(body, codec, max_decompressed_bytes)? {
        None => body,
        Some(reader) => {
            let mut out = Vec::new();
            reader
                .take(max_decompressed_bytes.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| RecordsError::Decompression {
                    codec,
                    reason: e.to_string(),
                })?;
            if out.len() as u64 > max_decompressed_bytes {
                return Err(RecordsError::TooLarge {
                    limit: max_decompressed_bytes,
                });
            }
            inflated = out;
            &inflated
        }
    };
    // The walk has checked that every field lies inside the bytes; `get` keeps that a checked claim.
    let field = |at: u64, len: i32| -> Result<Option<&[u8]>, RecordsError> {
        if len < 0 {
            return Ok(None);
        }
        let at = at as usize;
        bytes
            .get(at..at + len as usize)
            .map(Some)
            .ok_or_else(structure)
    };
    walk(
        &mut SliceInput { bytes, pos: 0 },
        header.record_count,
        &mut |_, record| {
            visit(RecordView {
                offset_delta: record.offset_delta,
                timestamp_delta: record.timestamp_delta,
                key: field(record.key_at, record.key_len)?,
                value: field(record.value_at, record.value_len)?,
            })?;
            Ok(ControlFlow::Continue(()))
        },
    )
}

/// Snappy as Kafka's clients write it: xerial-framed blocks (the Java client), or one raw block (librdkafka
/// may send either). Each block is decompressed whole, after its claimed size has been checked against the
/// limit, since snappy has no streaming raw decoder.
struct SnappyReader<'a> {
    blocks: SnappyBlocks<'a>,
    current: Vec<u8>,
    pos: usize,
    budget: u64,
}

enum SnappyBlocks<'a> {
    Raw(Option<&'a [u8]>),
    Xerial(&'a [u8]),
}

impl<'a> SnappyReader<'a> {
    fn new(body: &'a [u8], limit: u64) -> Result<Self, RecordsError> {
        let blocks = if body.len() >= XERIAL_HEADER_SIZE && body[..8] == XERIAL_MAGIC {
            SnappyBlocks::Xerial(&body[XERIAL_HEADER_SIZE..])
        } else {
            SnappyBlocks::Raw(Some(body))
        };
        Ok(SnappyReader {
            blocks,
            current: Vec::new(),
            pos: 0,
            budget: limit,
        })
    }

    fn next_block(&mut self) -> Result<Option<&'a [u8]>, String> {
        match &mut self.blocks {
            SnappyBlocks::Raw(block) => Ok(block.take()),
            SnappyBlocks::Xerial(rest) => {
                if rest.is_empty() {
                    return Ok(None);
                }
                if rest.len() < 4 {
                    return Err("truncated xerial block length".into());
                }
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if len > rest.len() - 4 {
                    return Err(format!(
                        "xerial block of {len} bytes overruns the {} bytes left",
                        rest.len() - 4
                    ));
                }
                let block = &rest[4..4 + len];
                *rest = &rest[4 + len..];
                Ok(Some(block))
            }
        }
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            let Some(block) = self.next_block().map_err(std::io::Error::other)? else {
                return Ok(0);
            };
            let len = snap::raw::decompress_len(block).map_err(std::io::Error::other)?;
            // The claim is checked against what the block's bytes can hold before it sizes an allocation: a
            // few bytes claiming the whole limit would otherwise cost that much memory per request.
            if len as u64 > (block.len() as u64).saturating_mul(SNAPPY_MAX_EXPANSION) {
                return Err(std::io::Error::other(format!(
                    "a snappy block of {} bytes claims {len} bytes, more than snappy can expand it to",
                    block.len()
                )));
            }
            if len as u64 > self.budget {
                // Past the limit: hand back what the limit allows, so the counting input reports TooLarge.
                return Err(std::io::Error::other(format!(
                    "a snappy block claims {len} bytes, more than the {} the limit leaves",
                    self.budget
                )));
            }
            self.budget -= len as u64;
            self.current.clear();
            self.current.resize(len, 0);
            let written = snap::raw::Decoder::new()
                .decompress(block, &mut self.current)
                .map_err(std::io::Error::other)?;
            self.current.truncate(written);
            self.pos = 0;
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zigzag(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return out;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    /// One record body with the given key, value and headers, its length prefix included.
    fn record(
        offset_delta: i64,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(&[u8], &[u8])],
    ) -> Vec<u8> {
        let mut body = vec![0u8];
        body.extend(zigzag(offset_delta * 10));
        body.extend(zigzag(offset_delta));
        match key {
            Some(k) => {
                body.extend(zigzag(k.len() as i64));
                body.extend(k);
            }
            None => body.extend(zigzag(-1)),
        }
        body.extend(zigzag(value.len() as i64));
        body.extend(value);
        body.extend(zigzag(headers.len() as i64));
        for (k, v) in headers {
            body.extend(zigzag(k.len() as i64));
            body.extend(*k);
            body.extend(zigzag(v.len() as i64));
            body.extend(*v);
        }
        let mut out = zigzag(body.len() as i64);
        out.extend(body);
        out
    }

    /// A record of attributes 0, deltas 0 and then these varint fields, as sent, length prefix included.
    fn raw_record(fields: &[i64]) -> Vec<u8> {
        let mut r = vec![0u8, 0, 0];
        for f in fields {
            r.extend(zigzag(*f));
        }
        let mut body = zigzag(r.len() as i64);
        body.extend(r);
        body
    }

    fn walk_plain(body: &[u8], count: i32) -> Result<Vec<RecordFields>, RecordsError> {
        let mut seen = Vec::new();
        walk(
            &mut SliceInput {
                bytes: body,
                pos: 0,
            },
            count,
            &mut |_, r| {
                seen.push(*r);
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(seen)
    }

    #[test]
    fn reads_records_with_keys_values_and_headers() {
        let mut body = record(0, Some(b"k"), b"value", &[(b"h", b"v")]);
        body.extend(record(1, None, b"", &[]));
        let seen = walk_plain(&body, 2).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].key_len, 1);
        assert_eq!(seen[0].header_count, 1);
        assert_eq!(seen[1].offset_delta, 1);
        assert_eq!(seen[1].timestamp_delta, 10);
        assert_eq!(seen[1].key_len, -1);
    }

    #[test]
    fn a_count_larger_than_the_records_is_refused_without_allocating() {
        let body = record(0, None, b"v", &[]);
        let err = walk_plain(&body, i32::MAX).unwrap_err();
        assert_eq!(err, invalid("Found invalid record structure"));
    }

    #[test]
    fn records_left_over_after_the_count_are_refused() {
        let mut body = record(0, None, b"v", &[]);
        body.extend(record(1, None, b"v", &[]));
        let err = walk_plain(&body, 1).unwrap_err();
        assert!(err.to_string().contains("records still remaining"), "{err}");
    }

    #[test]
    fn lengths_that_overrun_are_refused() {
        // Record length beyond the bytes present.
        let mut body = record(0, None, b"v", &[]);
        body[0] = 0x7e; // claims 63 bytes
        assert!(
            walk_plain(&body, 1)
                .unwrap_err()
                .to_string()
                .contains("Invalid record size")
        );
        // Header count far beyond the record.
        let body = raw_record(&[-1, -1, 1_000_000]);
        let err = walk_plain(&body, 1).unwrap_err();
        assert!(
            err.to_string().contains("larger than the remaining size"),
            "{err}"
        );
        // A negative header count and a negative header key length.
        let body = raw_record(&[-1, -1, -3]);
        assert!(
            walk_plain(&body, 1)
                .unwrap_err()
                .to_string()
                .contains("number of record headers -3")
        );
        let body = raw_record(&[-1, -1, 1, -2, -1]);
        assert!(
            walk_plain(&body, 1)
                .unwrap_err()
                .to_string()
                .contains("negative header key size")
        );
        // A key longer than the record.
        let body = raw_record(&[1000]);
        assert_eq!(walk_plain(&body, 1).unwrap_err(), structure());
    }

    #[test]
    fn a_record_shorter_than_it_says_is_refused() {
        let mut body = record(0, None, b"v", &[]);
        let claimed = body[0] as usize / 2;
        body[0] = ((claimed + 1) * 2) as u8;
        body.push(0);
        let err = walk_plain(&body, 1).unwrap_err();
        assert!(err.to_string().contains("expected to read"), "{err}");
    }

    #[test]
    fn overlong_varints_are_refused() {
        let body = [0xffu8; 12];
        assert_eq!(walk_plain(&body, 1).unwrap_err(), structure());
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        use std::io::Write;
        let zeros = vec![0u8; 8 << 20];
        // Skipping through the zeros as one huge key is where the limit bites.
        let mut r = vec![0u8, 0, 0];
        r.extend(zigzag(8 << 20));
        let mut body = zigzag((r.len() + (8 << 20) + 2) as i64);
        body.extend(r);
        body.extend(&zeros);
        body.extend(zigzag(-1));
        body.extend(zigzag(0));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        let compressed = gz.finish().unwrap();
        let mut input = StreamInput {
            reader: BufReader::new(flate2::read::MultiGzDecoder::new(&compressed[..])),
            codec: Codec::Gzip,
            pos: 0,
            limit: 1 << 20,
        };
        let err = walk(&mut input, 1, &mut |_, _| Ok(ControlFlow::Continue(()))).unwrap_err();
        assert_eq!(err, RecordsError::TooLarge { limit: 1 << 20 });
        // The same records under a limit that fits are read whole.
        let mut input = StreamInput {
            reader: BufReader::new(flate2::read::MultiGzDecoder::new(&compressed[..])),
            codec: Codec::Gzip,
            pos: 0,
            limit: 16 << 20,
        };
        walk(&mut input, 1, &mut |_, _| Ok(ControlFlow::Continue(()))).unwrap();
    }

    #[test]
    fn snappy_raw_and_xerial_decode_and_respect_the_limit() {
        let mut body = record(0, Some(b"k"), b"hello", &[]);
        body.extend(record(1, None, b"world", &[]));
        let raw = snap::raw::Encoder::new().compress_vec(&body).unwrap();
        let mut out = Vec::new();
        SnappyReader::new(&raw, 1 << 20)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend([0, 0, 0, 1, 0, 0, 0, 1]);
        for chunk in body.chunks(7) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            xerial.extend((block.len() as u32).to_be_bytes());
            xerial.extend(block);
        }
        let mut out = Vec::new();
        SnappyReader::new(&xerial, 1 << 20)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        // A raw block claiming more than the limit is refused before anything is allocated.
        let big = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 1 << 20])
            .unwrap();
        let mut out = Vec::new();
        assert!(
            SnappyReader::new(&big, 1000)
                .unwrap()
                .read_to_end(&mut out)
                .is_err()
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_snappy_block_claiming_more_than_its_bytes_can_hold_is_refused_before_allocating() {
        // The most compressible input there is still decodes: it is the bound's own test.
        let zeros = vec![0u8; 4 << 20];
        let dense = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        let mut out = Vec::new();
        SnappyReader::new(&dense, 16 << 20)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, zeros);
        // Ten bytes claiming 100 MiB under a limit that would allow it.
        let mut lying = Vec::new();
        let mut claim = 100u64 << 20;
        while claim >= 0x80 {
            lying.push((claim as u8 & 0x7f) | 0x80);
            claim >>= 7;
        }
        lying.push(claim as u8);
        lying.extend([0u8; 6]);
        let err = SnappyReader::new(&lying, 128 << 20)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("claims 104857600 bytes, more than snappy can expand it to"),
            "{err}"
        );
    }
}
