//! SASL on `SASL_PLAINTEXT` and `SASL_SSL` listeners: Kafka's keys, and the per-connection exchange
//! (SaslHandshake v1, then SaslAuthenticate) as a pure state machine the network loop drives.
//!
//! PLAIN's users are the `user_NAME="password"` entries of the listener's JAAS config
//! (`listener.name.<listener>.plain.sasl.jaas.config`, as a Kafka broker takes them). SCRAM-SHA-256 and
//! SCRAM-SHA-512 check against the credentials in the cluster metadata (`crate::scram`). Until a client has
//! authenticated, only ApiVersions and the SASL exchange are answered; anything else closes the connection, as
//! a failed authentication does (after its answer), as in Kafka.

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use sluice_metadata::{ScramCredential, ScramMechanism};

use crate::error::Error;
use crate::scram;

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// A SASL mechanism this broker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }

    fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            _ => ScramMechanism::from_name(name).map(Mechanism::Scram),
        }
    }
}

/// Where a SCRAM exchange finds a user's credential (the metadata image, in the broker).
pub type ScramLookup<'a> = &'a dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>;

/// The SASL settings of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSettings {
    pub listener: String,
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN's users and their passwords.
    pub plain_users: BTreeMap<String, String>,
    /// What this node authenticates as when it dials this listener of another node (inter-broker and
    /// controller traffic): the `username` and `password` options of each mechanism's JAAS entry, by
    /// mechanism name.
    pub client_credentials: BTreeMap<String, (String, String)>,
}

/// Whether `key` is one this module reads (so the config does not call it unknown).
pub fn is_sasl_key(key: &str) -> bool {
    let key = match key.strip_prefix("listener.name.") {
        Some(rest) => rest.split_once('.').map_or("", |(_, k)| k),
        None => key,
    };
    key.starts_with("sasl.")
        || key
            .split_once('.')
            .is_some_and(|(mech, rest)| !mech.is_empty() && rest == "sasl.jaas.config")
}

/// Reads `listener`'s settings; `get` looks a key up (after `${env:…}` substitution).
pub fn settings(
    listener: &str,
    get: &dyn Fn(&str) -> Result<Option<String>, Error>,
) -> Result<SaslSettings, Error> {
    let own = |key: &str| format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
    let (key, value) = match get(&own("sasl.enabled.mechanisms"))? {
        Some(v) => (own("sasl.enabled.mechanisms"), v),
        None => match get("sasl.enabled.mechanisms")? {
            Some(v) => ("sasl.enabled.mechanisms".to_owned(), v),
            None => {
                // Kafka's default is GSSAPI (Kerberos), which Sluice does not serve.
                return Err(Error::config(
                    "sasl.enabled.mechanisms",
                    format!(
                        "listener {listener} uses SASL: name its mechanisms (PLAIN, SCRAM-SHA-256, \
                         SCRAM-SHA-512); Kafka's default, GSSAPI, is not supported"
                    ),
                ));
            }
        },
    };
    let mut mechanisms = Vec::new();
    for m in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        match Mechanism::from_name(&m.to_ascii_uppercase()) {
            Some(m) => mechanisms.push(m),
            None => {
                return Err(Error::invalid(
                    &key,
                    &value,
                    format!("{m} is not supported; PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are"),
                ));
            }
        }
    }
    if mechanisms.is_empty() {
        return Err(Error::invalid(
            &key,
            &value,
            "at least one mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)",
        ));
    }
    // Each mechanism's JAAS entry, read once: PLAIN's users (required), and for any mechanism the
    // `username`/`password` this node dials other nodes' listeners with.
    let mut plain_users = BTreeMap::new();
    let mut client_credentials = BTreeMap::new();
    for &m in &mechanisms {
        let jaas_key = own(&format!(
            "{}.sasl.jaas.config",
            m.name().to_ascii_lowercase()
        ));
        let jaas = match get(&jaas_key)? {
            Some(jaas) => jaas,
            None if m == Mechanism::Plain => {
                return Err(Error::config(
                    &jaas_key,
                    "PLAIN needs its users: org.apache.kafka.common.security.plain.PlainLoginModule required \
                     user_NAME=\"password\" …;",
                ));
            }
            None => continue,
        };
        let (module, options) =
            parse_jaas(&jaas).map_err(|why| Error::invalid(&jaas_key, &jaas, why))?;
        let option = |name: &str| {
            options
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if let (Some(user), Some(password)) = (option("username"), option("password")) {
            client_credentials.insert(m.name().to_owned(), (user, password));
        }
        if m != Mechanism::Plain {
            continue;
        }
        if !module.ends_with("PlainLoginModule") {
            return Err(Error::invalid(
                &jaas_key,
                &jaas,
                "org.apache.kafka.common.security.plain.PlainLoginModule",
            ));
        }
        for (k, v) in &options {
            if let Some(user) = k.strip_prefix("user_") {
                plain_users.insert(user.to_owned(), v.clone());
            }
        }
        if plain_users.is_empty() {
            return Err(Error::invalid(
                &jaas_key,
                &jaas,
                "at least one user_NAME=\"password\" entry",
            ));
        }
    }
    Ok(SaslSettings {
        listener: listener.to_owned(),
        mechanisms,
        plain_users,
        client_credentials,
    })
}

