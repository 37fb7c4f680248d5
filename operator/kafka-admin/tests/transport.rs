//! Bootstrap, timeouts, broken connections and reconnects, over real sockets.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use sluice_kafka_admin::{AdminClient, AdminError, NewTopic};
use support::{Mode, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A listener that answers every connection's first request with `reply`, then holds the connection open.
async fn scripted_peer(reply: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(&reply).await;
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    addr
}

fn no_broker(result: Result<AdminClient, AdminError>) -> String {
    match result {
        Err(AdminError::NoBroker(text)) => text,
        Err(other) => panic!("expected NoBroker, got {other:?}"),
        Ok(_) => panic!("connected to a peer that is not a broker"),
    }
}

#[tokio::test]
async fn unreachable_bootstrap_is_a_clear_error_within_the_timeout() {
    let timeout = Duration::from_secs(2);

    // Nothing listens: refused at once, naming the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let t0 = Instant::now();
    let text = no_broker(AdminClient::connect(&addr, "test", timeout).await);
    assert!(t0.elapsed() < timeout);
    assert!(text.contains(&addr) && text.contains("refused"), "{text}");

    // A name that does not resolve.
    let text = no_broker(AdminClient::connect("no-such-host.invalid:9092", "test", timeout).await);
    assert!(text.contains("no-such-host.invalid:9092"), "{text}");

    // Accepts (the kernel does) but never answers: bounded by the timeout, and says so.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let t0 = Instant::now();
    let text = no_broker(AdminClient::connect(&silent_addr, "test", timeout).await);
    let took = t0.elapsed();
    assert!(took >= timeout - Duration::from_millis(50), "{took:?}");
    assert!(took < timeout + Duration::from_millis(500), "{took:?}");
    assert!(
        text.contains(&silent_addr) && text.contains("no answer"),
        "{text}"
    );

    // Not host:port at all.
    assert!(matches!(
        AdminClient::connect("kafka", "test", timeout).await,
        Err(AdminError::InvalidRequest(_))
    ));
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_list_skips_dead_and_silent_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_broker(dir.path(), 0, &[]).await;
    let good = support::address(&server).to_string();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();

    let timeout = Duration::from_secs(2);
    let t0 = Instant::now();
    let list = format!("127.0.0.1:1, {silent_addr}, {good}");
    let admin = AdminClient::connect(&list, "test", timeout).await.unwrap();
    // The silent one got only its share of the budget, leaving time for the good one.
    assert!(t0.elapsed() < timeout, "{:?}", t0.elapsed());
    assert_eq!(admin.cluster().await.unwrap().brokers.len(), 1);
    drop(silent);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_and_mismatched_frames_are_refused() {
    let timeout = Duration::from_secs(2);
    // A 200 MB frame is refused without reading (or allocating) it.
    let huge = scripted_peer(200_000_000i32.to_be_bytes().to_vec()).await;
    let text = no_broker(AdminClient::connect(&huge, "test", timeout).await);
    assert!(text.contains("200000000 bytes refused"), "{text}");

    // A frame whose correlation id is not the request's.
    let mut wrong = 4i32.to_be_bytes().to_vec();
    wrong.extend_from_slice(&999i32.to_be_bytes());
    let peer = scripted_peer(wrong).await;
    let text = no_broker(AdminClient::connect(&peer, "test", timeout).await);
    assert!(text.contains("correlation id 999"), "{text}");

    // A negative size.
    let peer = scripted_peer((-5i32).to_be_bytes().to_vec()).await;
    let text = no_broker(AdminClient::connect(&peer, "test", timeout).await);
    assert!(text.contains("-5 bytes refused"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_mid_request_then_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_broker(dir.path(), 0, &[]).await;
    let proxy = Proxy::start(support::address(&server)).await;
    let admin = AdminClient::connect(&proxy.addr.to_string(), "test", Duration::from_secs(5))
        .await
        .unwrap();
    admin.cluster().await.unwrap();
    assert_eq!(proxy.connections(), 1);

    // The peer closes the connection with the request unanswered.
    proxy.set(Mode::CloseOnNextRequest);
    let err = admin
        .create_topic(&NewTopic::new("cut").partitions(1))
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&proxy.addr.to_string()), "{err}");
    assert!(err.is_retriable());

    // The next call dials again and works.
    admin
        .create_topic(&NewTopic::new("cut").partitions(1))
        .await
        .unwrap();
    assert_eq!(proxy.connections(), 2);
    assert!(admin.describe_topic("cut").await.unwrap().is_some());
    assert_eq!(proxy.connections(), 2, "a healthy connection is reused");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_times_out_then_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_broker(dir.path(), 0, &[]).await;
    let proxy = Proxy::start(support::address(&server)).await;
    let timeout = Duration::from_secs(1);
    let admin = AdminClient::connect(&proxy.addr.to_string(), "test", timeout)
        .await
        .unwrap();

    proxy.set(Mode::Stall);
    let t0 = Instant::now();
    let err = admin.list_topics().await.unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(err, AdminError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("Metadata"), "{err}");
    assert!(
        took >= timeout - Duration::from_millis(50) && took < timeout + Duration::from_millis(500),
        "{took:?}"
    );

    // The stalled connection may still deliver a late answer; it must not be reused.
    proxy.set(Mode::Pass);
    admin.list_topics().await.unwrap();
    assert_eq!(proxy.connections(), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_on_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_broker(dir.path(), 0, &[]).await;
    let port = support::address(&server).port();
    let admin = AdminClient::connect(&format!("127.0.0.1:{port}"), "test", Duration::from_secs(3))
        .await
        .unwrap();
    admin
        .create_topic(&NewTopic::new("durable").partitions(2))
        .await
        .unwrap();
    server.shutdown().await.unwrap();

    // The broker closed our connection; the call on it fails, then nothing listens at all.
    let err = admin.describe_topic("durable").await.unwrap_err();
    assert!(matches!(err, AdminError::Io { .. }), "{err:?}");
    let err = admin.describe_topic("durable").await.unwrap_err();
    assert!(matches!(err, AdminError::NoBroker(_)), "{err:?}");

    // Back on the same port with the same data: the next call reconnects.
    let server = support::start_broker(dir.path(), port, &[]).await;
    let topic = admin.describe_topic("durable").await.unwrap().unwrap();
    assert_eq!(topic.partitions.len(), 2);
    admin.delete_topic("durable").await.unwrap();
    server.shutdown().await.unwrap();
}
