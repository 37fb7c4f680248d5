//! The controller service: what the active controller answers on the controller listener. Brokers register
//! and heartbeat here (Kafka's BrokerRegistration and BrokerHeartbeat), get producer-id blocks
//! (AllocateProducerIds), and hand over the admin requests their clients sent them (Envelope). Decisions are
//! `sluice-metadata`'s pure `BrokerSessions`; this module turns them into proposals.
//!
//! Only the Raft leader acts; any other node answers NOT_CONTROLLER and the broker tries the leader.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, AlterPartitionRequest,
    AlterPartitionResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId,
    BrokerRegistrationRequest, BrokerRegistrationResponse, ControllerRegistrationRequest,
    ControllerRegistrationResponse, EnvelopeRequest, EnvelopeResponse, ProducerId, RequestKind,
    ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use sluice_metadata::leadership::{self, AlterPartitionError, IsrChange};
use sluice_metadata::sessions::{BrokerSessions, Change, Endpoint, Heartbeat, Registration};
use sluice_protocol::Request;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::{Broker, METADATA_WRITE_TIMEOUT, PRODUCER_ID_BLOCK, now_ms};
use crate::handlers::{self, Response};
use crate::metadata::MetadataRecord;
use crate::network::ConnectionInfo;
use sluice_quorum::ProposeError;

/// The tagged field of ControllerRegistration in which a Sluice controller names its metadata directory id
/// (16 bytes). Kafka defines no tagged field there, and ignores unknown ones.
pub const DIRECTORY_ID_TAG: i32 = 0x5_1c_e0;

/// The tag of an EnvelopeResponse field only Sluice reads: the metadata offset the answer depends on, so the
/// forwarding broker can wait until its own image has it (produce right after create finds the topic).
pub const ENVELOPE_OFFSET_TAG: i32 = 10_000;

pub struct Controller {
    sessions: Mutex<BrokerSessions>,
    /// The Raft term in which this node last took over the sessions (0: never).
    active_term: AtomicU64,
    /// The file's `unclean.leader.election.enable`, for topics that do not set it and while no dynamic value does.
    static_unclean_default: bool,
    node_id: i32,
}

impl Controller {
    pub fn new(session_timeout_ms: u64, unclean_default: bool, node_id: i32) -> Controller {
        Controller {
            sessions: Mutex::new(BrokerSessions::new(
                i64::try_from(session_timeout_ms).unwrap_or(i64::MAX),
            )),
            active_term: AtomicU64::new(0),
            static_unclean_default: unclean_default,
            node_id,
        }
    }

    /// `unclean.leader.election.enable` for topics that do not set it, as of `image`: a dynamic value (this
    /// node's own, then the cluster default) wins over the file's, as on Kafka's controller.
    fn unclean_default(&self, image: &crate::metadata::MetadataImage) -> bool {
        crate::dynamic_config::unclean_leader_election_default(
            self.static_unclean_default,
            image,
            self.node_id,
        )
    }

    /// The records a session change is written as: fencing and unfencing move leadership and the ISR too.
    fn records_for(
        &self,
        image: &crate::metadata::MetadataImage,
        change: Change,
    ) -> Vec<MetadataRecord> {
        match change {
            Change::Fenced { broker_id } => {
                leadership::fence(image, broker_id, self.unclean_default(image))
            }
            Change::Unfenced { broker_id } => {
                leadership::unfence(image, broker_id, self.unclean_default(image))
            }
            Change::Registered(b) => vec![MetadataRecord::BrokerRegistered { broker: b }],
        }
    }

