//! Removing brokers without losing data: a StatefulSet removes its highest ordinals first, so
//! brokers `desired..current` go; each must first hold no partition replica (the reconciler has
//! them drained, `moves::drain`, and shrinks once they are empty).

use std::collections::BTreeMap;

use super::moves;
use crate::inspector::ClusterState;

/// How many brokers the StatefulSet should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerCount {
    /// Run this many: no scale-down, or one that is safe.
    Run(i32),
    /// Keep `keep` brokers (more than wanted) because of `reason`, which names what blocks.
    Blocked { keep: i32, reason: String },
}

impl BrokerCount {
    pub fn replicas(&self) -> i32 {
        match self {
            BrokerCount::Run(n) => *n,
            BrokerCount::Blocked { keep, .. } => *keep,
        }
    }
}

/// Node ids of the brokers that scaling from `current` to `desired` would remove (broker `i`
/// is node `i`).
pub fn brokers_to_remove(current: Option<i32>, desired: i32) -> Vec<i32> {
    match current {
        Some(current) if current > desired => (desired..current).collect(),
        _ => Vec::new(),
    }
}

/// Decides the broker count given what the removed brokers host (`hosted`, from a
/// `ClusterInspector`) or why that could not be found out. Brokers are removed from the top
/// down as far as they are empty, so one busy broker does not hold back the ones above it.
pub fn decide(
    current: Option<i32>,
    desired: i32,
    hosted: Result<&BTreeMap<i32, Vec<String>>, String>,
) -> BrokerCount {
    let removed = brokers_to_remove(current, desired);
    let Some(&first) = removed.first() else {
        return BrokerCount::Run(desired);
    };
    let current = first + removed.len() as i32;
    let hosted = match hosted {
        Ok(hosted) => hosted,
        Err(reason) => {
            return BrokerCount::Blocked {
                keep: current,
                reason: format!(
                    "cannot scale brokers from {current} to {desired}: could not check which \
                     partitions brokers {} host: {reason}",
                    list(&removed)
                ),
            };
        }
    };
    // The highest broker that still hosts something (or was not reported) must stay.
    let busy: Vec<i32> = removed
        .iter()
        .copied()
        .filter(|id| hosted.get(id).is_none_or(|topics| !topics.is_empty()))
        .collect();
    let Some(&highest_busy) = busy.last() else {
        return BrokerCount::Run(desired);
    };
    let mut topics: Vec<&str> = busy
        .iter()
        .flat_map(|id| hosted.get(id).into_iter().flatten())
        .map(String::as_str)
        .collect();
    topics.sort_unstable();
    topics.dedup();
    let what = if topics.is_empty() {
        "were not reported by the cluster".to_owned()
    } else {
        format!("still host replicas of topics {}", topics.join(", "))
    };
    BrokerCount::Blocked {
        keep: highest_busy + 1,
        reason: format!(
            "cannot scale brokers from {current} to {desired} yet: brokers {} {what}",
            list(&busy)
        ),
    }
}

/// How many brokers to run, given the cluster as read (or why it could not be): fewer only once
/// the brokers that go hold no replica (`operations::step` moves their replicas off meanwhile).
/// A scale-down that cannot be drained says why, naming the topics.
pub fn broker_count(
    current: Option<i32>,
    desired: i32,
    state: Result<&ClusterState, String>,
) -> BrokerCount {
    let removed = brokers_to_remove(current, desired);
    if removed.is_empty() {
        return BrokerCount::Run(desired);
    }
    let state = match state {
        Ok(state) => state,
        Err(why) => return decide(current, desired, Err(why)),
    };
    let decided = decide(current, desired, Ok(&state.topics_on(&removed)));
    let BrokerCount::Blocked { keep, reason } = decided else {
        return decided;
    };
    let staying = (0..desired).collect();
    match moves::drain(&state.replicas(), &staying, &removed.into_iter().collect()) {
        Err(cannot) => BrokerCount::Blocked {
            keep,
            reason: format!("{reason}; they cannot be drained: {cannot}"),
        },
        Ok(_) => BrokerCount::Blocked { keep, reason },
    }
}

