//! The broker: its state, its start-up and its shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use sluice_quorum::{MetadataBatch, ProposeError};
use sluice_storage::{Log, LogConfig, LogManager, StoredRecord, TopicPartition};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use crate::bootstrap::Format;
use crate::config::{BrokerConfig, Listener, LogDefaults};
use crate::dynamic_config::DynamicConfigs;
use crate::error::Error;
use crate::fetch_waiters::FetchWaiters;
use crate::group::{GroupConfig, GroupCoordinator, GroupError, OffsetLog};
use crate::meta_properties;
use crate::metadata;
use crate::metadata::{
    CONSUMER_OFFSETS, METADATA_TOPIC, MetadataImage, MetadataRecord, MetadataStore,
};
use crate::network;
use crate::publisher;
use crate::request_memory::RequestMemory;

pub use crate::metadata::now_ms;

/// How many producer ids one metadata write reserves.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// How long a metadata change may take to commit through the quorum (cut short by the quorum when it has no
/// majority).
pub(crate) const METADATA_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a request handler can reach.
pub struct Broker {
    pub config: BrokerConfig,
    /// How this node dials other nodes' listeners, by listener name (`tls::outbound`); absent: in the clear.
    pub outbound: BTreeMap<String, sluice_kafka_client::Security>,
    pub cluster_id: String,
    pub node_id: i32,
    pub logs: Arc<LogManager>,
    pub metadata: MetadataStore,
    pub groups: Arc<GroupCoordinator>,
    /// Long-polling fetches, woken by appends to their partitions.
    pub fetch_waiters: FetchWaiters,
    /// Where clients reach this broker: (host, port) of its first advertised client listener.
    pub advertised: (String, i32),
    /// Request bytes held across all connections (`queued.max.request.bytes`).
    pub request_memory: RequestMemory,
    /// Byte-rate quotas: what each (user, client id) produced and fetched lately.
    pub quotas: crate::quotas::QuotaManager,
    /// `max.connections` and `max.connections.per.ip`, across every listener.
    pub connection_limits: Arc<crate::connection_limits::ConnectionLimits>,
    /// The controller service, on a node that is a voter of a controller quorum.
    pub controller: Option<Arc<crate::controller::Controller>>,
    /// The way to the active controller, on a node whose metadata is the quorum's.
    pub channel: Option<crate::controller_channel::ControllerChannel>,
    /// Compressed produce batches being validated at once. A decoder's memory is set by the batch's own
    /// header (zstd's window, up to 16 MiB, lz4's block size, up to 4 MiB), not by its size, so without a
    /// bound a crowd of connections sending tiny compressed batches would cost that much each. Validation is
    /// CPU-bound, so more at once than twice the cores gains nothing.
    pub decompressions: tokio::sync::Semaphore,
    /// The partitions hosted here, leading or following.
    pub replicas: crate::replica::ReplicaManager,
    /// The epoch of this broker's registration with the controller (-1 before it registered).
    broker_epoch: AtomicI64,
    /// This broker itself, for the tasks it starts (replica fetchers) without owning it.
    me: Weak<Broker>,
    /// Whether client requests are served yet. In a cluster a broker serves them once the controller has
    /// unfenced it, as Kafka opens its client listeners only then: before, it knows no brokers and no leaders,
    /// and a client told so gives up on it. (The quorum's own messages are served from the start.)
    serving: watch::Sender<bool>,
}

