use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::metadata::CONSUMER_OFFSETS;

const KEY_TYPE_GROUP: i8 = 0;

/// A group's coordinator is the leader of its `__consumer_offsets` partition, as in Kafka. Transactions are
/// not supported, so transaction coordinators are not available.
pub async fn find_coordinator(
    broker: &Arc<Broker>,
    req: FindCoordinatorRequest,
    version: i16,
    listener: &str,
) -> FindCoordinatorResponse {
    if req.key_type == KEY_TYPE_GROUP
        && !broker
            .metadata
            .image()
            .topics
            .contains_key(CONSUMER_OFFSETS)
        && let Err(e) = broker.create_offsets_topic().await
    {
        tracing::warn!(error = %e, "creating {CONSUMER_OFFSETS} failed");
    }
    let image = broker.metadata.image();
    let endpoints = broker.live_endpoints(listener);
    let answer = |key: StrBytes| {
        let c = Coordinator::default().with_key(key.clone());
        if req.key_type == KEY_TYPE_GROUP {
            let partition = broker.groups.partition_for(key.as_str());
            let leader = image
                .topics
                .get(CONSUMER_OFFSETS)
                .and_then(|t| image.leader(t, partition));
            match leader.and_then(|l| endpoints.iter().find(|e| e.0 == l)) {
                Some((id, host, port, _)) => c
                    .with_node_id(BrokerId(*id))
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(*port),
                None => c
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
            }
        } else {
            c.with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "transactions are not supported",
                )))
        }
    };
    if version >= 4 {
        let coordinators = req.coordinator_keys.into_iter().map(answer).collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let c = answer(req.key);
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(c.error_message)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    }
}
