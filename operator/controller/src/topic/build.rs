//! The desired state, compared with what the brokers have: what to create, grow and
//! reconfigure. Pure: `apply` carries the plan out.
//!
//! The resource is the source of truth one way: every key of `spec.config` is set as a topic
//! override (even when its value equals the broker default, so that a later change of the
//! default does not move the topic), and every topic override the spec does not name is
//! deleted, so out-of-band changes are reverted. Only topic overrides are ever deleted: values
//! coming from the broker's own configuration are not the topic's. The replication throttle
//! markers the KafkaCluster reconciler sets while it moves a topic's partitions are its own, and
//! are left alone unless the spec names them.

use std::collections::BTreeMap;
use std::fmt;

use sluice_kafka_admin::{ConfigValue, NewTopic};

use super::read::ActualTopic;
use super::validate::ValidTopic;

/// What reconciling the topic takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The topic does not exist: create it with its partitions, replication factor and config.
    Create(NewTopic),
    /// The topic exists: bring it in line.
    Update(Update),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub partitions: Partitions,
    pub config: ConfigDiff,
    /// The spec asks for another replication factor than the topic has, which only a partition
    /// reassignment could change; the operator does not do that (yet).
    pub replication_mismatch: Option<ReplicationMismatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitions {
    Unchanged,
    Grow {
        from: i32,
        to: i32,
    },
    /// The topic has more partitions than the spec (grown outside Kubernetes); Kafka cannot
    /// remove partitions, so the spec has to catch up.
    BelowActual {
        spec: i32,
        actual: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationMismatch {
    pub spec: i16,
    pub actual: i32,
}

/// Config changes: the `set` and `delete` lists of one IncrementalAlterConfigs, and the
/// changes they make, for events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigDiff {
    pub set: BTreeMap<String, String>,
    pub delete: Vec<String>,
    pub changes: Vec<ConfigChange>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// `from` is the previous override; `None` when the key had no override.
    Set {
        key: String,
        from: Option<String>,
        to: String,
    },
    Removed {
        key: String,
        was: Option<String>,
    },
}

impl fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigChange::Set {
                key,
                from: Some(from),
                to,
            } => write!(f, "{key}: {from} -> {to}"),
            ConfigChange::Set {
                key,
                from: None,
                to,
            } => write!(f, "{key}: set to {to}"),
            ConfigChange::Removed {
                key,
                was: Some(was),
            } => {
                write!(f, "{key}: override {was} removed")
            }
            ConfigChange::Removed { key, was: None } => write!(f, "{key}: override removed"),
        }
    }
}

/// Compares the desired topic with the one the brokers have (`None`: it does not exist).
pub fn plan(desired: &ValidTopic, actual: Option<&ActualTopic>) -> Plan {
    let Some(actual) = actual else {
        return Plan::Create(new_topic(desired));
    };
    let partitions = partitions(desired.partitions, actual.info.partitions.len());
    let replication_mismatch = match (desired.replication_factor, actual.info.replication_factor())
    {
        (Some(spec), Some(actual)) if usize::try_from(spec).ok() != Some(actual) => {
            Some(ReplicationMismatch {
                spec,
                actual: i32::try_from(actual).unwrap_or(i32::MAX),
            })
        }
        _ => None,
    };
    Plan::Update(Update {
        partitions,
        config: config_diff(&desired.config, &actual.configs),
        replication_mismatch,
    })
}

pub fn new_topic(desired: &ValidTopic) -> NewTopic {
    let mut topic = NewTopic::new(&desired.name).partitions(desired.partitions);
    if let Some(rf) = desired.replication_factor {
        topic = topic.replication_factor(rf);
    }
    topic.configs = desired.config.clone();
    topic
}

/// Grow when the spec asks for more, never shrink.
pub fn partitions(spec: i32, actual: usize) -> Partitions {
    let actual = i32::try_from(actual).unwrap_or(i32::MAX);
    match spec.cmp(&actual) {
        std::cmp::Ordering::Equal => Partitions::Unchanged,
        std::cmp::Ordering::Greater => Partitions::Grow {
            from: actual,
            to: spec,
        },
        std::cmp::Ordering::Less => Partitions::BelowActual { spec, actual },
    }
}