/// How many compressed batches are validated at once: twice the cores the process may use.
pub fn decompression_slots() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Broker {
    /// Format the data directories if they are empty, recover the logs, replay the metadata, and make sure every
    /// partition the metadata names has a log.
    pub fn open(config: BrokerConfig, cluster_id: Option<&str>) -> Result<Arc<Broker>, Error> {
        Self::open_with(config, cluster_id, None)
    }

    /// As `open`, with the metadata from `quorum` (already started) instead of a local log.
    fn open_with(
        config: BrokerConfig,
        cluster_id: Option<&str>,
        quorum: Option<Arc<sluice_quorum::QuorumNode>>,
    ) -> Result<Arc<Broker>, Error> {
        let dirs = config.log_dirs.clone();
        let meta = meta_properties::ensure_formatted(
            &dirs,
            config.node_id,
            cluster_id.or(config.cluster_id.as_deref()),
        )?;
        let defaults = config.log.storage.clone();
        let (logs, metadata) = match &quorum {
            None => {
                let logs = Arc::new(LogManager::open(&dirs, defaults.clone())?);
                let metadata_log = logs.get_or_create(
                    &TopicPartition {
                        topic: METADATA_TOPIC.into(),
                        partition: 0,
                    },
                    LogConfig {
                        retention_ms: None,
                        retention_bytes: None,
                        segment_bytes: 64 << 20,
                        ..defaults.clone()
                    },
                )?;
                (logs, MetadataStore::open(metadata_log, config.node_id)?)
            }
            Some(node) => {
                let logs = Arc::new(LogManager::open_except(
                    &dirs,
                    defaults.clone(),
                    Some(METADATA_TOPIC),
                )?);
                let image = node.published_image();
                (logs, MetadataStore::raft(node.clone(), image))
            }
        };
        let (controller, channel) = match &quorum {
            None => (None, None),
            Some(_) => {
                let bootstrap = config
                    .controller_quorum_voters
                    .iter()
                    .map(|v| crate::config::join_host_port(&v.host, v.port))
                    .chain(
                        config
                            .controller_quorum_bootstrap_servers
                            .iter()
                            .map(|s| crate::config::join_host_port(&s.host, s.port)),
                    )
                    .collect();
                (
                    config.process_roles.controller.then(|| {
                        Arc::new(crate::controller::Controller::new(
                            config.broker_session_timeout_ms,
                            config.unclean_leader_election_enable,
                            config.node_id,
                        ))
                    }),
                    Some(crate::controller_channel::ControllerChannel::new(bootstrap)),
                )
            }
        };

        // A controller-only node has no client listener; it names itself by its controller listener.
        let advertised = if config.process_roles.broker {
            config
                .client_listeners()
                .first()
                .and_then(|l| config.advertised_for(&l.name))
                .map(|l| (l.host.clone(), l.port as i32))
                .ok_or_else(|| Error::Config {
                    key: "advertised.listeners".into(),
                    message:
                        "no advertised client listener (every listener is a controller listener)"
                            .into(),
                })?
        } else {
            config
                .controller_listeners()
                .first()
                .map(|l| (l.host.clone(), l.port as i32))
                .unwrap_or_default()
        };

        let config_queued_max = config.queued_max_request_bytes;
        let config_limits = config.connection_limits.clone();
        let outbound = crate::outbound::outbound(&config)?;
        let config_quota_windows = config.quota_windows;
        let replica_config = config.replica.clone();
        let uses_quorum = quorum.is_some();
        let node_id = config.node_id;
        Ok(Arc::new_cyclic(|me: &Weak<Broker>| {
            let offsets_log = Arc::new(OffsetsLog { broker: me.clone() });
            let groups = GroupCoordinator::new(
                GroupConfig {
                    initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms.into(),
                    min_session_timeout_ms: clamp_i32(config.group_min_session_timeout_ms),
                    max_session_timeout_ms: clamp_i32(config.group_max_session_timeout_ms),
                    offsets_retention_ms: (config.offsets_retention_minutes * 60_000) as i64,
                    num_offsets_partitions: config.offsets_topic_num_partitions,
                },
                offsets_log,
            );
            Broker {
                node_id: config.node_id,
                cluster_id: meta.cluster_id,
                config,
                logs,
                metadata,
                groups,
                fetch_waiters: FetchWaiters::default(),
                advertised,
                outbound,
                quotas: crate::quotas::QuotaManager::new(config_quota_windows),
                request_memory: RequestMemory::new(config_queued_max),
                connection_limits: crate::connection_limits::ConnectionLimits::new(config_limits),
                controller,
                channel,
                decompressions: tokio::sync::Semaphore::new(decompression_slots()),
                replicas: crate::replica::ReplicaManager::new(node_id, replica_config),
                broker_epoch: AtomicI64::new(-1),
                me: me.clone(),
                serving: watch::channel(!uses_quorum).0,
            }
        }))
        .and_then(|broker| broker.finish_open())
    }

    /// The part of opening that needs the broker itself: logs for every partition placed here, and their roles.
    fn finish_open(self: Arc<Broker>) -> Result<Arc<Broker>, Error> {
        let broker = self;
        if broker.config.process_roles.broker {
            // On a quorum, the offsets topic is created through the controller on first use (FindCoordinator).
            if broker.metadata.quorum().is_none() {
                broker.ensure_offsets_topic()?;
            }
            publisher::reconcile(&broker, &broker.metadata.image())?;
        }
        info!(node_id = broker.node_id, cluster_id = %broker.cluster_id, "broker ready");
        Ok(broker)
    }

    /// The record that creates `__consumer_offsets` over `brokers`. Committed offsets are kept forever until
    /// compaction exists: time or size retention would drop the offsets of idle groups silently.
    fn offsets_topic_record(&self, brokers: &[i32]) -> Result<MetadataRecord, Error> {
        let configs = BTreeMap::from([
            ("retention.ms".to_string(), "-1".to_string()),
            (
                "segment.bytes".to_string(),
                self.config.offsets_topic_segment_bytes.to_string(),
            ),
        ]);
        let partitions = self.config.offsets_topic_num_partitions;
        let configured = self.config.offsets_topic_replication_factor;
        let live = i16::try_from(brokers.len()).unwrap_or(i16::MAX);
        // A single node hosts it alone. A cluster waits for as many live brokers as the replication factor,
        // as Kafka does: created early with fewer, committed offsets would stay under-replicated for good.
        let replication = if self.metadata.quorum().is_none() {
            configured.min(live).max(1)
        } else if live < configured {
            return Err(Error::NotEnoughBrokers(format!(
                "{live} live brokers do not meet the replication factor {configured} of {CONSUMER_OFFSETS} \
                 (offsets.topic.replication.factor); groups wait until enough brokers have registered"
            )));
        } else {
            configured
        };
        let placeable: Vec<(i32, Option<String>)> = self
            .placeable_brokers()
            .into_iter()
            .filter(|(id, _)| brokers.contains(id))
            .collect();
        let assignment =
            sluice_metadata::placement::place_on_racks(&placeable, 0, partitions, replication, 0)
                .map_err(|e| Error::Metadata(format!("placing {CONSUMER_OFFSETS}: {e}")))?;
        Ok(MetadataRecord::TopicCreated {
            name: CONSUMER_OFFSETS.into(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor: replication,
            configs,
            internal: true,
            assignment,
        })
    }

    fn ensure_offsets_topic(&self) -> Result<(), Error> {
        if self.metadata.image().topics.contains_key(CONSUMER_OFFSETS) {
            return Ok(());
        }
        let record = self.offsets_topic_record(&[self.node_id])?;
        self.commit_local(&[record]).map(|_| ())
    }

    /// Creates `__consumer_offsets` if nobody has yet (Kafka does it on the first FindCoordinator), through
    /// the active controller.
    pub async fn create_offsets_topic(&self) -> Result<(), Error> {
        if self.is_active_controller() {
            let _w = self.metadata.write_lock().await;
            if self.metadata.image().topics.contains_key(CONSUMER_OFFSETS) {
                return Ok(());
            }
            let brokers: Vec<i32> = self.placeable_brokers().iter().map(|b| b.0).collect();
            let record = self.offsets_topic_record(&brokers)?;
            return self.propose(vec![record]).await.map(|_| ());
        }
        self.create_topic_at_controller(CONSUMER_OFFSETS, -1, -1)
            .await
            .map(|_| ())
    }

    /// Asks the active controller, elsewhere, to create `name` (-1: its defaults), as Kafka's brokers do for
    /// topics they create on use; answers the topic's error code (0, or TOPIC_ALREADY_EXISTS when another
    /// broker was first) once this node's image has what the controller committed.
    pub async fn create_topic_at_controller(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<i16, Error> {
        let Some(channel) = &self.channel else {
            return Err(Error::NotController(
                "no controller quorum to create topics through".into(),
            ));
        };
        use kafka_protocol::messages::create_topics_request::CreatableTopic;
        let body = kafka_protocol::messages::CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(kafka_protocol::messages::TopicName(
                        kafka_protocol::protocol::StrBytes::from_string(name.to_string()),
                    ))
                    .with_num_partitions(partitions)
                    .with_replication_factor(replication_factor),
            ])
            .with_timeout_ms(30_000);
        let request = sluice_protocol::Request {
            header: kafka_protocol::messages::RequestHeader::default()
                .with_request_api_key(kafka_protocol::messages::ApiKey::CreateTopics as i16)
                .with_request_api_version(7)
                .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_static_str(
                    "sluice-broker",
                ))),
            api_key: kafka_protocol::messages::ApiKey::CreateTopics,
            version: 7,
            body: kafka_protocol::messages::RequestKind::CreateTopics(body),
        };
        match channel.forward(self, &request, None).await? {
            kafka_protocol::messages::ResponseKind::CreateTopics(resp) => {
                Ok(resp.topics.first().map_or(0, |t| t.error_code))
            }
            other => Err(Error::Metadata(format!(
                "the controller answered CreateTopics with {other:?}"
            ))),
        }
    }

    /// Commits `records` to the metadata log and brings this node's logs in line; answers the offset of the
    /// last record. Callers validate against `metadata.image()` while holding `metadata.write_lock()`.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<i64, Error> {
        let Some(quorum) = self.metadata.quorum() else {
            return self.commit_local(&records);
        };
        let offset = quorum
            .propose(MetadataBatch { records }, METADATA_WRITE_TIMEOUT)
            .await
            .map_err(|e| match e {
                ProposeError::NotLeader { leader, .. } => Error::NotController(format!(
                    "node {} is not the active controller (the leader is {leader:?})",
                    self.node_id
                )),
                ProposeError::Timeout(_) => Error::Timeout(e.to_string()),
                e @ (ProposeError::Stopped(_)
                | ProposeError::DuplicateVoter(_)
                | ProposeError::VoterNotFound(_)
                | ProposeError::Invalid(_)) => Error::Metadata(e.to_string()),
            })? as i64;
        // Answer once this node's logs and image have the change, as with the local log.
        if !self
            .metadata
            .wait_installed(offset, METADATA_WRITE_TIMEOUT)
            .await
        {
            return Err(Error::Timeout(format!(
                "metadata offset {offset} committed but not applied here in time"
            )));
        }
        Ok(offset)
    }

    /// Whether metadata changes are decided here: a single node always; on a quorum, its leader.
    pub fn is_active_controller(&self) -> bool {
        match &self.controller {
            Some(controller) => controller.is_active(self),
            None => self.metadata.quorum().is_none(),
        }
    }

    fn commit_local(&self, records: &[MetadataRecord]) -> Result<i64, Error> {
        let (before, after) = self.metadata.commit(records)?;
        publisher::publish(self, &before, &after)?;
        Ok(after.offset)
    }

    /// The brokers clients may use, as Metadata and DescribeCluster list them: (id, host, port, rack) on the
    /// listener named `listener` (the one the request came in on), or each broker's first if it has none by
    /// that name.
    pub fn live_endpoints(&self, listener: &str) -> Vec<(i32, String, i32, Option<String>)> {
        let image = self.metadata.image();
        // A single node on its local log lists itself. A node of a quorum lists only what the controllers
        // registered: before its own registration is in, listing itself would let a client (or a second
        // process under the same id) take it for a member of the cluster.
        if self.metadata.quorum().is_none() && image.brokers.is_empty() {
            // The listener the client came in on: a client on the SSL listener must be sent back to it.
            let (host, port) = match self.config.advertised_for(listener) {
                Some(l) => (l.host.clone(), i32::from(l.port)),
                None => self.advertised.clone(),
            };
            return vec![(self.node_id, host, port, None)];
        }
        image
            .live_brokers()
            .filter_map(|b| {
                let r = &b.registration;
                let endpoint = r
                    .listeners
                    .iter()
                    .find(|l| l.name == listener)
                    .or_else(|| r.listeners.first())?;
                Some((
                    r.broker_id,
                    endpoint.host.clone(),
                    i32::from(endpoint.port),
                    r.rack.clone(),
                ))
            })
            .collect()
    }

    /// The brokers new replicas may go to, with their racks.
    pub fn placeable_brokers(&self) -> Vec<(i32, Option<String>)> {
        let image = self.metadata.image();
        if self.metadata.quorum().is_none() && image.brokers.is_empty() {
            // A single node on its local log: nobody registers, and this node hosts everything.
            return vec![(self.node_id, self.config.broker_rack.clone())];
        }
        image
            .live_brokers()
            .map(|b| (b.registration.broker_id, b.registration.rack.clone()))
            .collect()
    }

    /// Replicas for partitions `first..first + count` of a topic: over the live brokers, across racks when they
    /// have them, the topic's rotation starting at `start` (a random broker for a new topic).
    pub fn place(
        &self,
        first: i32,
        count: i32,
        replication_factor: i16,
        start: usize,
    ) -> Result<Vec<Vec<i32>>, sluice_metadata::placement::NotEnoughBrokers> {
        sluice_metadata::placement::place_on_racks(
            &self.placeable_brokers(),
            first,
            count,
            replication_factor,
            start,
        )
    }

    /// A producer id never handed out before, in this process or an earlier one, by this node or another.
    pub async fn allocate_producer_id(&self) -> Result<i64, Error> {
        {
            let mut ids = self.metadata.producer_ids.lock();
            if ids.0 < ids.1 {
                ids.0 += 1;
                return Ok(ids.0 - 1);
            }
        }
        let start = match &self.channel {
            Some(channel) if !self.is_active_controller() => {
                let req = kafka_protocol::messages::AllocateProducerIdsRequest::default()
                    .with_broker_id(kafka_protocol::messages::BrokerId(self.node_id));
                let resp = channel
                    .call(self, &req, crate::controller_channel::CALL_TIMEOUT)
                    .await?;
                if resp.error_code != 0 {
                    return Err(Error::Metadata(format!(
                        "the controller gave no producer ids: error {}",
                        resp.error_code
                    )));
                }
                resp.producer_id_start.0
            }
            _ => self.reserve_producer_ids().await?,
        };
        let mut ids = self.metadata.producer_ids.lock();
        *ids = (start + 1, start + PRODUCER_ID_BLOCK);
        Ok(start)
    }

    /// On the deciding node: a block of `PRODUCER_ID_BLOCK` ids nobody has had, recorded before it is given out.
    pub async fn reserve_producer_ids(&self) -> Result<i64, Error> {
        let _w = self.metadata.write_lock().await;
        let reserved = self.metadata.producer_ids.lock().1;
        let start = self.metadata.image().next_producer_id.max(reserved);
        self.propose(vec![MetadataRecord::ProducerIdsAllocated {
            next: start + PRODUCER_ID_BLOCK,
        }])
        .await?;
        Ok(start)
    }

    /// This broker's log defaults under `image`: the file's, with the dynamic broker configs on top.
    pub fn log_defaults(&self, image: &MetadataImage) -> LogDefaults {
        DynamicConfigs::of(image, self.node_id).log_defaults(&self.config.log)
    }

    /// The log settings of a topic under `image`: this broker's log defaults with the topic's overrides on top.
    pub fn topic_log_config(
        &self,
        image: &MetadataImage,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, Error> {
        let merged = crate::config::topic_log_defaults(&self.log_defaults(image), overrides)?;
        Ok(merged.storage)
    }

    /// The log of a partition this node leads: the only one clients may produce to or fetch from here.
    pub fn log(&self, topic: &str, partition: i32) -> Option<Arc<Mutex<Log>>> {
        self.replicas
            .leader(&self.metadata.image(), topic, partition)
            .ok()
            .map(|p| p.log.clone())
    }

    /// This broker, for tasks that must not keep it alive.
    /// How to dial listener `name` of another node.
    pub fn security_for(&self, name: &str) -> sluice_kafka_client::Security {
        self.outbound.get(name).cloned().unwrap_or_default()
    }

    pub fn weak(&self) -> Weak<Broker> {
        self.me.clone()
    }

    /// From now on client requests are served (the controller unfenced this broker).
    pub fn start_serving(&self) {
        if !*self.serving.borrow() {
            info!("unfenced by the controller; serving clients");
            self.serving.send_replace(true);
        }
    }

    /// Whether this node does its job, for the readiness endpoint: a broker once the controller has unfenced
    /// it (it serves clients from then on), a controller once it knows the quorum's leader.
    pub fn is_ready(&self) -> bool {
        let roles = &self.config.process_roles;
        let broker = !roles.broker || *self.serving.borrow();
        let controller =
            !roles.controller || self.metadata.quorum().is_none_or(|q| q.leader().is_some());
        broker && controller
    }

    /// Waits until client requests are served; false if `shutdown` came first.
    pub async fn wait_serving(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut serving = self.serving.subscribe();
        tokio::select! {
            r = serving.wait_for(|s| *s) => r.is_ok(),
            _ = shutdown.wait_for(|s| *s) => false,
        }
    }

    /// The epoch of this broker's registration (-1 before it registered).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Relaxed)
    }

    pub fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::Relaxed);
    }

    /// Why `log` found nothing: the partition exists but another broker (or none) leads it, so the client
    /// should refresh its metadata; or there is no such partition.
    pub fn missing_partition_error(&self, topic: &str, partition: i32) -> i16 {
        let image = self.metadata.image();
        match image.topics.get(topic) {
            Some(t) if (0..t.partitions).contains(&partition) => {
                kafka_protocol::error::ResponseError::NotLeaderOrFollower.code()
            }
            _ => kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code(),
        }
    }
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// `__consumer_offsets` as the group coordinator sees it: appended as the partition's leader, and answered once
/// the ISR has the records (Kafka writes offsets with acks=all, bounded by `offsets.commit.timeout.ms`).
struct OffsetsLog {
    broker: Weak<Broker>,
}

