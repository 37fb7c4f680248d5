//! Growing and shrinking the controller quorum (KIP-853), one voter at a time. Controller `i` is
//! node `1000 + i`. A new controller pod starts as an observer (formatted without voters) and
//! becomes a voter once it has caught up (AddRaftVoter); a controller that goes stops voting first
//! (RemoveRaftVoter), and its pod is removed only after that. The active controller is never
//! removed: it is restarted first, which hands leadership to another voter, and removed as a
//! follower. One change at a time, each only while every remaining voter is caught up, so the
//! quorum never loses its majority.
//!
//! Pure: the quorum as the active controller describes it goes in, the next change comes out.

use std::collections::BTreeSet;

use uuid::Uuid;

/// How far behind the high watermark (in metadata records) a replica may be and count as caught up.
pub const CAUGHT_UP_SLACK: i64 = 100;

/// A replica of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: i32,
    pub directory_id: Uuid,
    pub log_end_offset: i64,
}

/// The quorum as the active controller describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quorum {
    pub leader: Option<i32>,
    pub high_watermark: i64,
    pub voters: Vec<Replica>,
    pub observers: Vec<Replica>,
}

impl Quorum {
    fn caught_up(&self, r: &Replica) -> bool {
        r.log_end_offset + CAUGHT_UP_SLACK >= self.high_watermark
    }

    /// Voters (other than the leader, which defines the log) that are behind.
    pub fn lagging_voters(&self) -> Vec<i32> {
        self.voters
            .iter()
            .filter(|v| Some(v.id) != self.leader && !self.caught_up(v))
            .map(|v| v.id)
            .collect()
    }

    pub fn voter_ids(&self) -> BTreeSet<i32> {
        self.voters.iter().map(|v| v.id).collect()
    }
}

/// The next change to the voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumStep {
    /// The voters are exactly the wanted controllers.
    Settled,
    /// Nothing can change now, for the reason given.
    Wait(String),
    /// Make this controller a voter.
    Add { id: i32, directory_id: Uuid },
    /// Stop this controller voting.
    Remove { id: i32, directory_id: Uuid },
    /// Restart this controller's pod: it is the active controller and must go, so another voter
    /// takes over first.
    HandOver { id: i32 },
}

/// The next step towards voters `first_id..first_id + wanted`.
pub fn next(quorum: &Quorum, first_id: i32, wanted: i32) -> QuorumStep {
    let want: BTreeSet<i32> = (first_id..first_id + wanted).collect();
    let Some(leader) = quorum.leader else {
        return QuorumStep::Wait("the controllers are electing a leader".to_owned());
    };
    if let Some(id) = quorum.lagging_voters().first() {
        return QuorumStep::Wait(format!(
            "controller {id} is catching up with the metadata log"
        ));
    }
    // Growing: the lowest missing controller first, once it follows the log closely.
    if let Some(&id) = want.iter().find(|id| !quorum.voter_ids().contains(id)) {
        return match quorum.observers.iter().find(|o| o.id == id) {
            Some(o) if o.directory_id.is_nil() => {
                QuorumStep::Wait(format!("controller {id} reports no metadata directory id"))
            }
            Some(o) if quorum.caught_up(o) => QuorumStep::Add {
                id,
                directory_id: o.directory_id,
            },
            Some(o) => QuorumStep::Wait(format!(
                "controller {id} is catching up ({} of {} metadata records)",
                o.log_end_offset, quorum.high_watermark
            )),
            None => QuorumStep::Wait(format!(
                "controller {id} has not joined the quorum as an observer yet"
            )),
        };
    }
    // Shrinking: the highest unwanted voter first.
    match quorum.voters.iter().rev().find(|v| !want.contains(&v.id)) {
        None => QuorumStep::Settled,
        Some(v) if v.id == leader => QuorumStep::HandOver { id: v.id },
        Some(v) => QuorumStep::Remove {
            id: v.id,
            directory_id: v.directory_id,
        },
    }
}

