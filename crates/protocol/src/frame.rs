//! Request framing: a 4-byte big-endian size, then the request header and body.
//!
//! The size is checked against the configured maximum before anything is allocated. The
//! header is decoded with the version its API prescribes; the body is left as a slice of the
//! frame so that record sets are never copied.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

pub const SIZE_PREFIX_BYTES: usize = 4;
/// api key (2) + api version (2) + correlation id (4).
pub const MIN_HEADER_BYTES: usize = 8;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is negative or above the limit {limit}")]
    BadSize { size: i64, limit: usize },
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("malformed request header: {0}")]
    BadHeader(String),
}

/// Checks a size prefix against the limit; returns the body length to read.
pub fn check_size(prefix: [u8; 4], limit: usize) -> Result<usize, FrameError> {
    let size = check_bound(prefix, limit)?;
    if size < MIN_HEADER_BYTES {
        return Err(FrameError::TooShort(size));
    }
    Ok(size)
}

/// The size a prefix announces, refused when negative or above `limit`; no minimum (a raw
/// SASL token after a v0 handshake carries no request header).
pub fn check_bound(prefix: [u8; 4], limit: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    usize::try_from(size).ok().filter(|s| *s <= limit).ok_or(FrameError::BadSize { size: i64::from(size), limit })
}

/// The fixed start of every request header, readable whatever the header version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

pub fn peek_prefix(frame: &[u8]) -> Result<RequestPrefix, FrameError> {
    if frame.len() < MIN_HEADER_BYTES {
        return Err(FrameError::TooShort(frame.len()));
    }
    Ok(RequestPrefix {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decodes the request header; returns it with the body (a slice of `frame`, no copy).
pub fn decode_header(mut frame: Bytes) -> Result<(ApiKey, RequestHeader, Bytes), FrameError> {
    let prefix = peek_prefix(&frame)?;
    let key = ApiKey::try_from(prefix.api_key).map_err(|_| FrameError::UnknownApiKey(prefix.api_key))?;
    let header_version = key.request_header_version(prefix.api_version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| FrameError::BadHeader(e.to_string()))?;
    let body = frame.copy_to_bytes(frame.remaining());
    Ok((key, header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_before_allocation() {
        assert!(check_size((-1i32).to_be_bytes(), 100).is_err());
        assert!(check_size(101i32.to_be_bytes(), 100).is_err());
        assert!(check_size(3i32.to_be_bytes(), 100).is_err());
        assert_eq!(check_size(50i32.to_be_bytes(), 100).unwrap(), 50);
    }

    #[test]
    fn header_v1_decodes_and_body_is_rest() {
        // ApiVersions v0: header v1 = key, version, correlation, nullable client id.
        let mut frame = vec![0, 18, 0, 0, 0, 0, 0, 7, 0, 3, b'c', b'l', b'i'];
        frame.extend_from_slice(b"BODY");
        let (key, header, body) = decode_header(Bytes::from(frame)).unwrap();
        assert_eq!(key, ApiKey::ApiVersions);
        assert_eq!(header.correlation_id, 7);
        assert_eq!(header.client_id.as_deref(), Some("cli"));
        assert_eq!(&body[..], b"BODY");
    }

    #[test]
    fn truncated_or_unknown_headers_are_errors() {
        assert!(matches!(decode_header(Bytes::from_static(&[0, 18, 0])), Err(FrameError::TooShort(3))));
        assert!(matches!(
            decode_header(Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 1])),
            Err(FrameError::UnknownApiKey(_))
        ));
        // client id length says 50 bytes but none follow
        assert!(matches!(
            decode_header(Bytes::from_static(&[0, 18, 0, 0, 0, 0, 0, 1, 0, 50])),
            Err(FrameError::BadHeader(_))
        ));
    }
}
