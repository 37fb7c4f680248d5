//! Shared by the integration tests: an in-process broker on loopback port 0 and a blocking wire client.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed setup should panic

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_server::broker::Server;
use sluice_server::config::BrokerConfig;

pub struct TestBroker {
    pub addr: SocketAddr,
    /// The readiness endpoint, when `sluice.health.listener` is set.
    pub health: Option<SocketAddr>,
    /// Every listener's bound address, by name.
    pub addresses: Vec<(String, SocketAddr)>,
    pub dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<Server>,
}

pub fn config(dir: &std::path::Path, extra: &[(&str, &str)]) -> BrokerConfig {
    let mut props: BTreeMap<String, String> = [
        ("node.id", "1"),
        ("process.roles", "broker,controller"),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
        ),
        ("advertised.listeners", "PLAINTEXT://127.0.0.1:0"),
        ("controller.listener.names", "CONTROLLER"),
        ("controller.quorum.voters", "1@127.0.0.1:9093"),
        ("offsets.topic.num.partitions", "3"),
        ("group.initial.rebalance.delay.ms", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    props.insert("log.dirs".into(), dir.display().to_string());
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    BrokerConfig::from_properties(&props, &|_| None, "test-host").unwrap()
}

impl TestBroker {
    pub fn start(extra: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> TestBroker {
        Self::start_in_cluster(dir, extra, None)
    }

    /// Starts a node of the cluster `cluster_id` (formatting its directory with that id).
    pub fn start_in_cluster(
        dir: tempfile::TempDir,
        extra: &[(&str, &str)],
        cluster_id: Option<&str>,
    ) -> TestBroker {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime
            .block_on(Server::start(config(dir.path(), extra), cluster_id))
            .unwrap();
        let addr = server.addresses[0].1;
        TestBroker {
            addr,
            health: server.health,
            addresses: server.addresses.clone(),
            dir,
            runtime: Some(runtime),
            server: Some(server),
        }
    }

    /// Shut down cleanly and hand back the data directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let runtime = self.runtime.take().unwrap();
        runtime
            .block_on(self.server.take().unwrap().shutdown())
            .unwrap();
        runtime.shutdown_timeout(Duration::from_secs(5));
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let (Some(runtime), Some(server)) = (self.runtime.take(), self.server.take()) {
            let _ = runtime.block_on(server.shutdown());
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// A blocking Kafka wire client over any byte stream (TCP, or TLS in tests/tls.rs).
pub struct Client<S = TcpStream> {
    pub stream: S,
    correlation: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client::over(stream)
    }
}

impl<S: Read + Write> Client<S> {
    pub fn over(stream: S) -> Client<S> {
        Client {
            stream,
            correlation: 0,
        }
    }

    /// Send `body` as `version` and return the decoded answer.
    pub fn call(&mut self, key: ApiKey, version: i16, body: &RequestKind) -> ResponseKind {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("matrix")))
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("test cannot encode {key:?} v{version}: {e}"));
        self.send_frame(&buf);
        let mut frame = self
            .read_frame()
            .unwrap_or_else(|e| panic!("{key:?} v{version}: no answer: {e}"));
        let header =
            ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        assert_eq!(
            header.correlation_id, self.correlation,
            "{key:?} v{version}"
        );
        ResponseKind::decode(key, &mut frame, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: undecodable answer: {e}"))
    }

    pub fn send_frame(&mut self, body: &[u8]) {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        self.stream.write_all(&out).unwrap();
    }

    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Creates a topic of one partition and one replica with `configs`; panics if refused.
pub fn create_topic<S: Read + Write>(client: &mut Client<S>, name: &str, configs: &[(&str, &str)]) {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
                .with_name(s(k))
                .with_value(Some(s(v)))
        })
        .collect();
    let ResponseKind::CreateTopics(r) = client.call(
        ApiKey::CreateTopics,
        7,
        &RequestKind::CreateTopics(
            kafka_protocol::messages::CreateTopicsRequest::default().with_topics(vec![
                kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                    .with_name(kafka_protocol::messages::TopicName(s(name)))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(configs),
            ]),
        ),
    ) else {
        panic!()
    };
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

/// The error code of an acks=1 Produce (v9) of one record holding `value` to partition 0.
pub fn produce_value<S: Read + Write>(client: &mut Client<S>, topic: &str, value: Bytes) -> i16 {
    use kafka_protocol::messages::{ProduceRequest, TopicName, produce_request};
    let ResponseKind::Produce(r) = client.call(
        ApiKey::Produce,
        9,
        &RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(TopicName(s(topic)))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(one_record_batch(None, value))),
                        ]),
                ]),
        ),
    ) else {
        panic!("not a Produce answer")
    };
    r.responses[0].partition_responses[0].error_code
}

/// A record batch (v2, uncompressed) of one record.
pub fn one_record_batch(key: Option<Bytes>, value: Bytes) -> Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key,
        value: Some(value),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &[record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}
