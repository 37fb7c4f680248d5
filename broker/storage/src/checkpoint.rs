//! Small durable files in a partition directory: the log start offset checkpoint and the
//! clean-shutdown marker.

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
    fn clean_shutdown_marker_is_consumed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!take_clean_shutdown(dir.path()).unwrap());
        write_clean_shutdown(dir.path()).unwrap();
        assert!(take_clean_shutdown(dir.path()).unwrap());
        assert!(!take_clean_shutdown(dir.path()).unwrap());
    }
}
