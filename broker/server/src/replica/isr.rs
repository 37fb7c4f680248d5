//! The leader's view of one partition's followers, pure: where each follower's log ends (the offset of its last
//! fetch), when it was last caught up, the high watermark that follows from them, and the ISR changes the
//! leader should ask the controller for. No clock and no I/O: callers pass the time and the leader's log end.
//!
//! Kafka's rules (`Partition`): a follower is caught up when it has fetched up to the leader's log end, or up to
//! where the log ended at its previous fetch (then it was caught up as of that fetch). An ISR member not caught
//! up for `replica.lag.time.max.ms` is dropped. A replica outside the ISR joins once it holds everything
//! committed (its log end is at least the high watermark) and a record of the current leader epoch (at least
//! the epoch's start offset). The high watermark is the smallest log end among the leader and every member of
//! the *maximal* ISR (the committed one plus any member a pending change adds), and of any caught-up replica
//! about to join, so nothing counts as committed that a replica which may be in the ISR lacks.

use std::collections::BTreeMap;

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Follower {
    /// The offset the follower asked for last: its log end. -1 before its first fetch.
    pub log_end: i64,
    /// When it last held everything the leader had (ms).
    pub last_caught_up_ms: i64,
    pub last_fetch_ms: i64,
    /// The leader's log end when it answered that fetch.
    pub last_fetch_leader_end: i64,
}

/// The leader's state for one partition, for one leader epoch.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub me: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The log end when this epoch began: a follower must hold a record of this epoch to join the ISR.
    pub epoch_start_offset: i64,
    /// The ISR as the controller committed it.
    pub isr: Vec<i32>,
    /// An ISR asked for and not settled yet; only one change is in flight at a time. It stays until the
    /// controller's answer or a newer partition state settles it: an answer lost on the way may still have been
    /// committed, so until then the high watermark waits for every replica either ISR holds.
    pub pending: Option<Vec<i32>>,
    /// The pending change got no answer: ask again.
    pub resend: bool,
    pub followers: BTreeMap<i32, Follower>,
}

