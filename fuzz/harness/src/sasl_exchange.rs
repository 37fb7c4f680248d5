//! Any bytes as a client's side of a SASL exchange on a listener that offers PLAIN, SCRAM-SHA-256 and
//! SCRAM-SHA-512, through the broker's per-connection state machine (`sluice_server::sasl::Session`) with one
//! PLAIN user and one SCRAM user. The input is a sequence of messages, each a kind byte and a length byte
//! before its bytes: 0 a SaslHandshake naming a mechanism, 1 a SaslAuthenticate token, else a Metadata request.
//! A wrong token must be refused and close the connection; authenticating without the password is a bug, as is
//! a panic.
//!
//! The server nonce is random, so a fuzzed client-final message would never match it: when the first byte is
//! odd, the input is instead the client's first and final SCRAM messages (split at the first 0xFF) through
//! `sluice_server::scram` with a fixed server nonce, so mutations reach the proof check.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kafka_protocol::messages::{
    ApiKey, MetadataRequest, RequestKind, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::{ScramCredential, ScramMechanism};
use sluice_server::sasl::{Mechanism, SaslSettings, Session, Step};
use sluice_server::scram;

/// The one SCRAM user's credentials, made once (4096 PBKDF2 rounds each).
fn credentials() -> &'static BTreeMap<ScramMechanism, ScramCredential> {
    static CREDENTIALS: OnceLock<BTreeMap<ScramMechanism, ScramCredential>> = OnceLock::new();
    CREDENTIALS.get_or_init(|| {
        ScramMechanism::ALL
            .into_iter()
            .map(|m| {
                let salted = scram::salted_password(m, b"scram-secret", b"salt", 4096);
                (m, scram::credential(m, &salted, b"salt", 4096))
            })
            .collect()
    })
}

fn lookup(user: &str, m: ScramMechanism) -> Option<ScramCredential> {
    (user == "scram")
        .then(|| credentials().get(&m).cloned())
        .flatten()
}

pub fn run(data: &[u8]) {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        return scram_messages(mode, input);
    }
    let settings = SaslSettings {
        listener: "SASL_PLAINTEXT".to_owned(),
        mechanisms: vec![
            Mechanism::Plain,
            Mechanism::Scram(ScramMechanism::Sha256),
            Mechanism::Scram(ScramMechanism::Sha512),
        ],
        plain_users: BTreeMap::from([("plain".to_owned(), "plain-secret".to_owned())]),
        client_credentials: BTreeMap::new(),
    };
    let mut session = Session::default();
    let mut rest = input;
    while let [kind, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;
        let (key, body) = match kind {
            0 => (
                ApiKey::SaslHandshake,
                RequestKind::SaslHandshake(SaslHandshakeRequest::default().with_mechanism(
                    StrBytes::from_string(String::from_utf8_lossy(bytes).into_owned()),
                )),
            ),
            1 => (
                ApiKey::SaslAuthenticate,
                RequestKind::SaslAuthenticate(
                    SaslAuthenticateRequest::default()
                        .with_auth_bytes(bytes::Bytes::copy_from_slice(bytes)),
                ),
            ),
            _ => (
                ApiKey::Metadata,
                RequestKind::Metadata(MetadataRequest::default()),
            ),
        };
        let authenticated = session.principal().is_some();
        match session.step(&settings, &lookup, key, &body) {
            Step::Close | Step::Answer { close: true, .. } => return,
            Step::Serve | Step::Answer { close: false, .. } => {}
        }
        // Only the right PLAIN password gets in: SCRAM cannot be completed without the random nonce.
        if !authenticated && let Some(principal) = session.principal() {
            assert_eq!(principal, "User:plain", "authenticated without a password");
        }
    }
}

fn scram_messages(mode: u8, input: &[u8]) {
    let m = if mode & 2 == 0 {
        ScramMechanism::Sha256
    } else {
        ScramMechanism::Sha512
    };
    let (first, last) = match input.iter().position(|&b| b == 0xFF) {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &[][..]),
    };
    let Ok((exchange, _server_first)) = scram::client_first(m, first, &lookup, "fixed-nonce")
    else {
        return;
    };
    // No fuzzed proof may pass: finding one would mean knowing the password or breaking the hash.
    if let Ok((user, _)) = exchange.client_final(last) {
        panic!("a fuzzed SCRAM exchange authenticated {user}");
    }
}

/// Seeds: a PLAIN login and the first SCRAM round in the session mode, and whole SCRAM exchanges (with a wrong
/// password, so that the proof check is reached and fails) in the fixed-nonce mode.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let message = |kind: u8, bytes: &[u8]| {
        let mut out = vec![kind, bytes.len().min(255) as u8];
        out.extend_from_slice(&bytes[..bytes.len().min(255)]);
        out
    };
    let mut out = Vec::new();
    let mut plain = vec![0u8];
    plain.extend(message(0, b"PLAIN"));
    plain.extend(message(1, b"\0plain\0plain-secret"));
    plain.extend(message(2, b""));
    out.push(("plain-login".to_owned(), plain));
    for (i, m) in ScramMechanism::ALL.into_iter().enumerate() {
        let (client, first) = scram::Client::new(m, "scram", "not-the-secret");
        let mut session = vec![0u8];
        session.extend(message(0, m.name().as_bytes()));
        session.extend(message(1, &first));
        session.extend(message(1, b"c=biws,r=clientnonce123,p=AAAA"));
        out.push((format!("scram-session-{}", m.name()), session));
        let Ok((_, server_first)) = scram::client_first(m, &first, &lookup, "fixed-nonce") else {
            continue;
        };
        let Some((last, _)) = client.finish(&server_first) else {
            continue;
        };
        let mut exchange = vec![1u8 | ((i as u8) << 1)];
        exchange.extend_from_slice(&first);
        exchange.push(0xFF);
        exchange.extend_from_slice(&last);
        out.push((format!("scram-exchange-{}", m.name()), exchange));
    }
    out
}
