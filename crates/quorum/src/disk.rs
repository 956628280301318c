//! Checksummed frames, the on-disk building block shared by the log and the snapshot (files
//! are replaced atomically with `runnel_fs`).
//!
//! A frame is `u32 payload_bytes (big-endian) | u32 crc32c(payload) | payload`. A reader
//! that finds fewer bytes than the header promises, a length above its limit, or a CRC
//! mismatch reports it as [`FrameError`]: whether that is a torn tail to cut or corruption to
//! refuse is the caller's decision, because only it knows where the frame sits.

use std::io::{self, Read};

pub const FRAME_HEADER_BYTES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("frame truncated")]
    Truncated,
    #[error("frame of {bytes} bytes exceeds the limit of {limit}")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("frame checksum mismatch")]
    Checksum,
}

/// Appends one frame holding `payload` to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let bytes = u32::try_from(payload.len()).expect("callers bound payloads far below 4 GiB");
    out.extend_from_slice(&bytes.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Reads one frame. `Ok(None)` is a clean end of input exactly at a frame boundary.
pub fn read_frame(input: &mut impl Read, payload_bytes_max: u64) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut filled = 0;
    while filled < header.len() {
        match input.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (bytes, crc) = parse_header(&header);
    // Checked before allocating: a torn or corrupt length must not become a huge allocation.
    if u64::from(bytes) > payload_bytes_max {
        return Err(FrameError::TooLarge { bytes: bytes.into(), limit: payload_bytes_max });
    }
    let mut payload = vec![0u8; bytes as usize];
    input.read_exact(&mut payload).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    check_crc(&payload, crc)?;
    Ok(Some(payload))
}

pub fn parse_header(header: &[u8; FRAME_HEADER_BYTES]) -> (u32, u32) {
    let bytes = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
    (bytes, crc)
}

pub fn check_crc(payload: &[u8], crc: u32) -> Result<(), FrameError> {
    if crc32c::crc32c(payload) == crc {
        Ok(())
    } else {
        Err(FrameError::Checksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_reject_damage() {
        let mut bytes = Vec::new();
        encode_frame(b"hello", &mut bytes);
        encode_frame(b"", &mut bytes);
        let mut input = &bytes[..];
        assert_eq!(read_frame(&mut input, 16).unwrap().unwrap(), b"hello");
        assert_eq!(read_frame(&mut input, 16).unwrap().unwrap(), b"");
        assert!(read_frame(&mut input, 16).unwrap().is_none());

        assert!(matches!(read_frame(&mut &bytes[..10], 16), Err(FrameError::Truncated)));
        assert!(matches!(read_frame(&mut &bytes[..3], 16), Err(FrameError::Truncated)));
        assert!(matches!(read_frame(&mut &bytes[..], 4), Err(FrameError::TooLarge { bytes: 5, limit: 4 })));
        let mut flipped = bytes.clone();
        flipped[9] ^= 1;
        assert!(matches!(read_frame(&mut &flipped[..], 16), Err(FrameError::Checksum)));
    }
}