    /// AlterPartition: a leader's ISR changes, each decided against the current image and committed together.
    async fn alter_partition(
        &self,
        broker: &Broker,
        req: AlterPartitionRequest,
    ) -> AlterPartitionResponse {
        let resp = AlterPartitionResponse::default();
        if !self.is_active(broker) {
            return resp.with_error_code(ResponseError::NotController.code());
        }
        let _w = broker.metadata.write_lock().await;
        let image = broker.metadata.image();
        match image.brokers.get(&req.broker_id.0) {
            Some(b) if b.epoch == req.broker_epoch || req.broker_epoch < 0 => {}
            _ => return resp.with_error_code(ResponseError::StaleBrokerEpoch.code()),
        }
        let mut records = Vec::new();
        let mut topics = Vec::with_capacity(req.topics.len());
        for topic in req.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in topic.partitions {
                let change = IsrChange {
                    broker_id: req.broker_id.0,
                    topic_id: topic.topic_id,
                    partition: p.partition_index,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    new_isr: p.new_isr.iter().map(|b| b.0).collect(),
                };
                let answer = PartitionData::default().with_partition_index(p.partition_index);
                partitions.push(
                    match leadership::alter_partition(&image, &change, self.unclean_default(&image)) {
                        Ok((state, record)) => {
                            records.extend(record);
                            answer
                                .with_leader_id(BrokerId(state.leader))
                                .with_leader_epoch(state.leader_epoch)
                                .with_isr(state.isr.iter().map(|b| BrokerId(*b)).collect())
                                .with_partition_epoch(state.partition_epoch)
                        }
                        Err(e) => {
                            warn!(broker_id = req.broker_id.0, partition = p.partition_index, error = %e, "ISR change refused");
                            answer.with_error_code(
                                match e {
                                    AlterPartitionError::UnknownTopic => ResponseError::UnknownTopicId,
                                    AlterPartitionError::UnknownPartition => {
                                        ResponseError::UnknownTopicOrPartition
                                    }
                                    AlterPartitionError::NotLeader(_) => {
                                        ResponseError::NotLeaderOrFollower
                                    }
                                    AlterPartitionError::FencedLeaderEpoch(..) => {
                                        ResponseError::FencedLeaderEpoch
                                    }
                                    AlterPartitionError::InvalidUpdateVersion(..) => {
                                        ResponseError::InvalidUpdateVersion
                                    }
                                    AlterPartitionError::InvalidRequest(_) => {
                                        ResponseError::InvalidRequest
                                    }
                                    AlterPartitionError::IneligibleReplica(_) => {
                                        ResponseError::IneligibleReplica
                                    }
                                }
                                .code(),
                            )
                        }
                    },
                );
            }
            topics.push(
                TopicData::default()
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions),
            );
        }
        if !records.is_empty()
            && let Err(e) = broker.propose(records).await
        {
            return resp.with_error_code(e.kafka_error().code());
        }
        resp.with_topics(topics)
    }

    /// The automatic leader rebalance, on the active controller.
    pub async fn rebalance_leaders(&self, broker: &Broker) {
        if !self.is_active(broker) {
            return;
        }
        let _w = broker.metadata.write_lock().await;
        let records = leadership::rebalance(&broker.metadata.image());
        if records.is_empty() {
            return;
        }
        let count = records.len();
        match broker.propose(records).await {
            Ok(_) => info!(
                partitions = count,
                "moved leadership back to preferred replicas"
            ),
            Err(e) => warn!(error = %e, "preferred leader elections failed"),
        }
    }

    /// Whether this node is the active controller now. On the first call of a new term it takes over the
    /// broker sessions, giving every broker a fresh one, so a failover fences nobody.
    pub fn is_active(&self, broker: &Broker) -> bool {
        let Some(quorum) = broker.metadata.quorum() else {
            return true;
        };
        let (leading, term) = quorum.leadership();
        if leading && self.active_term.swap(term, Ordering::SeqCst) != term {
            let mut sessions = self.sessions.lock();
            sessions.sync(&broker.metadata.image().brokers);
            sessions.activate(now_ms());
            info!(term, "this node is the active controller");
        }
        leading
    }

    async fn register(
        &self,
        broker: &Broker,
        req: BrokerRegistrationRequest,
    ) -> BrokerRegistrationResponse {
        let resp = BrokerRegistrationResponse::default().with_broker_epoch(-1);
        if !self.is_active(broker) {
            return resp.with_error_code(ResponseError::NotController.code());
        }
        if req.cluster_id.as_str() != broker.cluster_id {
            warn!(broker_id = req.broker_id.0, theirs = %req.cluster_id.as_str(), "registration for another cluster refused");
            return resp.with_error_code(ResponseError::InconsistentClusterId.code());
        }
        let registration = Registration {
            broker_id: req.broker_id.0,
            incarnation: req.incarnation_id,
            listeners: req
                .listeners
                .iter()
                .map(|l| Endpoint {
                    name: l.name.to_string(),
                    host: l.host.to_string(),
                    port: l.port,
                    security_protocol: l.security_protocol,
                })
                .collect(),
            rack: req.rack.as_ref().map(|r| r.to_string()),
        };
        let _w = broker.metadata.write_lock().await;
        let decision = {
            let mut sessions = self.sessions.lock();
            sessions.sync(&broker.metadata.image().brokers);
            sessions.register(registration.clone(), -1, now_ms())
        };
        let registered = match decision {
            Ok(Change::Registered(b)) => b,
            Ok(_) => return resp.with_error_code(ResponseError::UnknownServerError.code()),
            Err(duplicate) => {
                warn!(error = %duplicate, "registration refused");
                return resp.with_error_code(ResponseError::DuplicateBrokerRegistration.code());
            }
        };
        // A broker that is not a voter follows the log as a learner. The quorum dials every peer alike, with the
        // controller listener's security protocol, so the learner is reached at its inter-broker listener
        // (`inter.broker.listener.name`, the one nodes trust each other on) when it speaks that protocol, else at
        // its first listener that does. It joins before its registration commits, so the registration reaches
        // it; and only once the registration is accepted, so a second process with a live broker's id never
        // takes the live one's place in the quorum.
        let controller_listener = broker.config.controller_listener_names.first();
        let has = |map: &dyn Fn(&String) -> bool| controller_listener.is_some_and(map);
        // Kafka's ids: PLAINTEXT 0, SSL 1, SASL_PLAINTEXT 2, SASL_SSL 3.
        let quorum_protocol = i16::from(has(&|n| broker.config.tls.contains_key(n)))
            + 2 * i16::from(has(&|n| broker.config.sasl.contains_key(n)));
        if let Some(quorum) = broker.metadata.quorum()
            && let Some(l) = registration
                .listeners
                .iter()
                .find(|l| {
                    l.security_protocol == quorum_protocol
                        && broker
                            .config
                            .inter_broker_listener_name
                            .as_deref()
                            .is_some_and(|n| l.name.as_str().eq_ignore_ascii_case(n))
                })
                .or_else(|| {
                    registration
                        .listeners
                        .iter()
                        .find(|l| l.security_protocol == quorum_protocol)
                })
                .or_else(|| registration.listeners.first())
        {
            let address = crate::config::join_host_port(&l.host, l.port);
            if let Err(e) = quorum
                .ensure_learner(req.broker_id.0 as u64, &address, METADATA_WRITE_TIMEOUT)
                .await
            {
                warn!(broker_id = req.broker_id.0, error = %e, "cannot add the broker as a learner");
                let code = match e {
                    ProposeError::NotLeader { .. } => ResponseError::NotController,
                    _ => ResponseError::RequestTimedOut,
                };
                return resp.with_error_code(code.code());
            }
        }
        let kept_epoch = registered.epoch;
        // A new process under an id whose old one was never fenced (it died and came back within its
        // session, after a failover): the old incarnation leaves every ISR and leadership first, since its
        // log may have lost what it acknowledged.
        let mut records = Vec::new();
        let image = broker.metadata.image();
        if let Some(old) = image.brokers.get(&req.broker_id.0)
            && old.registration.incarnation != registration.incarnation
            && !old.fenced
        {
            records = leadership::fence(&image, req.broker_id.0, self.unclean_default(&image));
        }
        records.push(MetadataRecord::BrokerRegistered { broker: registered });
        match broker.propose(records).await {
            Ok(offset) => {
                let epoch = if kept_epoch >= 0 { kept_epoch } else { offset };
                info!(broker_id = req.broker_id.0, epoch, "broker registered");
                resp.with_broker_epoch(epoch)
            }
            Err(e) => resp.with_error_code(e.kafka_error().code()),
        }
    }

    pub(crate) async fn heartbeat(
        &self,
        broker: &Broker,
        req: BrokerHeartbeatRequest,
    ) -> BrokerHeartbeatResponse {
        let resp = BrokerHeartbeatResponse::default()
            .with_is_fenced(true)
            .with_is_caught_up(false);
        if !self.is_active(broker) {
            return resp.with_error_code(ResponseError::NotController.code());
        }
        let beat = Heartbeat {
            broker_id: req.broker_id.0,
            broker_epoch: req.broker_epoch,
            metadata_offset: req.current_metadata_offset,
            want_fence: req.want_fence,
            want_shut_down: req.want_shut_down,
        };
        let decision = {
            let mut sessions = self.sessions.lock();
            sessions.sync(&broker.metadata.image().brokers);
            sessions.heartbeat(beat, now_ms())
        };
        let (reply, change) = match decision {
            Ok(d) => d,
            Err(stale) => {
                warn!(error = %stale, "heartbeat refused");
                return resp.with_error_code(ResponseError::StaleBrokerEpoch.code());
            }
        };
        if let Some(change) = change {
            let _w = broker.metadata.write_lock().await;
            let records = self.records_for(&broker.metadata.image(), change);
            if let Err(e) = broker.propose(records).await {
                return resp.with_error_code(e.kafka_error().code());
            }
        }
        resp.with_is_caught_up(reply.is_caught_up)
            .with_is_fenced(reply.is_fenced)
            .with_should_shut_down(reply.should_shut_down)
    }

    /// Fences the brokers whose sessions ran out; called periodically on every controller, acts on the active
    /// one.
    pub async fn fence_expired(&self, broker: &Broker) {
        if !self.is_active(broker) {
            return;
        }
        let expired = {
            let mut sessions = self.sessions.lock();
            sessions.sync(&broker.metadata.image().brokers);
            sessions.expired(now_ms())
        };
        for change in expired {
            if let Change::Fenced { broker_id } = change {
                let _w = broker.metadata.write_lock().await;
                let records = self.records_for(&broker.metadata.image(), change);
                match broker.propose(records).await {
                    Ok(_) => warn!(broker_id, "broker session expired; fenced"),
                    Err(e) => warn!(broker_id, error = %e, "fencing an expired broker failed"),
                }
            }
        }
    }

    async fn allocate_producer_ids(
        &self,
        broker: &Broker,
        _req: AllocateProducerIdsRequest,
    ) -> AllocateProducerIdsResponse {
        let resp = AllocateProducerIdsResponse::default().with_producer_id_start(ProducerId(-1));
        if !self.is_active(broker) {
            return resp.with_error_code(ResponseError::NotController.code());
        }
        match broker.reserve_producer_ids().await {
            Ok(start) => resp
                .with_producer_id_start(ProducerId(start))
                .with_producer_id_len(PRODUCER_ID_BLOCK as i32),
            Err(e) => resp.with_error_code(e.kafka_error().code()),
        }
    }

    /// ControllerRegistration (KIP-919): a controller that is not in the quorum's membership yet (one started
    /// with `--no-initial-controllers`) follows the log as a learner from here on, reached at its controller
    /// listener, so that `add-controller` finds it caught up.
    async fn register_controller(
        &self,
        broker: &Broker,
        req: ControllerRegistrationRequest,
    ) -> ControllerRegistrationResponse {
        let resp = ControllerRegistrationResponse::default();
        if !self.is_active(broker) {
            return resp.with_error_code(ResponseError::NotController.code());
        }
        let Some(quorum) = broker.metadata.quorum() else {
            return resp;
        };
        let wanted = broker.config.controller_listener_names.first();
        let Some(listener) = req
            .listeners
            .iter()
            .find(|l| wanted.is_some_and(|w| l.name.as_str().eq_ignore_ascii_case(w)))
        else {
            return resp
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "controller {} named no endpoint for the controller listener {wanted:?}",
                    req.controller_id
                ))));
        };
        let address = crate::config::join_host_port(listener.host.as_str(), listener.port);
        // A controller already in the membership elsewhere is another process with its id: moving the entry
        // would hand the live one's place in the quorum to it. (A voter that moved says so with UpdateRaftVoter,
        // under its directory id; a learner that moved is moved by add-controller.)
        if let Some((known, _)) = quorum.member(req.controller_id as u64)
            && known.addr != address
        {
            warn!(controller_id = req.controller_id, known = %known.addr, theirs = %address, "controller registration refused");
            return resp
                .with_error_code(ResponseError::DuplicateBrokerRegistration.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "node {} is in the quorum already, at {}",
                    req.controller_id, known.addr
                ))));
        }
        let directory = req
            .unknown_tagged_fields
            .get(&DIRECTORY_ID_TAG)
            .and_then(|b| uuid::Uuid::from_slice(b).ok())
            .filter(|d| !d.is_nil());
        let member = sluice_quorum::Member::with_directory(&address, directory);
        match quorum
            .ensure_learner_member(req.controller_id as u64, member, METADATA_WRITE_TIMEOUT)
            .await
        {
            Ok(()) => resp,
            Err(e) => {
                warn!(controller_id = req.controller_id, error = %e, "cannot add the controller as a learner");
                let code = match e {
                    ProposeError::NotLeader { .. } => ResponseError::NotController,
                    _ => ResponseError::RequestTimedOut,
                };
                resp.with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string())))
            }
        }
    }

    /// A request a broker received from a client and handed on: decoded, handled here as if it had arrived
    /// on a client listener, and answered whole, with the offset its effects are at.
    async fn envelope(
        &self,
        broker: &Arc<Broker>,
        req: EnvelopeRequest,
        peer: SocketAddr,
    ) -> EnvelopeResponse {
        let resp = EnvelopeResponse::default();
        if !self.is_active(broker) {
            return resp.with_error_code(ResponseError::NotController.code());
        }
        let inner = match sluice_protocol::parse_request(req.request_data) {
            Ok(inner) => inner,
            Err(e) => {
                warn!(error = %e, "undecodable forwarded request");
                return resp.with_error_code(ResponseError::InvalidRequest.code());
            }
        };
        if !handlers::is_forwardable(inner.api_key) {
            return resp.with_error_code(ResponseError::InvalidRequest.code());
        }
        let (correlation_id, api_key, version) =
            (inner.header.correlation_id, inner.api_key, inner.version);
        // The client's principal, as the forwarding broker authenticated it.
        let internal = req.request_principal.is_none();
        let principal = req
            .request_principal
            .as_deref()
            .map_or(crate::principal::ANONYMOUS.into(), |p| {
                String::from_utf8_lossy(p).into_owned()
            });
        // ... and address (the port is the broker's: ACLs name hosts only).
        let peer = match req.client_host_address.len() {
            4 => <[u8; 4]>::try_from(&req.client_host_address[..])
                .map_or(peer, |ip| SocketAddr::new(ip.into(), peer.port())),
            16 => <[u8; 16]>::try_from(&req.client_host_address[..])
                .map_or(peer, |ip| SocketAddr::new(ip.into(), peer.port())),
            _ => peer,
        };
        let conn = ConnectionInfo {
            peer,
            listener: "forwarded".into(),
            controller: false,
            principal,
            internal,
        };
        let body = match handlers::handle(broker, &conn, inner).await {
            Response::Message(body) => body,
            _ => return resp.with_error_code(ResponseError::UnknownServerError.code()),
        };
        let Ok(frame) = sluice_protocol::encode_response(correlation_id, api_key, version, &body)
        else {
            return resp.with_error_code(ResponseError::UnknownServerError.code());
        };
        let mut resp = resp.with_response_data(Some(frame.freeze().slice(4..)));
        resp.unknown_tagged_fields.insert(
            ENVELOPE_OFFSET_TAG,
            Bytes::copy_from_slice(&broker.metadata.image().offset.to_be_bytes()),
        );
        resp
    }
}

