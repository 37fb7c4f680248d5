//! The broker's way to the active controller: one connection (`sluice-kafka-client`) to the controller
//! listener of whichever voter leads, found from this node's quorum (the address its membership holds),
//! re-dialled when the leader moves. A node that knows no leader yet (a broker-only node before the leader
//! has reached it, a controller waiting to be added) tries `controller.quorum.voters` or
//! `controller.quorum.bootstrap.servers` in turn. Calls retry NOT_CONTROLLER and lost connections until their
//! deadline, as Kafka's broker-to-controller channel does. Client requests that change metadata are handed on
//! whole, in an Envelope.

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, EnvelopeRequest, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, Request as KafkaRequest};
use sluice_kafka_client::Connection;
use sluice_protocol::Request;
use tokio::time::Instant;
use tracing::debug;

use crate::broker::Broker;
use crate::controller::ENVELOPE_OFFSET_TAG;
use crate::error::Error;

/// How long a call to the controller keeps trying (Kafka's broker-to-controller retry window is 60 s for
/// forwarding; admin clients time out at 30 s by default, so trying longer only answers nobody).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ControllerChannel {
    /// Controller listeners to try while no leader is known (`host:port`).
    bootstrap: Vec<String>,
    /// The connection and the address it goes to.
    connection: tokio::sync::Mutex<Option<(String, Connection)>>,
    /// The bootstrap address to try next while no leader is known.
    guess: std::sync::atomic::AtomicUsize,
}

/// How long dialling a voter that may not lead may take, so a dead one does not hold up trying the next.
const GUESS_DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// What a call that got through may still answer: "not me" sends the channel to the next leader.
pub trait ErrorCode {
    fn error_code(&self) -> i16;
}

macro_rules! error_code {
    ($($t:ty),*) => {$(
        impl ErrorCode for $t {
            fn error_code(&self) -> i16 {
                self.error_code
            }
        }
    )*};
}
error_code!(
    kafka_protocol::messages::BrokerRegistrationResponse,
    kafka_protocol::messages::BrokerHeartbeatResponse,
    kafka_protocol::messages::AllocateProducerIdsResponse,
    kafka_protocol::messages::EnvelopeResponse,
    kafka_protocol::messages::ControllerRegistrationResponse,
    kafka_protocol::messages::UpdateRaftVoterResponse,
    kafka_protocol::messages::AlterPartitionResponse
);

/// How often a call waiting for its answer looks whether the quorum has elected another controller.
const LEADER_CHECK: Duration = Duration::from_millis(250);

/// Waits for the answer of a call sent to the controller at `address`, until `deadline`, or until the quorum
/// has elected another controller: one cut off by the network answers nothing, and TCP would wait for minutes
/// while every other call waits for this connection (heartbeats too, so brokers would be fenced for it).
async fn wait_answer<T>(
    broker: &Broker,
    address: &str,
    deadline: Instant,
    answer: impl std::future::Future<Output = Result<T, sluice_kafka_client::ClientError>>,
) -> Result<T, String> {
    tokio::pin!(answer);
    loop {
        let check = deadline.min(Instant::now() + LEADER_CHECK);
        match tokio::time::timeout_at(check, &mut answer).await {
            Ok(result) => return result.map_err(|e| e.to_string()),
            Err(_) if Instant::now() >= deadline => return Err("no answer in time".into()),
            Err(_) => {
                let now = broker.metadata.quorum().and_then(|q| q.leader_member());
                if now.is_some_and(|(_, member)| member.addr != address) {
                    return Err("another controller was elected meanwhile".into());
                }
            }
        }
    }
}

fn protocol(e: impl std::fmt::Display) -> Error {
    Error::Metadata(format!("controller channel: {e}"))
}