/// `Module flag key="value" …;` → the module and its options. Values may be quoted (with `\"` and `\\`
/// escapes) or bare.
fn parse_jaas(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    let text = text.trim();
    let text = text
        .strip_suffix(';')
        .ok_or("a JAAS entry ends with ';'")?
        .trim();
    let mut chars = text.chars().peekable();
    let word = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut w = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' {
                break;
            }
            w.push(c);
            chars.next();
        }
        w
    };
    let module = word(&mut chars);
    let flag = word(&mut chars);
    if module.is_empty()
        || !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str())
    {
        return Err("expected `LoginModule required key=\"value\" …;`".to_owned());
    }
    let mut options = Vec::new();
    loop {
        let key = word(&mut chars);
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            return Err(format!("expected = after {key}"));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quote in the value of {key}")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        options.push((key, value));
    }
    Ok((module, options))
}

/// Where a connection's SASL exchange stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Start,
    Handshaken(Mechanism),
    /// SCRAM: the server's first message sent, the client's final one due.
    ScramFinal(Box<scram::Exchange>),
    Authenticated(String),
}

/// What the network loop does with a request on a SASL listener.
#[derive(Debug)]
pub enum Step {
    /// Serve it as usual.
    Serve,
    /// Send this answer instead; then close the connection if `close`.
    Answer {
        body: Box<ResponseKind>,
        close: bool,
    },
    /// Close the connection without an answer.
    Close,
}

/// One connection's SASL exchange.
#[derive(Debug)]
pub struct Session {
    state: State,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            state: State::Start,
        }
    }
}

impl Session {
    /// `User:NAME` once authenticated.
    pub fn principal(&self) -> Option<String> {
        match &self.state {
            State::Authenticated(user) => Some(format!("User:{user}")),
            _ => None,
        }
    }

