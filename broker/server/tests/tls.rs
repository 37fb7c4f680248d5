//! An `SSL` listener on a real broker: records produced and fetched over TLS (the Fetch path that
//! encrypts file bytes instead of `sendfile`), plaintext to the TLS port refused, client
//! certificates required and checked, and a renewed certificate served without a restart.

#![allow(clippy::unwrap_used)] // a failed setup should panic

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Client, TestBroker, s};
use kafka_protocol::messages::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};

/// A CA and what it issued, as PEM.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `name` (a DNS name or IP address), and its key, as PEM.
    fn issue(&self, name: &str) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

type TlsClient = Client<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

/// A TLS connection trusting `ca`, presenting `identity` (cert, key PEM) if given; the handshake is
/// completed here, so a refusal shows as an error.
fn tls_connect(
    addr: SocketAddr,
    ca: &str,
    identity: Option<&(String, String)>,
) -> std::io::Result<TlsClient> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    // TLS 1.3 servers check the client's certificate after the client thinks it is done: a refusal
    // arrives with the first read.
    let mut client = Client::over(stream);
    api_versions(&mut client)?;
    Ok(client)
}

fn api_versions<S: Read + Write>(client: &mut Client<S>) -> std::io::Result<()> {
    // ApiVersions v0: key 18, version 0, correlation id 1, no client id, an empty body.
    client.send_frame(&[0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    let answer = client.read_frame()?;
    assert_eq!(&answer[..4], &1i32.to_be_bytes());
    assert_eq!(i16::from_be_bytes([answer[4], answer[5]]), 0, "error code");
    Ok(())
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        // Written aside and renamed, as a certificate manager does, so a reader never sees half.
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path.display().to_string()
    }
}

fn start(extra: &[(&str, &str)]) -> (TestBroker, SocketAddr) {
    let mut config = vec![
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
        ),
        (
            "advertised.listeners",
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
        ),
        ("ssl.keystore.type", "PEM"),
    ];
    config.extend_from_slice(extra);
    let broker = TestBroker::start(&config);
    let ssl = broker
        .addresses
        .iter()
        .find(|(name, _)| name == "SSL")
        .unwrap()
        .1;
    (broker, ssl)
}

#[test]
fn records_go_both_ways_over_tls_and_plaintext_is_refused() {
    let ca = Ca::new("test CA");
    let (cert, key) = ca.issue("localhost");
    let files = Files {
        dir: tempfile::tempdir().unwrap(),
    };
    let keystore = files.write("server.pem", &format!("{key}{cert}"));
    let (_broker, ssl) = start(&[("ssl.keystore.location", &keystore)]);

    let mut client = tls_connect(ssl, &ca.pem(), None).unwrap();
    common::create_topic(&mut client, "secret", &[]);
    // Two batches, one large enough to span several TLS records and file chunks.
    let big = Bytes::from(vec![b'x'; 300 * 1024]);
    for value in [Bytes::from_static(b"first"), big.clone()] {
        assert_eq!(common::produce_value(&mut client, "secret", value), 0);
    }
    // Read back from the files, through TLS: both values, byte for byte.
    let mut values: Vec<Bytes> = Vec::new();
    while values.len() < 2 {
        let ResponseKind::Fetch(r) = client.call(
            ApiKey::Fetch,
            12,
            &RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(10)
                    .with_max_bytes(4 << 20)
                    .with_topics(vec![
                        fetch_request::FetchTopic::default()
                            .with_topic(TopicName(s("secret")))
                            .with_partitions(vec![
                                fetch_request::FetchPartition::default()
                                    .with_partition(0)
                                    .with_fetch_offset(values.len() as i64)
                                    .with_partition_max_bytes(4 << 20),
                            ]),
                    ]),
            ),
        ) else {
            panic!()
        };
        let p = &r.responses[0].partitions[0];
        assert_eq!((p.error_code, p.high_watermark), (0, 2));
        let mut records = p.records.clone().unwrap();
        let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut records).unwrap();
        values.extend(decoded.records.iter().map(|r| r.value.clone().unwrap()));
    }
    assert_eq!(values[0], Bytes::from_static(b"first"));
    assert!(values[1] == big, "the large value came back changed");
    assert_eq!(values.len(), 2);

    // A plaintext client on the TLS port gets no Kafka answer: the connection is closed.
    let mut plain = Client::connect(ssl);
    plain.send_frame(&[0, 18, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0, 0]);
    assert!(
        plain.read_frame().is_err(),
        "a plaintext request was answered"
    );
    // And a client that does not trust the broker's CA refuses it.
    assert!(tls_connect(ssl, &Ca::new("other").pem(), None).is_err());
}

#[test]
fn client_certificates_are_required_and_checked() {
    let ca = Ca::new("test CA");
    let (cert, key) = ca.issue("localhost");
    let files = Files {
        dir: tempfile::tempdir().unwrap(),
    };
    let (_broker, ssl) = start(&[
        ("ssl.keystore.certificate.chain", &cert),
        ("ssl.keystore.key", &key),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", &files.write("ca.pem", &ca.pem())),
        ("listener.name.ssl.ssl.client.auth", "required"),
    ]);
    let client_identity = ca.issue("client-1");
    tls_connect(ssl, &ca.pem(), Some(&client_identity)).unwrap();
    assert!(
        tls_connect(ssl, &ca.pem(), None).is_err(),
        "a client without a certificate was let in"
    );
    let stranger = Ca::new("another CA").issue("client-2");
    assert!(
        tls_connect(ssl, &ca.pem(), Some(&stranger)).is_err(),
        "a certificate from an untrusted CA was let in"
    );
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let old_ca = Ca::new("old CA");
    let (cert, key) = old_ca.issue("localhost");
    let files = Files {
        dir: tempfile::tempdir().unwrap(),
    };
    let keystore = files.write("server.pem", &format!("{key}{cert}"));
    let (_broker, ssl) = start(&[("ssl.keystore.location", &keystore)]);
    tls_connect(ssl, &old_ca.pem(), None).unwrap();

    // Something that is not a certificate first: the broker keeps serving the old one.
    files.write("server.pem", "not a certificate");
    std::thread::sleep(Duration::from_secs(6));
    tls_connect(ssl, &old_ca.pem(), None).unwrap();

    let new_ca = Ca::new("new CA");
    let (cert, key) = new_ca.issue("localhost");
    files.write("server.pem", &format!("{key}{cert}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while tls_connect(ssl, &new_ca.pem(), None).is_err() {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(tls_connect(ssl, &old_ca.pem(), None).is_err());
}
