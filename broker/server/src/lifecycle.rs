//! A broker's standing with the active controller: it registers (id, a random incarnation per process, its
//! advertised listeners, rack), then heartbeats every `broker.heartbeat.interval.ms` with the metadata offset
//! it has applied. The controller fences a broker that stops, and unfences it once it has caught up to its own
//! registration. A registration refused because the id is live elsewhere is retried until
//! `initial.broker.registration.timeout.ms`, then the broker gives up, naming the other registration.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::{
    BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest, ControllerRegistrationRequest,
    UpdateRaftVoterRequest,
};
use kafka_protocol::protocol::StrBytes;
use sluice_quorum::Member;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::broker::{Broker, METADATA_WRITE_TIMEOUT};
use crate::error::Error;

/// Kafka's security protocol ids, as brokers register their listeners with them.
const PLAINTEXT: i16 = 0;
const SSL: i16 = 1;
const SASL_PLAINTEXT: i16 = 2;
const SASL_SSL: i16 = 3;

fn registration(broker: &Broker, incarnation: Uuid) -> BrokerRegistrationRequest {
    let listeners = broker
        .config
        .advertised_listeners
        .iter()
        // Brokers register their client listeners; a combined node's controller one is the quorum's.
        .filter(|l| !broker.config.controller_listener_names.contains(&l.name))
        .map(|l| {
            Listener::default()
                .with_name(StrBytes::from_string(l.name.clone()))
                .with_host(StrBytes::from_string(l.host.clone()))
                .with_port(l.port)
                .with_security_protocol(
                    match (
                        broker.config.tls.contains_key(&l.name),
                        broker.config.sasl.contains_key(&l.name),
                    ) {
                        (false, false) => PLAINTEXT,
                        (true, false) => SSL,
                        (false, true) => SASL_PLAINTEXT,
                        (true, true) => SASL_SSL,
                    },
                )
        })
        .collect();
    BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(broker.node_id))
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_incarnation_id(incarnation)
        .with_listeners(listeners)
        .with_rack(broker.config.broker_rack.clone().map(StrBytes::from_string))
}

/// Registers, retrying until the registration timeout; answers the broker epoch.
async fn register(broker: &Broker, incarnation: Uuid, give_up: Instant) -> Result<i64, Error> {
    let Some(channel) = broker.channel.as_ref() else {
        return Err(Error::Metadata("no controller to register with".into()));
    };
    let request = registration(broker, incarnation);
    let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms);
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        let refused = match channel.call(broker, &request, left.max(interval)).await {
            Ok(resp) if resp.error_code == 0 => {
                info!(
                    epoch = resp.broker_epoch,
                    "registered with the active controller"
                );
                return Ok(resp.broker_epoch);
            }
            Ok(resp) if resp.error_code == ResponseError::DuplicateBrokerRegistration.code() => {
                format!(
                    "node id {} is already registered by a live broker (DUPLICATE_BROKER_REGISTRATION): \
                     another process runs with node.id={}",
                    broker.node_id, broker.node_id
                )
            }
            Ok(resp) => format!("registration refused with error {}", resp.error_code),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= give_up {
            return Err(Error::Config {
                key: "node.id".into(),
                message: format!(
                    "{refused}; gave up after initial.broker.registration.timeout.ms ({} ms)",
                    broker.config.initial_broker_registration_timeout_ms
                ),
            });
        }
        warn!(reason = %refused, "registration not accepted yet; retrying");
        tokio::time::sleep(interval).await;
    }
}

/// Registers and heartbeats until `shutdown`. An error means the broker cannot join the cluster and should
/// stop.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let Some(channel) = broker.channel.as_ref() else {
        return Ok(());
    };
    let incarnation = Uuid::new_v4();
    let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms);
    let give_up = Instant::now()
        + Duration::from_millis(broker.config.initial_broker_registration_timeout_ms);
    let mut epoch = tokio::select! {
        epoch = register(&broker, incarnation, give_up) => epoch?,
        _ = shutdown.changed() => return Ok(()),
    };
    broker.set_broker_epoch(epoch);
    // The controller unfences a broker whose heartbeat shows it has applied its own registration: wait for
    // that here, so the first heartbeat (sent at once) unfences it rather than the next one.
    broker.metadata.wait_installed(epoch, interval).await;
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                say_goodbye(&broker, epoch, interval).await;
                return Ok(());
            }
        }
        let beat = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(broker.node_id))
            .with_broker_epoch(epoch)
            .with_current_metadata_offset(broker.metadata.image().offset);
        match channel.call(&broker, &beat, interval * 2).await {
            Ok(resp) if resp.error_code == ResponseError::StaleBrokerEpoch.code() => {
                // Fenced and forgotten, or the controller lost our registration: register again.
                warn!(
                    epoch,
                    "the controller no longer knows this registration; registering again"
                );
                let give_up = Instant::now()
                    + Duration::from_millis(broker.config.initial_broker_registration_timeout_ms);
                epoch = register(&broker, incarnation, give_up).await?;
                broker.set_broker_epoch(epoch);
                broker.metadata.wait_installed(epoch, interval).await;
                tick.reset_immediately();
            }
            Ok(resp) if resp.error_code != 0 => {
                warn!(error = resp.error_code, "heartbeat refused");
            }
            Ok(resp) if !resp.is_fenced => broker.start_serving(),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "heartbeat not answered"),
        }
    }
}