/// Serves one request that came in on a controller listener.
pub async fn handle(broker: &Arc<Broker>, conn: &ConnectionInfo, request: Request) -> Response {
    if let RequestKind::ApiVersions(_) = request.body {
        return Response::Message(Box::new(ResponseKind::ApiVersions(
            sluice_protocol::api_versions_response_on(sluice_protocol::Surface::Controller, 0),
        )));
    }
    // A SASL controller listener answers these in the network loop; here none is expected.
    if let RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_) = request.body {
        return Response::Message(Box::new(crate::sasl::illegal_state(request.api_key)));
    }
    // A single node on its local log has no quorum to serve.
    let Some(controller) = broker.controller.as_ref() else {
        return Response::Error(ResponseError::UnsupportedVersion.code());
    };
    // The nodes' own APIs need CLUSTER_ACTION (with an authorizer; for a PLAINTEXT controller listener that is
    // User:ANONYMOUS, as in Kafka). The admin APIs below are checked as on a broker listener.
    let node_api = !matches!(
        request.body,
        RequestKind::DescribeQuorum(_)
            | RequestKind::DescribeCluster(_)
            | RequestKind::AddRaftVoter(_)
            | RequestKind::RemoveRaftVoter(_)
    );
    if node_api
        && !crate::handlers::authz::Authz::new(broker, conn)
            .cluster(sluice_metadata::acl::Operation::ClusterAction)
    {
        tracing::warn!(peer = %conn.peer, principal = %conn.principal, api = ?request.api_key,
            "a controller request without CLUSTER_ACTION on the cluster");
        return Response::Error(ResponseError::ClusterAuthorizationFailed.code());
    }
    let msg = match request.body {
        RequestKind::BrokerRegistration(r) => {
            ResponseKind::BrokerRegistration(controller.register(broker, r).await)
        }
        RequestKind::BrokerHeartbeat(r) => {
            ResponseKind::BrokerHeartbeat(controller.heartbeat(broker, r).await)
        }
        RequestKind::AllocateProducerIds(r) => {
            ResponseKind::AllocateProducerIds(controller.allocate_producer_ids(broker, r).await)
        }
        RequestKind::Envelope(r) => {
            ResponseKind::Envelope(controller.envelope(broker, r, conn.peer).await)
        }
        RequestKind::ControllerRegistration(r) => {
            ResponseKind::ControllerRegistration(controller.register_controller(broker, r).await)
        }
        RequestKind::AlterPartition(r) => {
            ResponseKind::AlterPartition(controller.alter_partition(broker, r).await)
        }
        // What `kafka-metadata-quorum --bootstrap-controller` asks: the quorum's APIs, served (or forwarded
        // to the active controller) as on a broker listener, and DescribeCluster listing the controllers.
        RequestKind::DescribeQuorum(_)
        | RequestKind::DescribeCluster(_)
        | RequestKind::AddRaftVoter(_)
        | RequestKind::RemoveRaftVoter(_)
        | RequestKind::UpdateRaftVoter(_) => return handlers::handle(broker, conn, request).await,
        _ => return Response::Error(ResponseError::UnsupportedVersion.code()),
    };
    Response::Message(Box::new(msg))
}

/// Fences expired brokers once a second until `shutdown`.
pub async fn sessions_task(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let Some(controller) = broker.controller.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let rebalance_every = Duration::from_millis(broker.config.leader_imbalance_check_interval_ms);
    let mut last_rebalance = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => controller.fence_expired(&broker).await,
            _ = shutdown.changed() => return,
        }
        if broker.config.auto_leader_rebalance_enable && last_rebalance.elapsed() >= rebalance_every
        {
            last_rebalance = tokio::time::Instant::now();
            controller.rebalance_leaders(&broker).await;
        }
    }
}
