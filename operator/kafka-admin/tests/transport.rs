//! Bootstrap, timeouts, broken connections and reconnects, over real sockets.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sluice_kafka_admin::{AdminClient, AdminError, ApiKey, NewTopic};
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

/// Answers ApiVersions like a broker that knows ApiVersions only up to v2 and Metadata only up to v3: a newer
/// ApiVersions gets the v0 UNSUPPORTED_VERSION reply of KIP-511. Counts connections in `accepted`.
async fn old_broker(accepted: Arc<AtomicUsize>) -> String {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
    use kafka_protocol::protocol::Encodable;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let range = |key: ApiKey, min, max| {
        ApiVersion::default()
            .with_api_key(key as i16)
            .with_min_version(min)
            .with_max_version(max)
    };
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                loop {
                    let mut size = [0u8; 4];
                    if stream.read_exact(&mut size).await.is_err() {
                        return;
                    }
                    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
                    stream.read_exact(&mut frame).await.unwrap();
                    let key = i16::from_be_bytes([frame[0], frame[1]]);
                    let version = i16::from_be_bytes([frame[2], frame[3]]);
                    assert_eq!(
                        key,
                        ApiKey::ApiVersions as i16,
                        "only ApiVersions is expected"
                    );
                    let (resp, encode_as) = if version > 2 {
                        let resp = ApiVersionsResponse::default()
                            .with_error_code(35)
                            .with_api_keys(vec![range(ApiKey::ApiVersions, 0, 2)]);
                        (resp, 0)
                    } else {
                        let resp = ApiVersionsResponse::default().with_api_keys(vec![
                            range(ApiKey::ApiVersions, 0, 2),
                            range(ApiKey::Metadata, 0, 3),
                        ]);
                        (resp, version)
                    };
                    let mut body = frame[4..8].to_vec(); // the correlation id
                    let mut encoded = bytes::BytesMut::new();
                    resp.encode(&mut encoded, encode_as).unwrap();
                    body.extend_from_slice(&encoded);
                    let mut out = (body.len() as i32).to_be_bytes().to_vec();
                    out.extend_from_slice(&body);
                    stream.write_all(&out).await.unwrap();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn old_broker_versions_are_negotiated_down_or_refused_clearly() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let addr = old_broker(accepted.clone()).await;
    // Connecting works: ApiVersions falls back to v2 after the v0 refusal.
    let admin = AdminClient::connect(&addr, "test", Duration::from_secs(2))
        .await
        .unwrap();

    // Metadata v0..3 cannot switch off auto-creation: refused before anything is sent.
    let err = admin.cluster().await.unwrap_err();
    match &err {
        AdminError::UnsupportedVersion { api, reason } => {
            assert_eq!(*api, ApiKey::Metadata);
            assert!(reason.contains("broker supports 0..3"), "{reason}");
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    assert!(!err.is_retriable());
    // An API the broker does not list at all.
    let err = admin.topic_configs("orders").await.unwrap_err();
    assert!(
        matches!(&err, AdminError::UnsupportedVersion { api: ApiKey::DescribeConfigs, reason } if reason.contains("does not offer")),
        "{err:?}"
    );
    // Nothing was sent on the connection, so it was kept.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
