use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::{Mutex, RwLock};
use sluice_storage::Log;

use super::{MetadataImage, MetadataRecord};
use crate::error::Error;

/// Where the metadata log lives.
pub enum Backend {
    /// This node's own `__cluster_metadata-0`, appended and fsynced here: a single node, one voter.
    Local(Arc<Mutex<Log>>),
    /// The controller quorum's Raft log: changes are proposed to the active controller, and the image
    /// follows what this node's state machine applied (`metadata::raft`).
    Raft(Arc<sluice_quorum::QuorumNode>),
}

/// The metadata log and the image it produces.
pub struct MetadataStore {
    /// Replaced whole by each change: readers hold an `Arc` of the version they started with.
    image: RwLock<Arc<MetadataImage>>,
    pub backend: Backend,
    /// Held from validation to commit so two conflicting changes cannot both pass validation.
    writer: tokio::sync::Mutex<()>,
    /// Producer ids reserved by the last block write and not yet handed out: (next, end).
    pub(crate) producer_ids: Mutex<(i64, i64)>,
    /// The offset of the image installed last, and whether installing has stopped (shutdown).
    installed: tokio::sync::watch::Sender<(i64, bool)>,
}

/// Records written before replicas were placed name none: on a single node, every partition is this node's.
fn place_on_self(record: &mut MetadataRecord, image: &MetadataImage, node_id: i32) {
    match record {
        MetadataRecord::TopicCreated {
            partitions,
            assignment,
            ..
        } if assignment.is_empty() => {
            *assignment = vec![vec![node_id]; usize::try_from(*partitions).unwrap_or(0)];
        }
        MetadataRecord::PartitionsIncreased {
            name,
            partitions,
            assignment,
        } if assignment.is_empty() => {
            let current = image.topics.get(name).map_or(0, |t| t.partitions);
            let added = usize::try_from(*partitions - current).unwrap_or(0);
            *assignment = vec![vec![node_id]; added];
        }
        _ => {}
    }
}

impl MetadataStore {
    /// Replay the metadata log into a fresh image.
    pub fn open(log: Arc<Mutex<Log>>, node_id: i32) -> Result<Self, Error> {
        let mut image = MetadataImage::default();
        log.lock().replay(&mut |record| {
            let Some(value) = record.value else {
                return Ok(());
            };
            let mut parsed: MetadataRecord = serde_json::from_slice(value).map_err(|e| {
                Error::Metadata(format!(
                    "metadata record at offset {} is unreadable: {e}",
                    record.offset
                ))
            })?;
            place_on_self(&mut parsed, &image, node_id);
            image.apply_at(&parsed, record.offset);
            Ok::<(), Error>(())
        })?;
        Ok(Self::with_image(Backend::Local(log), Arc::new(image)))
    }

    /// A store over the quorum, starting from the image its state machine has so far.
    pub fn raft(node: Arc<sluice_quorum::QuorumNode>, image: Arc<MetadataImage>) -> Self {
        Self::with_image(Backend::Raft(node), image)
    }

    fn with_image(backend: Backend, image: Arc<MetadataImage>) -> Self {
        let next = image.next_producer_id;
        let (installed, _) = tokio::sync::watch::channel((image.offset, false));
        MetadataStore {
            image: RwLock::new(image),
            backend,
            writer: tokio::sync::Mutex::new(()),
            producer_ids: Mutex::new((next, next)),
            installed,
        }
    }

    /// Installs the image the publisher has brought this node's logs in line with.
    pub fn set_image(&self, image: Arc<MetadataImage>) {
        let offset = image.offset;
        *self.image.write() = image;
        self.installed.send_modify(|(o, _)| *o = offset);
    }

    /// Whether the node is shutting down (no image will be installed any more).
    pub fn stopping(&self) -> bool {
        self.installed.borrow().1
    }

    /// No image will be installed any more: waiters give up now instead of at their timeouts.
    pub fn stop_installing(&self) {
        self.installed.send_modify(|(_, stopped)| *stopped = true);
    }

    /// Waits until the installed image includes `offset`; false if that took longer than `timeout`.
    pub async fn wait_installed(&self, offset: i64, timeout: std::time::Duration) -> bool {
        let mut installed = self.installed.subscribe();
        match tokio::time::timeout(
            timeout,
            installed.wait_for(|(o, stopped)| *o >= offset || *stopped),
        )
        .await
        {
            Ok(Ok(state)) => state.0 >= offset,
            _ => false,
        }
    }

    /// The quorum this node's metadata comes from, when there is one.
    pub fn quorum(&self) -> Option<&Arc<sluice_quorum::QuorumNode>> {
        match &self.backend {
            Backend::Raft(node) => Some(node),
            Backend::Local(_) => None,
        }
    }

    /// The current image. Cheap: an `Arc` of an immutable version.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Take before validating a change against the image; commit while holding it.
    pub async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    /// Make `records` durable (appended and fsynced), then apply them; answers the image before and after.
    /// Metadata changes are rare, so every one is synced whatever the log flush policy says.
    pub fn commit(
        &self,
        records: &[MetadataRecord],
    ) -> Result<(Arc<MetadataImage>, Arc<MetadataImage>), Error> {
        let before = self.image();
        if records.is_empty() {
            return Ok((before.clone(), before));
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
        let Backend::Local(log) = &self.backend else {
            return Err(Error::Metadata(
                "a local commit on a node whose metadata is the quorum's".into(),
            ));
        };
        let base = {
            let mut log = log.lock();
            let base = log.log_end_offset();
            log.append(&buf, 0, now)?;
            let end = log.log_end_offset();
            log.set_high_watermark(end);
            log.flush()?;
            base
        };
        let mut image = (*before).clone();
        for (i, r) in records.iter().enumerate() {
            image.apply_at(r, base + i as i64);
        }
        let after = Arc::new(image);
        self.set_image(after.clone());
        Ok((before, after))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
