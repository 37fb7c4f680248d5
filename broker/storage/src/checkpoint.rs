//! Small durable files: in a partition directory, the log start offset checkpoint and the clean-shutdown
//! marker; in a log directory, the high watermarks of its partitions (`replication-offset-checkpoint`).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Holds the log start offset moved by DeleteRecords (segments below it may still exist).
pub(crate) const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
/// Present only while the log is cleanly closed; its absence at open means "recover".
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

const FORMAT_VERSION: &str = "0";

/// fsync a directory so that file creations, renames and deletions in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads the checkpoint; a missing or unreadable one means "no checkpoint" (the first segment's
/// base offset is then the log start offset, which is never wrong, only possibly lower).
pub(crate) fn read_log_start_offset(dir: &Path) -> io::Result<Option<i64>> {
    let text = match fs::read_to_string(dir.join(LOG_START_OFFSET_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    let parsed = match (lines.next(), lines.next()) {
        (Some(FORMAT_VERSION), Some(offset)) => offset.trim().parse::<i64>().ok(),
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(dir = %dir.display(), "ignoring malformed log start offset checkpoint");
    }
    Ok(parsed)
}

/// Atomically replaces the checkpoint (write temp, fsync, rename, fsync dir).
pub(crate) fn write_log_start_offset(dir: &Path, offset: i64) -> io::Result<()> {
    let tmp = dir.join(format!("{LOG_START_OFFSET_FILE}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{FORMAT_VERSION}\n{offset}\n").as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(LOG_START_OFFSET_FILE))?;
    fsync_dir(dir)
}

/// The high watermark of every partition in a log dir, so a restarted replica never serves records the
/// cluster had not committed. Kafka's format: version, count, then `topic partition offset` lines.
pub(crate) const HIGH_WATERMARK_FILE: &str = "replication-offset-checkpoint";

/// Reads a log dir's high watermarks; a missing file is empty, a malformed one is ignored with a warning
/// (each log then starts at its log end offset, as before checkpoints existed).
pub(crate) fn read_high_watermarks(log_dir: &Path) -> io::Result<HashMap<(String, i32), i64>> {
    let text = match fs::read_to_string(log_dir.join(HIGH_WATERMARK_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let parsed = parse_high_watermarks(&text);
    if parsed.is_none() {
        tracing::warn!(dir = %log_dir.display(), "ignoring malformed {HIGH_WATERMARK_FILE}");
    }
    Ok(parsed.unwrap_or_default())
}

fn parse_high_watermarks(text: &str) -> Option<HashMap<(String, i32), i64>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != FORMAT_VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut out = HashMap::new();
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let (topic, partition, offset) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        out.insert(
            (topic.to_string(), partition.parse().ok()?),
            offset.parse().ok()?,
        );
    }
    (out.len() == count).then_some(out)
}

/// Atomically replaces a log dir's high watermark checkpoint.
pub(crate) fn write_high_watermarks(
    log_dir: &Path,
    entries: &[(String, i32, i64)],
) -> io::Result<()> {
    let mut text = format!("{FORMAT_VERSION}\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    let tmp = log_dir.join(format!("{HIGH_WATERMARK_FILE}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, log_dir.join(HIGH_WATERMARK_FILE))?;
    fsync_dir(log_dir)
}

pub(crate) fn write_clean_shutdown(dir: &Path) -> io::Result<()> {
    File::create(dir.join(CLEAN_SHUTDOWN_FILE))?.sync_all()?;
    fsync_dir(dir)
}

/// Returns whether the marker was present, removing it so that a later crash is detected.
pub(crate) fn take_clean_shutdown(dir: &Path) -> io::Result<bool> {
    match fs::remove_file(dir.join(CLEAN_SHUTDOWN_FILE)) {
        Ok(()) => {
            fsync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_start_offset_round_trip_and_malformed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_log_start_offset(dir.path()).unwrap(), None);
        write_log_start_offset(dir.path(), 42).unwrap();
        assert_eq!(read_log_start_offset(dir.path()).unwrap(), Some(42));
        write_log_start_offset(dir.path(), 7).unwrap();
        assert_eq!(read_log_start_offset(dir.path()).unwrap(), Some(7));
        fs::write(dir.path().join(LOG_START_OFFSET_FILE), "garbage").unwrap();
        assert_eq!(read_log_start_offset(dir.path()).unwrap(), None);
    }

    #[test]
    fn high_watermarks_round_trip_and_malformed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_high_watermarks(dir.path()).unwrap().is_empty());
        write_high_watermarks(dir.path(), &[("a-b".into(), 0, 5), ("c".into(), 3, 0)]).unwrap();
        let read = read_high_watermarks(dir.path()).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[&("a-b".to_string(), 0)], 5);
        assert_eq!(read[&("c".to_string(), 3)], 0);
        for bad in [
            "0\n2\na 0 5\n",
            "1\n0\n",
            "0\n1\na x 5\n",
            "0\n1\na 0 5 6\n",
        ] {
            fs::write(dir.path().join(HIGH_WATERMARK_FILE), bad).unwrap();
            assert!(
                read_high_watermarks(dir.path()).unwrap().is_empty(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn clean_shutdown_marker_is_consumed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!take_clean_shutdown(dir.path()).unwrap());
        write_clean_shutdown(dir.path()).unwrap();
        assert!(take_clean_shutdown(dir.path()).unwrap());
        assert!(!take_clean_shutdown(dir.path()).unwrap());
    }
}