impl ControllerChannel {
    pub fn new(bootstrap: Vec<String>) -> ControllerChannel {
        ControllerChannel {
            bootstrap,
            connection: tokio::sync::Mutex::new(None),
            guess: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The next address to try while no leader is known; each call moves on by one.
    fn next_guess(&self) -> Option<String> {
        if self.bootstrap.is_empty() {
            return None;
        }
        let n = self
            .guess
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.bootstrap.get(n % self.bootstrap.len()).cloned()
    }

    /// Sends `request` to the active controller, retrying until `timeout` while there is none, it moved, or a
    /// connection broke. Errors other than NOT_CONTROLLER are the caller's to read in the response.
    pub async fn call<R>(
        &self,
        broker: &Broker,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, Error>
    where
        R: KafkaRequest,
        R::Response: ErrorCode,
    {
        let deadline = Instant::now() + timeout;
        let key = ApiKey::try_from(R::KEY).map_err(|()| protocol("unknown API key"))?;
        let mut last = String::from("no active controller known");
        while Instant::now() < deadline {
            if broker.metadata.stopping() {
                last = "this node is shutting down".into();
                break;
            }
            let known = broker.metadata.quorum().and_then(|q| q.leader_member());
            let (leader, address) = match &known {
                Some((id, member)) => (format!("controller {id}"), member.addr.clone()),
                None => match self.next_guess() {
                    Some(address) => ("a controller".to_string(), address),
                    None => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Another call may hold the connection, stuck on a controller that stopped answering: wait for it
            // no longer than this call's own deadline.
            let Ok(mut slot) = tokio::time::timeout_at(deadline, self.connection.lock()).await
            else {
                last = "the connection to the controller is busy".into();
                break;
            };
            if slot.as_ref().is_none_or(|(to, _)| *to != address) {
                let mut remaining = deadline.saturating_duration_since(Instant::now());
                if known.is_none() {
                    remaining = remaining.min(GUESS_DIAL_TIMEOUT);
                }
                let security = broker
                    .config
                    .controller_listener_names
                    .first()
                    .map(|name| broker.security_for(name))
                    .unwrap_or_default();
                match tokio::time::timeout(
                    remaining,
                    Connection::open_with(&address, "sluice-broker", &security),
                )
                .await
                {
                    Ok(Ok(conn)) => *slot = Some((address.clone(), conn)),
                    Ok(Err(e)) => {
                        last = format!("{leader} at {address}: {e}");
                        drop(slot);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    Err(_) if known.is_none() => {
                        last = format!("{leader} at {address}: no connection in time");
                        continue;
                    }
                    Err(_) => break,
                }
            }
            let Some((_, conn)) = slot.as_mut() else {
                continue;
            };
            let answer = match conn.versions.pick(key) {
                Ok(version) => {
                    wait_answer(broker, &address, deadline, conn.send(request, version)).await
                }
                Err(e) => Err(e.to_string()),
            };
            match answer {
                Ok(response)
                    if response.error_code() == ResponseError::NotController.code()
                        || response.error_code() == ResponseError::NotLeaderOrFollower.code() =>
                {
                    last = format!("{leader} at {address} is not the active controller");
                }
                Ok(response) => return Ok(response),
                Err(e) => last = format!("{leader} at {address}: {e}"),
            }
            *slot = None;
            drop(slot);
            debug!(reason = %last, "retrying the controller");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::Timeout(format!(
            "no answer from the active controller within {timeout:?}: {last}"
        )))
    }

    /// Hands a client's request to the active controller and answers what it answered, once this node's own
    /// metadata includes what the controller changed.
    /// Hands a request to the active controller in an Envelope. A client's (`conn`) names the client, its
    /// principal and address, which the controller authorizes it as; `None` is this broker's own request
    /// (creating a topic it has already authorized), which goes with the broker's authority.
    pub async fn forward(
        &self,
        broker: &Broker,
        request: &Request,
        conn: Option<&crate::network::ConnectionInfo>,
    ) -> Result<ResponseKind, Error> {
        let mut frame = BytesMut::new();
        request
            .header
            .encode(
                &mut frame,
                request.api_key.request_header_version(request.version),
            )
            .map_err(protocol)?;
        request
            .body
            .encode(&mut frame, request.version)
            .map_err(protocol)?;
        let envelope = EnvelopeRequest::default()
            .with_request_data(frame.freeze())
            .with_request_principal(
                conn.map(|c| bytes::Bytes::copy_from_slice(c.principal.as_bytes())),
            )
            .with_client_host_address(match conn.map(|c| c.peer.ip()) {
                Some(std::net::IpAddr::V4(ip)) => bytes::Bytes::copy_from_slice(&ip.octets()),
                Some(std::net::IpAddr::V6(ip)) => bytes::Bytes::copy_from_slice(&ip.octets()),
                None => bytes::Bytes::new(),
            });
        let started = Instant::now();
        let resp = self.call(broker, &envelope, CALL_TIMEOUT).await?;
        if resp.error_code != 0 {
            return Err(Error::Metadata(format!(
                "the controller refused a forwarded {:?}: error {}",
                request.api_key, resp.error_code
            )));
        }
        let mut data = resp
            .response_data
            .ok_or_else(|| protocol("forwarded request answered without a response"))?;
        ResponseHeader::decode(
            &mut data,
            request.api_key.response_header_version(request.version),
        )
        .map_err(protocol)?;
        let body =
            ResponseKind::decode(request.api_key, &mut data, request.version).map_err(protocol)?;
        if let Some(offset) = resp.unknown_tagged_fields.get(&ENVELOPE_OFFSET_TAG)
            && let Ok(bytes) = <[u8; 8]>::try_from(offset.as_ref())
        {
            let offset = i64::from_be_bytes(bytes);
            let left = CALL_TIMEOUT.saturating_sub(started.elapsed());
            if !broker.metadata.wait_installed(offset, left).await {
                debug!(
                    offset,
                    "this node's metadata did not reach the controller's in time"
                );
            }
        }
        Ok(body)
    }
}
