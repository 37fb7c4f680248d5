//! What the client takes and returns: plain data, no wire types.

use std::collections::BTreeMap;

use uuid::Uuid;

/// One broker as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, bracketing IPv6 literals so the result can be dialed.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    /// `None` when the broker reports no controller (-1).
    pub controller_id: Option<i32>,
    /// Sorted by id.
    pub brokers: Vec<BrokerInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub id: i32,
    /// `None` while the partition has no leader (-1).
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// Known when the broker speaks Metadata v10+ and has one.
    pub id: Option<Uuid>,
    pub internal: bool,
    /// Sorted by partition id.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// Replicas of the first partition; Kafka creates every partition with the same count.
    pub fn replication_factor(&self) -> Option<usize> {
        self.partitions.first().map(|p| p.replicas.len())
    }
}

/// A topic to create. `None` for partitions or replication factor means the broker's default
/// (needs CreateTopics v4+, i.e. Kafka 2.4+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions: None,
            replication_factor: None,
            configs: BTreeMap::new(),
        }
    }

    pub fn partitions(mut self, n: i32) -> NewTopic {
        self.partitions = Some(n);
        self
    }

    pub fn replication_factor(mut self, n: i16) -> NewTopic {
        self.replication_factor = Some(n);
        self
    }

    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> NewTopic {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// What the broker says it created. Each field is `None` when the negotiated version does not carry it
/// (topic id: CreateTopics v7+; counts: v5+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicCreated {
    pub id: Option<Uuid>,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
}

/// Where a config value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on this topic.
    TopicOverride,
    /// A dynamic config of this broker.
    DynamicBroker,
    /// A dynamic cluster-wide broker default.
    DynamicDefaultBroker,
    /// The broker's properties file.
    StaticBroker,
    /// Kafka's built-in default.
    Default,
    /// Any other id the broker sent (0 = unknown, or one newer than this client).
    Other(i8),
}

impl ConfigSource {
    pub fn from_kafka_id(id: i8) -> ConfigSource {
        match id {
            1 => ConfigSource::TopicOverride,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            other => ConfigSource::Other(other),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigValue {
    /// `None` for sensitive values and for keys without a value.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
}

impl ConfigValue {
    pub fn is_topic_override(&self) -> bool {
        self.source == ConfigSource::TopicOverride
    }
}