/// Kafka's `offsets.commit.timeout.ms`.
const OFFSETS_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

impl OffsetsLog {
    fn partition(&self, partition: i32) -> Result<Arc<crate::replica::Partition>, String> {
        let broker = self.broker.upgrade().ok_or("the broker is gone")?;
        broker
            .replicas
            .get(&TopicPartition::new(CONSUMER_OFFSETS, partition))
            .ok_or_else(|| format!("{CONSUMER_OFFSETS}-{partition} is not hosted here"))
    }
}

impl OffsetLog for OffsetsLog {
    fn append(&self, partition: i32, batch: BytesMut) -> Result<crate::group::Committing, String> {
        let p = self.partition(partition)?;
        let (last, resignations, moved) =
            p.append_internal(&batch, now_ms()).map_err(|e| match e {
                crate::replica::AppendError::Code(code) => format!("error code {code}"),
                crate::replica::AppendError::Storage(e) => e.to_string(),
            })?;
        if moved && let Some(broker) = self.broker.upgrade() {
            broker.fetch_waiters.appended(CONSUMER_OFFSETS, partition);
        }
        Ok(Box::pin(async move {
            match p
                .wait_committed(last + 1, resignations, OFFSETS_COMMIT_TIMEOUT)
                .await
            {
                0 => Ok(()),
                code => Err(format!("not replicated: error code {code}")),
            }
        }))
    }

