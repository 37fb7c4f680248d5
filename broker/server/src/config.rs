//! Broker configuration: a Kafka-style `server.properties` file plus `--override key=value` pairs,
//! and the topic-level configs that CreateTopics, DescribeConfigs and IncrementalAlterConfigs use.
//!
//! Keys and defaults follow Kafka's so that a user can bring their existing file. Differences:
//! - Only the PLAINTEXT security protocol is supported.
//! - `log.dir` defaults to `./data` rather than Kafka's `/tmp/kafka-logs`.
//! - Values may reference environment variables as `${env:NAME}` or `${env:NAME:-default}`, and
//!   (in every key except `node.id`, `broker.id` and `node.id.offset`) this node's id as
//!   `${node.id}`. That lets one file serve every pod of a StatefulSet from an image with no shell.
//! - `node.id` may be omitted (or set to `auto`, `-1` or empty): it is then derived from a
//!   StatefulSet pod name such as `sluice-broker-2` as the ordinal plus `node.id.offset`.
//! - Unknown keys are logged and ignored rather than rejected, so a Kafka file with tuning keys
//!   Sluice does not use still starts; `num.io.threads` and `num.network.threads` are ignored
//!   without a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::dynamic_config::DynamicConfigs;
use crate::error::Error;

/// Which KRaft roles this process runs (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

/// One entry of `listeners` or `advertised.listeners`, e.g. `PLAINTEXT://0.0.0.0:9092`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-cased, as Kafka normalises listener names.
    pub name: String,
    /// Empty means all interfaces. IPv6 addresses are stored without brackets (`::1`).
    pub host: String,
    pub port: u16,
}

impl Listener {
    /// The address to bind, in a form `std::net::TcpListener::bind` accepts.
    pub fn bind_address(&self) -> String {
        if self.host.is_empty() {
            format!("0.0.0.0:{}", self.port)
        } else {
            join_host_port(&self.host, self.port)
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}",
            self.name,
            join_host_port(&self.host, self.port)
        )
    }
}

/// One entry of `controller.quorum.voters` (`id@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// One entry of `controller.quorum.bootstrap.servers` (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

pub use sluice_storage::{LogConfig, TimestampType};

fn timestamp_type_name(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

/// Per-log settings, either the broker-wide defaults or a topic's effective settings: what the storage layer
/// needs, plus `min.insync.replicas`, which only produce handling (acks=all) reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDefaults {
    pub storage: LogConfig,
    pub min_insync_replicas: i32,
    /// Read by the controller's elections (`sluice_metadata::leadership`), kept here so the topic key is
    /// validated and described like the others.
    pub unclean_leader_election_enable: bool,
    /// `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas`: which replicas'
    /// replication the brokers' throttle rates apply to, as Kafka writes them ("*", or "partition:broker,...").
    pub leader_throttled_replicas: String,
    pub follower_throttled_replicas: String,
}

impl Default for LogDefaults {
    /// Kafka's defaults.
    fn default() -> Self {
        LogDefaults {
            storage: LogConfig {
                segment_ms: Some(168 * HOUR_MS as u64),
                ..LogConfig::default()
            },
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            leader_throttled_replicas: String::new(),
            follower_throttled_replicas: String::new(),
        }
    }
}

/// Kafka's DescribeConfigs config types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    List,
}

impl ConfigType {
    /// The id DescribeConfigs v3+ puts on the wire.
    pub fn kafka_id(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::List => 7,
        }
    }
}

/// Where a described config value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    TopicConfig,
    /// A dynamic cluster-wide default (`kafka-configs --entity-type brokers --entity-default`).
    DefaultBroker,
    /// A dynamic config of this broker (`--entity-name ID`).
    DynamicBroker,
    /// Set in the properties file or by `--override`.
    StaticBroker,
    /// Built-in default.
    Default,
}

