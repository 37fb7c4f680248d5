//! The client's side of SASL on a Kafka connection, as a broker dials a `SASL_PLAINTEXT` or `SASL_SSL`
//! listener of another node: SaslHandshake v1, then SaslAuthenticate rounds (PLAIN: one; SCRAM: two, and the
//! server's signature checked, so a node also knows it reached a server that holds its credential).

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::scram::{ScramClient, ScramHash};

/// A mechanism this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramHash),
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(h) => h.mechanism(),
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::Scram(ScramHash::Sha256)),
            "SCRAM-SHA-512" => Some(Mechanism::Scram(ScramHash::Sha512)),
            _ => None,
        }
    }
}

/// Who to authenticate as.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 2;
/// SASL answers are small; anything larger is not one.
const MAX_ANSWER: usize = 64 * 1024;

fn refused(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, what.to_string())
}

async fn call<S, Req, Resp>(
    stream: &mut S,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &Req,
) -> io::Result<Resp>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Req: Encodable,
    Resp: Decodable,
{
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice")))
        .encode(&mut frame, key.request_header_version(version))
        .map_err(io::Error::other)?;
    body.encode(&mut frame, version).map_err(io::Error::other)?;
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&frame).await?;
    stream.flush().await?;
    let len = stream.read_i32().await?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_ANSWER)
        .ok_or_else(|| io::Error::other(format!("a {key:?} answer of {len} bytes")))?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
        .map_err(io::Error::other)?;
    if header.correlation_id != correlation_id {
        return Err(io::Error::other("SASL answer to another request"));
    }
    let resp = Resp::decode(&mut body, version).map_err(io::Error::other)?;
    if body.has_remaining() {
        return Err(io::Error::other(format!(
            "trailing bytes after a {key:?} answer"
        )));
    }
    Ok(resp)
}

async fn authenticate_round<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    correlation_id: i32,
    token: Vec<u8>,
) -> io::Result<Bytes> {
    let resp: SaslAuthenticateResponse = call(
        stream,
        ApiKey::SaslAuthenticate,
        AUTHENTICATE_VERSION,
        correlation_id,
        &SaslAuthenticateRequest::default().with_auth_bytes(token.into()),
    )
    .await?;
    if resp.error_code != 0 {
        return Err(refused(format!(
            "SASL authentication failed (error {}): {}",
            resp.error_code,
            resp.error_message.as_ref().map_or("", |m| m.as_str())
        )));
    }
    Ok(resp.auth_bytes)
}

/// Authenticates `stream` (already TLS-wrapped on a SASL_SSL listener) before anything else is sent on it.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    credentials: &Credentials,
) -> io::Result<()> {
    let mechanism = credentials.mechanism;
    let handshake: SaslHandshakeResponse = call(
        stream,
        ApiKey::SaslHandshake,
        HANDSHAKE_VERSION,
        -2,
        &SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(mechanism.name())),
    )
    .await?;
    if handshake.error_code != 0 {
        let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(refused(format!(
            "the listener does not offer {} (it offers {offered:?})",
            mechanism.name()
        )));
    }
    match mechanism {
        Mechanism::Plain => {
            let token = format!("\0{}\0{}", credentials.username, credentials.password);
            authenticate_round(stream, -3, token.into_bytes()).await?;
        }
        Mechanism::Scram(hash) => {
            let nonce = {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
            };
            let (client, first) =
                ScramClient::new(hash, &credentials.username, &credentials.password, &nonce);
            let server_first = authenticate_round(stream, -3, first).await?;
            let (last, expected) = client
                .finish(&server_first)
                .ok_or_else(|| refused("a malformed SCRAM server-first message"))?;
            let server_final = authenticate_round(stream, -4, last).await?;
            if server_final.as_ref() != expected.as_slice() {
                return Err(refused("the server's SCRAM signature is wrong"));
            }
        }
    }
    Ok(())
}
