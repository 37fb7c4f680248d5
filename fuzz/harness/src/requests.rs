//! Any bytes as one request frame, decoded and then handled by a real broker: every handler of every API and
//! version the broker serves, over real partition logs, the metadata log and the group coordinator, and the
//! answer encoded as the connection would send it. Decoding is `request_frame`'s job; this target is where a
//! request that decodes but makes no sense (a negative count, an index past the end, an arithmetic overflow,
//! a long poll that never ends) must get an answer or an error, never a panic or a hang, and a handler dropped
//! half-way (the client hung up) must leave the broker consistent for the next input. The broker enforces ACLs
//! (open while none names a resource), so CreateAcls inputs turn on the checks of later ones.
//!
//! One broker serves many inputs, so state builds up as it would for a long-lived broker; it is replaced by a
//! fresh one every `INPUTS_PER_BROKER` inputs so the data directory stays small. Time is tokio's paused clock:
//! a Fetch that long-polls for ten minutes or a group that waits out a rebalance returns at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::messages::RequestKind;
use sluice_server::broker::Broker;
use sluice_server::config::BrokerConfig;
use sluice_server::handlers::{self, Response};
use sluice_server::network::ConnectionInfo;

const INPUTS_PER_BROKER: u32 = 2000;
const VIRTUAL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Partitions one input may create: enough for every code path, few enough that files stay cheap.
const MAX_NEW_PARTITIONS: i64 = 32;

struct Env {
    runtime: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    inputs: u32,
    // Dropped last: the broker's files live here.
    _dir: tempfile::TempDir,
}

static ENV: Mutex<Option<Env>> = Mutex::new(None);

fn start() -> Option<Env> {
    let dir = crate::scratch_dir().ok()?;
    let props: BTreeMap<String, String> = [
        ("node.id", "1"),
        ("process.roles", "broker,controller"),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
        ),
        ("advertised.listeners", "PLAINTEXT://127.0.0.1:9092"),
        ("controller.listener.names", "CONTROLLER"),
        ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ("offsets.topic.num.partitions", "2"),
        ("num.partitions", "2"),
        ("group.initial.rebalance.delay.ms", "0"),
        ("log.index.size.max.bytes", "4096"),
        ("log.dirs", &dir.path().display().to_string()),
        // ACLs enforced, yet open until an input creates one: the ACL APIs and every handler's checks run.
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("allow.everyone.if.no.acl.found", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = BrokerConfig::from_properties(&props, &|_| None, "fuzz-host").ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .ok()?;
    let broker = runtime
        .block_on(async { Broker::open(config, None) })
        .ok()?;
    Some(Env {
        runtime,
        broker,
        inputs: 0,
        _dir: dir,
    })
}

/// Partitions the request would add, to keep an input from filling the disk.
fn new_partitions(body: &RequestKind) -> i64 {
    match body {
        RequestKind::CreateTopics(r) => r
            .topics
            .iter()
            .map(|t| {
                (t.num_partitions.max(0) as i64)
                    .max(t.assignments.len() as i64)
                    .max(1)
            })
            .sum(),
        RequestKind::CreatePartitions(r) => r.topics.iter().map(|t| t.count.max(0) as i64).sum(),
        _ => 0,
    }
}

pub fn run(data: &[u8]) {
    let Ok(request) = sluice_protocol::parse_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    if new_partitions(&request.body) > MAX_NEW_PARTITIONS {
        return;
    }
    let Ok(mut env) = ENV.lock() else {
        return;
    };
    if env.as_ref().is_none_or(|e| e.inputs >= INPUTS_PER_BROKER) {
        *env = None;
        *env = start();
    }
    let Some(env) = env.as_mut() else {
        return;
    };
    env.inputs += 1;
    let info = ConnectionInfo {
        peer: "127.0.0.1:40000".parse().expect("a literal address"),
        listener: "PLAINTEXT".into(),
        controller: false,
        principal: sluice_server::principal::ANONYMOUS.into(),
        internal: false,
    };
    let (correlation_id, api_key, version) = (
        request.header.correlation_id,
        request.api_key,
        request.version,
    );
    let broker = env.broker.clone();
    // At most VIRTUAL_WAIT of the paused clock per request: a JoinGroup may wait out a five-minute rebalance,
    // and the group sweeper would run three thousand times to get there. Dropping the handler then is what a
    // client hanging up mid-request does to it on a real connection.
    let response = env.runtime.block_on(async move {
        tokio::time::timeout(VIRTUAL_WAIT, handlers::handle(&broker, &info, request)).await
    });
    if let Ok(Response::Message(body)) = response {
        let _ = sluice_protocol::encode_response(correlation_id, api_key, version, &body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds reach the handlers: a broker starts, and a captured CreateTopics creates its topics.
    #[test]
    fn a_captured_create_topics_creates_its_topics_on_the_fuzzed_broker() {
        let path = format!(
            "{}/../corpus/requests/captured-api19-v04-0",
            env!("CARGO_MANIFEST_DIR")
        );
        let seed = std::fs::read(path).expect("seed");
        run(&seed);
        let env = ENV.lock().expect("lock");
        let env = env.as_ref().expect("a broker started");
        assert!(env.broker.metadata.image().topics.contains_key("seeds"));
    }
}