/// The keys to set (missing, not an override, or another value) and the overrides to delete
/// (set on the topic, not named by the spec).
pub fn config_diff(
    desired: &BTreeMap<String, String>,
    actual: &BTreeMap<String, ConfigValue>,
) -> ConfigDiff {
    let mut diff = ConfigDiff::default();
    for (key, value) in desired {
        let current = actual.get(key).filter(|c| c.is_topic_override());
        match current {
            Some(c) if c.value.as_deref() == Some(value.as_str()) => {}
            // A sensitive value cannot be read back, so it is written every time; that is not
            // a change worth an event.
            Some(c) if c.sensitive && c.value.is_none() => {
                diff.set.insert(key.clone(), value.clone());
            }
            _ => {
                diff.set.insert(key.clone(), value.clone());
                diff.changes.push(ConfigChange::Set {
                    key: key.clone(),
                    from: current.and_then(|c| c.value.clone()),
                    to: value.clone(),
                });
            }
        }
    }
    for (key, current) in actual {
        let move_throttle = crate::inspector::THROTTLED_REPLICAS_KEYS.contains(&key.as_str());
        if current.is_topic_override()
            && !current.read_only
            && !desired.contains_key(key)
            && !move_throttle
        {
            diff.delete.push(key.clone());
            diff.changes.push(ConfigChange::Removed {
                key: key.clone(),
                was: current.value.clone(),
            });
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_kafka_admin::{ConfigSource, PartitionInfo, TopicInfo};

    use crate::topic::validate::DeletionPolicy;

    fn value(v: &str, source: ConfigSource) -> ConfigValue {
        ConfigValue {
            value: Some(v.to_owned()),
            source,
            read_only: false,
            sensitive: false,
        }
    }

    fn map<V: Clone>(entries: &[(&str, V)]) -> BTreeMap<String, V> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn desired(partitions: i32, rf: Option<i16>, config: &[(&str, &str)]) -> ValidTopic {
        ValidTopic {
            cluster: "demo".to_owned(),
            name: "orders".to_owned(),
            partitions,
            replication_factor: rf,
            config: map(config)
                .into_iter()
                .map(|(k, v)| (k, v.to_owned()))
                .collect(),
            deletion_policy: DeletionPolicy::Delete,
        }
    }

    fn actual(partitions: usize, rf: usize, configs: &[(&str, ConfigValue)]) -> ActualTopic {
        ActualTopic {
            info: TopicInfo {
                name: "orders".to_owned(),
                id: None,
                internal: false,
                partitions: (0..partitions)
                    .map(|p| PartitionInfo {
                        id: p as i32,
                        leader: Some(0),
                        replicas: (0..rf as i32).collect(),
                        isr: (0..rf as i32).collect(),
                    })
                    .collect(),
            },
            configs: map(configs),
        }
    }

    #[test]
    fn a_missing_topic_is_created_with_everything_at_once() {
        let want = desired(6, Some(3), &[("retention.ms", "1000")]);
        let Plan::Create(new) = plan(&want, None) else {
            panic!("expected a create");
        };
        assert_eq!(
            new,
            NewTopic::new("orders")
                .partitions(6)
                .replication_factor(3)
                .config("retention.ms", "1000")
        );
        let Plan::Create(new) = plan(&desired(1, None, &[]), None) else {
            panic!("expected a create");
        };
        assert_eq!(new.replication_factor, None, "the cluster default applies");
    }

    #[test]
    fn partitions_grow_but_never_shrink() {
        assert_eq!(partitions(3, 3), Partitions::Unchanged);
        assert_eq!(partitions(6, 3), Partitions::Grow { from: 3, to: 6 });
        assert_eq!(
            partitions(3, 8),
            Partitions::BelowActual { spec: 3, actual: 8 }
        );
    }

    #[test]
    fn an_in_line_topic_needs_nothing() {
        let want = desired(3, Some(1), &[("retention.ms", "1000")]);
        let have = actual(
            3,
            1,
            &[
                ("retention.ms", value("1000", ConfigSource::TopicOverride)),
                ("segment.ms", value("604800000", ConfigSource::Default)),
                (
                    "cleanup.policy",
                    value("delete", ConfigSource::StaticBroker),
                ),
            ],
        );
        assert_eq!(
            plan(&want, Some(&have)),
            Plan::Update(Update {
                partitions: Partitions::Unchanged,
                config: ConfigDiff::default(),
                replication_mismatch: None,
            })
        );
    }

    #[test]
    fn config_is_set_where_it_differs_and_stray_overrides_are_deleted() {
        let want = map(&[
            ("retention.ms", "1000".to_owned()),
            ("cleanup.policy", "compact".to_owned()),
            ("max.message.bytes", "2048".to_owned()),
            ("segment.bytes", "1048576".to_owned()),
        ]);
        let have = map(&[
            // changed out-of-band
            ("retention.ms", value("5", ConfigSource::TopicOverride)),
            // the right value, but only from the broker's file: made an override
            (
                "cleanup.policy",
                value("compact", ConfigSource::StaticBroker),
            ),
            // already right
            (
                "max.message.bytes",
                value("2048", ConfigSource::TopicOverride),
            ),
            // absent from the broker's answer
            // stray overrides
            ("segment.ms", value("100", ConfigSource::TopicOverride)),
            ("flush.ms", value("7", ConfigSource::TopicOverride)),
            // a partition move's throttle, the KafkaCluster reconciler's
            (
                "leader.replication.throttled.replicas",
                value("*", ConfigSource::TopicOverride),
            ),
            // defaults and broker values the spec does not name are not the topic's
            ("retention.bytes", value("-1", ConfigSource::Default)),
            (
                "min.insync.replicas",
                value("2", ConfigSource::StaticBroker),
            ),
            ("flush.messages", value("9", ConfigSource::DynamicBroker)),
        ]);
        let diff = config_diff(&want, &have);
        assert_eq!(
            diff.set,
            map(&[
                ("cleanup.policy", "compact".to_owned()),
                ("retention.ms", "1000".to_owned()),
                ("segment.bytes", "1048576".to_owned()),
            ])
        );
        assert_eq!(diff.delete, ["flush.ms", "segment.ms"]);
        let changes: Vec<String> = diff.changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            changes,
            [
                "cleanup.policy: set to compact",
                "retention.ms: 5 -> 1000",
                "segment.bytes: set to 1048576",
                "flush.ms: override 7 removed",
                "segment.ms: override 100 removed",
            ]
        );
    }

    #[test]
    fn read_only_and_sensitive_overrides() {
        let read_only = ConfigValue {
            read_only: true,
            ..value("1", ConfigSource::TopicOverride)
        };
        let secret = ConfigValue {
            value: None,
            sensitive: true,
            ..value("", ConfigSource::TopicOverride)
        };
        let have = map(&[("locked", read_only), ("secret", secret)]);
        let diff = config_diff(&map(&[("secret", "s3".to_owned())]), &have);
        assert!(
            diff.delete.is_empty(),
            "read-only overrides cannot be deleted"
        );
        assert_eq!(diff.set, map(&[("secret", "s3".to_owned())]));
        assert!(diff.changes.is_empty(), "rewriting a secret is not news");
    }

    #[test]
    fn replication_factor_differences_are_reported_not_changed() {
        let have = actual(3, 1, &[]);
        let Plan::Update(update) = plan(&desired(3, Some(3), &[]), Some(&have)) else {
            panic!("expected an update");
        };
        assert_eq!(
            update.replication_mismatch,
            Some(ReplicationMismatch { spec: 3, actual: 1 })
        );
        let Plan::Update(update) = plan(&desired(5, None, &[]), Some(&have)) else {
            panic!("expected an update");
        };
        assert_eq!(
            update.replication_mismatch, None,
            "no replication factor asked"
        );
        assert_eq!(update.partitions, Partitions::Grow { from: 3, to: 5 });
    }
}
