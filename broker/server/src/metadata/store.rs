use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use sluice_storage::Log;

use super::{MetadataImage, MetadataRecord};
use crate::error::Error;

/// How many producer ids one metadata write reserves.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// The metadata log and the image it produces.
pub struct MetadataStore {
    image: RwLock<MetadataImage>,
    log: Arc<Mutex<Log>>,
    /// Held from validation to commit so two conflicting changes cannot both pass validation.
    writer: Mutex<()>,
    /// Producer ids reserved by the last block write and not yet handed out: (next, end).
    producer_ids: Mutex<(i64, i64)>,
}

impl MetadataStore {
    /// Replay the metadata log into a fresh image.
    pub fn open(log: Arc<Mutex<Log>>) -> Result<Self, Error> {
        let mut image = MetadataImage::default();
        log.lock().replay(&mut |record| {
            let Some(value) = record.value else {
                return Ok(());
            };
            let parsed: MetadataRecord = serde_json::from_slice(value).map_err(|e| {
                Error::Metadata(format!(
                    "metadata record at offset {} is unreadable: {e}",
                    record.offset
                ))
            })?;
            image.apply(&parsed);
            Ok::<(), Error>(())
        })?;
        let next = image.next_producer_id;
        Ok(MetadataStore {
            image: RwLock::new(image),
            log,
            writer: Mutex::new(()),
            producer_ids: Mutex::new((next, next)),
        })
    }

    pub fn image(&self) -> RwLockReadGuard<'_, MetadataImage> {
        self.image.read()
    }

    /// Take before validating a change against the image; commit while holding it.
    pub fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock()
    }

    /// Make `records` durable (appended and fsynced), then apply them. Metadata changes are rare, so every one
    /// is synced whatever the log flush policy says.
    pub fn commit(&self, records: &[MetadataRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let encoded: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let value = serde_json::to_vec(r)
                    .map_err(|e| Error::Metadata(format!("cannot encode metadata record: {e}")))?;
                Ok(Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    sequence: -1,
                    timestamp: now,
                    key: None,
                    value: Some(Bytes::from(value)),
                    headers: Default::default(),
                })
            })
            .collect::<Result<_, Error>>()?;
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &encoded,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| Error::Metadata(format!("cannot encode metadata batch: {e}")))?;
        {
            let mut log = self.log.lock();
            log.append(&buf, 0, now)?;
            let end = log.log_end_offset();
            log.set_high_watermark(end);
            log.flush()?;
        }
        let mut image = self.image.write();
        for r in records {
            image.apply(r);
        }
        Ok(())
    }

    /// A producer id never handed out before, in this process or an earlier one.
    pub fn allocate_producer_id(&self) -> Result<i64, Error> {
        let mut ids = self.producer_ids.lock();
        if ids.0 >= ids.1 {
            let _w = self.write_lock();
            let start = self.image().next_producer_id.max(ids.1);
            self.commit(&[MetadataRecord::ProducerIdsAllocated {
                next: start + PRODUCER_ID_BLOCK,
            }])?;
            *ids = (start, start + PRODUCER_ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
