//! One partition hosted on this broker: its log and its role, leader or follower, as the controller last
//! decided it (Kafka's `Partition`). As leader it appends what producers send stamped with its leader epoch,
//! tracks its followers (`isr::Leadership`), moves the high watermark and asks for ISR changes; as follower it
//! appends what its fetcher brings from the leader. The replica manager owns the set of partitions and does
//! the I/O around them (fetchers, AlterPartition).
//!
//! Locks: `inner` before `log`, always.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use sluice_metadata::PartitionState;
use sluice_storage::{AppendInfo, Log, StorageError, TopicPartition};
use tokio::sync::watch;
use uuid::Uuid;

use super::isr::Leadership;

/// Outside a follower's fetch, the high watermark waits for the maximal ISR only: replicas about to join are
/// counted where their fetches are seen (`on_follower_fetch`). Leaving them out can only let it move sooner
/// past a replica that is in no ISR, which is safe: a replica joins only once it holds the high watermark.
fn no_joiners(_: i32) -> bool {
    false
}
const NO_JOINERS: fn(i32) -> bool = no_joiners;

/// What this broker is for the partition.
#[derive(Debug)]
pub enum Role {
    Leader(Leadership),
    /// Following `leader` (-1: there is none; nothing to fetch from).
    Follower {
        leader: i32,
    },
}

#[derive(Debug)]
struct Inner {
    topic_id: Uuid,
    role: Role,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    /// The ISR as the controller committed it.
    isr: Vec<i32>,
    min_insync_replicas: i32,
}

/// The high watermark and how many times leadership was lost: a produce waiting for acks=all watches both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub high_watermark: i64,
    pub resignations: u64,
}

/// What applying the controller's state did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    /// Same role and epoch; replicas or ISR moved.
    Updated,
    BecameLeader,
    /// Now following `leader` (possibly -1) at a new leader epoch: the fetcher must be pointed there.
    BecameFollower {
        leader: i32,
    },
}

/// An ISR change for the controller.
#[derive(Debug, Clone)]
pub struct IsrRequest {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// Why a leader-side operation was refused: a Kafka error code.
pub type Code = i16;

/// A follower's fetch as the leader answers it, before records are read.
#[derive(Debug)]
pub struct FollowerView {
    /// Where the follower's log diverges from this leader's: (epoch, end offset). Send no records then.
    pub diverging: Option<(i32, i64)>,
    pub isr_change: Option<IsrRequest>,
    pub high_watermark_moved: bool,
}

pub struct Partition {
    pub tp: TopicPartition,
    pub me: i32,
    pub log: Arc<Mutex<Log>>,
    inner: Mutex<Inner>,
    progress: watch::Sender<Progress>,
    /// Whether the replication throttles apply to this partition here, as leader and as follower.
    leader_throttled: AtomicBool,
    follower_throttled: AtomicBool,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition").field("tp", &self.tp).finish()
    }
}

/// Leader-side knobs that come from configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub lag_time_max_ms: i64,
}

impl Partition {
    /// A hosted partition, not yet leading or following anyone.
    pub fn new(tp: TopicPartition, topic_id: Uuid, me: i32, log: Arc<Mutex<Log>>) -> Partition {
        let hw = log.lock().high_watermark();
        let (progress, _) = watch::channel(Progress {
            high_watermark: hw,
            resignations: 0,
        });
        Partition {
            tp,
            me,
            log,
            inner: Mutex::new(Inner {
                topic_id,
                role: Role::Follower { leader: -1 },
                leader_epoch: -1,
                partition_epoch: -1,
                replicas: Vec::new(),
                isr: Vec::new(),
                min_insync_replicas: 1,
            }),
            progress,
            leader_throttled: AtomicBool::new(false),
            follower_throttled: AtomicBool::new(false),
        }
    }

    pub fn topic_id(&self) -> Uuid {
        self.inner.lock().topic_id
    }

    /// (leading here, leader id or -1, leader epoch).
    pub fn leadership(&self) -> (bool, i32, i32) {
        let inner = self.inner.lock();
        match &inner.role {
            Role::Leader(_) => (true, self.me, inner.leader_epoch),
            Role::Follower { leader } => (false, *leader, inner.leader_epoch),
        }
    }

