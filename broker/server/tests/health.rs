//! The readiness endpoint (`sluice.health.listener`) on real nodes: a broker is not ready until the
//! controller has unfenced it, a controller once it knows the quorum's leader.

#![allow(clippy::unwrap_used)] // a failed setup should panic

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::TestBroker;

const CLUSTER_ID: &str = "aGVhbHRoLXRlc3QtY2x1cw";

/// The status line's code of `GET path`.
fn get(addr: SocketAddr, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {reply:?}"))
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_broker_is_ready_only_once_its_controller_unfences_it() {
    // The controller's port, known before it runs: the broker starts first, with no controller to
    // register with.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let voters = format!("1000@127.0.0.1:{port}");
    let broker = TestBroker::start_in_cluster(
        tempfile::tempdir().unwrap(),
        &[
            ("node.id", "0"),
            ("process.roles", "broker"),
            ("listeners", "PLAINTEXT://127.0.0.1:0"),
            ("controller.quorum.voters", &voters),
            ("sluice.health.listener", "127.0.0.1:0"),
            ("offsets.topic.replication.factor", "1"),
        ],
        Some(CLUSTER_ID),
    );
    let broker_health = broker.health.expect("the broker's readiness endpoint");
    assert_eq!(get(broker_health, "/live"), 200);
    // Listening on the Kafka port, but fenced: not ready, and it stays so.
    TcpStream::connect(broker.addr).unwrap();
    for _ in 0..10 {
        assert_eq!(get(broker_health, "/ready"), 503);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(broker_health, "/nothing"), 404);

    let listener = format!("CONTROLLER://127.0.0.1:{port}");
    let controller = TestBroker::start_in_cluster(
        tempfile::tempdir().unwrap(),
        &[
            ("node.id", "1000"),
            ("process.roles", "controller"),
            ("listeners", &listener),
            ("advertised.listeners", ""),
            ("controller.quorum.voters", &voters),
            ("sluice.health.listener", "127.0.0.1:0"),
        ],
        Some(CLUSTER_ID),
    );
    let controller_health = controller
        .health
        .expect("the controller's readiness endpoint");
    wait_for("the controller to be ready", || {
        get(controller_health, "/ready") == 200
    });
    wait_for("the broker to be unfenced and ready", || {
        get(broker_health, "/ready") == 200
    });

    // A stopped node answers nothing, so its probe fails.
    drop(broker);
    assert!(TcpStream::connect(broker_health).is_err());
}

#[test]
fn a_bad_health_listener_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut props = std::collections::BTreeMap::new();
    props.insert("node.id".to_owned(), "1".to_owned());
    props.insert("process.roles".to_owned(), "broker,controller".to_owned());
    props.insert(
        "listeners".to_owned(),
        "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0".to_owned(),
    );
    props.insert(
        "controller.listener.names".to_owned(),
        "CONTROLLER".to_owned(),
    );
    props.insert(
        "controller.quorum.voters".to_owned(),
        "1@127.0.0.1:9093".to_owned(),
    );
    props.insert("log.dirs".to_owned(), dir.path().display().to_string());
    props.insert("sluice.health.listener".to_owned(), "everywhere".to_owned());
    let err = sluice_server::config::BrokerConfig::from_properties(&props, &|_| None, "host")
        .expect_err("refused");
    assert!(err.to_string().contains("sluice.health.listener"), "{err}");
}
