//! Frames in, frames out.
//!
//! A frame is the bytes after the 4-byte size prefix. The connection reads the prefix itself (it has to bound the
//! size before allocating); everything after that is decided here.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::error::ProtocolError;
use crate::versions::Surface;

/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub version: i16,
    pub body: RequestKind,
}

/// Decode one frame into a request, checking the API and version against what a client listener serves
/// before touching the body.
pub fn parse_request(frame: Bytes) -> Result<Request, ProtocolError> {
    parse_request_on(Surface::Client, frame)
}

/// As `parse_request`, against what the listener `surface` serves.
pub fn parse_request_on(surface: Surface, mut frame: Bytes) -> Result<Request, ProtocolError> {
    // api key, api version, correlation id: the part of every header version we must read before anything else.
    if frame.len() < 8 {
        return Err(ProtocolError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if raw_key < 0 {
        return Err(ProtocolError::NotKafka(raw_key));
    }
    let api_key = ApiKey::try_from(raw_key).map_err(|_| ProtocolError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    let Some((min, max)) = surface.versions(api_key) else {
        return Err(ProtocolError::UnknownApiKey {
            api_key: raw_key,
            correlation_id,
        });
    };
    if version < min || version > max {
        return Err(ProtocolError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |reason: String| ProtocolError::Malformed {
        api_key,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|e| malformed(e.to_string()))?;
    let body =
        RequestKind::decode(api_key, &mut frame, version).map_err(|e| malformed(e.to_string()))?;
    Ok(Request {
        header,
        api_key,
        version,
        body,
    })
}

/// Encode a response, size prefix included, ready to be written to the socket.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<BytesMut, ProtocolError> {
    let encode_err = |reason: String| ProtocolError::Encode {
        api_key,
        version,
        reason,
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(|e| encode_err(e.to_string()))?;
    body.encode(&mut buf, version)
        .map_err(|e| encode_err(e.to_string()))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// The answer to a request we can name but not serve: its correlation id and an error code.
///
/// Every Kafka response body for the APIs a client could mistakenly send starts with either an error code or a
/// throttle time, so there is no body that is right for all of them; this short answer at least keeps the
/// client's request/response pairing intact and tells it which request failed and why.
pub fn error_response(correlation_id: i32, error_code: i16) -> BytesMut {
    let mut buf = BytesMut::with_capacity(10);
    buf.put_i32(6);
    buf.put_i32(correlation_id);
    buf.put_i16(error_code);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn frame<R: Encodable>(key: ApiKey, version: i16, body: &R) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")))
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_a_supported_request() {
        let req = parse_request(frame(ApiKey::Metadata, 12, &MetadataRequest::default())).unwrap();
        assert_eq!(req.api_key, ApiKey::Metadata);
        assert_eq!(req.version, 12);
        assert_eq!(req.header.correlation_id, 42);
        assert!(matches!(req.body, RequestKind::Metadata(_)));
    }

    #[test]
    fn rejects_what_it_cannot_serve_with_the_correlation_id() {
        let mut too_new =
            BytesMut::from(&frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())[..]);
        too_new[2..4].copy_from_slice(&99i16.to_be_bytes());
        let err = parse_request(too_new.freeze());
        assert!(matches!(
            err,
            Err(ProtocolError::UnsupportedVersion {
                correlation_id: 42,
                version: 99,
                ..
            })
        ));
        let mut unknown = BytesMut::new();
        unknown.put_i16(9999);
        unknown.put_i16(0);
        unknown.put_i32(7);
        assert!(matches!(
            parse_request(unknown.freeze()),
            Err(ProtocolError::UnknownApiKey {
                api_key: 9999,
                correlation_id: 7
            })
        ));
    }

    #[test]
    fn a_negative_api_key_is_not_kafka() {
        assert!(matches!(
            parse_request(Bytes::from_static(&[0xff; 16])),
            Err(ProtocolError::NotKafka(-1))
        ));
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors_not_panics() {
        let full = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
        for len in 0..full.len() {
            let _ = parse_request(full.slice(..len));
        }
        assert!(matches!(
            parse_request(Bytes::from_static(b"abc")),
            Err(ProtocolError::TooShort(3))
        ));
        // A Metadata v4 request whose topic array claims 2^31-1 entries: must fail quickly, not allocate.
        let mut bomb = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(4)
            .encode(&mut bomb, 1)
            .unwrap();
        bomb.put_i32(i32::MAX);
        assert!(matches!(
            parse_request(bomb.freeze()),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    #[test]
    fn response_has_size_prefix_and_correlation_id() {
        let body = ResponseKind::ApiVersions(crate::versions::api_versions_response(0));
        let buf = encode_response(9, ApiKey::ApiVersions, 3, &body).unwrap();
        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        assert_eq!(size, buf.len() - 4);
        assert_eq!(&buf[4..8], &9i32.to_be_bytes());
    }
}
