//! Dynamic broker configs (`kafka-configs --entity-type brokers --entity-default|--entity-name ID --alter`), kept
//! in the metadata image by broker id, "" being the cluster-wide default. As in Kafka, two kinds of key change
//! while the cluster runs: the replication throttle rates, and the log defaults, which are the main broker
//! synonym of each topic config (`log.retention.ms`, but not `log.retention.hours`).
//!
//! A topic's effective settings are layered: the static file, then the dynamic cluster default, then this
//! broker's own dynamic entry, then the topic's overrides.

use std::collections::BTreeMap;

use crate::config::{
    BrokerConfig, ConfigEntry, ConfigSource, ConfigType, LogDefaults, TOPIC_CONFIGS,
    TopicConfigDef, apply_log_setting, parse_int, topic_config_def,
};
use crate::error::Error;
use crate::metadata::MetadataImage;

/// The rates `kafka-reassign-partitions --throttle` sets, in bytes per second.
pub const THROTTLE_RATES: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

/// The topic config whose broker-wide default `key` is, if `key` is a dynamic log default.
pub fn dynamic_log_default(key: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker_synonyms.first() == Some(&key))
}

pub fn is_dynamic(key: &str) -> bool {
    THROTTLE_RATES.contains(&key) || dynamic_log_default(key).is_some()
}

/// Whether IncrementalAlterConfigs may APPEND to or SUBTRACT from `key`, on a topic or a broker.
pub fn is_list(key: &str) -> bool {
    topic_config_def(key)
        .or_else(|| dynamic_log_default(key))
        .is_some_and(|d| d.config_type == ConfigType::List)
}

/// Checks a dynamic broker config; the error names the key.
pub fn validate(name: &str, value: &str) -> Result<(), Error> {
    if THROTTLE_RATES.contains(&name) {
        return parse_int(name, value, 0, i64::MAX).map(|_| ());
    }
    match dynamic_log_default(name) {
        // The topic config's own checks, so a default can never be what the topic key refuses.
        Some(def) => apply_log_setting(&mut LogDefaults::default(), def.name, name, value),
        None => {
            let log_keys: Vec<&str> = TOPIC_CONFIGS
                .iter()
                .filter_map(|d| d.broker_synonyms.first().copied())
                .collect();
            Err(Error::config(
                name,
                format!(
                    "cannot be changed while the broker runs (only the replication throttle rates and the \
                     cluster-wide log defaults can: {}, {})",
                    THROTTLE_RATES.join(", "),
                    log_keys.join(", ")
                ),
            ))
        }
    }
}

/// The dynamic configs one broker resource sees: the cluster-wide default and, for a broker id, its own entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct DynamicConfigs<'a> {
    cluster: Option<&'a BTreeMap<String, String>>,
    broker: Option<&'a BTreeMap<String, String>>,
}

