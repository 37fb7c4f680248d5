//! Metadata from the controller quorum: opening this node's `QuorumNode` from Kafka's keys, and the task that
//! follows what its state machine applies, bringing the logs in line (the publisher) before handlers see the
//! new image.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_quorum::tcp::TcpTransport;
use sluice_quorum::{Member, QuorumNode, Settings, Timing};
use sluice_storage::LogConfig;
use tokio::sync::watch;
use tracing::{error, info};
use uuid::Uuid;

use super::{METADATA_TOPIC, MetadataImage};
use crate::bootstrap::{self, Format};
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::error::Error;
use crate::{meta_properties, publisher};

/// Whether this node's metadata comes from a controller quorum: several voters, or a node that is not one
/// combined broker and controller on its own (a broker-only node follows the controllers; a controller-only
/// voter serves brokers that follow it). The single combined node keeps its local log: the single-node
/// behaviour, layout and start-up time stay exactly as they were.
/// A dynamic quorum (`controller.quorum.bootstrap.servers`) is on Raft even with one voter, so it can grow.
pub fn uses_quorum(config: &BrokerConfig) -> bool {
    let roles = &config.process_roles;
    config.controller_quorum_voters.len() != 1 || !(roles.broker && roles.controller)
}

/// The cluster id of a static quorum with none configured: derived from the voters, so every node started
/// with the same `controller.quorum.voters` agrees on it without a format step. (Kafka makes the operator
/// run `kafka-storage format` with one id on every node; Sluice formats itself.)
pub fn derived_cluster_id(config: &BrokerConfig) -> String {
    let voters: Vec<(u64, String)> = config
        .controller_quorum_voters
        .iter()
        .map(|v| (v.id as u64, crate::config::join_host_port(&v.host, v.port)))
        .collect();
    let fingerprint =
        sluice_quorum::rpc::voters_fingerprint(voters.iter().map(|(id, a)| (*id, a.as_str())));
    let bytes = [fingerprint.to_be_bytes(), (!fingerprint).to_be_bytes()].concat();
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes);
    // Version 8 ("custom") UUID bits, so it reads as a UUID and never collides with a random (v4) one.
    id[6] = (id[6] & 0x0f) | 0x80;
    id[8] = (id[8] & 0x3f) | 0x80;
    // Like Kafka, never an id starting with '-', which command-line tools would take for an option.
    if id[0] >> 2 == 62 {
        id[0] ^= 0x80;
    }
    crate::meta_properties::kafka_uuid(&Uuid::from_bytes(id))
}

/// The directory of the quorum's log: `__cluster_metadata-0` in the first log dir, as Kafka keeps it.
pub fn quorum_dir(config: &BrokerConfig) -> PathBuf {
    config
        .log_dirs
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(format!("{METADATA_TOPIC}-0"))
}

/// Formats a fresh node (`bootstrap`), then opens its controller. `address`: this node's controller listener,
/// as a dynamic quorum's membership names it. Answers the node and the cluster id.
pub async fn open_formatted(
    config: &BrokerConfig,
    format: &Format,
    address: String,
) -> Result<(Arc<QuorumNode>, String), Error> {
    bootstrap::validate(
        config,
        format,
        meta_properties::is_formatted(&config.log_dirs)?,
    )?;
    let mut cluster_id = format.cluster_id.clone().or(config.cluster_id.clone());
    if !bootstrap::is_dynamic(config) {
        cluster_id.get_or_insert_with(|| derived_cluster_id(config));
    }
    let meta = meta_properties::ensure_formatted_with(
        &config.log_dirs,
        config.node_id,
        cluster_id.as_deref(),
        bootstrap::listed_directory_id(config, format),
    )?;
    let me = Member::with_directory(
        address,
        meta_properties::parse_kafka_uuid(&meta.directory_id),
    );
    let initial = bootstrap::initial_voters(config, format, me);
    let node = open(config, &meta.cluster_id, initial).await?;
    Ok((node, meta.cluster_id))
}

/// Opens this node's controller and starts it talking to the other voters.
pub async fn open(
    config: &BrokerConfig,
    cluster_id: &str,
    initial_voters: Option<BTreeMap<u64, Member>>,
) -> Result<Arc<QuorumNode>, Error> {
    let voters: BTreeMap<u64, String> = config
        .controller_quorum_voters
        .iter()
        .map(|v| (v.id as u64, crate::config::join_host_port(&v.host, v.port)))
        .collect();
    let election = config.controller_quorum_election_timeout_ms;
    let settings = Settings {
        node_id: config.node_id as u64,
        dir: quorum_dir(config),
        cluster_id: Some(cluster_id.to_string()),
        voters,
        initial_voters,
        timing: Timing {
            // openraft also gives each AppendEntries the heartbeat interval to be answered in: at a tenth of
            // the election timeout (100 ms), a node busy with produce traffic missed it, and controllers
            // held elections under load for no failure at all.
            heartbeat_ms: (election / 4).max(10),
            election_timeout_min_ms: election,
            election_timeout_max_ms: election * 2,
            quorum_lost_ms: config.controller_quorum_fetch_timeout_ms,
        },
        snapshot_every: 20_000,
        keep_after_snapshot: 1000,
        log: LogConfig {
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: 64 << 20,
            ..config.log.storage.clone()
        },
    };
    // Peers are dialed with the controller listener's security (learners' listeners must match it).
    let mut outbound = crate::outbound::outbound(config)?;
    let security = config
        .controller_listener_names
        .first()
        .and_then(|name| outbound.remove(name))
        .unwrap_or_default();
    let node = QuorumNode::open(&settings, Arc::new(TcpTransport::with_security(security)))
        .await
        .map_err(|e| Error::Metadata(format!("controller quorum: {e}")))?;
    info!(
        node_id = config.node_id,
        dynamic = bootstrap::is_dynamic(config),
        "controller quorum started"
    );
    Ok(Arc::new(node))
}

/// Follows the quorum's images until `shutdown`: each one is published (logs created, deleted,
/// reconfigured) and then installed, so a topic handlers can see always has its logs.
pub async fn follow(
    broker: Arc<Broker>,
    mut images: watch::Receiver<Arc<MetadataImage>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let new = images.borrow_and_update().clone();
        let old = broker.metadata.image();
        if !Arc::ptr_eq(&old, &new) {
            let b = broker.clone();
            let image = new.clone();
            let published =
                tokio::task::spawn_blocking(move || publisher::publish(&b, &old, &image)).await;
            match published {
                Ok(Ok(())) => broker.metadata.set_image(new),
                Ok(Err(e)) => {
                    // The image is not installed, so the next change retries from the same point.
                    error!(offset = new.offset, error = %e, "publishing metadata failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => error!(error = %e, "metadata publisher panicked"),
            }
        }
        tokio::select! {
            changed = images.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => break,
        }
    }
    broker.metadata.stop_installing();
}
