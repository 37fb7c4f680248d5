//! Which `spec.config` keys the brokers take while running. Kafka lets these cluster-wide broker
//! defaults change live (`kafka-configs --entity-type brokers --entity-default`); the operator
//! sets them with IncrementalAlterConfigs instead of writing them into `server.properties`, so
//! changing one restarts nothing. Every other key is rendered into the file, and changing it rolls
//! the pods.
//!
//! Pure: the reconciler reads the cluster's current dynamic defaults, and applies the change
//! computed here.

use std::collections::BTreeMap;

/// Broker keys applied live: the replication throttles and the log defaults topics inherit.
pub const LIVE_KEYS: &[&str] = &[
    "follower.replication.throttled.rate",
    "leader.replication.throttled.rate",
    "log.cleanup.policy",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "message.max.bytes",
    "min.insync.replicas",
    "unclean.leader.election.enable",
];

/// The brokers' replication throttle rates, which the operator also sets while it moves replicas.
pub const THROTTLE_RATES: [&str; 2] = [
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

pub fn is_live(key: &str) -> bool {
    LIVE_KEYS.contains(&key)
}

/// The live keys of `config`.
pub fn live(config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    config
        .iter()
        .filter(|(k, _)| is_live(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What to send so that the cluster's dynamic defaults hold `wanted`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveChange {
    pub set: BTreeMap<String, String>,
    /// Live keys set in the cluster but no longer in the spec: back to the brokers' own defaults.
    pub delete: Vec<String>,
}

impl LiveChange {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
}

impl std::fmt::Display for LiveChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.set.iter().map(|(k, v)| format!("{k}={v}"));
        let deleted = self.delete.iter().map(|k| format!("{k} (removed)"));
        let all: Vec<String> = set.chain(deleted).collect();
        f.write_str(&all.join(", "))
    }
}

/// The change from `current` (the cluster's dynamic defaults) to `wanted` (the spec's live keys).
/// Keys the operator does not manage are left alone.
pub fn change(wanted: &BTreeMap<String, String>, current: &BTreeMap<String, String>) -> LiveChange {
    LiveChange {
        set: wanted
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        delete: current
            .keys()
            .filter(|k| is_live(k) && !wanted.contains_key(*k))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_live_keys_are_taken_from_the_spec() {
        let spec = map(&[
            ("log.retention.ms", "1000"),
            ("num.io.threads", "4"),
            ("message.max.bytes", "2000000"),
        ]);
        assert_eq!(
            live(&spec),
            map(&[
                ("log.retention.ms", "1000"),
                ("message.max.bytes", "2000000")
            ])
        );
    }

    #[test]
    fn the_change_sets_what_differs_and_removes_what_the_spec_dropped() {
        let rows = [
            (map(&[]), map(&[]), LiveChange::default()),
            (
                map(&[("log.retention.ms", "1")]),
                map(&[("log.retention.ms", "1")]),
                LiveChange::default(),
            ),
            (
                map(&[("log.retention.ms", "2")]),
                map(&[("log.retention.ms", "1"), ("min.insync.replicas", "2")]),
                LiveChange {
                    set: map(&[("log.retention.ms", "2")]),
                    delete: vec!["min.insync.replicas".to_owned()],
                },
            ),
            // A dynamic default the operator does not manage stays.
            (
                map(&[]),
                map(&[("some.other.key", "x")]),
                LiveChange::default(),
            ),
        ];
        for (wanted, current, want) in rows {
            assert_eq!(
                change(&wanted, &current),
                want,
                "{wanted:?} over {current:?}"
            );
        }
        let c = change(
            &map(&[("log.retention.ms", "2")]),
            &map(&[("message.max.bytes", "9")]),
        );
        assert_eq!(
            c.to_string(),
            "log.retention.ms=2, message.max.bytes (removed)"
        );
    }
}