impl<'a> DynamicConfigs<'a> {
    /// What broker `id` runs with.
    pub fn of(image: &'a MetadataImage, id: i32) -> DynamicConfigs<'a> {
        Self::for_resource(image, &id.to_string())
    }

    /// For a BROKER config resource: a broker id, or "" for the cluster-wide default alone.
    pub fn for_resource(image: &'a MetadataImage, name: &str) -> DynamicConfigs<'a> {
        DynamicConfigs {
            cluster: image.broker_configs.get(""),
            broker: (!name.is_empty())
                .then(|| image.broker_configs.get(name))
                .flatten(),
        }
    }

    /// `key`'s dynamic value and its source: the broker's own entry wins over the cluster default.
    pub fn get(&self, key: &str) -> Option<(&'a str, ConfigSource)> {
        let own = self
            .broker
            .and_then(|c| c.get(key))
            .map(|v| (v.as_str(), ConfigSource::DynamicBroker));
        own.or_else(|| {
            self.cluster
                .and_then(|c| c.get(key))
                .map(|v| (v.as_str(), ConfigSource::DefaultBroker))
        })
    }

    /// The broker-wide log defaults: the static file's with the dynamic layers on top.
    pub fn log_defaults(&self, static_log: &LogDefaults) -> LogDefaults {
        let mut log = static_log.clone();
        for layer in [self.cluster, self.broker].into_iter().flatten() {
            for (key, value) in layer {
                let Some(def) = dynamic_log_default(key) else {
                    continue;
                };
                // Every value was checked before it was written; one that no longer passes (written by another
                // version) leaves the layer below in force rather than stopping the broker.
                if let Err(e) = apply_log_setting(&mut log, def.name, key, value) {
                    tracing::warn!(error = %e, "ignoring a dynamic log default");
                }
            }
        }
        log
    }

    /// DescribeConfigs on a broker resource: every dynamic key shows its dynamic value, if it has one, in place
    /// of the file's, and is not read-only.
    pub fn describe_broker(&self, config: &BrokerConfig) -> Vec<ConfigEntry> {
        let mut entries = config.describe_broker_config();
        for e in entries.iter_mut().filter(|e| is_dynamic(&e.name)) {
            if let Some((value, source)) = self.get(&e.name) {
                e.value = Some(value.to_owned());
                e.source = source;
                e.is_default = false;
            }
            e.read_only = false;
        }
        entries
    }
}

/// `unclean.leader.election.enable` for topics that do not set it, as the controller on node `id` decides it.
pub fn unclean_leader_election_default(
    static_default: bool,
    image: &MetadataImage,
    id: i32,
) -> bool {
    let dynamic =
        DynamicConfigs::of(image, id).get(sluice_metadata::leadership::UNCLEAN_LEADER_ELECTION);
    match dynamic.map(|(v, _)| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        _ => static_default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{describe_topic_config, embedded_defaults, topic_log_defaults};

    fn config(changes: &[(&str, &str)]) -> BrokerConfig {
        let mut props = embedded_defaults();
        for (k, v) in changes {
            props.insert(k.to_string(), v.to_string());
        }
        BrokerConfig::from_properties(&props, &|_| None, "testhost").unwrap()
    }

    fn image(layers: &[(&str, &[(&str, &str)])]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (name, configs) in layers {
            image.broker_configs.insert(
                name.to_string(),
                configs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        image
    }

    #[test]
    fn the_dynamic_log_defaults_are_the_main_synonyms_of_the_topic_configs() {
        let mut keys: Vec<&str> = TOPIC_CONFIGS
            .iter()
            .flat_map(|d| d.broker_synonyms)
            .copied()
            .filter(|k| is_dynamic(k))
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
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
            ]
        );
        assert!(is_dynamic("leader.replication.throttled.rate"));
        assert!(is_list("log.cleanup.policy") && is_list("cleanup.policy"));
        assert!(!is_list("log.retention.ms") && !is_list("log.dirs"));
    }

    #[test]
    fn validation_reuses_the_topic_checks_and_names_the_key() {
        for (key, value) in [
            ("log.retention.ms", "-1"),
            ("log.segment.bytes", "1048576"),
            ("message.max.bytes", "0"),
            ("log.cleanup.policy", "delete"),
            ("log.message.timestamp.type", "LogAppendTime"),
            ("unclean.leader.election.enable", "TRUE"),
            ("follower.replication.throttled.rate", "1000"),
        ] {
            assert!(validate(key, value).is_ok(), "{key}={value}");
        }
        for (key, value) in [
            ("log.retention.ms", "abc"),
            ("log.segment.bytes", "1000"),
            ("min.insync.replicas", "0"),
            ("message.max.bytes", "-5"),
            ("log.cleanup.policy", "compact"),
            ("unclean.leader.election.enable", "maybe"),
            ("leader.replication.throttled.rate", "-2"),
        ] {
            let e = validate(key, value).unwrap_err().to_string();
            assert!(e.contains(key), "{key}={value}: {e}");
        }
        for key in [
            "log.dirs",
            "log.retention.hours",
            "log.roll.hours",
            "num.partitions",
        ] {
            let e = validate(key, "1").unwrap_err().to_string();
            assert!(
                e.contains(key)
                    && e.contains("cannot be changed")
                    && e.contains("log.retention.ms"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_broker_entry_wins_over_the_cluster_default_which_wins_over_the_file() {
        let config = config(&[
            ("log.retention.hours", "24"),
            ("message.max.bytes", "5000"),
            ("min.insync.replicas", "2"),
        ]);
        let image = image(&[
            (
                "",
                &[
                    ("log.retention.ms", "1000"),
                    ("message.max.bytes", "3000"),
                    ("leader.replication.throttled.rate", "10"),
                ],
            ),
            ("1", &[("message.max.bytes", "2000")]),
            ("2", &[("min.insync.replicas", "3")]),
        ]);
        let on_1 = DynamicConfigs::of(&image, 1).log_defaults(&config.log);
        assert_eq!(on_1.storage.retention_ms, Some(1000));
        assert_eq!(on_1.storage.max_message_bytes, 2000);
        assert_eq!(on_1.min_insync_replicas, 2);
        let on_2 = DynamicConfigs::of(&image, 2).log_defaults(&config.log);
        assert_eq!(on_2.storage.max_message_bytes, 3000);
        assert_eq!(on_2.min_insync_replicas, 3);
        // The topic's own override is the last word.
        let topic: BTreeMap<String, String> =
            [("max.message.bytes".to_owned(), "100".to_owned())].into();
        assert_eq!(
            topic_log_defaults(&on_1, &topic)
                .unwrap()
                .storage
                .max_message_bytes,
            100
        );
        // Nothing dynamic: the file's.
        assert_eq!(
            DynamicConfigs::of(&MetadataImage::default(), 1).log_defaults(&config.log),
            config.log
        );
        // A stored value that does not parse is skipped, not fatal.
        let bad = self::image(&[("", &[("log.retention.ms", "abc")])]);
        assert_eq!(
            DynamicConfigs::of(&bad, 1).log_defaults(&config.log),
            config.log
        );
    }

    #[test]
    fn describe_shows_dynamic_values_with_their_source() {
        let config = config(&[("log.segment.bytes", "5000000")]);
        let image = image(&[
            (
                "",
                &[("message.max.bytes", "3000"), ("log.retention.ms", "1000")],
            ),
            ("1", &[("log.retention.ms", "2000")]),
        ]);
        let find = |entries: &[ConfigEntry], name: &str| {
            let e = entries.iter().find(|e| e.name == name).unwrap().clone();
            (
                e.value.unwrap_or_default(),
                e.source,
                e.read_only,
                e.is_default,
            )
        };

        let broker = DynamicConfigs::for_resource(&image, "1").describe_broker(&config);
        let cases = [
            (
                "message.max.bytes",
                "3000",
                ConfigSource::DefaultBroker,
                false,
            ),
            (
                "log.retention.ms",
                "2000",
                ConfigSource::DynamicBroker,
                false,
            ),
            (
                "log.segment.bytes",
                "5000000",
                ConfigSource::StaticBroker,
                false,
            ),
            ("log.roll.hours", "168", ConfigSource::Default, true),
            ("num.partitions", "1", ConfigSource::Default, true),
        ];
        for (name, value, source, read_only) in cases {
            let (v, s, ro, _) = find(&broker, name);
            assert_eq!((v.as_str(), s, ro), (value, source, read_only), "{name}");
        }
        // The cluster default resource shows the default only.
        let default = DynamicConfigs::for_resource(&image, "").describe_broker(&config);
        assert_eq!(
            find(&default, "log.retention.ms"),
            ("1000".into(), ConfigSource::DefaultBroker, false, false)
        );

        let overrides: BTreeMap<String, String> =
            [("retention.bytes".to_owned(), "100".to_owned())].into();
        let topic = describe_topic_config(&config, &DynamicConfigs::of(&image, 1), &overrides);
        let cases = [
            ("max.message.bytes", "3000", ConfigSource::DefaultBroker),
            ("retention.ms", "2000", ConfigSource::DynamicBroker),
            ("retention.bytes", "100", ConfigSource::TopicConfig),
            ("segment.bytes", "5000000", ConfigSource::StaticBroker),
            ("segment.ms", "604800000", ConfigSource::Default),
        ];
        for (name, value, source) in cases {
            let (v, s, ro, is_default) = find(&topic, name);
            assert_eq!((v.as_str(), s), (value, source), "{name}");
            assert!(!ro);
            assert_eq!(is_default, source == ConfigSource::Default, "{name}");
        }
    }

    #[test]
    fn the_unclean_election_default_follows_the_dynamic_value() {
        let key = sluice_metadata::leadership::UNCLEAN_LEADER_ELECTION;
        assert!(!unclean_leader_election_default(
            false,
            &MetadataImage::default(),
            1
        ));
        let on = image(&[("", &[(key, "true")])]);
        assert!(unclean_leader_election_default(false, &on, 1));
        let off_here = image(&[("", &[(key, "true")]), ("1", &[(key, "false")])]);
        assert!(!unclean_leader_election_default(true, &off_here, 1));
        assert!(unclean_leader_election_default(false, &off_here, 2));
    }
}