    fn replay(
        &self,
        partition: i32,
        visit: &mut dyn FnMut(StoredRecord<'_>) -> Result<(), GroupError>,
    ) -> Result<(), GroupError> {
        // A partition placed on other brokers has nothing to load here.
        let Ok(p) = self.partition(partition) else {
            return Ok(());
        };
        p.log.lock().replay(visit)
    }
}

/// A running broker: its listeners, its background tasks, and the switch that stops them.
pub struct Server {
    pub broker: Arc<Broker>,
    /// The bound address of each listener, by listener name (useful with port 0); client listeners first.
    pub addresses: Vec<(String, std::net::SocketAddr)>,
    /// Where the readiness endpoint listens, if it is configured (`sluice.health.listener`).
    pub health: Option<std::net::SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Registration and heartbeats: it says goodbye to the controller first, while the quorum still runs.
    lifecycle: Option<tokio::task::JoinHandle<()>>,
    failed: tokio::sync::mpsc::Receiver<Error>,
}

impl Server {
    /// Bind the client listeners, open the broker and start serving.
    pub async fn start(config: BrokerConfig, cluster_id: Option<&str>) -> Result<Server, Error> {
        let format = Format {
            cluster_id: cluster_id.map(str::to_string),
            ..Format::default()
        };
        Self::start_formatted(config, format).await
    }

