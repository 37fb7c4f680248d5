//! The broker: its state, its start-up and its shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use sluice_storage::{Log, LogConfig, LogManager, StoredRecord, TopicPartition};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::{BrokerConfig, Listener};
use crate::error::Error;
use crate::fetch_waiters::FetchWaiters;
use crate::group::{GroupConfig, GroupCoordinator, GroupError, OffsetLog};
use crate::meta_properties;
use crate::metadata::{CONSUMER_OFFSETS, METADATA_TOPIC, MetadataRecord, MetadataStore};
use crate::network;
use crate::publisher;
use crate::request_memory::RequestMemory;

pub use crate::metadata::now_ms;

/// How many producer ids one metadata write reserves.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Everything a request handler can reach.
pub struct Broker {
    pub config: BrokerConfig,
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
    /// Compressed produce batches being validated at once. A decoder's memory is set by the batch's own
    /// header (zstd's window, up to 16 MiB, lz4's block size, up to 4 MiB), not by its size, so without a
    /// bound a crowd of connections sending tiny compressed batches would cost that much each. Validation is
    /// CPU-bound, so more at once than twice the cores gains nothing.
    pub decompressions: tokio::sync::Semaphore,
}

/// How many compressed batches are validated at once: twice the cores the process may use.
pub fn decompression_slots() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Broker {
    /// Format the data directories if they are empty, recover the logs, replay the metadata, and make sure every
    /// partition the metadata names has a log.
    pub fn open(config: BrokerConfig, cluster_id: Option<&str>) -> Result<Arc<Broker>, Error> {
        let dirs = config.log_dirs.clone();
        let meta = meta_properties::ensure_formatted(
            &dirs,
            config.node_id,
            cluster_id.or(config.cluster_id.as_deref()),
        )?;
        let defaults = config.log.storage.clone();
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
        let metadata = MetadataStore::open(metadata_log, config.node_id)?;

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

        let offsets_log = Arc::new(OffsetsLog {
            logs: logs.clone(),
            flush_each_commit: false,
        });
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
        let config_queued_max = config.queued_max_request_bytes;
        let broker = Arc::new(Broker {
            node_id: config.node_id,
            cluster_id: meta.cluster_id,
            config,
            logs,
            metadata,
            groups,
            fetch_waiters: FetchWaiters::default(),
            advertised,
            request_memory: RequestMemory::new(config_queued_max),
            decompressions: tokio::sync::Semaphore::new(decompression_slots()),
        });
        if broker.config.process_roles.broker {
            broker.ensure_offsets_topic()?;
            publisher::reconcile(&broker, &broker.metadata.image())?;
            broker
                .groups
                .load()
                .map_err(|e| Error::Metadata(format!("loading consumer offsets: {e}")))?;
        }
        info!(node_id = broker.node_id, cluster_id = %broker.cluster_id, "broker ready");
        Ok(broker)
    }

    fn ensure_offsets_topic(&self) -> Result<(), Error> {
        if self.metadata.image().topics.contains_key(CONSUMER_OFFSETS) {
            return Ok(());
        }
        // Committed offsets are kept forever until compaction exists: time or size retention would drop the
        // offsets of idle groups silently.
        let configs = BTreeMap::from([
            ("retention.ms".to_string(), "-1".to_string()),
            (
                "segment.bytes".to_string(),
                self.config.offsets_topic_segment_bytes.to_string(),
            ),
        ]);
        let partitions = self.config.offsets_topic_num_partitions;
        self.commit_local(&[MetadataRecord::TopicCreated {
            name: CONSUMER_OFFSETS.into(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor: 1,
            configs,
            internal: true,
            assignment: vec![vec![self.node_id]; usize::try_from(partitions).unwrap_or(0)],
        }])
        .map(|_| ())
    }

    /// Commits `records` to the metadata log and brings this node's logs in line; answers the offset of the
    /// last record. Callers validate against `metadata.image()` while holding `metadata.write_lock()`.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<i64, Error> {
        self.commit_local(&records)
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
        if image.brokers.is_empty() {
            let (host, port) = &self.advertised;
            return vec![(self.node_id, host.clone(), *port, None)];
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

    /// The brokers new replicas may go to.
    pub fn placeable_brokers(&self) -> Vec<i32> {
        let image = self.metadata.image();
        let live: Vec<i32> = image
            .live_brokers()
            .map(|b| b.registration.broker_id)
            .collect();
        if live.is_empty() && image.brokers.is_empty() {
            // A single node on its local log: nobody registers, and this node hosts everything.
            vec![self.node_id]
        } else {
            live
        }
    }

    /// A producer id never handed out before, in this process or an earlier one.
    pub async fn allocate_producer_id(&self) -> Result<i64, Error> {
        {
            let mut ids = self.metadata.producer_ids.lock();
            if ids.0 < ids.1 {
                ids.0 += 1;
                return Ok(ids.0 - 1);
            }
        }
        let _w = self.metadata.write_lock().await;
        let reserved = {
            let ids = self.metadata.producer_ids.lock();
            ids.1
        };
        let start = self.metadata.image().next_producer_id.max(reserved);
        self.propose(vec![MetadataRecord::ProducerIdsAllocated {
            next: start + PRODUCER_ID_BLOCK,
        }])
        .await?;
        let mut ids = self.metadata.producer_ids.lock();
        *ids = (start + 1, start + PRODUCER_ID_BLOCK);
        Ok(start)
    }

    /// The log settings of a topic: broker defaults with the topic's overrides on top.
    pub fn topic_log_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, Error> {
        let merged = crate::config::topic_log_defaults(&self.config.log, overrides)?;
        Ok(merged.storage)
    }

    /// The log of a partition this node leads: the only one clients may produce to or fetch from here.
    pub fn log(&self, topic: &str, partition: i32) -> Option<Arc<Mutex<Log>>> {
        let image = self.metadata.image();
        let meta = image.topics.get(topic)?;
        if image.leader(meta, partition) != Some(self.node_id) {
            return None;
        }
        self.logs.get(&TopicPartition {
            topic: topic.to_string(),
            partition,
        })
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

/// `__consumer_offsets` as the group coordinator sees it.
struct OffsetsLog {
    logs: Arc<LogManager>,
    flush_each_commit: bool,
}

impl OffsetsLog {
    fn log(&self, partition: i32) -> Result<Arc<Mutex<Log>>, String> {
        self.logs
            .get(&TopicPartition {
                topic: CONSUMER_OFFSETS.into(),
                partition,
            })
            .ok_or_else(|| format!("{CONSUMER_OFFSETS}-{partition} has no log"))
    }
}

impl OffsetLog for OffsetsLog {
    fn append(&self, partition: i32, batch: BytesMut) -> Result<(), String> {
        let log = self.log(partition)?;
        let mut log = log.lock();
        log.append(&batch, 0, now_ms()).map_err(|e| e.to_string())?;
        let end = log.log_end_offset();
        log.set_high_watermark(end);
        if self.flush_each_commit {
            log.flush().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn replay(
        &self,
        partition: i32,
        visit: &mut dyn FnMut(StoredRecord<'_>) -> Result<(), GroupError>,
    ) -> Result<(), GroupError> {
        let log = self
            .log(partition)
            .map_err(|message| GroupError::LogRead { partition, message })?;
        log.lock().replay(visit)
    }
}

/// A running broker: its listeners, its background tasks, and the switch that stops them.
pub struct Server {
    pub broker: Arc<Broker>,
    /// The bound address of each listener, by listener name (useful with port 0); client listeners first.
    pub addresses: Vec<(String, std::net::SocketAddr)>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Bind the client listeners, open the broker and start serving.
    pub async fn start(
        mut config: BrokerConfig,
        cluster_id: Option<&str>,
    ) -> Result<Server, Error> {
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
        let broker = Broker::open(config, cluster_id)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut addresses = Vec::new();
        for (name, socket, local) in sockets {
            info!(listener = %name, address = %local, "listening");
            addresses.push((name.clone(), local));
            let controller = broker.config.controller_listener_names.contains(&name);
            tasks.push(tokio::spawn(network::serve(
                socket,
                name,
                controller,
                broker.clone(),
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(housekeeping(broker.clone(), shutdown_rx)));
        Ok(Server {
            broker,
            addresses,
            shutdown,
            tasks,
        })
    }

    /// Stop accepting, let in-flight requests finish, then flush and close every log.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
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

/// Run the broker until SIGTERM or SIGINT, then shut down cleanly.
pub async fn run(config: BrokerConfig, cluster_id: Option<String>) -> Result<(), Error> {
    let server = Server::start(config, cluster_id.as_deref()).await?;
    wait_for_signal().await;
    info!("shutting down: no new connections, finishing in-flight requests");
    server.shutdown().await
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