impl ConfigSource {
    /// The id DescribeConfigs v1+ puts on the wire.
    pub fn kafka_id(self) -> i8 {
        match self {
            ConfigSource::TopicConfig => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` where Kafka reports null (a key with no value and no default).
    pub value: Option<String>,
    pub is_default: bool,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    pub config_type: ConfigType,
}

/// The parsed and validated broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub process_roles: ProcessRoles,
    /// Everything the process binds, controller listeners included.
    pub listeners: Vec<Listener>,
    /// What Metadata responses tell clients; never contains controller listeners.
    pub advertised_listeners: Vec<Listener>,
    /// Upper-cased.
    pub controller_listener_names: Vec<String>,
    pub controller_quorum_voters: Vec<QuorumVoter>,
    pub controller_quorum_bootstrap_servers: Vec<HostPort>,
    /// Raft timing of the controller quorum: the election timeout's lower bound, and how long a leader may go
    /// without hearing from a majority before writes fail at once.
    pub controller_quorum_election_timeout_ms: u64,
    pub controller_quorum_fetch_timeout_ms: u64,
    /// A broker not heard from for this long is fenced by the active controller.
    pub broker_session_timeout_ms: u64,
    pub broker_heartbeat_interval_ms: u64,
    /// How long a broker keeps trying to register before it gives up and exits.
    pub initial_broker_registration_timeout_ms: u64,
    pub broker_rack: Option<String>,
    /// The listener followers fetch from (`inter.broker.listener.name`); `None`: each broker's first.
    pub inter_broker_listener_name: Option<String>,
    /// Replication: `replica.*` keys.
    pub replica: crate::replica::ReplicaConfig,
    /// `unclean.leader.election.enable`: the default for topics that do not set it.
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable` and `leader.imbalance.check.interval.seconds`: the active controller moves
    /// leadership back to preferred replicas this often.
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_ms: u64,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    /// Broker-wide log defaults (`log.*`, `message.max.bytes`, `min.insync.replicas`).
    pub log: LogDefaults,
    pub log_retention_check_interval_ms: u64,
    pub socket_request_max_bytes: u32,
    /// Request bytes held in memory across all connections at once (Kafka's `queued.max.request.bytes`),
    /// reserved as they arrive; a connection that finds the pool spent stops reading until others finish.
    /// `None`: no limit.
    pub queued_max_request_bytes: Option<u64>,
    /// A connection that completes no request for this long is closed (`connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// A connection holding part of a request waits at most this long for more request memory, then is
    /// closed, so requests that are all still arriving cannot hold the pool forever.
    pub request_memory_wait_ms: u64,
    /// The TLS settings of each `SSL` and `SASL_SSL` listener, by listener name.
    pub tls: BTreeMap<String, crate::tls::TlsSettings>,
    /// The SASL settings of each `SASL_PLAINTEXT` and `SASL_SSL` listener, by listener name.
    pub sasl: BTreeMap<String, crate::sasl::SaslSettings>,
    /// `sasl.mechanism.inter.broker.protocol` and `sasl.mechanism.controller.protocol`: what this node
    /// authenticates with when it dials a SASL inter-broker or controller listener (`crate::outbound`).
    pub sasl_mechanism_inter_broker: Option<String>,
    pub sasl_mechanism_controller: Option<String>,
    /// How byte rates are measured for quotas (`quota.window.num`, `quota.window.size.seconds`).
    pub quota_windows: crate::quotas::QuotaWindows,
    /// `max.connections`, `max.connections.per.ip` and its overrides.
    pub connection_limits: crate::connection_limits::LimitSettings,
    /// With `authorizer.class.name` set: ACLs are enforced, with `super.users` and
    /// `allow.everyone.if.no.acl.found`.
    pub authorizer: Option<sluice_metadata::acl::AuthorizerSettings>,
    /// Where the readiness endpoint listens (`sluice.health.listener`, a Sluice extension; see health.rs).
    pub health_listener: Option<std::net::SocketAddr>,
    /// `sluice.ssl.kernel.offload`: TLS sessions go to the kernel after the handshake where it can
    /// take them (`crate::kernel_tls`).
    pub kernel_tls: bool,
    pub offsets_topic_num_partitions: i32,
    /// As configured; capping it at the number of live brokers is the server's business.
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_segment_bytes: u64,
    pub offsets_retention_minutes: u64,
    pub group_initial_rebalance_delay_ms: u32,
    pub group_min_session_timeout_ms: u32,
    pub group_max_session_timeout_ms: u32,
    pub cluster_id: Option<String>,
    pub node_id_offset: i32,
    /// Keys that were present but are not understood (each was logged as a warning).
    pub unknown_keys: Vec<String>,
    /// Known keys that were set explicitly, with `${...}` references resolved. Drives the
    /// StaticBroker/Default distinction in DescribeConfigs.
    explicit: BTreeMap<String, String>,
}

struct BrokerKey {
    name: &'static str,
    default: Option<&'static str>,
    config_type: ConfigType,
}

const fn key(
    name: &'static str,
    default: Option<&'static str>,
    config_type: ConfigType,
) -> BrokerKey {
    BrokerKey {
        name,
        default,
        config_type,
    }
}

/// Every broker key Sluice reads, with Kafka's default (as text, the way DescribeConfigs shows it).
const BROKER_KEYS: &[BrokerKey] = &[
    key("node.id", None, ConfigType::Int),
    key("broker.id", None, ConfigType::Int),
    key("node.id.offset", Some("0"), ConfigType::Int),
    key("process.roles", None, ConfigType::List),
    key("listeners", Some("PLAINTEXT://:9092"), ConfigType::List),
    key("advertised.listeners", None, ConfigType::List),
    key(
        "listener.security.protocol.map",
        Some("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"),
        ConfigType::List,
    ),
    key("controller.listener.names", None, ConfigType::List),
    key("controller.quorum.voters", None, ConfigType::List),
    key(
        "controller.quorum.bootstrap.servers",
        None,
        ConfigType::List,
    ),
    key(
        "controller.quorum.election.timeout.ms",
        Some("1000"),
        ConfigType::Int,
    ),
    key(
        "controller.quorum.fetch.timeout.ms",
        Some("2000"),
        ConfigType::Int,
    ),
    key("broker.session.timeout.ms", Some("9000"), ConfigType::Int),
    key(
        "broker.heartbeat.interval.ms",
        Some("2000"),
        ConfigType::Int,
    ),
    key(
        "initial.broker.registration.timeout.ms",
        Some("60000"),
        ConfigType::Int,
    ),
    key("broker.rack", None, ConfigType::String),
    key("inter.broker.listener.name", None, ConfigType::String),
    key("replica.lag.time.max.ms", Some("30000"), ConfigType::Long),
    key("replica.fetch.wait.max.ms", Some("500"), ConfigType::Int),
    key("replica.fetch.min.bytes", Some("1"), ConfigType::Int),
    key("replica.fetch.max.bytes", Some("1048576"), ConfigType::Int),
    key(
        "replica.fetch.response.max.bytes",
        Some("10485760"),
        ConfigType::Int,
    ),
    key("replica.fetch.backoff.ms", Some("1000"), ConfigType::Int),
    key(
        "replica.high.watermark.checkpoint.interval.ms",
        Some("5000"),
        ConfigType::Long,
    ),
    key(
        "unclean.leader.election.enable",
        Some("false"),
        ConfigType::Boolean,
    ),
    key(
        "leader.replication.throttled.rate",
        Some(LONG_MAX),
        ConfigType::Long,
    ),
    key(
        "follower.replication.throttled.rate",
        Some(LONG_MAX),
        ConfigType::Long,
    ),
    key(
        "auto.leader.rebalance.enable",
        Some("true"),
        ConfigType::Boolean,
    ),
    key(
        "leader.imbalance.check.interval.seconds",
        Some("300"),
        ConfigType::Long,
    ),
    key("log.dirs", None, ConfigType::List),
    key("log.dir", Some("./data"), ConfigType::String),
    key("num.partitions", Some("1"), ConfigType::Int),
    key("default.replication.factor", Some("1"), ConfigType::Int),
    key(
        "auto.create.topics.enable",
        Some("true"),
        ConfigType::Boolean,
    ),
    key("log.segment.bytes", Some("1073741824"), ConfigType::Int),
    key("log.roll.ms", None, ConfigType::Long),
    key("log.roll.hours", Some("168"), ConfigType::Int),
    key("log.retention.ms", None, ConfigType::Long),
    key("log.retention.minutes", None, ConfigType::Int),
    key("log.retention.hours", Some("168"), ConfigType::Int),
    key("log.retention.bytes", Some("-1"), ConfigType::Long),
    key(
        "log.flush.interval.messages",
        Some(LONG_MAX),
        ConfigType::Long,
    ),
    key("log.flush.interval.ms", None, ConfigType::Long),
    key("log.index.interval.bytes", Some("4096"), ConfigType::Int),
    key(
        "log.index.size.max.bytes",
        Some("10485760"),
        ConfigType::Int,
    ),
    key(
        "log.retention.check.interval.ms",
        Some("300000"),
        ConfigType::Long,
    ),
    key("log.cleanup.policy", Some("delete"), ConfigType::List),
    key(
        "log.message.timestamp.type",
        Some("CreateTime"),
        ConfigType::String,
    ),
    key(
        "log.message.timestamp.before.max.ms",
        Some(LONG_MAX),
        ConfigType::Long,
    ),
    key(
        "log.message.timestamp.after.max.ms",
        Some("3600000"),
        ConfigType::Long,
    ),
    // Sluice's own: how far a compressed batch may inflate while it is validated (Kafka has no limit).
    key(
        "sluice.max.decompressed.batch.bytes",
        Some("134217728"),
        ConfigType::Long,
    ),
    key("message.max.bytes", Some("1048588"), ConfigType::Int),
    key(
        "producer.id.expiration.ms",
        Some("86400000"),
        ConfigType::Int,
    ),
    key("min.insync.replicas", Some("1"), ConfigType::Int),
    key(
        "socket.request.max.bytes",
        Some("104857600"),
        ConfigType::Int,
    ),
    key("authorizer.class.name", Some(""), ConfigType::String),
    key("max.connections", Some(INT_MAX_TEXT), ConfigType::Int),
    key("quota.window.num", Some("11"), ConfigType::Int),
    key(
        "sasl.mechanism.inter.broker.protocol",
        None,
        ConfigType::String,
    ),
    key(
        "sasl.mechanism.controller.protocol",
        None,
        ConfigType::String,
    ),
    key("quota.window.size.seconds", Some("1"), ConfigType::Int),
    key(
        "max.connections.per.ip",
        Some(INT_MAX_TEXT),
        ConfigType::Int,
    ),
    key(
        "max.connections.per.ip.overrides",
        Some(""),
        ConfigType::String,
    ),
    key("super.users", None, ConfigType::String),
    key(
        "allow.everyone.if.no.acl.found",
        Some("false"),
        ConfigType::Boolean,
    ),
    // Kafka's default is -1 (no limit); a broker that must survive hostile clients needs one.
    key(
        "queued.max.request.bytes",
        Some("268435456"),
        ConfigType::Long,
    ),
    key("connections.max.idle.ms", Some("600000"), ConfigType::Long),
    // Sluice's own: where Kubernetes asks whether this node is ready (health.rs); none by default.
    key("sluice.health.listener", None, ConfigType::String),
    // Sluice's own: hand TLS sessions to the kernel after the handshake where it can take them
    // (kernel_tls.rs), so fetches keep sendfile under TLS.
    key(
        "sluice.ssl.kernel.offload",
        Some("true"),
        ConfigType::Boolean,
    ),
    // How long a connection holding part of a request may wait for request memory (see request_memory.rs).
    key(
        "sluice.request.memory.wait.ms",
        Some("30000"),
        ConfigType::Long,
    ),
    key("offsets.topic.num.partitions", Some("50"), ConfigType::Int),
    key(
        "offsets.topic.replication.factor",
        Some("3"),
        ConfigType::Short,
    ),
    key(
        "offsets.topic.segment.bytes",
        Some("104857600"),
        ConfigType::Int,
    ),
    key("offsets.retention.minutes", Some("10080"), ConfigType::Int),
    key(
        "group.initial.rebalance.delay.ms",
        Some("3000"),
        ConfigType::Int,
    ),
    key(
        "group.min.session.timeout.ms",
        Some("6000"),
        ConfigType::Int,
    ),
    key(
        "group.max.session.timeout.ms",
        Some("1800000"),
        ConfigType::Int,
    ),
    key("cluster.id", None, ConfigType::String),
];

/// Kafka tuning keys that mean nothing to Sluice but are common enough not to warn about.
const SILENTLY_IGNORED_KEYS: &[&str] = &["num.io.threads", "num.network.threads"];

/// Keys resolved before the node id is known, so they cannot mention `${node.id}`.
const NODE_ID_KEYS: &[&str] = &["node.id", "broker.id", "node.id.offset"];

const LONG_MAX: &str = "9223372036854775807";
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
const INT_MAX: i64 = i32::MAX as i64;
const INT_MAX_TEXT: &str = "2147483647";

fn broker_key(name: &str) -> Option<&'static BrokerKey> {
    BROKER_KEYS.iter().find(|k| k.name == name)
}

/// The configuration used when no properties file is given: a single node that is both broker
/// and controller, listening on localhost.
pub fn embedded_defaults() -> BTreeMap<String, String> {
    [
        ("process.roles", "broker,controller"),
        ("node.id", "1"),
        ("log.dirs", "./data"),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
        ("controller.listener.names", "CONTROLLER"),
        ("controller.quorum.voters", "1@127.0.0.1:9093"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl BrokerConfig {
    /// Reads `file` (or uses [`embedded_defaults`] when there is none), applies `overrides`
    /// (each `key=value`, later ones winning), and resolves against the process environment and
    /// host name.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<BrokerConfig, Error> {
        let mut props = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(Error::path_io(path))?;
                parse_properties(&text).map_err(|e| match e {
                    Error::Format(msg) => Error::Format(format!("{}: {msg}", path.display())),
                    other => other,
                })?
            }
            None => embedded_defaults(),
        };
        for entry in overrides {
            let (key, value) = parse_override(entry)?;
            props.insert(key, value);
        }
        let env = |name: &str| std::env::var(name).ok();
        BrokerConfig::from_properties(&props, &env, &local_hostname())
    }

    /// Builds the configuration from already-merged properties. `env` looks up environment
    /// variables and `hostname` is used to derive `node.id` and to fill in advertised listeners
    /// that have no host; both are parameters so that tests need not touch the process.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
        hostname: &str,
    ) -> Result<BrokerConfig, Error> {
        let mut unknown_keys = Vec::new();
        for name in props.keys() {
            if broker_key(name).is_none()
                && !SILENTLY_IGNORED_KEYS.contains(&name.as_str())
                && !crate::tls::is_tls_key(name)
                && !crate::sasl::is_sasl_key(name)
            {
                tracing::warn!(key = %name, "ignoring unknown configuration key");
                unknown_keys.push(name.clone());
            }
        }

        let mut explicit = BTreeMap::new();
        for &name in NODE_ID_KEYS {
            if let Some(raw) = props.get(name) {
                explicit.insert(name.to_owned(), substitute(name, raw, env, None)?);
            }
        }
        let node_id_offset = Values(&explicit).int("node.id.offset", 0, INT_MAX)? as i32;
        let node_id = resolve_node_id(&Values(&explicit), node_id_offset, hostname)?;
        for (name, raw) in props {
            if broker_key(name).is_some() && !NODE_ID_KEYS.contains(&name.as_str()) {
                explicit.insert(name.clone(), substitute(name, raw, env, Some(node_id))?);
            }
        }
        let v = Values(&explicit);

        let process_roles = parse_process_roles(v.required("process.roles")?)?;
        let listeners = parse_listeners("listeners", v.get("listeners").unwrap_or(""))?;
        let controller_listener_names: Vec<String> = v
            .list("controller.listener.names")
            .iter()
            .map(|n| n.to_ascii_uppercase())
            .collect();
        let protocols = check_security_protocols(
            v.get("listener.security.protocol.map").unwrap_or(""),
            &listeners,
            &controller_listener_names,
        )?;
        let mut tls = BTreeMap::new();
        let mut sasl = BTreeMap::new();
        let get = |key: &str| {
            props
                .get(key)
                .map(|raw| substitute(key, raw, env, Some(node_id)))
                .transpose()
        };
        for (listener, protocol) in &protocols {
            if protocol == "SSL" || protocol == "SASL_SSL" {
                tls.insert(listener.clone(), crate::tls::settings(listener, &get)?);
            }
            if protocol == "SASL_PLAINTEXT" || protocol == "SASL_SSL" {
                sasl.insert(listener.clone(), crate::sasl::settings(listener, &get)?);
            }
        }
        let advertised_listeners = resolve_advertised_listeners(
            v.get("advertised.listeners"),
            &listeners,
            &controller_listener_names,
            hostname,
        )?;

        let mut log = LogDefaults::default();
        for def in TOPIC_CONFIGS {
            match def.name {
                "retention.ms" => log.storage.retention_ms = broker_retention_ms(&v)?,
                "segment.ms" => {
                    log.storage.segment_ms = Some(match v.opt_int("log.roll.ms", 1, i64::MAX)? {
                        Some(ms) => ms as u64,
                        None => (v.int("log.roll.hours", 1, INT_MAX)? * HOUR_MS) as u64,
                    })
                }
                _ => {
                    // Topic-only keys (the throttled replica lists) have no broker default.
                    if let Some(broker_key) = def.broker_synonyms.first()
                        && let Some(value) = v.get(broker_key)
                    {
                        apply_log_setting(&mut log, def.name, broker_key, value)?;
                    }
                }
            }
        }

        log.storage.producer_id_expiration_ms = v.int("producer.id.expiration.ms", 1, INT_MAX)?;
        log.storage.max_decompressed_batch_bytes =
            v.int("sluice.max.decompressed.batch.bytes", 1024, i64::MAX)? as u64;

        let min_session = v.int("group.min.session.timeout.ms", 0, INT_MAX)? as u32;
        let max_session = v.int("group.max.session.timeout.ms", 0, INT_MAX)? as u32;
        if min_session > max_session {
            return Err(Error::config(
                "group.min.session.timeout.ms",
                format!(
                    "{min_session} is greater than group.max.session.timeout.ms ({max_session})"
                ),
            ));
        }

        let config = BrokerConfig {
            node_id,
            process_roles,
            listeners,
            advertised_listeners,
            controller_listener_names,
            controller_quorum_voters: parse_voters(&v.list("controller.quorum.voters"))?,
            controller_quorum_bootstrap_servers: parse_bootstrap_servers(
                &v.list("controller.quorum.bootstrap.servers"),
            )?,
            log_dirs: parse_log_dirs(&v)?,
            num_partitions: v.int("num.partitions", 1, INT_MAX)? as i32,
            default_replication_factor: v.int("default.replication.factor", 1, i16::MAX as i64)?
                as i16,
            auto_create_topics_enable: v.bool("auto.create.topics.enable")?,
            log,
            log_retention_check_interval_ms: v.int(
                "log.retention.check.interval.ms",
                1,
                i64::MAX,
            )? as u64,
            socket_request_max_bytes: v.int("socket.request.max.bytes", 1, INT_MAX)? as u32,
            queued_max_request_bytes: match v.int("queued.max.request.bytes", -1, i64::MAX)? {
                -1 => None,
                0 => {
                    return Err(Error::config(
                        "queued.max.request.bytes",
                        "must be -1 (no limit) or at least 1",
                    ));
                }
                n => Some(n as u64),
            },
            connections_max_idle_ms: v.int("connections.max.idle.ms", 1, i64::MAX)? as u64,
            request_memory_wait_ms: v.int("sluice.request.memory.wait.ms", 1, i64::MAX)? as u64,
            kernel_tls: v.bool("sluice.ssl.kernel.offload")?,
            tls,
            sasl,
            authorizer: authorizer_settings(&v)?,
            sasl_mechanism_inter_broker: v
                .get("sasl.mechanism.inter.broker.protocol")
                .map(str::to_owned),
            sasl_mechanism_controller: v
                .get("sasl.mechanism.controller.protocol")
                .map(str::to_owned),
            quota_windows: crate::quotas::QuotaWindows {
                windows: v.int("quota.window.num", 1, INT_MAX)? as u32,
                window_ms: v.int("quota.window.size.seconds", 1, INT_MAX)? * 1000,
            },
            connection_limits: crate::connection_limits::LimitSettings {
                max_connections: match v.int("max.connections", 0, INT_MAX)? {
                    INT_MAX => None,
                    n => Some(n as usize),
                },
                per_ip: match v.int("max.connections.per.ip", 0, INT_MAX)? {
                    INT_MAX => usize::MAX,
                    n => n as usize,
                },
                per_ip_overrides: crate::connection_limits::parse_overrides(
                    v.get("max.connections.per.ip.overrides").unwrap_or(""),
                )?,
            },
            health_listener: match v.get("sluice.health.listener").map(str::trim) {
                None | Some("") => None,
                Some(addr) => Some(addr.parse().map_err(|_| {
                    Error::invalid(
                        "sluice.health.listener",
                        addr,
                        "expected an address and port such as 0.0.0.0:9095",
                    )
                })?),
            },
            offsets_topic_num_partitions: v.int("offsets.topic.num.partitions", 1, INT_MAX)? as i32,
            offsets_topic_replication_factor: v.int(
                "offsets.topic.replication.factor",
                1,
                i16::MAX as i64,
            )? as i16,
            offsets_topic_segment_bytes: v.int("offsets.topic.segment.bytes", 1, INT_MAX)? as u64,
            offsets_retention_minutes: v.int("offsets.retention.minutes", 1, INT_MAX)? as u64,
            group_initial_rebalance_delay_ms: v.int(
                "group.initial.rebalance.delay.ms",
                0,
                INT_MAX,
            )? as u32,
            group_min_session_timeout_ms: min_session,
            group_max_session_timeout_ms: max_session,
            controller_quorum_election_timeout_ms: v.int(
                "controller.quorum.election.timeout.ms",
                1,
                INT_MAX,
            )? as u64,
            controller_quorum_fetch_timeout_ms: v.int(
                "controller.quorum.fetch.timeout.ms",
                1,
                INT_MAX,
            )? as u64,
            broker_session_timeout_ms: v.int("broker.session.timeout.ms", 1, INT_MAX)? as u64,
            broker_heartbeat_interval_ms: v.int("broker.heartbeat.interval.ms", 1, INT_MAX)? as u64,
            initial_broker_registration_timeout_ms: v.int(
                "initial.broker.registration.timeout.ms",
                1,
                INT_MAX,
            )? as u64,
            broker_rack: v.get("broker.rack").map(str::to_string),
            inter_broker_listener_name: v
                .get("inter.broker.listener.name")
                .map(str::to_ascii_uppercase),
            replica: crate::replica::ReplicaConfig {
                lag_time_max_ms: v.int("replica.lag.time.max.ms", 1, i64::MAX)?,
                fetch_wait_max_ms: v.int("replica.fetch.wait.max.ms", 0, INT_MAX)? as i32,
                fetch_min_bytes: v.int("replica.fetch.min.bytes", 1, INT_MAX)? as i32,
                fetch_max_bytes: v.int("replica.fetch.max.bytes", 1024, INT_MAX)? as i32,
                fetch_response_max_bytes: v.int(
                    "replica.fetch.response.max.bytes",
                    1024,
                    INT_MAX,
                )? as i32,
                fetch_backoff_ms: v.int("replica.fetch.backoff.ms", 0, INT_MAX)? as u64,
                high_watermark_checkpoint_interval_ms: v.int(
                    "replica.high.watermark.checkpoint.interval.ms",
                    1,
                    i64::MAX,
                )? as u64,
            },
            unclean_leader_election_enable: v.bool("unclean.leader.election.enable")?,
            auto_leader_rebalance_enable: v.bool("auto.leader.rebalance.enable")?,
            leader_imbalance_check_interval_ms: (v.int(
                "leader.imbalance.check.interval.seconds",
                1,
                i64::MAX / 1000,
            )? * 1000) as u64,
            cluster_id: v
                .get("cluster.id")
                .map(|id| validate_cluster_id("cluster.id", id))
                .transpose()?,
            node_id_offset,
            unknown_keys,
            explicit,
        };
        config.validate()?;
        Ok(config)
    }

