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

/// An ApiVersions v3 request frame (size prefix included) whose client software name pads it to about
/// `size` bytes: a real request the broker answers, of a size the test chooses.
fn padded_api_versions(correlation_id: i32, size: usize) -> Vec<u8> {
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let mut body = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(3)
        .with_correlation_id(correlation_id)
        .encode(&mut body, 2)
        .unwrap();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_string("a".repeat(size.saturating_sub(40))))
        .with_client_software_version(StrBytes::from_static_str("1"))
        .encode(&mut body, 3)
        .unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Reads one answer and returns its correlation id.
fn answer_correlation(stream: &mut TcpStream) -> std::io::Result<i32> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut answer = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut answer)?;
    Ok(i32::from_be_bytes([
        answer[0], answer[1], answer[2], answer[3],
    ]))
}

fn is_timeout(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// `queued.max.request.bytes` bounds the request bytes held across all connections: while one client holds
/// the pool with a large request it is still sending, another client's request is not read, and it is
/// answered as soon as the first connection goes away.
#[test]
fn request_memory_is_bounded_across_connections() {
    let broker = common::TestBroker::start(&[("queued.max.request.bytes", "4096")]);
    // The hog sends most of a 4000-byte request: what it sent is held, 4096 - 3504 bytes are left.
    let hog_frame = padded_api_versions(1, 4000);
    let mut hog = TcpStream::connect(broker.addr).unwrap();
    hog.write_all(&hog_frame[..3504]).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    // A request larger than what is left waits, unread.
    let mut waiting = TcpStream::connect(broker.addr).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    waiting.write_all(&padded_api_versions(5, 1000)).unwrap();
    let err = answer_correlation(&mut waiting).unwrap_err();
    assert!(
        is_timeout(&err),
        "answered while the pool was spent: {err:?}"
    );

    // The hog leaves; its bytes go back to the pool and the waiting request is answered.
    drop(hog);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(answer_correlation(&mut waiting).unwrap(), 5);
}

/// Memory is held for the bytes a client sent, not for the size it announced: a crowd of connections that
/// each announce a request the size of the whole pool and send nothing more holds none of it.
#[test]
fn announced_sizes_alone_hold_no_request_memory() {
    let broker = common::TestBroker::start(&[("queued.max.request.bytes", "4096")]);
    let announcers: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(broker.addr).unwrap();
            s.write_all(&4000i32.to_be_bytes()).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut client = TcpStream::connect(broker.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(&padded_api_versions(9, 3000)).unwrap();
    assert_eq!(answer_correlation(&mut client).unwrap(), 9);
    drop(announcers);
}

/// Two requests still arriving that together hold the whole pool cannot both finish: the connection that
/// waits `sluice.request.memory.wait.ms` for memory is closed, its bytes return, and the other one is
/// answered.
#[test]
fn requests_that_deadlock_the_pool_are_broken_up() {
    let broker = common::TestBroker::start(&[
        ("queued.max.request.bytes", "4096"),
        ("sluice.request.memory.wait.ms", "300"),
    ]);
    let frames = [padded_api_versions(1, 3000), padded_api_versions(2, 3000)];
    let mut streams: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(broker.addr).unwrap())
        .collect();
    // 2000 bytes each: 4000 of 4096 held.
    for (s, f) in streams.iter_mut().zip(&frames) {
        s.write_all(&f[..2000]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    // The rest of each: neither fits in what is left.
    for (s, f) in streams.iter_mut().zip(&frames) {
        s.write_all(&f[2000..]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let outcomes: Vec<std::io::Result<i32>> = streams.iter_mut().map(answer_correlation).collect();
    let answered = outcomes.iter().filter(|o| o.is_ok()).count();
    let closed = outcomes
        .iter()
        .filter(|o| {
            matches!(o, Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof
            || e.kind() == std::io::ErrorKind::ConnectionReset)
        })
        .count();
    assert_eq!((answered, closed), (1, 1), "{outcomes:?}");
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