impl Leadership {
    /// Taking over at `leader_end` at `now_ms`. Followers already in the ISR count as caught up now, so none is
    /// dropped before it had a chance to fetch from this leader.
    pub fn new(
        me: i32,
        replicas: &[i32],
        isr: &[i32],
        leader_epoch: i32,
        partition_epoch: i32,
        leader_end: i64,
        now_ms: i64,
    ) -> Leadership {
        let followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|&r| {
                let in_sync = isr.contains(&r);
                (
                    r,
                    Follower {
                        log_end: -1,
                        last_caught_up_ms: if in_sync { now_ms } else { 0 },
                        last_fetch_ms: 0,
                        last_fetch_leader_end: -1,
                    },
                )
            })
            .collect();
        Leadership {
            me,
            leader_epoch,
            partition_epoch,
            epoch_start_offset: leader_end,
            isr: isr.to_vec(),
            pending: None,
            resend: false,
            followers,
        }
    }

    /// The committed ISR plus whoever a pending change adds: what the high watermark must wait for.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut all = self.isr.clone();
        if let Some(pending) = &self.pending {
            for r in pending {
                if !all.contains(r) {
                    all.push(*r);
                }
            }
        }
        all
    }

    /// The replica set changed (a reassignment): followers that joined start unknown, those gone are forgotten.
    pub fn set_replicas(&mut self, replicas: &[i32]) {
        self.followers.retain(|r, _| replicas.contains(r));
        for &r in replicas {
            if r != self.me {
                self.followers.entry(r).or_insert(Follower {
                    log_end: -1,
                    last_caught_up_ms: 0,
                    last_fetch_ms: 0,
                    last_fetch_leader_end: -1,
                });
            }
        }
    }

    fn caught_up(&self, f: &Follower, leader_end: i64, now_ms: i64, lag_ms: i64) -> bool {
        f.log_end >= leader_end || now_ms.saturating_sub(f.last_caught_up_ms) <= lag_ms
    }

    /// A follower fetched from `fetch_offset` (so its log ends there) at `now_ms`, with the leader's log ending at
    /// `leader_end`. False for a replica that is not one of this partition's followers.
    pub fn on_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(f) = self.followers.get_mut(&replica) else {
            return false;
        };
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_end && f.last_fetch_leader_end >= 0 {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = fetch_offset;
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_end = leader_end;
        true
    }

    /// The high watermark these log ends allow, never below `current` (it only moves forward within an epoch).
    pub fn high_watermark(
        &self,
        leader_end: i64,
        current: i64,
        now_ms: i64,
        lag_ms: i64,
        eligible: &dyn Fn(i32) -> bool,
    ) -> i64 {
        let maximal = self.maximal_isr();
        let mut hw = leader_end;
        for (r, f) in &self.followers {
            let joining = !maximal.contains(r)
                && self.caught_up(f, leader_end, now_ms, lag_ms)
                && f.log_end >= 0
                && eligible(*r);
            if maximal.contains(r) || joining {
                hw = hw.min(f.log_end.max(0));
            }
        }
        hw.max(current)
    }

    /// The ISR to ask the controller for now, which becomes the pending change: none while one is in flight
    /// (unless it went unanswered: then the same again), else the one `wanted_isr` gives, if it differs.
    pub fn isr_change(
        &mut self,
        leader_end: i64,
        high_watermark: i64,
        now_ms: i64,
        lag_ms: i64,
        eligible: &dyn Fn(i32) -> bool,
    ) -> Option<Vec<i32>> {
        if let Some(pending) = &self.pending {
            let again = self.resend.then(|| pending.clone());
            self.resend = false;
            return again;
        }
        let wanted = self.wanted_isr(leader_end, high_watermark, now_ms, lag_ms, eligible)?;
        self.pending = Some(wanted.clone());
        Some(wanted)
    }

    /// The ISR these followers call for, if it differs from the committed one: members that fell behind for
    /// longer than `lag_ms` leave, replicas that caught up (and may lead: `eligible`) join. The leader stays.
    pub fn wanted_isr(
        &self,
        leader_end: i64,
        high_watermark: i64,
        now_ms: i64,
        lag_ms: i64,
        eligible: &dyn Fn(i32) -> bool,
    ) -> Option<Vec<i32>> {
        let mut isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| {
                *r == self.me
                    || self
                        .followers
                        .get(r)
                        .is_some_and(|f| self.caught_up(f, leader_end, now_ms, lag_ms))
            })
            .collect();
        if !isr.contains(&self.me) {
            isr.insert(0, self.me);
        }
        for (r, f) in &self.followers {
            if !isr.contains(r)
                && f.log_end >= high_watermark
                && f.log_end >= self.epoch_start_offset
                && eligible(*r)
            {
                isr.push(*r);
            }
        }
        (isr != self.isr).then_some(isr)
    }

    /// The controller's answer (an AlterPartition response or a metadata change) for this leader epoch. A newer
    /// partition state, or the ISR asked for, settles the pending change.
    pub fn committed(&mut self, isr: &[i32], partition_epoch: i32) {
        if partition_epoch < self.partition_epoch {
            return;
        }
        let newer = partition_epoch > self.partition_epoch;
        if newer || self.pending.as_deref() == Some(isr) {
            self.pending = None;
            self.resend = false;
        }
        self.isr = isr.to_vec();
        self.partition_epoch = partition_epoch;
    }

    /// The pending change got no answer (or a refusal that a newer state will explain): keep counting on its
    /// replicas and ask again at the next check.
    pub fn unanswered(&mut self) {
        if self.pending.is_some() {
            self.resend = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;

    fn all(_: i32) -> bool {
        true
    }

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_replica() {
        let mut l = Leadership::new(1, &[1, 2, 3], &[1, 2, 3], 0, 0, 0, 0);
        assert_eq!(
            l.high_watermark(10, 0, 1, LAG, &all),
            0,
            "nobody fetched yet"
        );
        l.on_fetch(2, 10, 10, 1);
        assert_eq!(
            l.high_watermark(10, 0, 1, LAG, &all),
            0,
            "3 still has nothing"
        );
        l.on_fetch(3, 7, 10, 1);
        assert_eq!(l.high_watermark(10, 0, 1, LAG, &all), 7);
        l.on_fetch(3, 10, 10, 2);
        assert_eq!(l.high_watermark(10, 7, 2, LAG, &all), 10);
        // It never moves back, whatever a follower reports.
        l.on_fetch(3, 4, 10, 3);
        assert_eq!(l.high_watermark(10, 10, 3, LAG, &all), 10);
    }

    #[test]
    fn a_lagging_follower_leaves_and_a_caught_up_one_joins() {
        let mut l = Leadership::new(1, &[1, 2, 3], &[1, 2, 3], 0, 0, 100, 0);
        l.on_fetch(2, 100, 100, 1_000);
        l.on_fetch(3, 50, 100, 1_000);
        assert_eq!(
            l.isr_change(100, 50, 1_000, LAG, &all),
            None,
            "within the lag time"
        );
        // Follower 3 keeps fetching but never reaches the log end, which keeps moving.
        l.on_fetch(2, 200, 200, 20_000);
        l.on_fetch(3, 90, 200, 20_000);
        l.on_fetch(2, 300, 300, LAG + 10);
        let shrink = l.isr_change(300, 90, LAG + 10, LAG, &all).unwrap();
        assert_eq!(shrink, vec![1, 2]);
        assert_eq!(l.pending, Some(shrink.clone()));
        assert_eq!(
            l.isr_change(300, 90, LAG + 10, LAG, &all),
            None,
            "one change at a time"
        );
        // Unanswered: asked again, the same change.
        l.unanswered();
        assert_eq!(
            l.isr_change(300, 90, LAG + 10, LAG, &all),
            Some(shrink.clone())
        );
        assert_eq!(l.isr_change(300, 90, LAG + 10, LAG, &all), None);
        // While the shrink is in flight, 3 still holds the high watermark back (it is in the maximal ISR).
        assert_eq!(l.high_watermark(300, 90, LAG + 10, LAG, &all), 90);
        l.committed(&shrink, 1);
        assert_eq!(l.high_watermark(300, 90, LAG + 10, LAG, &all), 300);
        // 3 catches up to the high watermark and past the epoch start: it joins.
        l.on_fetch(3, 300, 300, LAG + 20);
        assert_eq!(
            l.isr_change(300, 300, LAG + 20, LAG, &all),
            Some(vec![1, 2, 3])
        );
        // A fenced broker does not.
        assert_eq!(l.isr_change(300, 300, LAG + 20, LAG, &|r| r != 3), None);
    }

    #[test]
    fn a_follower_caught_up_at_its_previous_fetch_counts_from_then() {
        let mut l = Leadership::new(1, &[1, 2], &[1, 2], 0, 0, 0, 0);
        l.on_fetch(2, 0, 50, 10_000); // behind: the leader had 50
        assert_eq!(l.followers[&2].last_caught_up_ms, 0);
        l.on_fetch(2, 50, 80, 20_000); // now has what the leader had at the previous fetch
        assert_eq!(l.followers[&2].last_caught_up_ms, 10_000);
        l.on_fetch(2, 80, 80, 25_000);
        assert_eq!(l.followers[&2].last_caught_up_ms, 25_000);
        assert!(!l.on_fetch(9, 0, 80, 1), "not a replica");
    }

    #[test]
    fn joining_needs_everything_up_to_this_epochs_start() {
        // Leader took over at offset 100 (high watermark 90): a follower at 95 holds everything committed but
        // not all the previous epoch left; at 100 it holds the same log this epoch started from.
        let mut l = Leadership::new(1, &[1, 2], &[1], 3, 5, 100, 0);
        l.on_fetch(2, 95, 100, 1);
        assert_eq!(l.isr_change(100, 90, 1, LAG, &all), None);
        l.on_fetch(2, 100, 101, 2);
        assert_eq!(l.isr_change(101, 100, 2, LAG, &all), Some(vec![1, 2]));
        // A caught-up replica about to join already holds the high watermark back.
        assert_eq!(l.high_watermark(105, 100, 2, LAG, &all), 100);
    }

    #[test]
    fn reassigned_replicas_start_unknown() {
        let mut l = Leadership::new(1, &[1, 2], &[1, 2], 0, 0, 0, 0);
        l.set_replicas(&[1, 3]);
        assert_eq!(l.followers.keys().copied().collect::<Vec<_>>(), vec![3]);
        assert_eq!(l.followers[&3].log_end, -1);
        // Stale answers are ignored.
        l.committed(&[1, 2], 4);
        l.committed(&[1], 2);
        assert_eq!((l.isr.clone(), l.partition_epoch), (vec![1, 2], 4));
    }
}