    /// Rules that involve more than one key, mirroring Kafka's KRaft checks.
    fn validate(&self) -> Result<(), Error> {
        let is_controller_listener =
            |l: &Listener| self.controller_listener_names.contains(&l.name);
        if self.controller_listener_names.is_empty() {
            return Err(Error::config(
                "controller.listener.names",
                "is required: name the listener(s) the controllers listen on, e.g. CONTROLLER",
            ));
        }
        if self.process_roles.controller {
            for name in &self.controller_listener_names {
                if !self.listeners.iter().any(|l| l.name == *name) {
                    return Err(Error::config(
                        "controller.listener.names",
                        format!("listener {name} is not defined in listeners"),
                    ));
                }
            }
            // A dynamic quorum's voters live in the log (KIP-853); only static voters must name this node.
            if !self.controller_quorum_voters.is_empty()
                && !self
                    .controller_quorum_voters
                    .iter()
                    .any(|v| v.id == self.node_id)
            {
                return Err(Error::config(
                    "controller.quorum.voters",
                    format!(
                        "must contain this node (node.id {}) because process.roles includes controller",
                        self.node_id
                    ),
                ));
            }
            if !self.process_roles.broker
                && let Some(l) = self.listeners.iter().find(|l| !is_controller_listener(l))
            {
                return Err(Error::config(
                    "listeners",
                    format!(
                        "listener {} is not a controller listener, but process.roles is controller only",
                        l.name
                    ),
                ));
            }
        }
        if self.process_roles.broker {
            if !self.listeners.iter().any(|l| !is_controller_listener(l)) {
                return Err(Error::config(
                    "listeners",
                    "process.roles includes broker, so at least one listener must not be a controller listener",
                ));
            }
            if !self.process_roles.controller
                && let Some(l) = self.listeners.iter().find(|l| is_controller_listener(l))
            {
                return Err(Error::config(
                    "listeners",
                    format!(
                        "must not contain controller listener {} when process.roles is broker only",
                        l.name
                    ),
                ));
            }
            if self.controller_quorum_voters.is_empty()
                && self.controller_quorum_bootstrap_servers.is_empty()
            {
                return Err(Error::config(
                    "controller.quorum.voters",
                    "either controller.quorum.voters or controller.quorum.bootstrap.servers must be set",
                ));
            }
        }
        Ok(())
    }

    /// The listeners serving Kafka clients (all listeners except the controller ones).
    pub fn client_listeners(&self) -> Vec<&Listener> {
        self.listeners
            .iter()
            .filter(|l| !self.controller_listener_names.contains(&l.name))
            .collect()
    }

    /// The listeners serving the controller quorum.
    pub fn controller_listeners(&self) -> Vec<&Listener> {
        self.listeners
            .iter()
            .filter(|l| self.controller_listener_names.contains(&l.name))
            .collect()
    }

    /// What to tell a client that connected through `listener_name` (case-insensitive).
    pub fn advertised_for(&self, listener_name: &str) -> Option<&Listener> {
        self.advertised_listeners
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(listener_name))
    }

    /// The broker-wide per-log defaults; convert into `sluice_storage::LogConfig` field by field.
    pub fn log_defaults(&self) -> LogDefaults {
        self.log.clone()
    }

    /// A replication throttle rate (bytes/s) as configured in the file, `None` when unlimited.
    pub fn static_throttle_rate(&self, key: &str) -> Option<u64> {
        self.explicit
            .get(key)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v >= 0 && *v != i64::MAX)
            .map(|v| v as u64)
    }

    /// Every broker key Sluice reads, as the file sets it, for DescribeConfigs on a broker resource; all
    /// read-only here (`dynamic_config` overlays the dynamic keys).
    pub fn describe_broker_config(&self) -> Vec<ConfigEntry> {
        BROKER_KEYS
            .iter()
            .map(|k| {
                let explicit = self.explicit.get(k.name);
                let value = if k.name == "node.id" {
                    Some(self.node_id.to_string())
                } else {
                    explicit.cloned().or(k.default.map(str::to_owned))
                };
                let source = if explicit.is_some() {
                    ConfigSource::StaticBroker
                } else {
                    ConfigSource::Default
                };
                ConfigEntry {
                    name: k.name.to_owned(),
                    value,
                    is_default: source == ConfigSource::Default,
                    source,
                    read_only: true,
                    sensitive: false,
                    config_type: k.config_type,
                }
            })
            .collect()
    }
}

/// A supported topic-level config and the broker keys that supply its default (first = main).
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub broker_synonyms: &'static [&'static str],
    pub config_type: ConfigType,
}

const fn topic(
    name: &'static str,
    broker_synonyms: &'static [&'static str],
    config_type: ConfigType,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_synonyms,
        config_type,
    }
}

/// The topic configs Sluice supports, in the order DescribeConfigs lists them.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    topic("cleanup.policy", &["log.cleanup.policy"], ConfigType::List),
    topic(
        "flush.messages",
        &["log.flush.interval.messages"],
        ConfigType::Long,
    ),
    topic("flush.ms", &["log.flush.interval.ms"], ConfigType::Long),
    topic(
        "index.interval.bytes",
        &["log.index.interval.bytes"],
        ConfigType::Int,
    ),
    topic(
        "follower.replication.throttled.replicas",
        &[],
        ConfigType::List,
    ),
    topic(
        "leader.replication.throttled.replicas",
        &[],
        ConfigType::List,
    ),
    topic("max.message.bytes", &["message.max.bytes"], ConfigType::Int),
    topic(
        "message.timestamp.after.max.ms",
        &["log.message.timestamp.after.max.ms"],
        ConfigType::Long,
    ),
    topic(
        "message.timestamp.before.max.ms",
        &["log.message.timestamp.before.max.ms"],
        ConfigType::Long,
    ),
    topic(
        "message.timestamp.type",
        &["log.message.timestamp.type"],
        ConfigType::String,
    ),
    topic(
        "min.insync.replicas",
        &["min.insync.replicas"],
        ConfigType::Int,
    ),
    topic(
        "retention.bytes",
        &["log.retention.bytes"],
        ConfigType::Long,
    ),
    topic(
        "retention.ms",
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        ConfigType::Long,
    ),
    topic("segment.bytes", &["log.segment.bytes"], ConfigType::Int),
    topic(
        "segment.index.bytes",
        &["log.index.size.max.bytes"],
        ConfigType::Int,
    ),
    topic(
        "segment.ms",
        &["log.roll.ms", "log.roll.hours"],
        ConfigType::Long,
    ),
    topic(
        "unclean.leader.election.enable",
        &["unclean.leader.election.enable"],
        ConfigType::Boolean,
    ),
];

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one topic config (CreateTopics, IncrementalAlterConfigs SET); the error names the key.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), Error> {
    apply_log_setting(&mut LogDefaults::default(), name, name, value)
}

/// A topic's effective log settings: the broker defaults with the topic's overrides applied.
/// Fails on the first unknown or invalid override, naming it.
pub fn topic_log_defaults(
    defaults: &LogDefaults,
    overrides: &BTreeMap<String, String>,
) -> Result<LogDefaults, Error> {
    let mut log = defaults.clone();
    for (name, value) in overrides {
        apply_log_setting(&mut log, name, name, value)?;
    }
    Ok(log)
}

/// Every supported topic config with its effective value, for DescribeConfigs on a topic.
/// `overrides` are the topic's stored (already validated) configs; `dynamic`, the broker configs of the
/// broker answering, whose values stand in for the file's where set.
pub fn describe_topic_config(
    broker: &BrokerConfig,
    dynamic: &DynamicConfigs,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let defaults = dynamic.log_defaults(&broker.log);
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = match overrides.get(def.name) {
                Some(value) => (value.trim().to_owned(), ConfigSource::TopicConfig),
                None => {
                    let from_file = def
                        .broker_synonyms
                        .iter()
                        .any(|k| broker.explicit.contains_key(*k));
                    let dynamic_source = def
                        .broker_synonyms
                        .first()
                        .and_then(|k| dynamic.get(k))
                        .map(|(_, source)| source);
                    let source = match dynamic_source {
                        Some(source) => source,
                        None if from_file => ConfigSource::StaticBroker,
                        None => ConfigSource::Default,
                    };
                    (log_setting_text(&defaults, def.name), source)
                }
            };
            ConfigEntry {
                name: def.name.to_owned(),
                value: Some(value),
                is_default: source == ConfigSource::Default,
                source,
                read_only: false,
                sensitive: false,
                config_type: def.config_type,
            }
        })
        .collect()
}

