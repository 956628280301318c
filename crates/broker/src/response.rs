//! What a handler hands back to the connection: a frame as a list of chunks, either bytes
//! already encoded or a range of a segment file to send with sendfile(2).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::Encodable;
use runnel_storage::FileSlice;

#[derive(Debug)]
pub enum Chunk {
    Bytes(Bytes),
    File(FileSlice),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(f) => f.len as usize,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One response frame, size prefix included.
#[derive(Debug, Default)]
pub struct Frame {
    pub chunks: Vec<Chunk>,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("encoding the response failed: {0}")]
pub struct EncodeError(pub String);

/// Encodes header and body into one buffer with the size prefix in front.
pub fn encode<B: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &B,
    version: i16,
) -> Result<Frame, EncodeError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_size = header.compute_size(header_version).map_err(|e| EncodeError(e.to_string()))?;
    let body_size = body.compute_size(version).map_err(|e| EncodeError(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(4 + header_size + body_size);
    buf.put_i32((header_size + body_size) as i32);
    header.encode(&mut buf, header_version).map_err(|e| EncodeError(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| EncodeError(e.to_string()))?;
    Ok(Frame { chunks: vec![Chunk::Bytes(buf.freeze())] })
}
