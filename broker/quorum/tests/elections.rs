//! Liveness of elections when the survivors of a failover tick in lockstep. Nodes started at the same moment
//! (every pod of a StatefulSet, every process of `scripts/cluster up`) check their election timers on the same
//! ticks; if both survivors' random timeouts round to the same tick they stand together, split the vote and,
//! unless each campaign draws a fresh timeout, do so again every round for ever (openraft 0.9 drew one per
//! process: third_party/openraft/SLUICE-PATCH.md). Tokio's paused clock makes the lockstep exact, so here a
//! tie that repeats never clears by drift, and a trial that does not elect within many rounds fails.

#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

mod common;

use std::time::Duration;

use common::{Cluster, timing};
use sluice_quorum::NodeId;

/// Failovers tried; about a quarter of them start with a tie (4 ticks span the timeout range), so a fixed
/// timeout would leave some survivors without a leader with near certainty.
const TRIALS: u64 = 24;

#[test]
fn survivors_in_lockstep_elect_a_new_leader_after_every_failover() {
    let timing = timing();
    // Fifty rounds of the longest timeout: a tie repeated that often is not bad luck.
    let within = Duration::from_millis(50 * timing.election_timeout_max_ms);
    let mut slowest = Duration::ZERO;
    for trial in 0..TRIALS {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let took = runtime.block_on(async {
            let mut cluster = Cluster::start(3, trial).await;
            let first = cluster.leader(Duration::from_secs(30)).await;
            cluster.crash(first).await;
            let lost = tokio::time::Instant::now();
            let survivors: Vec<NodeId> = cluster.nodes.keys().copied().collect();
            let second = cluster.leader_among(&survivors, within).await;
            assert_ne!(second, first);
            let took = lost.elapsed();
            cluster.shutdown().await;
            took
        });
        slowest = slowest.max(took);
    }
    println!("{TRIALS} failovers in lockstep, slowest new leader after {slowest:?} (simulated)");
}