    pub fn isr(&self) -> Vec<i32> {
        self.inner.lock().isr.clone()
    }

    pub fn in_isr(&self, replica: i32) -> bool {
        self.inner.lock().isr.contains(&replica)
    }

    pub fn set_throttled(&self, as_leader: bool, as_follower: bool) {
        self.leader_throttled.store(as_leader, Ordering::Relaxed);
        self.follower_throttled
            .store(as_follower, Ordering::Relaxed);
    }

    /// Whether what this leader sends `replica` counts against the leader throttle (never for an in-sync one).
    pub fn leader_throttles(&self, replica: i32) -> bool {
        self.leader_throttled.load(Ordering::Relaxed) && !self.in_isr(replica)
    }

    /// Whether this follower's fetching counts against the follower throttle (not once it is in sync).
    pub fn follower_throttles(&self) -> bool {
        self.follower_throttled.load(Ordering::Relaxed) && !self.in_isr(self.me)
    }

    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Takes the controller's decision for this partition. `min_isr`: the topic's `min.insync.replicas`.
    pub fn apply(
        &self,
        state: &PartitionState,
        min_isr: i32,
        now_ms: i64,
    ) -> Result<Transition, StorageError> {
        let mut inner = self.inner.lock();
        inner.min_insync_replicas = min_isr;
        let lead = state.leader == self.me;
        let same_epoch = inner.leader_epoch == state.leader_epoch;
        let transition = match (&mut inner.role, lead) {
            (Role::Leader(l), true) if same_epoch => {
                l.committed(&state.isr, state.partition_epoch);
                l.set_replicas(&state.replicas);
                Transition::Updated
            }
            (_, true) => {
                let mut log = self.log.lock();
                // The epoch starts at the log end, written down before any batch of it.
                log.start_epoch(state.leader_epoch)?;
                let end = log.log_end_offset();
                inner.role = Role::Leader(Leadership::new(
                    self.me,
                    &state.replicas,
                    &state.isr,
                    state.leader_epoch,
                    state.partition_epoch,
                    end,
                    now_ms,
                ));
                Transition::BecameLeader
            }
            (Role::Follower { leader }, false) if same_epoch && *leader == state.leader => {
                Transition::Updated
            }
            (role, false) => {
                let was_leader = matches!(role, Role::Leader(_));
                *role = Role::Follower {
                    leader: state.leader,
                };
                if was_leader {
                    self.progress.send_modify(|p| p.resignations += 1);
                }
                Transition::BecameFollower {
                    leader: state.leader,
                }
            }
        };
        let changed = inner.replicas != state.replicas
            || inner.isr != state.isr
            || inner.partition_epoch != state.partition_epoch;
        inner.leader_epoch = state.leader_epoch;
        inner.partition_epoch = state.partition_epoch;
        inner.replicas = state.replicas.clone();
        inner.isr = state.isr.clone();
        // A leader whose ISR shrank may now commit more.
        if matches!(inner.role, Role::Leader(_)) {
            self.advance_high_watermark(&mut inner, now_ms, 0, &NO_JOINERS);
        }
        Ok(match transition {
            Transition::Updated if !changed => Transition::Unchanged,
            t => t,
        })
    }

    /// No longer hosted here (deleted or moved away): waiters give up.
    pub fn resign(&self) {
        let mut inner = self.inner.lock();
        inner.role = Role::Follower { leader: -1 };
        self.progress.send_modify(|p| p.resignations += 1);
    }

    /// Recomputes the high watermark under the partition lock; wakes acks=all waiters when it moved.
    fn advance_high_watermark(
        &self,
        inner: &mut Inner,
        now_ms: i64,
        lag_ms: i64,
        eligible: &dyn Fn(i32) -> bool,
    ) -> bool {
        let Role::Leader(l) = &inner.role else {
            return false;
        };
        let mut log = self.log.lock();
        let current = log.high_watermark();
        let hw = l.high_watermark(log.log_end_offset(), current, now_ms, lag_ms, eligible);
        if hw <= current {
            return false;
        }
        log.set_high_watermark(hw);
        let hw = log.high_watermark();
        drop(log);
        self.progress.send_modify(|p| p.high_watermark = hw);
        true
    }

