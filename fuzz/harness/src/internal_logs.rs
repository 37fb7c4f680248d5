//! The broker's internal logs as they are replayed at start-up: a `__consumer_offsets` partition through the
//! group coordinator's `load` (offset commits, group metadata with members and assignments, tombstones), and a
//! `__cluster_metadata` segment through `Log::open` and the metadata store's replay.
//!
//! The first byte picks the log (bit 0) and whether every batch's magic and CRC are repaired first (bit 7),
//! so that mutations of a real log's keys and values reach the record decoders instead of the CRC check. The
//! seeds are real log files written by the broker.

use std::sync::Arc;

use bytes::BytesMut;
use sluice_server::group::{GroupConfig, GroupCoordinator, GroupError, OffsetLog};
use sluice_server::metadata::MetadataStore;
use sluice_storage::{Log, LogConfig, StoredRecord, replay_bytes};

use crate::batches::crc32c;

const HEADER: usize = 61;
const LIMIT: u64 = 1 << 20;

/// Sets magic 2 and a correct CRC on every batch whose length fits in `bytes`, front to back.
pub fn repair(bytes: &mut [u8]) {
    let mut pos = 0usize;
    while bytes.len() - pos >= HEADER {
        let length = i32::from_be_bytes([
            bytes[pos + 8],
            bytes[pos + 9],
            bytes[pos + 10],
            bytes[pos + 11],
        ]);
        let Ok(length) = usize::try_from(length) else {
            return;
        };
        let end = pos + 12 + length;
        if length < HEADER - 12 || end > bytes.len() {
            return;
        }
        bytes[pos + 16] = 2;
        let crc = crc32c(&bytes[pos + 21..end]);
        bytes[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}

/// One `__consumer_offsets` partition holding `bytes`.
struct Bytes(Vec<u8>);

impl OffsetLog for Bytes {
    fn append(&self, _: i32, _: BytesMut) -> Result<sluice_server::group::Committing, String> {
        Ok(Box::pin(async { Ok(()) }))
    }

    fn replay(
        &self,
        partition: i32,
        visit: &mut dyn FnMut(StoredRecord<'_>) -> Result<(), GroupError>,
    ) -> Result<(), GroupError> {
        if partition != 0 {
            return Ok(());
        }
        replay_bytes(&self.0, LIMIT, visit)
    }
}

/// Loads `bytes` as partition 0 of a one-partition `__consumer_offsets`.
pub fn consumer_offsets(bytes: Vec<u8>) -> Result<(), String> {
    let config = GroupConfig {
        num_offsets_partitions: 1,
        ..GroupConfig::default()
    };
    let coordinator = GroupCoordinator::new(config, Arc::new(Bytes(bytes)));
    coordinator.load().map_err(|e| e.to_string())
}

/// Opens `bytes` as the only segment of `__cluster_metadata` and replays it; the names of the topics.
pub fn cluster_metadata(bytes: Vec<u8>) -> Result<Vec<String>, String> {
    let dir = crate::scratch_dir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("00000000000000000000.log"), bytes)
        .map_err(|e| e.to_string())?;
    let config = LogConfig {
        max_decompressed_batch_bytes: LIMIT,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config).map_err(|e| e.to_string())?;
    let store = MetadataStore::open(Arc::new(parking_lot::Mutex::new(log)), 1)
        .map_err(|e| e.to_string())?;
    // What the handlers read from the replayed image.
    let image = store.image();
    Ok(image
        .topics
        .values()
        .filter_map(|t| image.topic_by_id(&t.id).map(|t| t.name.clone()))
        .collect())
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 0x80 != 0 {
        repair(&mut bytes);
    }
    if mode & 1 == 0 {
        let _ = consumer_offsets(bytes);
    } else {
        let _ = cluster_metadata(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../corpus/internal_logs/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).expect("seed")[1..].to_vec()
    }

    /// The seeds are real logs, so the fuzzer starts from inputs that get all the way through.
    #[test]
    fn the_seeds_replay_and_a_spoiled_byte_is_refused() {
        let offsets = seed("consumer-offsets");
        consumer_offsets(offsets.clone()).expect("the real offsets log loads");
        let mut spoiled = offsets;
        let last = spoiled.len() - 1;
        spoiled[last] ^= 0x55;
        let err = consumer_offsets(spoiled).unwrap_err();
        assert!(err.contains("CRC"), "{err}");

        let topics =
            cluster_metadata(seed("cluster-metadata")).expect("the real metadata log opens");
        assert!(topics.contains(&"seeds".to_string()), "{topics:?}");
        assert!(
            !topics.contains(&"other".to_string()),
            "deleted: {topics:?}"
        );
    }
}