    /// Decides on one request of the connection (no I/O; SCRAM draws a random nonce).
    pub fn step(
        &mut self,
        settings: &SaslSettings,
        scram_lookup: ScramLookup<'_>,
        key: ApiKey,
        body: &RequestKind,
    ) -> Step {
        let mechanisms = || {
            settings
                .mechanisms
                .iter()
                .map(|m| StrBytes::from_static_str(m.name()))
                .collect::<Vec<_>>()
        };
        let state = self.state.clone();
        match (&state, body) {
            (
                State::Authenticated(_),
                RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_),
            ) => Step::Answer {
                body: Box::new(illegal_state(key)),
                close: true,
            },
            (State::Authenticated(_), _) => Step::Serve,
            (_, RequestKind::ApiVersions(_)) => Step::Serve,
            (State::Start, RequestKind::SaslHandshake(r)) => {
                let wanted = r.mechanism.as_str();
                match settings.mechanisms.iter().find(|m| m.name() == wanted) {
                    Some(&m) => {
                        self.state = State::Handshaken(m);
                        Step::Answer {
                            body: Box::new(ResponseKind::SaslHandshake(
                                SaslHandshakeResponse::default().with_mechanisms(mechanisms()),
                            )),
                            close: false,
                        }
                    }
                    None => Step::Answer {
                        body: Box::new(ResponseKind::SaslHandshake(
                            SaslHandshakeResponse::default()
                                .with_error_code(UNSUPPORTED_SASL_MECHANISM)
                                .with_mechanisms(mechanisms()),
                        )),
                        close: true,
                    },
                }
            }
            (State::Handshaken(Mechanism::Plain), RequestKind::SaslAuthenticate(r)) => {
                match plain(&r.auth_bytes, &settings.plain_users) {
                    Some(user) => {
                        self.state = State::Authenticated(user);
                        authenticated(Vec::new())
                    }
                    None => authentication_failed(
                        "Authentication failed: Invalid username or password".into(),
                    ),
                }
            }
            (State::Handshaken(Mechanism::Scram(m)), RequestKind::SaslAuthenticate(r)) => {
                match scram::client_first(*m, &r.auth_bytes, scram_lookup, &scram::server_nonce()) {
                    Ok((exchange, server_first)) => {
                        self.state = State::ScramFinal(Box::new(exchange));
                        authenticated(server_first)
                    }
                    Err(why) => authentication_failed(why),
                }
            }
            (State::ScramFinal(exchange), RequestKind::SaslAuthenticate(r)) => {
                match exchange.client_final(&r.auth_bytes) {
                    Ok((user, server_final)) => {
                        self.state = State::Authenticated(user);
                        authenticated(server_final)
                    }
                    Err(why) => authentication_failed(why),
                }
            }
            (_, RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_)) => Step::Answer {
                body: Box::new(illegal_state(key)),
                close: true,
            },
            // Anything else before authenticating.
            _ => Step::Close,
        }
    }
}

/// A SaslAuthenticate answer carrying the server's next token.
fn authenticated(token: Vec<u8>) -> Step {
    Step::Answer {
        body: Box::new(ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default().with_auth_bytes(token.into()),
        )),
        close: false,
    }
}

/// SASL_AUTHENTICATION_FAILED, and the connection closed, as Kafka does.
fn authentication_failed(why: String) -> Step {
    Step::Answer {
        body: Box::new(ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(SASL_AUTHENTICATION_FAILED)
                .with_error_message(Some(StrBytes::from_string(why))),
        )),
        close: true,
    }
}