fn list(ids: &[i32]) -> String {
    ids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosted(entries: &[(i32, &[&str])]) -> BTreeMap<i32, Vec<String>> {
        entries
            .iter()
            .map(|(id, topics)| (*id, topics.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    #[test]
    fn which_brokers_go() {
        assert_eq!(brokers_to_remove(None, 3), Vec::<i32>::new());
        assert_eq!(brokers_to_remove(Some(3), 3), Vec::<i32>::new());
        assert_eq!(brokers_to_remove(Some(3), 5), Vec::<i32>::new());
        assert_eq!(brokers_to_remove(Some(5), 3), vec![3, 4]);
    }

    #[test]
    fn growing_or_creating_needs_no_check() {
        let unreachable = || Err("not asked".to_owned());
        assert_eq!(decide(None, 3, unreachable()), BrokerCount::Run(3));
        assert_eq!(decide(Some(3), 5, unreachable()), BrokerCount::Run(5));
        assert_eq!(decide(Some(3), 3, unreachable()), BrokerCount::Run(3));
    }

    #[test]
    fn empty_brokers_are_removed() {
        let h = hosted(&[(3, &[]), (4, &[])]);
        assert_eq!(decide(Some(5), 3, Ok(&h)), BrokerCount::Run(3));
    }

    #[test]
    fn busy_broker_blocks_and_is_named_with_its_topics() {
        let h = hosted(&[(3, &["orders", "audit"]), (4, &[])]);
        let got = decide(Some(5), 3, Ok(&h));
        assert_eq!(
            got.replicas(),
            4,
            "empty broker 4 goes, busy broker 3 stays"
        );
        let BrokerCount::Blocked { reason, .. } = got else {
            panic!("not blocked")
        };
        assert_eq!(
            reason,
            "cannot scale brokers from 5 to 3 yet: brokers 3 still host replicas of topics audit, \
             orders"
        );
    }

    #[test]
    fn top_broker_busy_keeps_all() {
        let h = hosted(&[(3, &[]), (4, &["t"])]);
        assert_eq!(decide(Some(5), 3, Ok(&h)).replicas(), 5);
    }

    #[test]
    fn unreported_broker_counts_as_busy() {
        let h = hosted(&[(3, &[])]);
        let got = decide(Some(5), 3, Ok(&h));
        assert_eq!(got.replicas(), 5);
        assert!(
            matches!(&got, BrokerCount::Blocked { reason, .. } if reason.contains("not reported"))
        );
    }

    #[test]
    fn inspection_failure_blocks() {
        let got = decide(Some(4), 1, Err("connection refused".to_owned()));
        assert_eq!(
            got,
            BrokerCount::Blocked {
                keep: 4,
                reason: "cannot scale brokers from 4 to 1: could not check which partitions \
                         brokers 1, 2, 3 host: connection refused"
                    .to_owned()
            }
        );
    }

    #[test]
    fn broker_count_from_the_cluster_as_read() {
        let drained = ClusterState::of_partitions(&[("a", &[0, 1]), ("b", &[2, 0])]);
        let busy = ClusterState::of_partitions(&[("a", &[0, 3]), ("b", &[4, 2])]);
        let wide = ClusterState::of_partitions(&[("a", &[0, 1]), ("wide", &[0, 1, 2, 3])]);
        // (case, current brokers, desired, the cluster as read, brokers kept, what the reason says)
        type Case<'a> = (
            &'a str,
            Option<i32>,
            i32,
            Result<&'a ClusterState, String>,
            i32,
            &'a [&'a str],
        );
        let cases: [Case; 6] = [
            ("no change", Some(3), 3, Err("down".into()), 3, &[]),
            ("growing", Some(3), 5, Err("down".into()), 5, &[]),
            ("drained", Some(5), 3, Ok(&drained), 3, &[]),
            (
                "still hosting, can move",
                Some(5),
                3,
                Ok(&busy),
                5,
                &["brokers 3, 4 still host replicas of topics a, b"],
            ),
            (
                "a topic too wide",
                Some(4),
                3,
                Ok(&wide),
                4,
                &["they cannot be drained", "wide (replication factor 4)"],
            ),
            (
                "cannot read",
                Some(4),
                3,
                Err("no broker is ready".into()),
                4,
                &["could not check", "no broker is ready"],
            ),
        ];
        for (name, current, desired, read, keep, says) in cases {
            let got = broker_count(current, desired, read);
            assert_eq!(got.replicas(), keep, "{name}: {got:?}");
            let reason = match &got {
                BrokerCount::Blocked { reason, .. } => reason.as_str(),
                BrokerCount::Run(_) => "",
            };
            assert_eq!(reason.is_empty(), says.is_empty(), "{name}: {got:?}");
            for s in says {
                assert!(reason.contains(s), "{name}: {reason}");
            }
            if name == "still hosting, can move" {
                assert!(!reason.contains("cannot be drained"), "{reason}");
            }
        }
    }
}