/// Sets the field behind topic config `name` from `value`. `error_key` is the key to blame,
/// which differs from `name` when the value came from the broker-level synonym.
pub(crate) fn apply_log_setting(
    log: &mut LogDefaults,
    name: &str,
    error_key: &str,
    value: &str,
) -> Result<(), Error> {
    let int = |min, max| parse_int(error_key, value, min, max);
    // Long.MAX is Kafka's way of saying "never flush explicitly".
    let unless_max = |v: i64| (v != i64::MAX).then_some(v as u64);
    match name {
        "cleanup.policy" => {
            log.storage.cleanup_policy_delete = parse_cleanup_policy(error_key, value)?
        }
        "flush.messages" => log.storage.flush_interval_messages = unless_max(int(1, i64::MAX)?),
        "flush.ms" => log.storage.flush_interval_ms = unless_max(int(0, i64::MAX)?),
        "index.interval.bytes" => log.storage.index_interval_bytes = int(0, INT_MAX)? as u32,
        "max.message.bytes" => log.storage.max_message_bytes = int(0, INT_MAX)? as u32,
        "message.timestamp.after.max.ms" => {
            log.storage.message_timestamp_after_max_ms = int(0, i64::MAX)?
        }
        "message.timestamp.before.max.ms" => {
            log.storage.message_timestamp_before_max_ms = int(0, i64::MAX)?
        }
        "message.timestamp.type" => {
            log.storage.timestamp_type = parse_timestamp_type(error_key, value)?
        }
        "min.insync.replicas" => log.min_insync_replicas = int(1, INT_MAX)? as i32,
        "unclean.leader.election.enable" => {
            log.unclean_leader_election_enable = match value.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(Error::invalid(error_key, value, "expected true or false")),
            }
        }
        "leader.replication.throttled.replicas" => {
            log.leader_throttled_replicas = parse_throttled_replicas(error_key, value)?
        }
        "follower.replication.throttled.replicas" => {
            log.follower_throttled_replicas = parse_throttled_replicas(error_key, value)?
        }
        "retention.bytes" => {
            log.storage.retention_bytes = unlimited_if_minus_one(int(-1, i64::MAX)?)
        }
        "retention.ms" => {
            let ms = int(-1, i64::MAX)?;
            log.storage.retention_ms = (ms != -1).then_some(ms);
        }
        // Kafka 4's floor, for the topic key and the broker's `log.segment.bytes` alike (a smaller one made
        // every produce fail with MESSAGE_TOO_LARGE).
        "segment.bytes" => log.storage.segment_bytes = int(1024 * 1024, INT_MAX)? as u64,
        // An index needs room for at least one 4-byte entry.
        "segment.index.bytes" => log.storage.max_index_size = int(4, INT_MAX)? as u32,
        "segment.ms" => log.storage.segment_ms = Some(int(1, i64::MAX)? as u64),
        _ => return Err(Error::config(name, "unknown topic config")),
    }
    Ok(())
}

/// A topic config's value as DescribeConfigs shows it (Kafka's units and sentinels).
fn log_setting_text(log: &LogDefaults, name: &str) -> String {
    let or_max = |v: Option<u64>| v.map_or(LONG_MAX.to_owned(), |v| v.to_string());
    match name {
        "cleanup.policy" => "delete".to_owned(),
        "flush.messages" => or_max(log.storage.flush_interval_messages),
        "flush.ms" => or_max(log.storage.flush_interval_ms),
        "index.interval.bytes" => log.storage.index_interval_bytes.to_string(),
        "max.message.bytes" => log.storage.max_message_bytes.to_string(),
        "message.timestamp.after.max.ms" => log.storage.message_timestamp_after_max_ms.to_string(),
        "message.timestamp.before.max.ms" => {
            log.storage.message_timestamp_before_max_ms.to_string()
        }
        "message.timestamp.type" => timestamp_type_name(log.storage.timestamp_type).to_owned(),
        "min.insync.replicas" => log.min_insync_replicas.to_string(),
        "unclean.leader.election.enable" => log.unclean_leader_election_enable.to_string(),
        "leader.replication.throttled.replicas" => log.leader_throttled_replicas.clone(),
        "follower.replication.throttled.replicas" => log.follower_throttled_replicas.clone(),
        "retention.bytes" => log
            .storage
            .retention_bytes
            .map_or("-1".to_owned(), |v| v.to_string()),
        "retention.ms" => log
            .storage
            .retention_ms
            .map_or("-1".to_owned(), |v| v.to_string()),
        "segment.bytes" => log.storage.segment_bytes.to_string(),
        "segment.index.bytes" => log.storage.max_index_size.to_string(),
        "segment.ms" => or_max(log.storage.segment_ms),
        _ => String::new(),
    }
}

/// A throttled-replicas list: empty, "*", or "partition:broker" pairs; answered with spaces removed.
fn parse_throttled_replicas(key: &str, value: &str) -> Result<String, Error> {
    let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    if value.is_empty() || value == "*" {
        return Ok(value);
    }
    for pair in value.split(',') {
        let ok = pair
            .split_once(':')
            .is_some_and(|(p, b)| p.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
        if !ok {
            return Err(Error::invalid(
                key,
                &value,
                "expected \"*\" or a list of [PartitionId]:[BrokerId] pairs",
            ));
        }
    }
    Ok(value)
}

/// Whether a throttled-replicas list (as `parse_throttled_replicas` leaves it) names `partition` on `broker`.
pub fn is_throttled(list: &str, partition: i32, broker: i32) -> bool {
    list == "*"
        || list.split(',').any(|pair| {
            pair.split_once(':').is_some_and(|(p, b)| {
                p.parse::<i32>() == Ok(partition) && b.parse::<i32>() == Ok(broker)
            })
        })
}

fn unlimited_if_minus_one(v: i64) -> Option<u64> {
    (v != -1).then_some(v as u64)
}

/// `log.retention.ms` wins over `log.retention.minutes`, which wins over `log.retention.hours`,
/// as in Kafka; -1 in whichever is used means unlimited.
fn broker_retention_ms(v: &Values) -> Result<Option<i64>, Error> {
    let ms = match v.opt_int("log.retention.ms", -1, i64::MAX)? {
        Some(ms) => ms,
        None => match v.opt_int("log.retention.minutes", -1, INT_MAX)? {
            Some(-1) => -1,
            Some(minutes) => minutes * MINUTE_MS,
            None => match v.int("log.retention.hours", -1, INT_MAX)? {
                -1 => -1,
                hours => hours * HOUR_MS,
            },
        },
    };
    Ok((ms != -1).then_some(ms))
}

/// Resolved values of known keys, falling back to the table defaults.
struct Values<'a>(&'a BTreeMap<String, String>);

impl Values<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(v) => Some(v.as_str()),
            None => broker_key(name).and_then(|k| k.default),
        }
    }

    fn required(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| Error::config(name, "is required"))
    }

    fn int(&self, name: &str, min: i64, max: i64) -> Result<i64, Error> {
        parse_int(name, self.required(name)?, min, max)
    }

    fn opt_int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, Error> {
        self.get(name)
            .map(|v| parse_int(name, v, min, max))
            .transpose()
    }

    fn bool(&self, name: &str) -> Result<bool, Error> {
        let value = self.required(name)?;
        match value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Error::invalid(name, value, "expected true or false")),
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        split_list(self.get(name).unwrap_or(""))
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn parse_int(key: &str, value: &str, min: i64, max: i64) -> Result<i64, Error> {
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| Error::invalid(key, value, "expected an integer"))?;
    if n < min {
        return Err(Error::invalid(
            key,
            value,
            format!("must be at least {min}"),
        ));
    }
    if n > max {
        return Err(Error::invalid(key, value, format!("must be at most {max}")));
    }
    Ok(n)
}

fn parse_timestamp_type(key: &str, value: &str) -> Result<TimestampType, Error> {
    match value.trim() {
        "CreateTime" => Ok(TimestampType::CreateTime),
        "LogAppendTime" => Ok(TimestampType::LogAppendTime),
        _ => Err(Error::invalid(
            key,
            value,
            "expected CreateTime or LogAppendTime",
        )),
    }
}

/// Returns `true` (delete) or fails: compaction is not implemented.
fn parse_cleanup_policy(key: &str, value: &str) -> Result<bool, Error> {
    let policies = split_list(value);
    if policies.is_empty() {
        return Err(Error::invalid(key, value, "expected delete"));
    }
    for policy in &policies {
        match policy.as_str() {
            "delete" => {}
            "compact" => {
                return Err(Error::invalid(
                    key,
                    value,
                    "compaction is not supported; only delete is",
                ));
            }
            _ => return Err(Error::invalid(key, value, "expected delete")),
        }
    }
    Ok(true)
}

/// Replaces `${env:NAME}`, `${env:NAME:-default}` and (when known) `${node.id}` in `raw`.
fn substitute(
    key: &str,
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
    node_id: Option<i32>,
) -> Result<String, Error> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| Error::invalid(key, raw, "unterminated ${ reference"))?;
        let reference = &after[..end];
        if let Some(spec) = reference.strip_prefix("env:") {
            let (name, default) = match spec.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (spec, None),
            };
            if name.is_empty() {
                return Err(Error::invalid(key, raw, "empty environment variable name"));
            }
            match (env(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(Error::config(
                        key,
                        format!(
                            "environment variable {name} is not set (use ${{env:{name}:-default}} to allow that)"
                        ),
                    ));
                }
            }
        } else if reference == "node.id" {
            match node_id {
                Some(id) => out.push_str(&id.to_string()),
                None => return Err(Error::invalid(key, raw, "${node.id} cannot be used here")),
            }
        } else {
            return Err(Error::invalid(
                key,
                raw,
                format!(
                    "unsupported reference ${{{reference}}}; expected ${{env:NAME}}, ${{env:NAME:-default}} or ${{node.id}}"
                ),
            ));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out.trim().to_owned())
}

/// `node.id` (or its legacy alias `broker.id`) if set, else the StatefulSet ordinal in the host
/// name plus `node.id.offset`.
fn resolve_node_id(v: &Values, offset: i32, hostname: &str) -> Result<i32, Error> {
    // -1 is Kafka's "unset" for broker.id; `auto` and empty allow `${env:NODE_ID:-auto}`.
    let set = |name| {
        v.0.get(name)
            .filter(|s| !matches!(s.trim(), "" | "auto" | "-1"))
            .map(|s| parse_int(name, s, 0, INT_MAX).map(|n| n as i32))
            .transpose()
    };
    match (set("node.id")?, set("broker.id")?) {
        (Some(node), Some(broker)) if node != broker => Err(Error::config(
            "broker.id",
            format!("is {broker} but node.id is {node}; remove one or make them equal"),
        )),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => {
            let ordinal = pod_ordinal(hostname).ok_or_else(|| {
                Error::config(
                    "node.id",
                    format!(
                        "is not set and cannot be derived from host name \"{hostname}\" \
                         (expected a StatefulSet pod name ending in -<ordinal>)"
                    ),
                )
            })?;
            let id = ordinal + i64::from(offset);
            if id > INT_MAX {
                return Err(Error::config(
                    "node.id",
                    format!("ordinal {ordinal} plus node.id.offset {offset} exceeds {INT_MAX}"),
                ));
            }
            Ok(id as i32)
        }
    }
}