/// Tells the controller this broker is going (Kafka's controlled shutdown, without partitions to move yet): it
/// is fenced at once rather than after its session runs out, and its next start registers at once.
async fn say_goodbye(broker: &Broker, epoch: i64, interval: Duration) {
    let beat = BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(broker.node_id))
        .with_broker_epoch(epoch)
        .with_current_metadata_offset(broker.metadata.image().offset)
        .with_want_fence(true)
        .with_want_shut_down(true);
    // This node's own controller is asked directly: its listener is already closed.
    let answered = match (&broker.controller, &broker.channel) {
        // Bounded: the record commits before this node's own publisher (stopping too) would install it.
        (Some(controller), _) if controller.is_active(broker) => {
            tokio::time::timeout(interval, controller.heartbeat(broker, beat))
                .await
                .map_or(true, |r| r.error_code == 0)
        }
        (_, Some(channel)) => channel
            .call(broker, &beat, interval)
            .await
            .is_ok_and(|r| r.error_code == 0),
        _ => false,
    };
    if answered {
        info!("the controller fenced this broker for its shutdown");
    } else {
        warn!("no controller answered the shutdown; this broker's session will run out instead");
    }
}

/// Runs `run` and, if the broker cannot stay in the cluster, reports why on `failed`.
pub async fn supervise(
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
    failed: tokio::sync::mpsc::Sender<Error>,
) {
    if let Err(e) = run(broker, shutdown).await {
        error!(error = %e, "this broker cannot join the cluster");
        let _ = failed.send(e).await;
    }
}

/// A controller of a dynamic quorum keeps its entry in the membership right. One the membership does not name
/// yet (started with `--no-initial-controllers`, or a leader that removed itself) registers with the active
/// controller (ControllerRegistration, KIP-919), which makes it a learner: it follows the log from then on, and
/// `kafka-metadata-quorum add-controller` finds it caught up. (A combined node registers as a broker instead.)
/// A voter whose controller listener moved tells the active controller (UpdateRaftVoter), as Kafka's voters
/// do, so the leader reaches it at the new address. `address`: its controller listener.
pub async fn keep_controller_membership(
    broker: Arc<Broker>,
    address: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let (Some(quorum), Some(channel)) =
        (broker.metadata.quorum().cloned(), broker.channel.as_ref())
    else {
        return;
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return;
    };
    let (host, port) = (
        StrBytes::from_string(host.trim_matches(['[', ']']).to_string()),
        port.parse().unwrap_or_default(),
    );
    let name = StrBytes::from_string(
        broker
            .config
            .controller_listener_names
            .first()
            .cloned()
            .unwrap_or_default(),
    );
    let mut registration = ControllerRegistrationRequest::default()
        .with_controller_id(broker.node_id)
        .with_incarnation_id(Uuid::new_v4())
        .with_listeners(vec![
            kafka_protocol::messages::controller_registration_request::Listener::default()
                .with_name(name.clone())
                .with_host(host.clone())
                .with_port(port)
                .with_security_protocol(PLAINTEXT),
        ]);
    // Kafka's ControllerRegistration names no metadata directory (its add-controller tool reads it on the
    // controller's own disk); Sluice's active controller records it with the learner, from a tagged field
    // Kafka ignores, so that DescribeQuorum lists it and an operator can add the controller as a voter.
    let directory = broker
        .config
        .log_dirs
        .first()
        .and_then(|d| crate::meta_properties::directory_id(d).ok().flatten());
    if let Some(directory) = directory {
        registration.unknown_tagged_fields.insert(
            crate::controller::DIRECTORY_ID_TAG,
            bytes::Bytes::copy_from_slice(directory.as_bytes()),
        );
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match quorum.own_member() {
            None if !broker.config.process_roles.broker => {
                match channel
                    .call(&broker, &registration, Duration::from_secs(5))
                    .await
                {
                    Ok(resp) if resp.error_code == 0 => info!(
                        "registered with the active controller; following the metadata log as a learner"
                    ),
                    Ok(resp) => warn!(
                        error_code = resp.error_code,
                        message = ?resp.error_message,
                        "the active controller refused this controller's registration"
                    ),
                    Err(e) => {
                        warn!(error = %e, "no active controller took this controller's registration")
                    }
                }
            }
            Some((member, true)) if member.addr != address => {
                info!(old = %member.addr, new = %address, "this voter's controller listener moved; telling the active controller");
                let Some(directory_id) = member.directory_id else {
                    continue;
                };
                let moved = Member::with_directory(&address, Some(directory_id));
                if quorum.leadership().0 {
                    if let Err(e) = quorum
                        .update_voter(broker.node_id as u64, moved, METADATA_WRITE_TIMEOUT)
                        .await
                    {
                        warn!(error = %e, "updating this voter's address failed");
                    }
                    continue;
                }
                let update = UpdateRaftVoterRequest::default()
                    .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
                    .with_current_leader_epoch(
                        i32::try_from(quorum.leadership().1).unwrap_or(i32::MAX),
                    )
                    .with_voter_id(broker.node_id)
                    .with_voter_directory_id(directory_id)
                    .with_listeners(vec![
                        kafka_protocol::messages::update_raft_voter_request::Listener::default()
                            .with_name(name.clone())
                            .with_host(host.clone())
                            .with_port(port),
                    ]);
                match channel.call(&broker, &update, Duration::from_secs(5)).await {
                    Ok(resp) if resp.error_code == 0 => {
                        info!("the active controller has this voter's new address")
                    }
                    Ok(resp) => {
                        warn!(
                            error_code = resp.error_code,
                            "the active controller refused this voter's new address"
                        )
                    }
                    Err(e) => {
                        warn!(error = %e, "no active controller took this voter's new address")
                    }
                }
            }
            _ => {}
        }
    }
}
