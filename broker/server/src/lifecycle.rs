//! A broker's standing with the active controller: it registers (id, a random incarnation per process, its
//! advertised listeners, rack), then heartbeats every `broker.heartbeat.interval.ms` with the metadata offset
//! it has applied. The controller fences a broker that stops, and unfences it once it has caught up to its own
//! registration. A registration refused because the id is live elsewhere is retried until
//! `initial.broker.registration.timeout.ms`, then the broker gives up, naming the other registration.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::broker::Broker;
use crate::error::Error;

/// PLAINTEXT: the only security protocol a listener may have until TLS and SASL exist.
const PLAINTEXT: i16 = 0;

fn registration(broker: &Broker, incarnation: Uuid) -> BrokerRegistrationRequest {
    let listeners = broker
        .config
        .advertised_listeners
        .iter()
        .map(|l| {
            Listener::default()
                .with_name(StrBytes::from_string(l.name.clone()))
                .with_host(StrBytes::from_string(l.host.clone()))
                .with_port(l.port)
                .with_security_protocol(PLAINTEXT)
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
                broker.metadata.wait_installed(epoch, interval).await;
                tick.reset_immediately();
            }
            Ok(resp) if resp.error_code != 0 => {
                warn!(error = resp.error_code, "heartbeat refused");
            }
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
