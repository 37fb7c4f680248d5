//! The small state files next to the Raft log (vote, commit point, purge point, snapshot): JSON, replaced
//! atomically (temporary file, fsync, rename, fsync of the directory), so a crash leaves the old file or the
//! new one, never half of either.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::QuorumError;

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> QuorumError + '_ {
    move |source| QuorumError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `value` to `dir/name` durably.
pub(crate) fn write<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), QuorumError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let bytes = serde_json::to_vec(value).map_err(|e| QuorumError::Corrupt(e.to_string()))?;
    let mut file = fs::File::create(&tmp).map_err(file_error(&tmp))?;
    file.write_all(&bytes).map_err(file_error(&tmp))?;
    file.sync_all().map_err(file_error(&tmp))?;
    fs::rename(&tmp, &path).map_err(file_error(&path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(file_error(dir))
}

/// Reads `dir/name`; `None` when it does not exist.
pub(crate) fn read<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, QuorumError> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| QuorumError::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(QuorumError::File { path, source }),
    }
}