    /// A producer's batch, appended as leader. `acks`: -1 refuses when the ISR is below `min.insync.replicas`.
    /// Answers what was appended and the resignation count to wait under.
    pub fn append_as_leader(
        &self,
        records: &[u8],
        acks: i16,
        now_ms: i64,
    ) -> Result<(AppendInfo, u64, bool), AppendError> {
        let mut inner = self.inner.lock();
        let Role::Leader(_) = &inner.role else {
            return Err(AppendError::Code(ResponseError::NotLeaderOrFollower.code()));
        };
        if acks == -1 && (inner.isr.len() as i32) < inner.min_insync_replicas {
            return Err(AppendError::Code(ResponseError::NotEnoughReplicas.code()));
        }
        let epoch = inner.leader_epoch;
        let info = self
            .log
            .lock()
            .append_from_client(records, epoch, now_ms)
            .map_err(AppendError::Storage)?;
        let moved = self.advance_high_watermark(&mut inner, now_ms, 0, &NO_JOINERS);
        Ok((info, self.progress.borrow().resignations, moved))
    }

    /// An internal append as leader (the group coordinator's `__consumer_offsets` records): no client checks.
    pub fn append_internal(
        &self,
        batch: &[u8],
        now_ms: i64,
    ) -> Result<(i64, u64, bool), AppendError> {
        let mut inner = self.inner.lock();
        let Role::Leader(_) = &inner.role else {
            return Err(AppendError::Code(ResponseError::NotLeaderOrFollower.code()));
        };
        let epoch = inner.leader_epoch;
        let info = self
            .log
            .lock()
            .append(batch, epoch, now_ms)
            .map_err(AppendError::Storage)?;
        let moved = self.advance_high_watermark(&mut inner, now_ms, 0, &NO_JOINERS);
        Ok((info.last_offset, self.progress.borrow().resignations, moved))
    }

