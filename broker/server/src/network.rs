//! Client connections: frames in, responses out, one request at a time per connection.
//!
//! Kafka processes the requests of one connection strictly in order and answers them in that order, so a
//! connection is a simple loop. Bytes already received past the current frame stay buffered, so a client that
//! pipelines requests (librdkafka does) costs no extra reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use sluice_protocol::{ProtocolError, Surface, encode_response, error_response, parse_request_on};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::handlers::{self, Response};
use crate::kernel_tls::{self, RecordBoundary};
use crate::request_memory::Reservation;
use crate::sasl::{self, Step};
use crate::tls::ListenerTls;
use crate::transport::Transport;

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How much the read buffer grows at a time: a frame's claimed size is not allocated up front.
const READ_CHUNK: usize = 64 * 1024;

/// What a handler needs to know about the connection a request came in on.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub listener: String,
    /// Accepted on a controller listener: only the quorum's own APIs are served there.
    pub controller: bool,
    /// Who is asking (`crate::principal`): what ACLs are checked against.
    pub principal: String,
    /// A broker's own request, forwarded to the controller without a client's principal (a topic it creates
    /// after authorizing the client): it passes authorization, as the Envelope that carried it did.
    pub internal: bool,
}

/// Accept connections until `shutdown` turns true, then wait for the open ones to finish their current request.
/// Each is admitted under the broker's connection limits first (`crate::connection_limits`).
pub async fn serve(
    listener: TcpListener,
    listener_name: String,
    kind: ListenerKind,
    tls: Option<Arc<ListenerTls>>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let limits = broker.connection_limits.clone();
    loop {
        // Under `max.connections` a client listener stops accepting while the broker is full.
        let room = if kind == ListenerKind::Client {
            tokio::select! {
                room = limits.wait_for_room() => room,
                _ = shutdown.changed() => break,
            }
        } else {
            None
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(admission) = limits.admit(peer.ip(), room) else {
                        info!(peer = %peer, open = limits.open_from(peer.ip()), listener = %listener_name,
                            "refusing a connection: the address has max.connections.per.ip open");
                        continue;
                    };
                    let mut info = ConnectionInfo {
                        peer,
                        listener: listener_name.clone(),
                        controller: kind == ListenerKind::Controller,
                        principal: crate::principal::ANONYMOUS.to_owned(),
                        internal: false,
                    };
                    let broker = broker.clone();
                    let shutdown = shutdown.clone();
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let _admission = admission;
                        let result = match open(stream, tls.as_deref()).await {
                            Ok(stream) => {
                                let rules = tls.as_deref().map(ListenerTls::principal_rules);
                                match rules.and_then(|r| stream.client_certificate_principal(r)) {
                                    None => connection(stream, info.clone(), broker, shutdown).await,
                                    Some(Ok(principal)) => {
                                        info.principal = principal;
                                        connection(stream, info.clone(), broker, shutdown).await
                                    }
                                    Some(Err(())) => {
                                        info!(peer = %info.peer, "no ssl.principal.mapping.rules rule applies to \
                                            the client certificate; closing");
                                        Ok(())
                                    }
                                }
                            }
                            // A client that fails the handshake (untrusted, expired or missing certificate,
                            // plaintext to a TLS port) is worth a line, as Kafka logs a failed authentication.
                            Err(e) => {
                                info!(peer = %info.peer, listener = %info.listener, error = %e, "TLS handshake failed");
                                Ok(())
                            }
                        };
                        if let Err(e) = result {
                            debug!(peer = %info.peer, error = %e, "connection closed");
                        }
                    });
                }
                // Out of descriptors and the like: keep serving the connections we have.
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// What a listener serves, for its limits and its APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Clients: counted against `max.connections`.
    Client,
    /// The inter-broker listener: clients may use it too, but the cluster's own traffic must get through.
    InterBroker,
    /// A controller listener: only the quorum's and the controllers' APIs.
    Controller,
}

/// The connection's stream, after the TLS handshake on a TLS listener. A client that does not
/// complete it (plaintext to a TLS port, an untrusted certificate) is closed here. Where the kernel can
/// take the session, it does from here on (`crate::kernel_tls`).
async fn open(stream: TcpStream, tls: Option<&ListenerTls>) -> std::io::Result<Transport> {
    stream.set_nodelay(true)?;
    let Some(tls) = tls else {
        return Ok(Transport::Plain(stream));
    };
    let kernel = tls.kernel();
    let stream = RecordBoundary::new(stream, kernel.is_some());
    let stream =
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(std::io::Error::other(format!("TLS handshake failed: {e}"))),
            Err(_) => return Err(std::io::Error::other("TLS handshake timed out")),
        };
    let Some(support) = kernel else {
        return Ok(Transport::Tls(Box::new(stream)));
    };
    // The hand-over may wait for the rest of a record the client has begun: bounded like the handshake.
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, kernel_tls::offload(stream, support)).await {
        Ok(Ok(Ok(offloaded))) => Ok(Transport::Kernel(Box::new(offloaded))),
        Ok(Ok(Err(stream))) => Ok(Transport::Tls(Box::new(stream))),
        Ok(Err(e)) => Err(std::io::Error::other(format!(
            "handing TLS to the kernel failed: {e}"
        ))),
        Err(_) => Err(std::io::Error::other("handing TLS to the kernel timed out")),
    }
}

