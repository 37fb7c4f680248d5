//! The state machine: committed entries applied to a `MetadataImage`, and snapshots of it.
//!
//! The image lives in memory; what makes it durable is the Raft log plus the latest snapshot, kept in a file
//! (`raft-snapshot.json`, replaced atomically). At open the state is the snapshot's, and openraft re-applies
//! the committed entries after it.

use crate::Member;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use sluice_metadata::MetadataImage;
use tokio::sync::{Mutex, watch};

use crate::{Applied, NodeId, Quorum, QuorumError, files};

const SNAPSHOT: &str = "raft-snapshot.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Member>,
    /// The image, as JSON.
    data: Vec<u8>,
}

struct Inner {
    dir: PathBuf,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Member>,
    image: MetadataImage,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
    /// The image after each applied batch, for the broker's publisher.
    published: watch::Sender<Arc<MetadataImage>>,
}

impl Inner {
    fn publish(&self) {
        self.published.send_replace(Arc::new(self.image.clone()));
    }
}

/// The state machine of one node. Cheap to clone; clones share the state.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
}

fn snapshot_error(
    meta: Option<&SnapshotMeta<NodeId, Member>>,
    e: &QuorumError,
) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(meta.map(|m| m.signature()), AnyError::new(e)).into()
}

impl StateMachine {
    /// Opens the state machine whose snapshot lives in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<StateMachine, QuorumError> {
        std::fs::create_dir_all(dir).map_err(|source| QuorumError::File {
            path: dir.to_path_buf(),
            source,
        })?;
        let snapshot: Option<StoredSnapshot> = files::read(dir, SNAPSHOT)?;
        let (last_applied, membership, image) = match &snapshot {
            Some(s) => (
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
                serde_json::from_slice(&s.data)
                    .map_err(|e| QuorumError::Corrupt(format!("{SNAPSHOT}: {e}")))?,
            ),
            None => (None, StoredMembership::default(), MetadataImage::default()),
        };
        let (published, _) = watch::channel(Arc::new(image.clone()));
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                last_applied,
                membership,
                image,
                snapshot,
                snapshots_built: 0,
                published,
            })),
        })
    }

    /// The metadata as of the last applied entry.
    pub async fn image(&self) -> MetadataImage {
        self.inner.lock().await.image.clone()
    }

    /// The image after every applied batch or installed snapshot (intermediate ones may be skipped; the
    /// latest is always seen).
    pub async fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.lock().await.published.subscribe()
    }
}

impl RaftSnapshotBuilder<Quorum> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Quorum>, StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        let data = serde_json::to_vec(&inner.image)
            .map_err(|e| snapshot_error(None, &QuorumError::Corrupt(e.to_string())))?;
        inner.snapshots_built += 1;
        let snapshot_id = match inner.last_applied {
            Some(last) => format!(
                "{}-{}-{}",
                last.leader_id, last.index, inner.snapshots_built
            ),
            None => format!("--{}", inner.snapshots_built),
        };
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        files::write(&inner.dir, SNAPSHOT, &stored).map_err(|e| snapshot_error(Some(&meta), &e))?;
        inner.snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<Quorum> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>), StorageError<NodeId>>
    {
        let inner = self.inner.lock().await;
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Quorum>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut applied = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            let offset = entry.log_id.index as i64;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    for record in &batch.records {
                        inner.image.apply_at(record, offset);
                    }
                }
                EntryPayload::Membership(membership) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            // Every entry moves the image's version, records or not, so "applied up to offset N" is one compare.
            inner.image.offset = offset;
            applied.push(Applied {
                index: entry.log_id.index,
            });
        }
        inner.publish();
        Ok(applied)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let image: MetadataImage = serde_json::from_slice(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                AnyError::new(&e),
            ))
        })?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let mut inner = self.inner.lock().await;
        files::write(&inner.dir, SNAPSHOT, &stored).map_err(|e| snapshot_error(Some(meta), &e))?;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.image = image;
        inner.snapshot = Some(stored);
        inner.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<Quorum>>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        Ok(inner.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
