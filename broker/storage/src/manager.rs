//! `LogManager`: every partition log of the broker, spread over one or more log directories.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::checkpoint;
use crate::{Log, LogConfig, StorageError, TopicPartition};

/// Suffix of a partition directory being deleted: `<topic>-<partition>.<uuid>-delete`, as Kafka.
const DELETE_SUFFIX: &str = "-delete";

struct ManagedLog {
    log_dir: usize,
    log: Arc<Mutex<Log>>,
}

pub struct LogManager {
    log_dirs: Vec<PathBuf>,
    default_config: LogConfig,
    logs: RwLock<HashMap<TopicPartition, ManagedLog>>,
    /// Serialises creation and deletion so two callers cannot create the same partition twice.
    create_lock: Mutex<()>,
}

impl LogManager {
    /// Opens every `<topic>-<partition>` directory under `log_dirs` (creating the log dirs if
    /// needed), recovering each log, and finishes deletions interrupted by a crash.
    pub fn open(
        log_dirs: &[PathBuf],
        default_config: LogConfig,
    ) -> Result<LogManager, StorageError> {
        Self::open_except(log_dirs, default_config, None)
    }

    /// As `open`, leaving the partitions of `skip_topic` alone: another owner (the controller quorum) keeps
    /// their files, and two `Log`s over one directory would undo each other's writes.
    pub fn open_except(
        log_dirs: &[PathBuf],
        default_config: LogConfig,
        skip_topic: Option<&str>,
    ) -> Result<LogManager, StorageError> {
        let mut logs = HashMap::new();
        for (i, log_dir) in log_dirs.iter().enumerate() {
            fs::create_dir_all(log_dir)?;
            let high_watermarks = checkpoint::read_high_watermarks(log_dir)?;
            for entry in fs::read_dir(log_dir)? {
                let entry = entry?;
                if !entry.file_type()?.is_dir() {
                    continue;
                }
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.ends_with(DELETE_SUFFIX) {
                    tracing::info!(dir = %entry.path().display(), "finishing deletion of partition directory");
                    fs::remove_dir_all(entry.path())?;
                    continue;
                }
                let Some(tp) = TopicPartition::from_dir_name(name) else {
                    tracing::debug!(dir = %entry.path().display(), "ignoring non-partition directory");
                    continue;
                };
                if skip_topic == Some(tp.topic.as_str()) {
                    continue;
                }
                if logs.contains_key(&tp) {
                    tracing::error!(partition = %tp, dir = %entry.path().display(), "partition exists in two log dirs; ignoring this copy");
                    continue;
                }
                let mut log = Log::open(&entry.path(), default_config.clone())?;
                // A replica must not serve what the cluster had not committed when it stopped; logs without a
                // checkpointed value (written before checkpoints existed) keep their log end.
                if let Some(&hw) = high_watermarks.get(&(tp.topic.clone(), tp.partition)) {
                    log.set_high_watermark(hw);
                }
                logs.insert(
                    tp,
                    ManagedLog {
                        log_dir: i,
                        log: Arc::new(Mutex::new(log)),
                    },
                );
            }
        }
        tracing::info!(partitions = logs.len(), "loaded partition logs");
        Ok(LogManager {
            log_dirs: log_dirs.to_vec(),
            default_config,
            logs: RwLock::new(logs),
            create_lock: Mutex::new(()),
        })
    }

    pub fn default_config(&self) -> &LogConfig {
        &self.default_config
    }

    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.log_dirs
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Mutex<Log>>> {
        self.logs.read().get(tp).map(|m| m.log.clone())
    }