/// The trailing `-<digits>` of the first DNS label, e.g. 2 for `sluice-broker-2.sluice.ns.svc`.
fn pod_ordinal(hostname: &str) -> Option<i64> {
    let label = hostname.split('.').next()?;
    let (_, digits) = label.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn parse_process_roles(value: &str) -> Result<ProcessRoles, Error> {
    let key = "process.roles";
    let mut roles = ProcessRoles {
        broker: false,
        controller: false,
    };
    for role in split_list(value) {
        let slot = match role.as_str() {
            "broker" => &mut roles.broker,
            "controller" => &mut roles.controller,
            _ => {
                return Err(Error::invalid(
                    key,
                    value,
                    "expected broker, controller or both",
                ));
            }
        };
        if *slot {
            return Err(Error::invalid(
                key,
                value,
                format!("{role} is listed twice"),
            ));
        }
        *slot = true;
    }
    if !roles.broker && !roles.controller {
        return Err(Error::invalid(
            key,
            value,
            "expected broker, controller or both",
        ));
    }
    Ok(roles)
}

/// `host:port` with IPv6 hosts in brackets; the host may be empty (`:9092`).
fn parse_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, rest) = rest.split_once(']')?;
        (host, rest.strip_prefix(':')?)
    } else {
        let (host, port) = s.rsplit_once(':')?;
        // An unbracketed IPv6 address would be ambiguous.
        if host.contains(':') {
            return None;
        }
        (host, port)
    };
    if host.contains(char::is_whitespace) {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, Error> {
    let mut listeners: Vec<Listener> = Vec::new();
    for entry in split_list(value) {
        let expected = "expected NAME://host:port entries, e.g. PLAINTEXT://0.0.0.0:9092";
        let (name, address) = entry
            .split_once("://")
            .ok_or_else(|| Error::invalid(key, value, expected))?;
        let (host, port) =
            parse_host_port(address).ok_or_else(|| Error::invalid(key, value, expected))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Error::invalid(key, value, expected));
        }
        let listener = Listener {
            name: name.to_ascii_uppercase(),
            host,
            port,
        };
        if listeners.iter().any(|l| l.name == listener.name) {
            return Err(Error::invalid(
                key,
                value,
                format!("listener name {} is used twice", listener.name),
            ));
        }
        // Port 0 asks the OS for a free port, so it may repeat.
        if listener.port != 0 && listeners.iter().any(|l| l.port == listener.port) {
            return Err(Error::invalid(
                key,
                value,
                format!("port {} is used by two listeners", listener.port),
            ));
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Every listener must map to a security protocol: PLAINTEXT, or SSL, SASL_PLAINTEXT or SASL_SSL on a listener
/// for clients (the controller listener speaks PLAINTEXT). Map entries for listeners that are
/// not in use may name other protocols: Kafka's sample file lists them all. Returns each listener's.
/// The security protocol of each listener this node serves, and of the controller listener, which a
/// broker-only node dials without serving it (its `listener.name.controller.*` keys say how).
fn check_security_protocols(
    value: &str,
    listeners: &[Listener],
    controller_listener_names: &[String],
) -> Result<BTreeMap<String, String>, Error> {
    let key = "listener.security.protocol.map";
    let mut map = BTreeMap::new();
    for entry in split_list(value) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| Error::invalid(key, value, "expected NAME:PROTOCOL entries"))?;
        let protocol = protocol.trim().to_ascii_uppercase();
        if !matches!(
            protocol.as_str(),
            "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"
        ) {
            return Err(Error::invalid(
                key,
                value,
                format!("unknown security protocol {protocol}"),
            ));
        }
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    let mut used = BTreeMap::new();
    for listener in listeners {
        match map.get(&listener.name).map(String::as_str) {
            None => {
                return Err(Error::config(
                    key,
                    format!("has no entry for listener {}", listener.name),
                ));
            }
            Some("PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL") => {}
            Some(protocol) => {
                let supported = "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL";
                return Err(Error::config(
                    key,
                    format!(
                        "listener {} uses security protocol {protocol}; {supported}",
                        listener.name
                    ),
                ));
            }
        }
        if let Some(protocol) = map.get(&listener.name) {
            used.insert(listener.name.clone(), protocol.clone());
        }
    }
    for name in controller_listener_names {
        if let Some(protocol) = map.get(name) {
            used.entry(name.clone()).or_insert_with(|| protocol.clone());
        }
    }
    Ok(used)
}

/// `advertised.listeners`, or else the non-controller `listeners`. An empty host becomes this
/// machine's host name (as in Kafka); a wildcard address cannot be advertised.
fn resolve_advertised_listeners(
    value: Option<&str>,
    listeners: &[Listener],
    controller_listener_names: &[String],
    hostname: &str,
) -> Result<Vec<Listener>, Error> {
    let key = "advertised.listeners";
    let advertised = match value {
        Some(value) => {
            let advertised = parse_listeners(key, value)?;
            for l in &advertised {
                if !listeners.iter().any(|bound| bound.name == l.name) {
                    return Err(Error::config(
                        key,
                        format!("listener {} is not defined in listeners", l.name),
                    ));
                }
            }
            advertised
        }
        None => listeners.to_vec(),
    };
    let mut result = Vec::new();
    for mut l in advertised {
        if controller_listener_names.contains(&l.name) {
            // A controller listener is advertised only when named explicitly (KIP-853): a
            // controller of a dynamic quorum registers under that address, which must be one the
            // other controllers resolve (a pod's name under its headless Service, say).
            if value.is_some() && !l.host.is_empty() && l.host != "0.0.0.0" && l.host != "::" {
                result.push(l);
            }
            continue;
        }
        if l.host == "0.0.0.0" || l.host == "::" {
            let hint = if value.is_none() {
                " (advertised.listeners is not set, so listeners is used)"
            } else {
                ""
            };
            return Err(Error::config(
                key,
                format!(
                    "cannot advertise the wildcard address {} for listener {}{hint}; set a routable host",
                    l.host, l.name
                ),
            ));
        }
        if l.host.is_empty() {
            l.host = hostname.to_owned();
        }
        result.push(l);
    }
    Ok(result)
}

fn parse_voters(entries: &[String]) -> Result<Vec<QuorumVoter>, Error> {
    let key = "controller.quorum.voters";
    let mut voters: Vec<QuorumVoter> = Vec::new();
    for entry in entries {
        let expected = "expected id@host:port entries, e.g. 1@controller-0:9093";
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| Error::invalid(key, entry, expected))?;
        let id = parse_int(key, id, 0, INT_MAX)? as i32;
        let (host, port) = parse_host_port(address)
            .filter(|(host, _)| !host.is_empty())
            .ok_or_else(|| Error::invalid(key, entry, expected))?;
        if voters.iter().any(|v| v.id == id) {
            return Err(Error::invalid(
                key,
                entry,
                format!("voter id {id} is listed twice"),
            ));
        }
        voters.push(QuorumVoter { id, host, port });
    }
    Ok(voters)
}

fn parse_bootstrap_servers(entries: &[String]) -> Result<Vec<HostPort>, Error> {
    entries
        .iter()
        .map(|entry| {
            parse_host_port(entry)
                .filter(|(host, _)| !host.is_empty())
                .map(|(host, port)| HostPort { host, port })
                .ok_or_else(|| {
                    Error::invalid(
                        "controller.quorum.bootstrap.servers",
                        entry,
                        "expected host:port entries",
                    )
                })
        })
        .collect()
}

/// Kafka's KRaft authorizer keys. `StandardAuthorizer` is the one Kafka 4 has; its rules are Sluice's.
fn authorizer_settings(
    v: &Values<'_>,
) -> Result<Option<sluice_metadata::acl::AuthorizerSettings>, Error> {
    const STANDARD: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
    match v.get("authorizer.class.name").map(str::trim) {
        None | Some("") => return Ok(None),
        Some(STANDARD) => {}
        Some(other) => {
            return Err(Error::invalid(
                "authorizer.class.name",
                other,
                format!("{STANDARD} (Kafka's ACL authorizer) or nothing"),
            ));
        }
    }
    let mut super_users = Vec::new();
    for user in v
        .get("super.users")
        .unwrap_or("")
        .split(';')
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        if !user
            .split_once(':')
            .is_some_and(|(k, n)| !k.is_empty() && !n.is_empty())
        {
            return Err(Error::invalid(
                "super.users",
                user,
                "principals such as User:admin, separated by ';'",
            ));
        }
        super_users.push(user.to_owned());
    }
    Ok(Some(sluice_metadata::acl::AuthorizerSettings {
        super_users,
        allow_if_no_acls: v.bool("allow.everyone.if.no.acl.found")?,
    }))
}

fn parse_log_dirs(v: &Values) -> Result<Vec<PathBuf>, Error> {
    let key = if v.0.contains_key("log.dirs") {
        "log.dirs"
    } else {
        "log.dir"
    };
    let dirs = v.list(key);
    if dirs.is_empty() {
        return Err(Error::config(key, "must name at least one directory"));
    }
    let mut seen = BTreeSet::new();
    for dir in &dirs {
        if !seen.insert(dir.as_str()) {
            return Err(Error::config(
                key,
                format!("directory {dir} is listed twice"),
            ));
        }
    }
    Ok(dirs.into_iter().map(PathBuf::from).collect())
}

/// Kafka cluster ids are base64url strings; anything else would not survive meta.properties or
/// client tooling.
pub(crate) fn validate_cluster_id(key: &str, id: &str) -> Result<String, Error> {
    let id = id.trim();
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::invalid(
            key,
            id,
            "expected a base64url string such as one generated by kafka-storage random-uuid",
        ));
    }
    Ok(id.to_owned())
}

fn parse_override(entry: &str) -> Result<(String, String), Error> {
    match entry.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(Error::Format(format!(
            "--override \"{entry}\" is not of the form key=value"
        ))),
    }
}

/// The kernel's host name (the pod name in Kubernetes), falling back to `$HOSTNAME`.
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// Parses Java `.properties` text: `#`/`!` comment lines, `=`, `:` or whitespace between key and
/// value, backslash escapes (including `\uXXXX`) and backslash line continuation. Later keys win.
/// Unlike Java, values are trimmed at the end too and whitespace after a continuation backslash
/// is tolerated, since neither is ever wanted in a config file.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut map = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let mut logical = String::new();
        let mut current = line;
        loop {
            let trimmed = current.trim_end();
            let trailing_backslashes = trimmed.bytes().rev().take_while(|&b| b == b'\\').count();
            if trailing_backslashes % 2 == 1 {
                logical.push_str(&trimmed[..trimmed.len() - 1]);
                match lines.next() {
                    Some((_, next)) => current = next.trim_start(),
                    None => break,
                }
            } else {
                logical.push_str(current);
                break;
            }
        }
        let (key, value) = split_property(&logical)
            .map_err(|message| Error::Format(format!("line {}: {message}", index + 1)))?;
        map.insert(key, value);
    }
    Ok(map)
}

fn split_property(logical: &str) -> Result<(String, String), String> {
    let mut chars = logical.chars().peekable();
    let mut key = String::new();
    while let Some(&c) = chars.peek() {
        if c == '=' || c == ':' || c.is_whitespace() {
            break;
        }
        chars.next();
        if c == '\\' {
            key.push(unescape(&mut chars)?);
        } else {
            key.push(c);
        }
    }
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    if chars.peek().is_some_and(|&c| c == '=' || c == ':') {
        chars.next();
    }
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    let mut value = String::new();
    while let Some(c) = chars.next() {
        if c == '\\' {
            value.push(unescape(&mut chars)?);
        } else {
            value.push(c);
        }
    }
    if key.is_empty() {
        return Err("missing key before the separator".to_owned());
    }
    Ok((key, value.trim_end().to_owned()))
}