    /// As `start`, with Kafka's format flags for a fresh node (`bootstrap`).
    pub async fn start_formatted(
        mut config: BrokerConfig,
        format: Format,
    ) -> Result<Server, Error> {
        let cluster_id = format.cluster_id.as_deref();
        // Bind first: a listener on port 0 gets its real port here, and clients must be told that one.
        let mut sockets = Vec::new();
        let mut to_bind: Vec<Listener> = Vec::new();
        if config.process_roles.broker {
            to_bind.extend(config.client_listeners().into_iter().cloned());
        }
        if config.process_roles.controller {
            to_bind.extend(config.controller_listeners().into_iter().cloned());
        }
        for listener in to_bind {
            let socket = bind(&listener).await?;
            let local = socket.local_addr()?;
            if listener.port == 0 {
                for adv in config.advertised_listeners.iter_mut() {
                    if adv.name == listener.name && adv.port == 0 {
                        adv.port = local.port();
                    }
                }
            }
            sockets.push((listener.name.clone(), socket, local));
        }
        let health = match config.health_listener {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| Error::Config {
                key: "sluice.health.listener".into(),
                message: format!("cannot listen on {addr}: {e}"),
            })?),
            None => None,
        };
        let me = controller_member(&config, &sockets);
        let quorum = if metadata::raft::uses_quorum(&config) {
            Some(metadata::raft::open_formatted(&config, &format, me.clone()).await?)
        } else {
            None
        };
        let broker = match quorum {
            None => Broker::open(config, cluster_id)?,
            Some((node, id)) => Broker::open_with(config, Some(&id), Some(node))?,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (failed_tx, failed) = tokio::sync::mpsc::channel(1);
        let mut tasks = Vec::new();
        let mut lifecycle = None;
        if let Some(quorum) = broker.metadata.quorum() {
            tasks.push(tokio::spawn(metadata::raft::follow(
                broker.clone(),
                quorum.subscribe(),
                shutdown_rx.clone(),
            )));
            tasks.push(tokio::spawn(crate::controller::sessions_task(
                broker.clone(),
                shutdown_rx.clone(),
            )));
            if broker.config.process_roles.controller
                && crate::bootstrap::is_dynamic(&broker.config)
            {
                tasks.push(tokio::spawn(crate::lifecycle::keep_controller_membership(
                    broker.clone(),
                    me,
                    shutdown_rx.clone(),
                )));
            }
            if broker.config.process_roles.broker {
                lifecycle = Some(tokio::spawn(crate::lifecycle::supervise(
                    broker.clone(),
                    shutdown_rx.clone(),
                    failed_tx,
                )));
            }
        }
        let mut addresses = Vec::new();
        let mut tls_listeners = Vec::new();
        // Followers fetch from `inter.broker.listener.name`, else from each broker's first client listener.
        let inter_broker = broker
            .config
            .inter_broker_listener_name
            .clone()
            .or_else(|| {
                broker
                    .config
                    .listeners
                    .iter()
                    .map(|l| l.name.clone())
                    .find(|n| !broker.config.controller_listener_names.contains(n))
            });
        for (name, socket, local) in sockets {
            let tls = match broker.config.tls.get(&name) {
                Some(settings) => Some(Arc::new(crate::tls::ListenerTls::load(
                    settings.clone(),
                    broker.config.kernel_tls,
                )?)),
                None => None,
            };
            let kernel_tls = tls.as_ref().is_some_and(|t| t.kernel().is_some());
            info!(listener = %name, address = %local, tls = tls.is_some(), kernel_tls, "listening");
            if tls.is_some() && !kernel_tls && broker.config.kernel_tls {
                // Said once per listener: why fetches over it are copied through rustls.
                let why = crate::kernel_tls::support()
                    .unavailable
                    .clone()
                    .unwrap_or_default();
                info!(listener = %name, reason = %why, "kernel TLS unavailable: TLS is done in the process");
            }
            addresses.push((name.clone(), local));
            tls_listeners.extend(tls.clone());
            let kind = if broker.config.controller_listener_names.contains(&name) {
                network::ListenerKind::Controller
            } else if Some(&name) == inter_broker.as_ref() {
                network::ListenerKind::InterBroker
            } else {
                network::ListenerKind::Client
            };
            tasks.push(tokio::spawn(network::serve(
                socket,
                name,
                kind,
                tls,
                broker.clone(),
                shutdown_rx.clone(),
            )));
        }
        if !tls_listeners.is_empty() {
            tasks.push(tokio::spawn(reload_certificates(
                tls_listeners,
                shutdown_rx.clone(),
            )));
        }
        if broker.config.process_roles.broker {
            tasks.push(tokio::spawn(crate::replica::isr_task(
                broker.clone(),
                shutdown_rx.clone(),
            )));
            tasks.push(tokio::spawn(crate::replica::checkpoint_task(
                broker.clone(),
                shutdown_rx.clone(),
            )));
        }
        let health = match health {
            Some(socket) => {
                let local = socket.local_addr()?;
                info!(address = %local, "readiness endpoint listening");
                tasks.push(tokio::spawn(crate::health::serve(
                    socket,
                    broker.clone(),
                    shutdown_rx.clone(),
                )));
                Some(local)
            }
            None => None,
        };
        tasks.push(tokio::spawn(housekeeping(broker.clone(), shutdown_rx)));
        Ok(Server {
            broker,
            addresses,
            health,
            shutdown,
            tasks,
            lifecycle,
            failed,
        })
    }

