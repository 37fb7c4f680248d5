//! A Produce request's records for one partition, through exactly the checks `Log::append_from_client` makes.
//! Random bytes rarely carry a valid CRC, so the first byte picks a mode: as sent, or repaired (batch length,
//! magic 2, base offset 0, the codec from the first byte, and a correct CRC-32C) so that the record walker
//! and every decompressor see the rest.

use sluice_storage::{LogConfig, check_client_records};

use crate::batches::crc32c;

const HEADER: usize = 61;

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let config = LogConfig {
        // Small enough that bombs hit the cap quickly, large enough for real batches.
        max_decompressed_batch_bytes: 4 << 20,
        ..LogConfig::default()
    };
    let now = 1_700_000_000_000;
    if mode & 0x80 == 0 || rest.len() < HEADER {
        let _ = check_client_records(rest, &config, now);
        return;
    }
    let mut batch = rest.to_vec();
    batch[..8].copy_from_slice(&0i64.to_be_bytes());
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[16] = 2;
    let attributes = (i16::from_be_bytes([batch[21], batch[22]]) & !0x07) | (mode & 0x07) as i16;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let _ = check_client_records(&batch, &config, now);
}
