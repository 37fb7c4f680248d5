//! Any bytes as what a client sends first on an SSL listener, through the broker's own TLS server config
//! (`sluice_server::tls::server_config`, with a fixed certificate; the first byte's low bit picks whether
//! client certificates are required) into the handshake and, if the bytes get that far, the record layer.
//! The second bit cuts the bytes at TLS record boundaries first, as the broker reads them when kernel TLS
//! may take the session over (`sluice_server::kernel_tls::Boundaries`). An error, or an alert to send
//! back, is the right answer to garbage; a panic, a huge allocation or a hang is a bug.

use std::io::Read;
use std::sync::{Arc, OnceLock};

use sluice_server::tls::{ClientAuth, Pem, TlsSettings};

/// The broker's server configs: without and with required client certificates.
fn configs() -> &'static [Arc<rustls::ServerConfig>; 2] {
    static CONFIGS: OnceLock<[Arc<rustls::ServerConfig>; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a test certificate");
        let inline = |key: &str, text: String| Pem::Inline {
            key: key.to_owned(),
            text,
        };
        let settings = |client_auth| TlsSettings {
            listener: "SSL".to_owned(),
            chain: inline("ssl.keystore.certificate.chain", cert.cert.pem()),
            key: Some(inline("ssl.keystore.key", cert.signing_key.serialize_pem())),
            truststore: Some(inline("ssl.truststore.certificates", cert.cert.pem())),
            client_auth,
            tls12: true,
            tls13: true,
            verify_hostname: true,
            principal_rules: Default::default(),
        };
        [ClientAuth::None, ClientAuth::Required].map(|auth| {
            sluice_server::tls::server_config(&settings(auth), true)
                .expect("the fuzz target's TLS config")
        })
    })
}

pub fn run(data: &[u8]) {
    let Some((&mode, mut input)) = data.split_first() else {
        return;
    };
    let config = configs()[usize::from(mode & 1)].clone();
    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut boundaries = sluice_server::kernel_tls::Boundaries::new(mode & 2 != 0);
    let mut sink = Vec::new();
    let mut plaintext = [0u8; 4096];
    // Each read_tls takes at least one byte or returns 0, so this ends.
    while !input.is_empty() {
        let allowed = boundaries
            .allowance()
            .unwrap_or(input.len())
            .min(input.len());
        if allowed == 0 {
            break;
        }
        let mut chunk = &input[..allowed];
        match conn.read_tls(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                boundaries.consumed(&input[..n]);
                input = &input[n..];
            }
        }
        let failed = conn.process_new_packets().is_err();
        while conn.wants_write() {
            sink.clear();
            if conn.write_tls(&mut sink).is_err() {
                break;
            }
        }
        if failed {
            break;
        }
        let _ = conn.reader().read(&mut plaintext);
    }
}

/// A real ClientHello (TLS 1.2 and 1.3 offered) for the seed corpus, behind the mode byte.
pub fn client_hello(mode: u8) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a server name");
    let mut client =
        rustls::ClientConnection::new(Arc::new(config), name).expect("a client connection");
    let mut out = vec![mode];
    while client.wants_write() {
        if client.write_tls(&mut out).is_err() {
            break;
        }
    }
    out
}