/// The answer to a SASL request where none is expected (also on listeners without SASL).
pub fn illegal_state(key: ApiKey) -> ResponseKind {
    match key {
        ApiKey::SaslHandshake => ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default().with_error_code(ILLEGAL_SASL_STATE),
        ),
        _ => ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ILLEGAL_SASL_STATE)
                .with_error_message(Some(StrBytes::from_static_str(
                    "no SASL authentication is expected here",
                ))),
        ),
    }
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL password`; the user if the password is theirs (and any
/// authorization id names the same user).
fn plain(token: &[u8], users: &BTreeMap<String, String>) -> Option<String> {
    let mut parts = token.split(|&b| b == 0);
    let (authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let user = std::str::from_utf8(user).ok()?;
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return None;
    }
    let expected = users.get(user)?;
    constant_time_eq(expected.as_bytes(), password).then(|| user.to_owned())
}

/// Equal, in a time that depends only on the lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{
        ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
    };

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
        username="admin" password="admin-secret" user_admin="admin-secret" user_alice="al\"ice";"#;

    fn parse(pairs: &[(&str, &str)]) -> Result<SaslSettings, Error> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings("SASL_PLAINTEXT", &|k| Ok(map.get(k).cloned()))
    }

    fn plain_settings() -> SaslSettings {
        parse(&[
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
        ])
        .unwrap()
    }

    #[test]
    fn users_come_from_the_listeners_jaas_config() {
        let s = plain_settings();
        assert_eq!(s.mechanisms, [Mechanism::Plain]);
        assert_eq!(s.plain_users["admin"], "admin-secret");
        assert_eq!(s.plain_users["alice"], "al\"ice");
        assert_eq!(s.plain_users.len(), 2);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_key() {
        let jaas = ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS);
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[jaas], "sasl.enabled.mechanisms"),
            (
                &[("sasl.enabled.mechanisms", "GSSAPI"), jaas],
                "GSSAPI is not supported",
            ),
            (
                &[("sasl.enabled.mechanisms", "PLAIN")],
                "plain.sasl.jaas.config",
            ),
            (
                &[
                    ("sasl.enabled.mechanisms", "PLAIN"),
                    (
                        "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                        "Plain required user_a=\"b\"",
                    ),
                ],
                "plain.sasl.jaas.config",
            ),
            (
                &[
                    ("sasl.enabled.mechanisms", "PLAIN"),
                    (
                        "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                        "x.PlainLoginModule required;",
                    ),
                ],
                "user_NAME",
            ),
        ];
        for (pairs, needle) in cases {
            let message = parse(pairs).expect_err("refused").to_string();
            assert!(message.contains(needle), "{pairs:?}: {message}");
        }
    }

    fn no_scram(_: &str, _: ScramMechanism) -> Option<ScramCredential> {
        None
    }

    fn handshake(m: &str) -> RequestKind {
        RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(m.into())),
        )
    }

    fn authenticate(token: &[u8]) -> RequestKind {
        RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default()
                .with_auth_bytes(bytes::Bytes::copy_from_slice(token)),
        )
    }

    fn error(step: &Step) -> Option<(i16, bool)> {
        let Step::Answer { body, close } = step else {
            return None;
        };
        match body.as_ref() {
            ResponseKind::SaslHandshake(r) => Some((r.error_code, *close)),
            ResponseKind::SaslAuthenticate(r) => Some((r.error_code, *close)),
            _ => None,
        }
    }

    #[test]
    fn a_session_authenticates_once_and_gates_everything_before() {
        let s = plain_settings();
        let metadata = RequestKind::Metadata(MetadataRequest::default());
        let mut session = Session::default();
        assert!(matches!(
            session.step(
                &s,
                &no_scram,
                ApiKey::ApiVersions,
                &RequestKind::ApiVersions(ApiVersionsRequest::default())
            ),
            Step::Serve
        ));
        assert!(matches!(
            session.step(&s, &no_scram, ApiKey::Metadata, &metadata),
            Step::Close
        ));
        assert_eq!(
            error(&session.step(&s, &no_scram, ApiKey::SaslHandshake, &handshake("PLAIN"))),
            Some((0, false))
        );
        assert_eq!(
            error(&session.step(
                &s,
                &no_scram,
                ApiKey::SaslAuthenticate,
                &authenticate(b"\0alice\0al\"ice")
            )),
            Some((0, false))
        );
        assert_eq!(session.principal().as_deref(), Some("User:alice"));
        assert!(matches!(
            session.step(&s, &no_scram, ApiKey::Metadata, &metadata),
            Step::Serve
        ));
        // A second exchange on the same connection is refused.
        assert_eq!(
            error(&session.step(&s, &no_scram, ApiKey::SaslHandshake, &handshake("PLAIN"))),
            Some((34, true))
        );
    }

    #[test]
    fn wrong_passwords_unknown_users_and_mechanisms_are_refused_and_closed() {
        let s = plain_settings();
        for token in [
            &b"\0alice\0wrong"[..],
            b"\0mallory\0x",
            b"\0alice",
            b"bob\0alice\0al\"ice",
            b"",
        ] {
            let mut session = Session::default();
            session.step(&s, &no_scram, ApiKey::SaslHandshake, &handshake("PLAIN"));
            assert_eq!(
                error(&session.step(
                    &s,
                    &no_scram,
                    ApiKey::SaslAuthenticate,
                    &authenticate(token)
                )),
                Some((58, true)),
                "{token:?}"
            );
            assert_eq!(session.principal(), None);
        }
        let mut session = Session::default();
        assert_eq!(
            error(&session.step(
                &s,
                &no_scram,
                ApiKey::SaslHandshake,
                &handshake("SCRAM-SHA-512")
            )),
            Some((33, true))
        );
        // Authenticating before the handshake is out of order.
        let mut session = Session::default();
        assert_eq!(
            error(&session.step(
                &s,
                &no_scram,
                ApiKey::SaslAuthenticate,
                &authenticate(b"\0alice\0al\"ice")
            )),
            Some((34, true))
        );
    }

    #[test]
    fn sasl_keys_are_recognised() {
        assert!(is_sasl_key("sasl.enabled.mechanisms"));
        assert!(is_sasl_key("listener.name.sasl_ssl.plain.sasl.jaas.config"));
        assert!(is_sasl_key(
            "listener.name.sasl_ssl.sasl.enabled.mechanisms"
        ));
        assert!(!is_sasl_key("listener.name.sasl_ssl.ssl.keystore.location"));
    }

    #[test]
    fn scram_authenticates_in_two_rounds_against_the_stored_credential() {
        let s = parse(&[
            (
                "sasl.enabled.mechanisms",
                "PLAIN, scram-sha-256,SCRAM-SHA-512",
            ),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
        ])
        .unwrap();
        let lookup = |user: &str, m| (user == "bob").then(|| scram::tests::stored(m, "hunter2"));
        for m in ScramMechanism::ALL {
            for (password, ok) in [("hunter2", true), ("hunter3", false)] {
                let mut session = Session::default();
                assert_eq!(
                    error(&session.step(&s, &lookup, ApiKey::SaslHandshake, &handshake(m.name()))),
                    Some((0, false))
                );
                let (client, first) = scram::tests::Client::new(m, "bob", password);
                let step =
                    session.step(&s, &lookup, ApiKey::SaslAuthenticate, &authenticate(&first));
                let Step::Answer { body, close: false } = step else {
                    panic!("{step:?}");
                };
                let ResponseKind::SaslAuthenticate(r) = *body else {
                    panic!("{body:?}");
                };
                assert_eq!(session.principal(), None, "not after the first round");
                let (last, expected) = client.finish(&r.auth_bytes).unwrap();
                let step =
                    session.step(&s, &lookup, ApiKey::SaslAuthenticate, &authenticate(&last));
                if ok {
                    let Step::Answer { body, close: false } = step else {
                        panic!("{step:?}");
                    };
                    let ResponseKind::SaslAuthenticate(r) = *body else {
                        panic!("{body:?}");
                    };
                    assert_eq!((r.error_code, r.auth_bytes.to_vec()), (0, expected));
                    assert_eq!(session.principal().as_deref(), Some("User:bob"));
                } else {
                    assert_eq!(error(&step), Some((58, true)));
                    assert_eq!(session.principal(), None);
                }
            }
        }
        // An unknown user fails at the first round.
        let mut session = Session::default();
        session.step(
            &s,
            &lookup,
            ApiKey::SaslHandshake,
            &handshake("SCRAM-SHA-256"),
        );
        let (_, first) = scram::tests::Client::new(ScramMechanism::Sha256, "eve", "x");
        assert_eq!(
            error(&session.step(&s, &lookup, ApiKey::SaslAuthenticate, &authenticate(&first))),
            Some((58, true))
        );
    }
}