    /// Resolves when the broker cannot go on (for example, its node id is live elsewhere), with why.
    pub async fn failed(&mut self) -> Error {
        match self.failed.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// Stop accepting, let in-flight requests finish, then flush and close every log.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.shutdown.send(true);
        if let Some(lifecycle) = self.lifecycle {
            let _ = lifecycle.await;
        }
        // Then the quorum: a request still waiting for a commit (there may be no majority left) fails now
        // instead of holding the shutdown for its whole timeout.
        if let Some(quorum) = self.broker.metadata.quorum() {
            quorum.shutdown().await;
            self.broker.metadata.stop_installing();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        self.broker.replicas.shutdown();
        self.broker.groups.shutdown().await;
        self.broker.logs.close_all()?;
        info!("shutdown complete");
        Ok(())
    }
}

/// Retention, time-based flush and time-based roll. The logs decide what is due; this only gives them the time.
async fn housekeeping(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(
        broker
            .config
            .log_retention_check_interval_ms
            .clamp(10, 1000),
    );
    let mut interval = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let logs = broker.logs.clone();
                let _ = tokio::task::spawn_blocking(move || logs.tick(now_ms())).await;
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// This node as the quorum's membership names it: its first controller listener, as advertised if it is, with
/// the port it was bound to where the configuration said 0. Only a controller's is ever used.
fn controller_member(
    config: &BrokerConfig,
    sockets: &[(String, TcpListener, std::net::SocketAddr)],
) -> String {
    let Some(listener) = config.controller_listeners().first().copied() else {
        return String::new();
    };
    let advertised = config.advertised_for(&listener.name).unwrap_or(listener);
    let bound = sockets
        .iter()
        .find(|(name, _, _)| *name == listener.name)
        .map(|(_, _, local)| *local);
    let port = match (advertised.port, bound) {
        (0, Some(local)) => local.port(),
        (port, _) => port,
    };
    let host = match (advertised.host.as_str(), bound) {
        ("" | "0.0.0.0" | "::", Some(local)) if local.ip().is_loopback() => local.ip().to_string(),
        ("" | "0.0.0.0" | "::", _) => hostname(),
        (host, _) => host.to_string(),
    };
    crate::config::join_host_port(&host, port)
}

/// The machine's host name, as Kafka advertises a listener bound to every interface.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Run the broker until SIGTERM or SIGINT, then shut down cleanly.
pub async fn run(config: BrokerConfig, format: Format) -> Result<(), Error> {
    let mut server = Server::start_formatted(config, format).await?;
    let failure = tokio::select! {
        () = wait_for_signal() => None,
        e = server.failed() => Some(e),
    };
    info!("shutting down: no new connections, finishing in-flight requests");
    server.shutdown().await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn bind(listener: &Listener) -> Result<TcpListener, Error> {
    TcpListener::bind(listener.bind_address())
        .await
        .map_err(|e| Error::Config {
            key: "listeners".into(),
            message: format!(
                "cannot listen on {} ({}): {e}",
                listener.bind_address(),
                listener.name
            ),
        })
}

/// How often the TLS listeners' certificate files are looked at for a change.
const CERTIFICATE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves renewed certificates without a restart (see tls.rs).
async fn reload_certificates(
    listeners: Vec<Arc<crate::tls::ListenerTls>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(CERTIFICATE_CHECK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        for listener in &listeners {
            listener.reload_if_changed();
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop the broker with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
