//! What the network front does with bad input and with the controller listener: bad input closes that one
//! connection (never the broker), and the broker keeps serving everyone else.

#![allow(clippy::unwrap_used)] // test support: a failed setup should panic

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, RequestKind, ResponseKind,
};

fn api_versions(client: &mut common::Client) -> i16 {
    match client.call(
        ApiKey::ApiVersions,
        3,
        &RequestKind::ApiVersions(ApiVersionsRequest::default()),
    ) {
        ResponseKind::ApiVersions(r) => r.error_code,
        other => panic!("{other:?}"),
    }
}

/// The peer closed the connection: a read returns 0 bytes (or a reset) well before the timeout.
fn assert_closed(mut stream: TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("connection still open: {other:?}"),
    }
}

#[test]
fn garbage_oversize_and_truncated_requests_close_only_their_connection() {
    let broker = common::TestBroker::start(&[("socket.request.max.bytes", "1048576")]);
    let mut good = broker.client();
    assert_eq!(api_versions(&mut good), 0);

    // Garbage: a plausible length, then bytes that are no request header (API key -1): not a Kafka client.
    let mut garbage = TcpStream::connect(broker.addr).unwrap();
    garbage.write_all(&[0, 0, 0, 16]).unwrap();
    garbage.write_all(&[0xff; 16]).unwrap();
    assert_closed(garbage);

    // A well-formed request for an API that does not exist names itself: it gets UNSUPPORTED_VERSION with its
    // correlation id, and the connection goes on. Then bytes too short to be a header close it.
    let mut unknown = TcpStream::connect(broker.addr).unwrap();
    unknown
        .write_all(&[0, 0, 0, 10, 0x27, 0x0f, 0, 0, 0, 0, 0, 42, 0, 0])
        .unwrap();
    let mut answer = [0u8; 10];
    unknown.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[4..8], &42i32.to_be_bytes());
    assert_eq!(i16::from_be_bytes([answer[8], answer[9]]), 35);
    unknown.write_all(&[0, 0, 0, 3, 1, 2, 3]).unwrap();
    assert_closed(unknown);

    // A length prefix of 2 GB, and one just over socket.request.max.bytes: refused before any allocation.
    for size in [i32::MAX, 1_048_577, -5] {
        let mut big = TcpStream::connect(broker.addr).unwrap();
        big.write_all(&size.to_be_bytes()).unwrap();
        assert_closed(big);
    }

    // A Metadata request cut short: the frame says 40 bytes, 20 arrive, then the client goes away.
    let mut truncated = TcpStream::connect(broker.addr).unwrap();
    truncated
        .write_all(&[0, 0, 0, 40, 0, 3, 0, 12, 0, 0, 0, 1])
        .unwrap();
    truncated.write_all(&[0u8; 8]).unwrap();
    drop(truncated);

    // A whole frame whose body does not decode as the API it names.
    let mut malformed = TcpStream::connect(broker.addr).unwrap();
    malformed
        .write_all(&[
            0, 0, 0, 14, 0, 3, 0, 4, 0, 0, 0, 9, 0, 0, 0x7f, 0xff, 0xff, 0xff,
        ])
        .unwrap();
    assert_closed(malformed);

    // Everyone else was never disturbed.
    assert_eq!(api_versions(&mut good), 0);
    let mut fresh = broker.client();
    assert!(matches!(
        fresh.call(
            ApiKey::Metadata,
            12,
            &RequestKind::Metadata(MetadataRequest::default())
        ),
        ResponseKind::Metadata(_)
    ));
}

#[test]
fn a_controller_only_node_serves_api_versions_on_its_controller_listener() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::TestBroker::start_in(
        dir,
        &[
            ("process.roles", "controller"),
            ("listeners", "CONTROLLER://127.0.0.1:0"),
            ("advertised.listeners", ""),
        ],
    );
    let mut client = broker.client();
    assert_eq!(api_versions(&mut client), 0);
    // Client APIs are refused with an error answer, not served and not dropped.
    client.send_frame(&[0, 3, 0, 12, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0]);
    let answer = client.read_frame().unwrap();
    assert_eq!(&answer[..4], &5i32.to_be_bytes());
    assert_eq!(i16::from_be_bytes([answer[4], answer[5]]), 35);
}

/// `queued.max.request.bytes` bounds the request bytes held across all connections: while one client holds
/// the pool with a large request it is still sending, another client's request is not read, and it is
/// answered as soon as the first connection goes away.
#[test]
fn request_memory_is_bounded_across_connections() {
    let broker = common::TestBroker::start(&[("queued.max.request.bytes", "4096")]);
    // The hog announces a 4090-byte request and sends only part of it: the pool is nearly spent.
    let mut hog = TcpStream::connect(broker.addr).unwrap();
    hog.write_all(&4090i32.to_be_bytes()).unwrap();
    hog.write_all(&[0u8; 100]).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    // An ordinary request needs more than what is left: it waits, unread.
    let mut waiting = broker.client();
    waiting
        .stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut body = bytes::BytesMut::new();
    {
        use kafka_protocol::messages::RequestHeader;
        use kafka_protocol::protocol::Encodable;
        RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(5)
            .encode(&mut body, 2)
            .unwrap();
        MetadataRequest::default().encode(&mut body, 12).unwrap();
    }
    // The request only has to be larger than what the pool has left (6 bytes).
    assert!(
        body.len() > 6,
        "the probe request must not fit in what is left"
    );
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    waiting.stream.write_all(&frame).unwrap();
    let mut size = [0u8; 4];
    let err = waiting.stream.read_exact(&mut size).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "answered while the pool was spent: {err:?}"
    );

    // The hog leaves; its bytes go back to the pool and the waiting request is answered.
    drop(hog);
    waiting
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    waiting.stream.read_exact(&mut size).unwrap();
    let mut answer = vec![0u8; i32::from_be_bytes(size) as usize];
    waiting.stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[..4], &5i32.to_be_bytes());
}

/// A connection that completes no request within `connections.max.idle.ms` is closed, whether it sends
/// nothing or trickles a request that never ends; one that keeps sending requests stays.
#[test]
fn idle_and_trickling_connections_are_closed() {
    let broker = common::TestBroker::start(&[("connections.max.idle.ms", "300")]);
    let silent = TcpStream::connect(broker.addr).unwrap();
    let mut trickle = TcpStream::connect(broker.addr).unwrap();
    trickle.write_all(&1000i32.to_be_bytes()).unwrap();
    let mut busy = broker.client();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(800) {
        // Two bytes every 50 ms: alive, but the request is never complete.
        let _ = trickle.write_all(&[0, 0]);
        assert_eq!(api_versions(&mut busy), 0);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_closed(silent);
    assert_closed(trickle);
    assert_eq!(api_versions(&mut busy), 0);
}