    /// Waits until everything below `end` is committed (acks=all); see `poll_committed`. REQUEST_TIMED_OUT
    /// after `timeout`.
    pub async fn wait_committed(
        &self,
        end: i64,
        resignations: u64,
        timeout: std::time::Duration,
    ) -> Code {
        let mut rx = self.progress.subscribe();
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|p| p.high_watermark >= end || p.resignations != resignations),
        )
        .await;
        match waited {
            Ok(_) => self.poll_committed(end, resignations).unwrap_or(0),
            Err(_) => ResponseError::RequestTimedOut.code(),
        }
    }

    /// Whether an acks=all append ending at `end` is settled: `None` while the ISR has not caught up; 0 once it
    /// has; NOT_LEADER_OR_FOLLOWER if leadership was lost since `resignations`; NOT_ENOUGH_REPLICAS_AFTER_APPEND
    /// if the ISR is below `min.insync.replicas` by then.
    pub fn poll_committed(&self, end: i64, resignations: u64) -> Option<Code> {
        let progress = *self.progress.borrow();
        if progress.resignations != resignations {
            return Some(ResponseError::NotLeaderOrFollower.code());
        }
        if progress.high_watermark < end {
            return None;
        }
        let inner = self.inner.lock();
        Some(if (inner.isr.len() as i32) < inner.min_insync_replicas {
            ResponseError::NotEnoughReplicasAfterAppend.code()
        } else {
            0
        })
    }

    /// The leader epoch check of Fetch, ListOffsets and OffsetForLeaderEpoch (KIP-320): -1 skips it.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), Code> {
        let inner = self.inner.lock();
        if current_leader_epoch < 0 || current_leader_epoch == inner.leader_epoch {
            Ok(())
        } else if current_leader_epoch < inner.leader_epoch {
            Err(ResponseError::FencedLeaderEpoch.code())
        } else {
            Err(ResponseError::UnknownLeaderEpoch.code())
        }
    }

    /// A follower's fetch at the leader, before its records are read: where its log diverges (Fetch v12+'s
    /// `last_fetched_epoch`), its progress, the high watermark it lets through, and any ISR change that
    /// follows. `eligible`: whether a broker may join the ISR (registered and unfenced).
    pub fn on_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        now_ms: i64,
        limits: Limits,
        eligible: &dyn Fn(i32) -> bool,
    ) -> Result<FollowerView, Code> {
        let mut inner = self.inner.lock();
        let (topic_id, leader_epoch) = (inner.topic_id, inner.leader_epoch);
        let Role::Leader(leadership) = &mut inner.role else {
            return Err(ResponseError::NotLeaderOrFollower.code());
        };
        let leader_end = {
            let log = self.log.lock();
            let out_of_range = Err(ResponseError::OffsetOutOfRange.code());
            if last_fetched_epoch >= 0 {
                let (epoch, end) = log.end_offset_for_epoch(last_fetched_epoch);
                // An epoch this log knows nothing of (newer than all of ours): no divergence point to
                // name; the follower settles it as an offset out of range, as with Kafka.
                if epoch < 0 || end < 0 || fetch_offset < log.log_start_offset() {
                    return out_of_range;
                }
                if epoch < last_fetched_epoch || end < fetch_offset {
                    return Ok(FollowerView {
                        diverging: Some((epoch, end)),
                        isr_change: None,
                        high_watermark_moved: false,
                    });
                }
            }
            if fetch_offset > log.log_end_offset() || fetch_offset < log.log_start_offset() {
                return out_of_range;
            }
            log.log_end_offset()
        };
        if !leadership.on_fetch(replica, fetch_offset, leader_end, now_ms) {
            return Err(ResponseError::NotLeaderOrFollower.code());
        }
        let moved =
            self.advance_high_watermark(&mut inner, now_ms, limits.lag_time_max_ms, eligible);
        let isr_change =
            self.isr_change(&mut inner, topic_id, leader_epoch, now_ms, limits, eligible);
        Ok(FollowerView {
            diverging: None,
            isr_change,
            high_watermark_moved: moved,
        })
    }

    fn isr_change(
        &self,
        inner: &mut Inner,
        topic_id: Uuid,
        leader_epoch: i32,
        now_ms: i64,
        limits: Limits,
        eligible: &dyn Fn(i32) -> bool,
    ) -> Option<IsrRequest> {
        let Role::Leader(leadership) = &mut inner.role else {
            return None;
        };
        let (end, hw) = {
            let log = self.log.lock();
            (log.log_end_offset(), log.high_watermark())
        };
        let new_isr = leadership.isr_change(end, hw, now_ms, limits.lag_time_max_ms, eligible)?;
        Some(IsrRequest {
            tp: self.tp.clone(),
            topic_id,
            leader_epoch,
            partition_epoch: leadership.partition_epoch,
            new_isr,
        })
    }

    /// The periodic check for followers that fell behind (and replicas ready to join).
    pub fn maybe_change_isr(
        &self,
        now_ms: i64,
        limits: Limits,
        eligible: &dyn Fn(i32) -> bool,
    ) -> Option<IsrRequest> {
        let mut inner = self.inner.lock();
        let (topic_id, leader_epoch) = (inner.topic_id, inner.leader_epoch);
        self.isr_change(&mut inner, topic_id, leader_epoch, now_ms, limits, eligible)
    }

    /// What became of an ISR change sent for `leader_epoch`. Answers whether the high watermark moved.
    pub fn isr_answered(&self, leader_epoch: i32, answer: IsrAnswer<'_>, now_ms: i64) -> bool {
        let mut inner = self.inner.lock();
        if inner.leader_epoch != leader_epoch {
            return false;
        }
        let Role::Leader(l) = &mut inner.role else {
            return false;
        };
        match answer {
            IsrAnswer::Committed {
                isr,
                partition_epoch,
            } => {
                l.committed(isr, partition_epoch);
                if partition_epoch >= inner.partition_epoch {
                    inner.isr = isr.to_vec();
                    inner.partition_epoch = partition_epoch;
                }
                self.advance_high_watermark(&mut inner, now_ms, 0, &NO_JOINERS)
            }
            IsrAnswer::Refused => {
                l.pending = None;
                l.resend = false;
                false
            }
            IsrAnswer::Unknown => {
                l.unanswered();
                false
            }
        }
    }

    /// What a follower fetches next: (offset, last fetched epoch, leader epoch) while it follows `leader`.
    pub fn fetch_position(&self, leader: i32) -> Option<(i64, i32, i32)> {
        let inner = self.inner.lock();
        match inner.role {
            Role::Follower { leader: l } if l == leader && l >= 0 => {
                let log = self.log.lock();
                Some((
                    log.log_end_offset(),
                    log.latest_epoch().unwrap_or(-1),
                    inner.leader_epoch,
                ))
            }
            _ => None,
        }
    }

    /// Applies what the leader sent, if this replica still follows it at `leader_epoch`. `records` may end
    /// with an incomplete batch. Answers whether anything was appended.
    pub fn append_from_leader(
        &self,
        leader: i32,
        leader_epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start: i64,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let inner = self.inner.lock();
        if !matches!(inner.role, Role::Follower { leader: l } if l == leader)
            || inner.leader_epoch != leader_epoch
        {
            return Ok(false);
        }
        let mut log = self.log.lock();
        let appended = if records.is_empty() {
            false
        } else {
            log.append_as_follower(records, now_ms)?.is_some()
        };
        let hw = leader_high_watermark.min(log.log_end_offset());
        if hw > log.high_watermark() {
            log.set_high_watermark(hw);
        }
        // The leader's records below its log start are gone (retention, DeleteRecords): so are ours.
        let start = leader_log_start.min(log.high_watermark());
        if start > log.log_start_offset() {
            log.delete_records_before(start)?;
        }
        Ok(appended)
    }

    /// A follower's truncation after the leader said where the logs diverge (or that its offset is out of the
    /// leader's range): cut the log at `offset`, or start it over at the leader's log start.
    pub fn truncate(
        &self,
        leader: i32,
        leader_epoch: i32,
        to: Truncation,
    ) -> Result<(), StorageError> {
        let inner = self.inner.lock();
        if !matches!(inner.role, Role::Follower { leader: l } if l == leader)
            || inner.leader_epoch != leader_epoch
        {
            return Ok(());
        }
        let mut log = self.log.lock();
        match to {
            Truncation::To(offset) => {
                if offset < log.log_end_offset() {
                    tracing::info!(partition = %self.tp, from = log.log_end_offset(), to = offset, leader, "truncating to where the leader's log diverges");
                }
                // Even with no batch to cut, epochs noted past `offset` go.
                log.truncate_to(offset)?;
            }
            Truncation::StartAt(offset) => {
                tracing::info!(partition = %self.tp, at = offset, leader, "the leader no longer has our log end; starting over at its log start");
                log.truncate_fully_and_start_at(offset)?;
            }
        }
        Ok(())
    }

    /// The leader answered that our logs diverge at `diverging` (its epoch and end offset): cut our log where
    /// they stop agreeing (Kafka's `getOffsetTruncationState`), if we still follow it at `leader_epoch`.
    /// When our own epochs do not include the leader's, we cut at the end of ours below it and ask again.
    pub fn truncate_to_diverging(
        &self,
        leader: i32,
        leader_epoch: i32,
        diverging: (i32, i64),
    ) -> Result<(), StorageError> {
        let (epoch, end) = diverging;
        let to = {
            let log = self.log.lock();
            let (mine, my_end) = log.end_offset_for_epoch(epoch);
            if end < 0 {
                // The leader knows nothing of our last epoch: keep only what was committed.
                log.high_watermark()
            } else if mine == epoch {
                end.min(my_end)
            } else {
                my_end.max(0)
            }
        };
        self.truncate(leader, leader_epoch, Truncation::To(to))
    }

    /// This replica's answer to "where did `epoch` end" (OffsetForLeaderEpoch, and the follower's own side of a
    /// diverging epoch).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.log.lock().end_offset_for_epoch(epoch)
    }
}

/// The controller's answer to an ISR change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrAnswer<'a> {
    Committed {
        isr: &'a [i32],
        partition_epoch: i32,
    },
    /// Refused outright (a replica that may not join, a malformed ISR): nothing changed, start over.
    Refused,
    /// No answer, or a refusal a newer partition state will explain: it may have been committed, so the change
    /// stays pending (and is asked again) until an answer or the metadata settles it.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    To(i64),
    StartAt(i64),
}

#[derive(Debug)]
pub enum AppendError {
    Code(Code),
    Storage(StorageError),
}