    /// Returns the partition's log, creating it in the log dir holding the fewest partitions.
    /// An existing log keeps its current config.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<Mutex<Log>>, StorageError> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let _guard = self.create_lock.lock();
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let log_dir = {
            let logs = self.logs.read();
            let mut counts = vec![0usize; self.log_dirs.len()];
            for managed in logs.values() {
                counts[managed.log_dir] += 1;
            }
            (0..self.log_dirs.len())
                .min_by_key(|&i| counts[i])
                .ok_or_else(|| std::io::Error::other("no log directories configured"))?
        };
        let log = Log::open(&self.log_dirs[log_dir].join(tp.to_string()), config)?;
        let log = Arc::new(Mutex::new(log));
        self.logs.write().insert(
            tp.clone(),
            ManagedLog {
                log_dir,
                log: log.clone(),
            },
        );
        Ok(log)
    }

    /// Deletes a partition: renames its directory to `<name>.<uuid>-delete` (atomic, so a crash
    /// leaves either the partition or a directory the next open removes), then removes it.
    /// Holders of the log's `Arc` get `LogClosed` on writes.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        let _guard = self.create_lock.lock();
        let Some(managed) = self.logs.write().remove(tp) else {
            return Ok(());
        };
        let mut log = managed.log.lock();
        log.mark_closed();
        let dir = log.dir().to_path_buf();
        let parent = dir.parent().unwrap_or(Path::new("."));
        let doomed = parent.join(format!(
            "{tp}.{}{DELETE_SUFFIX}",
            uuid::Uuid::new_v4().simple()
        ));
        fs::rename(&dir, &doomed)?;
        checkpoint::fsync_dir(parent)?;
        fs::remove_dir_all(&doomed)?;
        tracing::info!(partition = %tp, "deleted partition log");
        Ok(())
    }

    /// Every log dir with the partitions in it and their sizes in bytes (DescribeLogDirs).
    pub fn partitions_by_dir(&self) -> Vec<(PathBuf, Vec<(TopicPartition, u64)>)> {
        let mut out: Vec<(PathBuf, Vec<(TopicPartition, u64)>)> = self
            .log_dirs
            .iter()
            .map(|d| (d.clone(), Vec::new()))
            .collect();
        for (tp, managed) in self.logs.read().iter() {
            let size = managed.log.lock().size_bytes();
            if let Some((_, list)) = out.get_mut(managed.log_dir) {
                list.push((tp.clone(), size));
            }
        }
        for (_, list) in &mut out {
            list.sort();
        }
        out
    }

    pub fn partitions(&self) -> Vec<TopicPartition> {
        let mut tps: Vec<_> = self.logs.read().keys().cloned().collect();
        tps.sort();
        tps
    }

    fn all_logs(&self) -> Vec<(TopicPartition, Arc<Mutex<Log>>)> {
        self.logs
            .read()
            .iter()
            .map(|(tp, m)| (tp.clone(), m.log.clone()))
            .collect()
    }

    /// Retention, time-based flush and time-based roll for every log; errors are logged.
    pub fn tick(&self, now_ms: i64) {
        for (tp, log) in self.all_logs() {
            let mut log = log.lock();
            match log.enforce_retention(now_ms) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(partition = %tp, segments = n, "retention deleted segments")
                }
                Err(e) => tracing::error!(partition = %tp, "retention failed: {e}"),
            }
            if let Err(e) = log.tick(now_ms) {
                tracing::error!(partition = %tp, "log maintenance failed: {e}");
            }
        }
    }

    /// Writes every log dir's `replication-offset-checkpoint` with the high watermarks of its partitions.
    pub fn checkpoint_high_watermarks(&self) -> Result<(), StorageError> {
        let mut per_dir: Vec<Vec<(String, i32, i64)>> = vec![Vec::new(); self.log_dirs.len()];
        for (tp, managed) in self.logs.read().iter() {
            let hw = managed.log.lock().high_watermark();
            if let Some(entries) = per_dir.get_mut(managed.log_dir) {
                entries.push((tp.topic.clone(), tp.partition, hw));
            }
        }
        for (dir, mut entries) in self.log_dirs.iter().zip(per_dir) {
            entries.sort();
            checkpoint::write_high_watermarks(dir, &entries)?;
        }
        Ok(())
    }

    /// Cleanly shuts down every log (flush, trim indexes, clean-shutdown marker) and checkpoints the high
    /// watermarks. Returns the first error after trying all of them.
    pub fn close_all(&self) -> Result<(), StorageError> {
        let mut first_error = None;
        if let Err(e) = self.checkpoint_high_watermarks() {
            tracing::error!("checkpointing high watermarks failed: {e}");
            first_error = Some(e);
        }
        for (tp, log) in self.all_logs() {
            if let Err(e) = log.lock().shutdown() {
                tracing::error!(partition = %tp, "closing log failed: {e}");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_manager_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LogManager>();
        assert_send_sync::<Arc<Mutex<Log>>>();
    }
}