/// How many controller pods must run: the wanted ones, and above them every one that still votes.
/// While the quorum cannot be asked (`None`), none of the `current` pods goes.
pub fn controller_pods(
    quorum: Option<&Quorum>,
    current: Option<i32>,
    first_id: i32,
    wanted: i32,
) -> i32 {
    let keep = match quorum {
        Some(q) => q
            .voters
            .iter()
            .map(|v| v.id - first_id + 1)
            .max()
            .unwrap_or(0),
        None => current.unwrap_or(0),
    };
    wanted.max(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(id: i32) -> Uuid {
        Uuid::from_u128(id as u128 + 1)
    }

    fn r(id: i32, leo: i64) -> Replica {
        Replica {
            id,
            directory_id: dir(id),
            log_end_offset: leo,
        }
    }

    fn quorum(leader: i32, voters: &[i32], observers: &[(i32, i64)]) -> Quorum {
        Quorum {
            leader: Some(leader),
            high_watermark: 500,
            voters: voters.iter().map(|&v| r(v, 500)).collect(),
            observers: observers.iter().map(|&(o, leo)| r(o, leo)).collect(),
        }
    }

    #[test]
    fn each_step_towards_the_wanted_voters() {
        // (leader, voters, observers with their log end, wanted controllers, step)
        type Row = (i32, Vec<i32>, Vec<(i32, i64)>, i32, QuorumStep);
        let rows: Vec<Row> = vec![
            (1000, vec![1000], vec![], 1, QuorumStep::Settled),
            (
                1000,
                vec![1000],
                vec![(1001, 500), (1002, 500)],
                3,
                QuorumStep::Add {
                    id: 1001,
                    directory_id: dir(1001),
                },
            ),
            (
                1000,
                vec![1000, 1001],
                vec![(1002, 450)],
                3,
                QuorumStep::Add {
                    id: 1002,
                    directory_id: dir(1002),
                },
            ),
            (
                1000,
                vec![1000, 1001, 1002],
                vec![(3, 500)],
                3,
                QuorumStep::Settled,
            ),
            (
                1001,
                vec![1000, 1001, 1002, 1003, 1004],
                vec![],
                3,
                QuorumStep::Remove {
                    id: 1004,
                    directory_id: dir(1004),
                },
            ),
            (
                1004,
                vec![1000, 1001, 1002, 1003, 1004],
                vec![],
                3,
                QuorumStep::HandOver { id: 1004 },
            ),
            (
                1000,
                vec![1000, 1001, 1002],
                vec![],
                1,
                QuorumStep::Remove {
                    id: 1002,
                    directory_id: dir(1002),
                },
            ),
        ];
        for (leader, voters, observers, wanted, want) in rows {
            let q = quorum(leader, &voters, &observers);
            assert_eq!(
                next(&q, 1000, wanted),
                want,
                "{voters:?} {observers:?} -> {wanted}"
            );
        }
    }

    #[test]
    fn nothing_changes_while_a_voter_lags_or_a_new_one_is_not_ready() {
        let mut q = quorum(1000, &[1000, 1001], &[(1002, 500)]);
        q.voters[1].log_end_offset = 10;
        assert!(
            matches!(next(&q, 1000, 3), QuorumStep::Wait(w) if w.contains("1001 is catching up"))
        );
        // The lagging voter also holds back a removal.
        assert!(matches!(next(&q, 1000, 1), QuorumStep::Wait(_)));
        let q = quorum(1000, &[1000], &[(1001, 10)]);
        assert!(matches!(next(&q, 1000, 3), QuorumStep::Wait(w) if w.contains("10 of 500")));
        let q = quorum(1000, &[1000], &[]);
        assert!(matches!(next(&q, 1000, 3), QuorumStep::Wait(w) if w.contains("not joined")));
        let mut q = quorum(1000, &[1000], &[(1001, 500)]);
        q.observers[0].directory_id = Uuid::nil();
        assert!(matches!(next(&q, 1000, 3), QuorumStep::Wait(w) if w.contains("directory id")));
        let mut q = quorum(1000, &[1000, 1001, 1002], &[]);
        q.leader = None;
        assert!(matches!(next(&q, 1000, 1), QuorumStep::Wait(w) if w.contains("electing")));
    }

    #[test]
    fn pods_run_until_their_controller_stops_voting() {
        let q = quorum(1000, &[1000, 1001, 1002, 1003, 1004], &[]);
        assert_eq!(controller_pods(Some(&q), Some(5), 1000, 3), 5);
        let q = quorum(1000, &[1000, 1001, 1002, 1003], &[]);
        assert_eq!(controller_pods(Some(&q), Some(5), 1000, 3), 4);
        assert_eq!(controller_pods(Some(&q), Some(4), 1000, 5), 5);
        // Unknown voters: nothing shrinks, growing goes ahead.
        assert_eq!(controller_pods(None, Some(5), 1000, 3), 5);
        assert_eq!(controller_pods(None, Some(3), 1000, 5), 5);
        assert_eq!(controller_pods(None, None, 1000, 3), 3);
    }
}