/// The character an escape stands for, the backslash already consumed.
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, String> {
    match chars.next() {
        Some('t') => Ok('\t'),
        Some('n') => Ok('\n'),
        Some('r') => Ok('\r'),
        Some('f') => Ok('\u{c}'),
        Some('u') => {
            let hex: String = chars.by_ref().take(4).collect();
            u32::from_str_radix(&hex, 16)
                .ok()
                .filter(|_| hex.len() == 4)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("malformed \\u escape \\u{hex}"))
        }
        Some(c) => Ok(c),
        None => Ok('\\'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// The embedded single-node defaults with `changes` applied; an empty value removes a key.
    fn props_with(changes: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut props = embedded_defaults();
        for (k, v) in changes {
            if v.is_empty() {
                props.remove(*k);
            } else {
                props.insert(k.to_string(), v.to_string());
            }
        }
        props
    }

    fn build(changes: &[(&str, &str)]) -> Result<BrokerConfig, Error> {
        BrokerConfig::from_properties(&props_with(changes), &no_env, "testhost")
    }

    fn build_err(changes: &[(&str, &str)]) -> String {
        match build(changes) {
            Ok(c) => panic!("expected an error for {changes:?}, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parse_properties_follows_java_rules() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("a=1", &[("a", "1")]),
            ("a = 1 ", &[("a", "1")]),
            ("a:1", &[("a", "1")]),
            ("a 1", &[("a", "1")]),
            ("  a   =   x y  ", &[("a", "x y")]),
            ("a=", &[("a", "")]),
            ("a", &[("a", "")]),
            ("# c\n! c\n\n   # indented\na=1", &[("a", "1")]),
            ("a=1\na=2", &[("a", "2")]),
            ("a=1\r\nb=2\r\n", &[("a", "1"), ("b", "2")]),
            ("a=x,\\\n    y,\\\n    z", &[("a", "x,y,z")]),
            ("a=x\\   \n  y", &[("a", "xy")]),
            ("a=x\\\n# not a comment", &[("a", "x# not a comment")]),
            (
                "a=ends with backslash\\\\",
                &[("a", "ends with backslash\\")],
            ),
            ("a=x\\\n", &[("a", "x")]),
            ("k\\=ey=v", &[("k=ey", "v")]),
            ("a=t\\tab\\u0041", &[("a", "t\tabA")]),
            ("a=b=c", &[("a", "b=c")]),
            ("url=PLAINTEXT://h:9092", &[("url", "PLAINTEXT://h:9092")]),
        ];
        for (text, expected) in cases {
            let parsed = parse_properties(text).unwrap();
            let expected: BTreeMap<String, String> = expected
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(parsed, expected, "input {text:?}");
        }
    }

    #[test]
    fn parse_properties_reports_line_of_malformed_input() {
        for (text, needle) in [("a=1\nb=\\u00zz", "line 2"), ("a=1\n\n=x", "line 3")] {
            let err = parse_properties(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn embedded_defaults_are_a_single_local_node() {
        let c = BrokerConfig::from_properties(&embedded_defaults(), &no_env, "h").unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(
            c.process_roles,
            ProcessRoles {
                broker: true,
                controller: true
            }
        );
        assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
        let client: Vec<String> = c.client_listeners().iter().map(|l| l.to_string()).collect();
        assert_eq!(client, ["PLAINTEXT://127.0.0.1:9092"]);
        let controller: Vec<String> = c
            .controller_listeners()
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(controller, ["CONTROLLER://127.0.0.1:9093"]);
        assert_eq!(
            c.advertised_listeners,
            vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092
            }]
        );
        assert_eq!(
            c.controller_quorum_voters,
            vec![QuorumVoter {
                id: 1,
                host: "127.0.0.1".into(),
                port: 9093
            }]
        );
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.default_replication_factor, 1);
        assert!(c.auto_create_topics_enable);
        assert_eq!(c.log_defaults(), LogDefaults::default());
        assert_eq!(c.log.storage.segment_bytes, 1_073_741_824);
        assert_eq!(c.log.storage.retention_ms, Some(604_800_000));
        assert_eq!(c.log.storage.segment_ms, Some(604_800_000));
        assert_eq!(c.log.storage.retention_bytes, None);
        assert_eq!(c.log.storage.flush_interval_messages, None);
        assert_eq!(c.log.storage.flush_interval_ms, None);
        assert_eq!(c.log_retention_check_interval_ms, 300_000);
        assert_eq!(c.log.storage.max_message_bytes, 1_048_588);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.offsets_topic_num_partitions, 50);
        assert_eq!(c.offsets_topic_replication_factor, 3);
        assert_eq!(c.offsets_topic_segment_bytes, 104_857_600);
        assert_eq!(c.offsets_retention_minutes, 10_080);
        assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
        assert_eq!(c.group_min_session_timeout_ms, 6000);
        assert_eq!(c.group_max_session_timeout_ms, 1_800_000);
        assert_eq!(c.cluster_id, None);
        assert!(c.unknown_keys.is_empty());
    }

    #[test]
    fn each_key_is_parsed() {
        type Check = fn(&BrokerConfig) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("node.id", "1", |c| c.node_id == 1),
            ("num.partitions", "6", |c| c.num_partitions == 6),
            ("default.replication.factor", "3", |c| {
                c.default_replication_factor == 3
            }),
            ("auto.create.topics.enable", "false", |c| {
                !c.auto_create_topics_enable
            }),
            ("auto.create.topics.enable", "TRUE", |c| {
                c.auto_create_topics_enable
            }),
            ("log.segment.bytes", "1048576", |c| {
                c.log.storage.segment_bytes == 1_048_576
            }),
            ("log.roll.hours", "2", |c| {
                c.log.storage.segment_ms == Some(7_200_000)
            }),
            ("log.roll.ms", "5000", |c| {
                c.log.storage.segment_ms == Some(5000)
            }),
            ("log.retention.bytes", "1000", |c| {
                c.log.storage.retention_bytes == Some(1000)
            }),
            ("log.flush.interval.messages", "10", |c| {
                c.log.storage.flush_interval_messages == Some(10)
            }),
            ("log.flush.interval.ms", "250", |c| {
                c.log.storage.flush_interval_ms == Some(250)
            }),
            ("log.index.interval.bytes", "128", |c| {
                c.log.storage.index_interval_bytes == 128
            }),
            ("log.index.size.max.bytes", "4096", |c| {
                c.log.storage.max_index_size == 4096
            }),
            ("log.retention.check.interval.ms", "1000", |c| {
                c.log_retention_check_interval_ms == 1000
            }),
            ("producer.id.expiration.ms", "60000", |c| {
                c.log.storage.producer_id_expiration_ms == 60_000
            }),
            ("log.cleanup.policy", "delete", |c| {
                c.log.storage.cleanup_policy_delete
            }),
            ("log.message.timestamp.type", "LogAppendTime", |c| {
                c.log.storage.timestamp_type == TimestampType::LogAppendTime
            }),
            ("message.max.bytes", "2000000", |c| {
                c.log.storage.max_message_bytes == 2_000_000
            }),
            ("min.insync.replicas", "2", |c| {
                c.log.min_insync_replicas == 2
            }),
            ("socket.request.max.bytes", "1000", |c| {
                c.socket_request_max_bytes == 1000
            }),
            ("offsets.topic.num.partitions", "3", |c| {
                c.offsets_topic_num_partitions == 3
            }),
            ("offsets.topic.replication.factor", "1", |c| {
                c.offsets_topic_replication_factor == 1
            }),
            ("offsets.topic.segment.bytes", "1024", |c| {
                c.offsets_topic_segment_bytes == 1024
            }),
            ("offsets.retention.minutes", "60", |c| {
                c.offsets_retention_minutes == 60
            }),
            ("group.initial.rebalance.delay.ms", "0", |c| {
                c.group_initial_rebalance_delay_ms == 0
            }),
            ("group.min.session.timeout.ms", "100", |c| {
                c.group_min_session_timeout_ms == 100
            }),
            ("group.max.session.timeout.ms", "9000", |c| {
                c.group_max_session_timeout_ms == 9000
            }),
            ("cluster.id", "MkU3OEVBNTcwNTJENDM2Qk", |c| {
                c.cluster_id.as_deref() == Some("MkU3OEVBNTcwNTJENDM2Qk")
            }),
            ("log.dirs", "/a, /b", |c| {
                c.log_dirs == [PathBuf::from("/a"), PathBuf::from("/b")]
            }),
            (
                "listeners",
                "PLAINTEXT://[::1]:9092,CONTROLLER://:9093",
                |c| c.listeners[0].host == "::1" && c.listeners[1].host.is_empty(),
            ),
            (
                "advertised.listeners",
                "PLAINTEXT://kafka.example.com:19092",
                |c| {
                    c.advertised_for("plaintext")
                        .map(|l| (l.host.as_str(), l.port))
                        == Some(("kafka.example.com", 19092))
                },
            ),
            (
                "controller.quorum.voters",
                "1@c-0:9093,2@c-1:9093,3@[::1]:9093",
                |c| {
                    c.controller_quorum_voters.len() == 3
                        && c.controller_quorum_voters[2].host == "::1"
                },
            ),
            (
                "controller.quorum.bootstrap.servers",
                "c-0:9093,c-1:9093",
                |c| {
                    c.controller_quorum_bootstrap_servers
                        == [
                            HostPort {
                                host: "c-0".into(),
                                port: 9093,
                            },
                            HostPort {
                                host: "c-1".into(),
                                port: 9093,
                            },
                        ]
                },
            ),
            ("num.io.threads", "8", |c| c.unknown_keys.is_empty()),
            ("num.network.threads", "3", |c| c.unknown_keys.is_empty()),
        ];
        for (key, value, check) in cases {
            let c = build(&[(key, value)]).unwrap_or_else(|e| panic!("{key}={value}: {e}"));
            assert!(check(&c), "{key}={value} parsed into {c:?}");
        }
    }

    #[test]
    fn log_dir_is_used_when_log_dirs_is_absent() {
        let c = build(&[("log.dirs", ""), ("log.dir", "/var/lib/sluice")]).unwrap();
        assert_eq!(c.log_dirs, [PathBuf::from("/var/lib/sluice")]);
        let c = build(&[("log.dirs", "/x"), ("log.dir", "/y")]).unwrap();
        assert_eq!(c.log_dirs, [PathBuf::from("/x")]);
    }

    #[test]
    fn retention_ms_beats_minutes_beats_hours() {
        // (log.retention.ms, .minutes, .hours, expected)
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<i64>,
        );
        let cases: &[Case] = &[
            (None, None, None, Some(168 * 3_600_000)),
            (None, None, Some("1"), Some(3_600_000)),
            (None, Some("2"), Some("1"), Some(120_000)),
            (Some("500"), Some("2"), Some("1"), Some(500)),
            (Some("-1"), Some("2"), Some("1"), None),
            (None, Some("-1"), Some("1"), None),
            (None, None, Some("-1"), None),
            (Some("0"), None, None, Some(0)),
        ];
        for &(ms, minutes, hours, expected) in cases {
            let mut changes = vec![];
            for (k, v) in [
                ("log.retention.ms", ms),
                ("log.retention.minutes", minutes),
                ("log.retention.hours", hours),
            ] {
                if let Some(v) = v {
                    changes.push((k, v));
                }
            }
            let c = build(&changes).unwrap();
            assert_eq!(c.log.storage.retention_ms, expected, "{changes:?}");
        }
    }

    #[test]
    fn malformed_values_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "log.segment.bytes",
                "abc",
                "invalid value \"abc\" for log.segment.bytes: expected an integer",
            ),
            ("log.segment.bytes", "1048575", "must be at least 1048576"),
            (
                "log.segment.bytes",
                "4294967296",
                "must be at most 2147483647",
            ),
            ("num.partitions", "0", "num.partitions"),
            (
                "default.replication.factor",
                "40000",
                "default.replication.factor",
            ),
            (
                "auto.create.topics.enable",
                "yes",
                "auto.create.topics.enable: expected true or false",
            ),
            ("log.retention.ms", "-2", "log.retention.ms"),
            ("log.retention.hours", "1.5", "log.retention.hours"),
            ("log.roll.hours", "0", "log.roll.hours"),
            (
                "log.flush.interval.messages",
                "0",
                "log.flush.interval.messages",
            ),
            ("log.index.size.max.bytes", "2", "log.index.size.max.bytes"),
            (
                "log.message.timestamp.type",
                "createtime",
                "log.message.timestamp.type",
            ),
            (
                "log.cleanup.policy",
                "compact",
                "compaction is not supported",
            ),
            ("message.max.bytes", "-5", "message.max.bytes"),
            (
                "offsets.topic.replication.factor",
                "0",
                "offsets.topic.replication.factor",
            ),
            ("process.roles", "broker,zookeeper", "process.roles"),
            ("process.roles", "broker,broker", "listed twice"),
            ("listeners", "PLAINTEXT:9092", "listeners"),
            ("listeners", "PLAINTEXT://h:99999", "listeners"),
            ("listeners", "PLAINTEXT://::1:9092", "listeners"),
            ("listeners", "A://h:1,a://h:2", "used twice"),
            (
                "listeners",
                "PLAINTEXT://a:9092,CONTROLLER://b:9092",
                "port 9092 is used by two",
            ),
            (
                "controller.quorum.voters",
                "1@h",
                "controller.quorum.voters",
            ),
            (
                "controller.quorum.voters",
                "x@h:1",
                "controller.quorum.voters",
            ),
            ("controller.quorum.voters", "1@h:1,1@g:2", "listed twice"),
            (
                "controller.quorum.bootstrap.servers",
                "nohost",
                "controller.quorum.bootstrap.servers",
            ),
            ("cluster.id", "has space", "cluster.id"),
            ("node.id", "one", "node.id"),
            ("node.id.offset", "-3", "node.id.offset"),
            ("log.dirs", ",", "log.dirs"),
            ("log.dirs", "/a,/a", "listed twice"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT",
                "listener.security.protocol.map",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:FOO",
                "unknown security protocol",
            ),
            (
                "group.min.session.timeout.ms",
                "2000000",
                "group.min.session.timeout.ms",
            ),
        ];
        for (key, value, needle) in cases {
            let err = build_err(&[(key, value)]);
            assert!(
                err.contains(key),
                "{key}={value}: error does not name the key: {err}"
            );
            assert!(err.contains(needle), "{key}={value}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_collected_not_rejected() {
        let c = build(&[
            ("socket.send.buffer.bytes", "1"),
            ("log.retention.hourz", "1"),
        ])
        .unwrap();
        assert_eq!(
            c.unknown_keys,
            ["log.retention.hourz", "socket.send.buffer.bytes"]
        );
    }

    #[test]
    fn unknown_keys_are_not_resolved() {
        // An ignored key must not stop the broker, even if it references a missing variable.
        let c = build(&[("some.plugin.key", "${env:MISSING}")]).unwrap();
        assert_eq!(c.unknown_keys, ["some.plugin.key"]);
    }

    #[test]
    fn environment_references_are_substituted() {
        let env = |name: &str| match name {
            "POD_NAME" => Some("sluice-broker-1".to_owned()),
            "DATA" => Some("/mnt/data".to_owned()),
            _ => None,
        };
        let props = props_with(&[
            (
                "advertised.listeners",
                "PLAINTEXT://${env:POD_NAME}.sluice:9092",
            ),
            (
                "log.dirs",
                "${env:DATA}/a,${env:OTHER:-/fallback}/b,${env:EMPTY:-}c",
            ),
            ("num.partitions", "${env:PARTS:-4}"),
        ]);
        let c = BrokerConfig::from_properties(&props, &env, "h").unwrap();
        assert_eq!(c.advertised_listeners[0].host, "sluice-broker-1.sluice");
        assert_eq!(
            c.log_dirs,
            [
                PathBuf::from("/mnt/data/a"),
                PathBuf::from("/fallback/b"),
                PathBuf::from("c")
            ]
        );
        assert_eq!(c.num_partitions, 4);
    }

    #[test]
    fn bad_environment_references_name_key_and_variable() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "log.dirs",
                "${env:DATA_DIR}",
                &["log.dirs", "DATA_DIR", "not set"],
            ),
            ("log.dirs", "${env:DATA_DIR", &["log.dirs", "unterminated"]),
            (
                "log.dirs",
                "${file:/x:y}",
                &["log.dirs", "unsupported reference ${file:/x:y}"],
            ),
            (
                "log.dirs",
                "${env:}",
                &["log.dirs", "empty environment variable name"],
            ),
            ("node.id", "${env:NODE_ID}", &["node.id", "NODE_ID"]),
            ("node.id", "${node.id}", &["node.id", "cannot be used here"]),
        ];
        for (key, value, needles) in cases {
            let err = build_err(&[(key, value)]);
            for needle in *needles {
                assert!(err.contains(needle), "{key}={value}: {err}");
            }
        }
    }

    #[test]
    fn node_id_is_derived_from_the_pod_ordinal() {
        let voters = "0@c:9093,1@c:9093,2@c:9093,3@c:9093,7@c:9093,12@c:9093,100@c:9093";
        // (hostname, node.id, node.id.offset, expected id or error text)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Result<i32, &'a str>,
        );
        let cases: &[Case] = &[
            ("sluice-broker-2", None, None, Ok(2)),
            ("sluice-broker-0", None, None, Ok(0)),
            ("sluice-broker-2", None, Some("10"), Ok(12)),
            ("sluice-broker-2", Some("auto"), Some("5"), Ok(7)),
            ("sluice-broker-3", Some("-1"), None, Ok(3)),
            (
                "sluice-broker-1.sluice.default.svc.cluster.local",
                None,
                None,
                Ok(1),
            ),
            ("sluice-broker-2", Some("100"), Some("10"), Ok(100)),
            ("sluice-broker", None, None, Err("sluice-broker")),
            ("broker-x", None, None, Err("broker-x")),
            ("broker-", None, None, Err("broker-")),
            ("", None, None, Err("cannot be derived")),
            ("b-2147483647", None, Some("1"), Err("exceeds")),
        ];
        for &(hostname, node_id, offset, expected) in cases {
            let mut props = props_with(&[("node.id", ""), ("controller.quorum.voters", voters)]);
            if let Some(id) = node_id {
                props.insert("node.id".into(), id.into());
            }
            if let Some(offset) = offset {
                props.insert("node.id.offset".into(), offset.into());
            }
            let result = BrokerConfig::from_properties(&props, &no_env, hostname);
            match (result, expected) {
                (Ok(c), Ok(id)) => assert_eq!(c.node_id, id, "{hostname}"),
                (Err(e), Err(needle)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains("node.id") && e.contains(needle),
                        "{hostname}: {e}"
                    );
                }
                (result, expected) => panic!("{hostname}: got {result:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn broker_id_is_an_alias_of_node_id() {
        let c = build(&[("node.id", ""), ("broker.id", "1")]).unwrap();
        assert_eq!(c.node_id, 1);
        let err = build_err(&[("node.id", "1"), ("broker.id", "2")]);
        assert!(
            err.contains("broker.id") && err.contains("node.id"),
            "{err}"
        );
    }

    #[test]
    fn node_id_can_be_referenced_in_other_values() {
        let env = |name: &str| (name == "NS").then(|| "prod".to_owned());
        let props = props_with(&[
            ("node.id", ""),
            ("log.dirs", "/data/node-${node.id}"),
            (
                "controller.quorum.voters",
                "0@c-0:9093,1@c-1:9093,2@c-2:9093",
            ),
            (
                "advertised.listeners",
                "PLAINTEXT://sluice-${node.id}.${env:NS}.example.com:${env:PORT:-9092}",
            ),
        ]);
        let c = BrokerConfig::from_properties(&props, &env, "sluice-2").unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.log_dirs, [PathBuf::from("/data/node-2")]);
        assert_eq!(
            c.advertised_listeners[0].to_string(),
            "PLAINTEXT://sluice-2.prod.example.com:9092"
        );
    }

    #[test]
    fn cross_field_rules_are_enforced() {
        let broker_only = [
            ("process.roles", "broker"),
            ("listeners", "PLAINTEXT://:9092"),
            ("controller.quorum.voters", "1@c:9093"),
        ];
        let controller_only = [
            ("process.roles", "controller"),
            ("listeners", "CONTROLLER://:9093"),
        ];
        assert!(build(&broker_only).is_ok());
        assert!(build(&controller_only).is_ok());
        // (changes, key named in the error, error text)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (&[("process.roles", "")], "process.roles", "is required"),
            (
                &[("controller.listener.names", "")],
                "controller.listener.names",
                "is required",
            ),
            (
                &[("controller.listener.names", "CTRL")],
                "controller.listener.names",
                "CTRL is not defined in listeners",
            ),
            (
                &[("controller.quorum.voters", "2@c:9093")],
                "controller.quorum.voters",
                "node.id 1",
            ),
            (
                &[("controller.quorum.voters", "")],
                "controller.quorum.voters",
                "controller.quorum.bootstrap.servers",
            ),
            (
                &[("listeners", "CONTROLLER://:9093")],
                "listeners",
                "at least one listener must not be a controller listener",
            ),
            (
                &[("process.roles", "controller")],
                "listeners",
                "PLAINTEXT is not a controller listener",
            ),
            (
                &[("process.roles", "broker")],
                "listeners",
                "must not contain controller listener CONTROLLER",
            ),
            (
                &[
                    ("process.roles", "broker"),
                    ("listeners", "PLAINTEXT://:9092"),
                    ("controller.quorum.voters", ""),
                ],
                "controller.quorum.voters",
                "controller.quorum.bootstrap.servers",
            ),
            (
                &[("advertised.listeners", "EXTERNAL://x:1")],
                "advertised.listeners",
                "EXTERNAL is not defined in listeners",
            ),
            (
                &[("listeners", "PLAINTEXT://0.0.0.0:9092,CONTROLLER://:9093")],
                "advertised.listeners",
                "wildcard address 0.0.0.0",
            ),
            (
                &[("advertised.listeners", "PLAINTEXT://[::]:9092")],
                "advertised.listeners",
                "wildcard address ::",
            ),
            (
                &[("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT")],
                "listener.security.protocol.map",
                "no entry for listener CONTROLLER",
            ),
        ];
        for (changes, key, needle) in cases {
            let err = build_err(changes);
            assert!(
                err.contains(key) && err.contains(needle),
                "{changes:?}: {err}"
            );
        }
        // The broker-only node may rely on bootstrap servers instead of static voters.
        let mut dynamic = broker_only.to_vec();
        dynamic[2] = ("controller.quorum.bootstrap.servers", "c:9093");
        dynamic.push(("controller.quorum.voters", ""));
        assert!(build(&dynamic).is_ok());
        // A broker-only node dials an SSL controller listener it does not serve with that
        // listener's keys.
        let mut tls_controller = broker_only.to_vec();
        tls_controller.extend([
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
            ),
            (
                "listener.name.controller.ssl.keystore.location",
                "/etc/node.pem",
            ),
        ]);
        let c = build(&tls_controller).unwrap();
        assert_eq!(c.tls.keys().collect::<Vec<_>>(), ["CONTROLLER"]);
        let err = crate::outbound::outbound(&c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("listener.name.controller.ssl.truststore.location"),
            "{err}"
        );
    }

    #[test]
    fn ssl_listeners_serve_clients_and_replication() {
        let listeners = (
            "listeners",
            "PLAINTEXT://:9092,SSL://:9094,CONTROLLER://:9093",
        );
        let map = (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
        );
        let keystore = ("listener.name.ssl.ssl.keystore.location", "/etc/broker.pem");
        let c = build(&[listeners, map, keystore, ("ssl.client.auth", "none")]).unwrap();
        assert_eq!(c.tls.keys().collect::<Vec<_>>(), ["SSL"]);
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
        // Replication speaks TLS (the node dials with its own certificate; `tls::outbound` checks the
        // truststore at start-up) but not SASL yet.
        let c = build(&[
            listeners,
            map,
            keystore,
            ("inter.broker.listener.name", "SSL"),
        ])
        .unwrap();
        let err = crate::outbound::outbound(&c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("listener.name.ssl.ssl.truststore.location"),
            "{err}"
        );
        // SASL between brokers: the mechanism to dial with, and its credentials, are named when missing.
        let sasl_err = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                listeners,
                (
                    "listener.security.protocol.map",
                    "PLAINTEXT:PLAINTEXT,SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
                ),
                keystore,
                ("listener.name.ssl.ssl.truststore.location", "/etc/ca.pem"),
                ("sasl.enabled.mechanisms", "PLAIN"),
                ("inter.broker.listener.name", "SSL"),
            ];
            pairs.extend_from_slice(extra);
            let c = build(&pairs).unwrap();
            crate::outbound::outbound(&c)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let jaas = |j: &'static str| ("listener.name.ssl.plain.sasl.jaas.config", j);
        let servers_only =
            jaas("org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\";");
        assert!(sasl_err(&[servers_only]).contains("sasl.mechanism.inter.broker.protocol"));
        let err = sasl_err(&[
            servers_only,
            ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
        ]);
        assert!(
            err.contains("listener.name.ssl.plain.sasl.jaas.config") && err.contains("username"),
            "{err}"
        );
        // An SSL listener without a certificate names the key to set.
        assert!(build_err(&[listeners, map]).contains("ssl.keystore.location"));
        // SASL_SSL needs both a certificate and SASL mechanisms.
        let err = build_err(&[
            listeners,
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            ),
            keystore,
        ]);
        assert!(err.contains("sasl.enabled.mechanisms"), "{err}");
        let c = build(&[
            listeners,
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            ),
            keystore,
            ("sasl.enabled.mechanisms", "PLAIN"),
            (
                "listener.name.ssl.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\";",
            ),
        ])
        .unwrap();
        assert!(c.tls.contains_key("SSL") && c.sasl.contains_key("SSL"));
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    }

    #[test]
    fn security_map_may_name_unused_protocols() {
        // Kafka's sample server.properties lists every protocol.
        let map = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";
        build(&[("listener.security.protocol.map", map)]).unwrap();
    }

    #[test]
    fn advertised_listeners_default_to_client_listeners_with_the_host_name() {
        let c = build(&[
            (
                "listeners",
                "PLAINTEXT://:9092,INTERNAL://10.0.0.1:9094,CONTROLLER://:9093",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
        ])
        .unwrap();
        let advertised: Vec<String> = c
            .advertised_listeners
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(
            advertised,
            ["PLAINTEXT://testhost:9092", "INTERNAL://10.0.0.1:9094"]
        );
        assert_eq!(c.advertised_for("internal").map(|l| l.port), Some(9094));
        assert_eq!(c.advertised_for("CONTROLLER"), None);
        assert_eq!(c.client_listeners().len(), 2);
        assert_eq!(c.listeners[0].bind_address(), "0.0.0.0:9092");
    }

    #[test]
    fn ipv6_listeners_keep_brackets_where_needed() {
        let c = build(&[(
            "listeners",
            "PLAINTEXT://[::1]:9092,CONTROLLER://127.0.0.1:9093",
        )])
        .unwrap();
        assert_eq!(c.listeners[0].host, "::1");
        assert_eq!(c.listeners[0].bind_address(), "[::1]:9092");
        assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://[::1]:9092");
    }

    #[test]
    fn load_applies_overrides_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.properties");
        std::fs::write(
            &path,
            "# a Kafka file\nprocess.roles=broker,controller\nnode.id=1\n\
             listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
             controller.listener.names=CONTROLLER\ncontroller.quorum.voters=1@127.0.0.1:9093\n\
             log.dirs=/tmp/a\nnum.partitions=3\nlog.retention.hours=24\nnum.io.threads=8\n",
        )
        .unwrap();
        let c = BrokerConfig::load(Some(&path), &[]).unwrap();
        assert_eq!(
            (c.num_partitions, c.log.storage.retention_ms),
            (3, Some(86_400_000))
        );
        let overrides = [
            "num.partitions=5".to_owned(),
            " log.retention.ms = 1000 ".to_owned(),
            "num.partitions=6".to_owned(),
        ];
        let c = BrokerConfig::load(Some(&path), &overrides).unwrap();
        assert_eq!(
            (c.num_partitions, c.log.storage.retention_ms),
            (6, Some(1000))
        );
        assert!(c.unknown_keys.is_empty());
    }

    #[test]
    fn load_without_a_file_uses_embedded_defaults() {
        let c = BrokerConfig::load(None, &["log.dirs=/tmp/x".to_owned()]).unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(c.log_dirs, [PathBuf::from("/tmp/x")]);
    }

    #[test]
    fn load_errors_name_the_file_or_override() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.properties");
        let err = BrokerConfig::load(Some(&missing), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.properties"), "{err}");

        let bad = dir.path().join("bad.properties");
        std::fs::write(&bad, "a=1\nb=\\uZZZZ\n").unwrap();
        let err = BrokerConfig::load(Some(&bad), &[]).unwrap_err().to_string();
        assert!(
            err.contains("bad.properties") && err.contains("line 2"),
            "{err}"
        );

        let err = BrokerConfig::load(None, &["num.partitions".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--override \"num.partitions\""), "{err}");
    }

    #[test]
    fn topic_configs_are_validated_naming_the_key() {
        let ok: &[(&str, &str)] = &[
            ("retention.ms", "-1"),
            ("retention.ms", "0"),
            ("retention.bytes", "-1"),
            ("segment.bytes", "1048576"),
            ("segment.ms", "1"),
            ("cleanup.policy", "delete"),
            ("max.message.bytes", "0"),
            ("message.timestamp.type", "LogAppendTime"),
            ("flush.messages", "1"),
            ("flush.ms", "0"),
            ("min.insync.replicas", "2"),
            ("segment.index.bytes", "4"),
            ("index.interval.bytes", "0"),
        ];
        for (name, value) in ok {
            validate_topic_config(name, value).unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        }
        let bad: &[(&str, &str, &str)] = &[
            ("retention.ms", "-2", "must be at least -1"),
            ("retention.bytes", "x", "expected an integer"),
            ("segment.bytes", "1048575", "must be at least 1048576"),
            ("segment.bytes", "2147483648", "must be at most"),
            ("segment.ms", "0", "must be at least 1"),
            ("cleanup.policy", "compact", "compaction is not supported"),
            (
                "cleanup.policy",
                "delete,compact",
                "compaction is not supported",
            ),
            ("cleanup.policy", "", "expected delete"),
            ("max.message.bytes", "-1", "must be at least 0"),
            (
                "message.timestamp.type",
                "Now",
                "expected CreateTime or LogAppendTime",
            ),
            ("flush.messages", "0", "must be at least 1"),
            ("min.insync.replicas", "0", "must be at least 1"),
            ("segment.index.bytes", "3", "must be at least 4"),
            ("index.interval.bytes", "-1", "must be at least 0"),
            ("compression.type", "gzip", "unknown topic config"),
        ];
        for (name, value, needle) in bad {
            let err = validate_topic_config(name, value).unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains(needle),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn topic_overrides_apply_over_broker_defaults() {
        let broker = build(&[
            ("log.segment.bytes", "5000000"),
            ("message.max.bytes", "100"),
        ])
        .unwrap();
        let overrides: BTreeMap<String, String> = [
            ("retention.ms", "-1"),
            ("retention.bytes", "1000"),
            ("segment.ms", "60000"),
            ("flush.messages", "9223372036854775807"),
            ("flush.ms", "10"),
            ("message.timestamp.type", "LogAppendTime"),
            ("min.insync.replicas", "2"),
            ("unclean.leader.election.enable", "true"),
            ("leader.replication.throttled.replicas", "0:1, 1:2"),
            ("follower.replication.throttled.replicas", "*"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let log = topic_log_defaults(&broker.log_defaults(), &overrides).unwrap();
        assert_eq!(
            log,
            LogDefaults {
                storage: LogConfig {
                    segment_bytes: 5000000,
                    segment_ms: Some(60_000),
                    retention_ms: None,
                    retention_bytes: Some(1000),
                    flush_interval_messages: None,
                    flush_interval_ms: Some(10),
                    max_message_bytes: 100,
                    timestamp_type: TimestampType::LogAppendTime,
                    ..LogDefaults::default().storage
                },
                min_insync_replicas: 2,
                unclean_leader_election_enable: true,
                leader_throttled_replicas: "0:1,1:2".into(),
                follower_throttled_replicas: "*".into(),
            }
        );
        assert!(
            is_throttled("0:1,1:2", 1, 2)
                && !is_throttled("0:1,1:2", 1, 1)
                && is_throttled("*", 5, 5)
        );
        assert!(!is_throttled("", 0, 0));
        for bad in ["1", "a:b", "1:2,", ":"] {
            assert!(
                validate_topic_config("leader.replication.throttled.replicas", bad).is_err(),
                "{bad}"
            );
        }
        let bad: BTreeMap<String, String> = [("segment.bytes".to_owned(), "1".to_owned())]
            .into_iter()
            .collect();
        let err = topic_log_defaults(&broker.log_defaults(), &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("segment.bytes"), "{err}");
    }

    #[test]
    fn describe_topic_config_reports_value_and_source() {
        let broker = build(&[
            ("log.retention.hours", "24"),
            ("log.segment.bytes", "5000000"),
        ])
        .unwrap();
        let overrides: BTreeMap<String, String> =
            [("max.message.bytes".to_owned(), "2000".to_owned())]
                .into_iter()
                .collect();
        let entries = describe_topic_config(&broker, &DynamicConfigs::default(), &overrides);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let all: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        assert_eq!(names, all);
        let find = |name: &str| entries.iter().find(|e| e.name == name).unwrap();
        let cases: &[(&str, &str, ConfigSource)] = &[
            ("max.message.bytes", "2000", ConfigSource::TopicConfig),
            ("retention.ms", "86400000", ConfigSource::StaticBroker),
            ("segment.bytes", "5000000", ConfigSource::StaticBroker),
            ("segment.ms", "604800000", ConfigSource::Default),
            ("retention.bytes", "-1", ConfigSource::Default),
            ("flush.messages", LONG_MAX, ConfigSource::Default),
            ("flush.ms", LONG_MAX, ConfigSource::Default),
            ("cleanup.policy", "delete", ConfigSource::Default),
            (
                "message.timestamp.type",
                "CreateTime",
                ConfigSource::Default,
            ),
            ("min.insync.replicas", "1", ConfigSource::Default),
            ("segment.index.bytes", "10485760", ConfigSource::Default),
            ("index.interval.bytes", "4096", ConfigSource::Default),
        ];
        for (name, value, source) in cases {
            let e = find(name);
            assert_eq!(
                (e.value.as_deref(), e.source),
                (Some(*value), *source),
                "{name}"
            );
            assert_eq!(e.is_default, *source == ConfigSource::Default, "{name}");
            assert!(!e.read_only && !e.sensitive);
        }
    }

    #[test]
    fn describe_broker_config_lists_every_key() {
        let props = props_with(&[
            ("node.id", ""),
            ("num.partitions", "4"),
            ("controller.quorum.voters", "3@c:9093"),
        ]);
        let c = BrokerConfig::from_properties(&props, &no_env, "sluice-3").unwrap();
        let entries = c.describe_broker_config();
        assert_eq!(entries.len(), BROKER_KEYS.len());
        let find = |name: &str| entries.iter().find(|e| e.name == name).unwrap();
        assert_eq!(find("node.id").value.as_deref(), Some("3"));
        let partitions = find("num.partitions");
        assert_eq!(
            (
                partitions.value.as_deref(),
                partitions.source,
                partitions.is_default
            ),
            (Some("4"), ConfigSource::StaticBroker, false)
        );
        let segment = find("log.segment.bytes");
        assert_eq!(
            (
                segment.value.as_deref(),
                segment.source,
                segment.config_type
            ),
            (Some("1073741824"), ConfigSource::Default, ConfigType::Int)
        );
        assert_eq!(find("log.retention.ms").value, None);
        assert!(entries.iter().all(|e| e.read_only && !e.sensitive));
    }

    #[test]
    fn wire_ids_match_kafka() {
        assert_eq!(ConfigSource::TopicConfig.kafka_id(), 1);
        assert_eq!(ConfigSource::StaticBroker.kafka_id(), 4);
        assert_eq!(ConfigSource::Default.kafka_id(), 5);
        assert_eq!(ConfigType::Long.kafka_id(), 5);
        assert_eq!(ConfigType::List.kafka_id(), 7);
    }
}