async fn connection(
    mut stream: Transport,
    mut info: ConnectionInfo,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let max_request = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let memory_wait = Duration::from_millis(broker.config.request_memory_wait_ms);
    let memory = broker.request_memory.clone();
    // On a SASL listener, the client authenticates before anything else is served.
    let sasl_settings = broker.config.sasl.get(&info.listener).cloned();
    let mut session = sasl::Session::default();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        // Take one whole frame from the buffer, reading more only when it is incomplete. The frame's bytes
        // are reserved in the broker-wide pool as they arrive: after each read, and before the next one, the
        // reservation grows to what is buffered. So memory held follows the bytes actually sent (a size
        // prefix alone costs nothing), and at most one read (READ_CHUNK) per connection is outside the pool.
        let deadline = Instant::now() + idle;
        let mut reservation = Reservation::default();
        let frame = loop {
            let mut want = READ_CHUNK;
            if buf.len() >= 4 {
                let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if size < 0 || size as u64 > max_request as u64 {
                    warn!(peer = %info.peer, size, max = max_request,
                        "request larger than socket.request.max.bytes (or negative); closing connection");
                    return Ok(());
                }
                let total = 4 + size as usize;
                let buffered = buf.len().min(total);
                while reservation.held() < buffered {
                    // Waiting while holding part of a request is what could deadlock the pool: bounded.
                    let partial = buffered > 4;
                    let wait_until = if partial {
                        deadline.min(Instant::now() + memory_wait)
                    } else {
                        deadline
                    };
                    tokio::select! {
                        biased;
                        () = memory.grow_to(&mut reservation, buffered) => {}
                        _ = shutdown.changed() => return Ok(()),
                        _ = tokio::time::sleep_until(wait_until) => {
                            let now = Instant::now();
                            if now >= deadline || !partial || memory.may_evict(now.into_std(), memory_wait) {
                                warn!(peer = %info.peer, buffered, request = total,
                                    "no request memory (queued.max.request.bytes) for a request that is still arriving; closing");
                                return Ok(());
                            }
                            // Another connection was just closed for the same reason: wait again.
                        }
                    }
                }
                if buf.len() >= total {
                    buf.advance(4);
                    break buf.split_to(size as usize).freeze();
                }
                want = (total - buf.len()).min(READ_CHUNK);
                // Geometric growth: a large frame is copied O(1) times on average.
                if buf.capacity() - buf.len() < want {
                    buf.reserve((total - buf.len()).min(buf.capacity().max(READ_CHUNK)));
                }
            }
            buf.reserve(want);
            if *shutdown.borrow() {
                return Ok(());
            }
            let mut limited = (&mut stream).take(want as u64);
            tokio::select! {
                n = limited.read_buf(&mut buf) => {
                    if n? == 0 {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    debug!(peer = %info.peer, "no complete request for connections.max.idle.ms; closing");
                    return Ok(());
                }
                _ = shutdown.changed() => return Ok(()),
            }
        };
        // Held until the request has been answered, below.
        let _reservation = reservation;

        // The quorum's own messages before Kafka's parsing, on any listener: a broker follows the log as a
        // learner at its client listener (a combined node too, once it left the voters).
        if frame.len() >= 2
            && sluice_quorum::rpc::is_quorum_api_key(i16::from_be_bytes([frame[0], frame[1]]))
        {
            let Some(quorum) = broker.metadata.quorum() else {
                debug!(peer = %info.peer, "a quorum message to a node without a quorum; closing");
                return Ok(());
            };
            // On a SASL listener only an authenticated node may speak Raft.
            if sasl_settings.is_some() && session.principal().is_none() {
                warn!(peer = %info.peer, "a quorum message before SASL authentication; closing");
                return Ok(());
            }
            // Raft traffic is the nodes' own: CLUSTER_ACTION, as Kafka asks of Vote and Fetch.
            if !crate::handlers::authz::Authz::new(&broker, &info)
                .cluster(sluice_metadata::acl::Operation::ClusterAction)
            {
                warn!(peer = %info.peer, principal = %info.principal,
                    "a quorum message without CLUSTER_ACTION on the cluster; closing");
                return Ok(());
            }
            match quorum.answer_frame(frame).await {
                Ok(reply) => {
                    stream.write_all(&reply).await?;
                    stream.flush().await?;
                }
                Err(e) => {
                    warn!(peer = %info.peer, error = %e, "malformed quorum message; closing connection");
                    return Ok(());
                }
            }
            continue;
        }

        let surface = if info.controller {
            Surface::Controller
        } else {
            Surface::Client
        };
        let request = match parse_request_on(surface, frame) {
            // A client's requests wait until the broker serves clients (ApiVersions need not).
            Ok(request)
                if surface == Surface::Client
                    && request.api_key != ApiKey::ApiVersions
                    && !broker.wait_serving(&mut shutdown).await =>
            {
                return Ok(());
            }
            Ok(request) => request,
            Err(ProtocolError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                // KIP-511: answer a too-new ApiVersions in v0 so the client learns what we do support.
                let body = ResponseKind::ApiVersions(sluice_protocol::api_versions_response_on(
                    surface,
                    sluice_protocol::codec::UNSUPPORTED_VERSION,
                ));
                let out = encode_response(correlation_id, ApiKey::ApiVersions, 0, &body)
                    .map_err(std::io::Error::other)?;
                stream.write_all(&out).await?;
                stream.flush().await?;
                continue;
            }
            Err(
                e @ (ProtocolError::UnsupportedVersion { correlation_id, .. }
                | ProtocolError::UnknownApiKey { correlation_id, .. }),
            ) => {
                info!(peer = %info.peer, error = %e, "refusing request");
                stream
                    .write_all(&error_response(
                        correlation_id,
                        sluice_protocol::codec::UNSUPPORTED_VERSION,
                    ))
                    .await?;
                stream.flush().await?;
                continue;
            }
            Err(e) => {
                warn!(peer = %info.peer, error = %e, "malformed request; closing connection");
                return Ok(());
            }
        };

        let correlation_id = request.header.correlation_id;
        let (api_key, version) = (request.api_key, request.version);
        if let Some(settings) = &sasl_settings {
            // The image is read only when a SCRAM exchange looks a user up.
            let lookup = |user: &str, m| broker.metadata.image().scram_credential(user, m).cloned();
            match session.step(settings, &lookup, api_key, &request.body) {
                Step::Serve => {}
                Step::Close => {
                    info!(peer = %info.peer, api = ?api_key, "request before SASL authentication; closing");
                    return Ok(());
                }
                Step::Answer { body, close } => {
                    let out = encode_response(correlation_id, api_key, version, &body)
                        .map_err(std::io::Error::other)?;
                    stream.write_all(&out).await?;
                    stream.flush().await?;
                    if close {
                        info!(peer = %info.peer, api = ?api_key, "SASL authentication failed; closing");
                        return Ok(());
                    }
                    if let Some(principal) = session.principal() {
                        debug!(peer = %info.peer, %principal, "authenticated");
                        info.principal = principal;
                    }
                    continue;
                }
            }
        }
        let response = if info.controller {
            crate::controller::handle(&broker, &info, request).await
        } else if api_key == ApiKey::Fetch {
            // A long-polling Fetch changes nothing: a shutdown need not wait out its max wait.
            tokio::select! {
                response = handlers::handle(&broker, &info, request) => response,
                _ = shutdown.changed() => return Ok(()),
            }
        } else {
            handlers::handle(&broker, &info, request).await
        };
        // A quota's back-off: nothing more is read from this client until it has passed (KIP-219).
        let throttle_ms = match &response {
            Response::Message(body) => match body.as_ref() {
                ResponseKind::Produce(r) => r.throttle_time_ms,
                _ => 0,
            },
            Response::Fetch(layout) => layout.throttle_time_ms,
            _ => 0,
        };
        match response {
            Response::Message(body) => {
                let out = encode_response(correlation_id, api_key, version, &body)
                    .map_err(std::io::Error::other)?;
                stream.write_all(&out).await?;
            }
            Response::Fetch(layout) => stream.write_pieces(layout.pieces).await?,
            Response::None => {}
            Response::Error(code) => {
                stream
                    .write_all(&error_response(correlation_id, code))
                    .await?
            }
        }
        // A no-op on TCP; under TLS the last record may still be in the session.
        stream.flush().await?;
        if stream.keys_spent() {
            info!(peer = %info.peer, "closing a kernel TLS connection whose keys have done their share; the client reconnects");
            return Ok(());
        }
        if throttle_ms > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(throttle_ms as u64)) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
}
