//! One TCP connection to one broker: size-prefixed frames, correlation ids, and the versions it negotiated.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ClientError;
use crate::stream::{Security, Stream, dial};
use crate::versions::BrokerVersions;

/// Admin answers are small; anything this large is a confused peer (or not Kafka at all), not a reply.
pub const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

pub struct Connection {
    /// The address as dialed, for messages and for telling whether it is the controller's advertised one.
    pub addr: String,
    stream: Stream,
    client_id: StrBytes,
    correlation_id: i32,
    pub versions: BrokerVersions,
}

impl Connection {
    /// Dial `addr` in the clear and negotiate API versions. The caller bounds the time this takes.
    pub async fn open(addr: &str, client_id: &str) -> Result<Connection, ClientError> {
        Connection::open_with(addr, client_id, &Security::default()).await
    }

    /// Dial `addr` as `security` says (TLS for an SSL listener) and negotiate API versions.
    pub async fn open_with(
        addr: &str,
        client_id: &str,
        security: &Security,
    ) -> Result<Connection, ClientError> {
        let stream = dial(addr, security)
            .await
            .map_err(|source| ClientError::Io {
                addr: addr.to_string(),
                source,
            })?;
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            correlation_id: 0,
            versions: BrokerVersions::default(),
        };
        conn.versions = conn.negotiate().await?;
        tracing::debug!(addr, "connected to broker");
        Ok(conn)
    }

    /// ApiVersions at our newest version. A broker that does not know that version answers in v0 with
    /// UNSUPPORTED_VERSION and its own ApiVersions range (KIP-511); then ask again at the version it has.
    async fn negotiate(&mut self) -> Result<BrokerVersions, ClientError> {
        let mut version = ApiVersionsRequest::VERSIONS.max;
        for attempt in 0..2 {
            let mut req = ApiVersionsRequest::default();
            if version >= 3 {
                req.client_software_name = StrBytes::from_static_str("sluice-kafka-client");
                req.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
            }
            let mut body = self.send_raw(ApiKey::ApiVersions, version, &req).await?;
            // error_code leads the body in every version, so it can be read before knowing the layout.
            let code = body
                .chunk()
                .get(..2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]));
            if code == Some(ResponseError::UnsupportedVersion.code()) && attempt == 0 {
                let v0 = decode::<ApiVersionsResponse>(&mut body, 0, &self.addr)?;
                let theirs = v0
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map(|k| k.max_version)
                    .unwrap_or(0);
                version = theirs.min(ApiVersionsRequest::VERSIONS.max);
                continue;
            }
            let resp = decode::<ApiVersionsResponse>(&mut body, version, &self.addr)?;
            if resp.error_code != 0 {
                return Err(ClientError::Protocol(format!(
                    "{}: ApiVersions v{version} answered with error code {}",
                    self.addr, resp.error_code
                )));
            }
            return Ok(BrokerVersions::from_api_keys(&resp.api_keys));
        }
        Err(ClientError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            reason: format!("{} refused every ApiVersions version tried", self.addr),
        })
    }

    /// Send `req` as `version` and decode the answer.
    pub async fn send<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let key = ApiKey::try_from(R::KEY)
            .map_err(|()| ClientError::Protocol(format!("unknown API key {}", R::KEY)))?;
        let mut body = self.send_raw(key, version, req).await?;
        decode::<R::Response>(&mut body, version, &self.addr)
    }

    async fn send_raw(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &impl Encodable,
    ) -> Result<Bytes, ClientError> {
        let mut body = BytesMut::with_capacity(256);
        req.encode(&mut body, version)
            .map_err(|e| cannot_encode(key, version, &e))?;
        self.round_trip(key, version, &body).await
    }

    /// Write one request frame, read one response frame, check its correlation id and return the body.
    async fn round_trip(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &[u8],
    ) -> Result<Bytes, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let mut frame = BytesMut::with_capacity(body.len() + 64);
        frame.put_i32(0); // size, filled in below
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()))
            .encode(&mut frame, key.request_header_version(version))
            .map_err(|e| cannot_encode(key, version, &e))?;
        frame.put_slice(body);
        let size = i32::try_from(frame.len() - 4)
            .map_err(|_| ClientError::InvalidRequest(format!("{key:?} request too large")))?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| self.io(e))?;
        // A no-op on TCP; TLS holds the last record until flushed.
        self.stream.flush().await.map_err(|e| self.io(e))?;

        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .await
            .map_err(|e| self.io(e))?;
        let size = i32::from_be_bytes(size);
        let len = usize::try_from(size)
            .ok()
            .filter(|len| *len <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "{}: {key:?} response frame of {size} bytes refused (limit {MAX_RESPONSE_BYTES})",
                    self.addr
                ))
            })?;
        let mut body = vec![0u8; len];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| self.io(e))?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| {
                ClientError::Protocol(format!("{}: bad {key:?} response header: {e}", self.addr))
            })?;
        if header.correlation_id != correlation_id {
            return Err(ClientError::Protocol(format!(
                "{}: {key:?} response carries correlation id {}, expected {correlation_id}",
                self.addr, header.correlation_id
            )));
        }
        Ok(body)
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }
}

/// kafka-protocol refuses, for example, a field set that the chosen version does not have: a bug here, not on the wire.
fn cannot_encode(key: ApiKey, version: i16, e: &dyn std::fmt::Display) -> ClientError {
    ClientError::Protocol(format!("cannot encode {key:?} v{version}: {e}"))
}

fn decode<T: Decodable>(body: &mut Bytes, version: i16, addr: &str) -> Result<T, ClientError> {
    T::decode(body, version).map_err(|e| {
        ClientError::Protocol(format!(
            "{addr}: undecodable {} v{version} response: {e}",
            std::any::type_name::<T>().rsplit("::").next().unwrap_or("")
        ))
    })
}
