//! The snapshot data openraft moves around ([`crate::types::TypeConfig`]'s `SnapshotData`): the
//! image as JSON, in memory.
//!
//! While a follower receives a snapshot, openraft seeks to the offset each chunk names and
//! writes the chunk there. Over a plain `Cursor<Vec<u8>>` the leader's offset alone would size
//! the buffer (one chunk at offset 2^40 asks for a terabyte), so this buffer refuses a seek past
//! the bytes received so far (a re-sent chunk may go back; none may leave a hole) and a write
//! past `bytes_max`. Either fails that chunk with an error answered to the leader.

use std::io::{self, Cursor, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// Snapshots above this are refused unless configured otherwise. The image of a large cluster
/// (a hundred thousand partitions) takes a few tens of MiB as JSON.
pub const SNAPSHOT_BYTES_MAX_DEFAULT: u64 = 1024 * 1024 * 1024;

#[derive(Debug)]
pub struct SnapshotBuffer {
    data: Cursor<Vec<u8>>,
    bytes_max: u64,
}

impl SnapshotBuffer {
    /// An empty buffer for a snapshot being received, which may grow to `bytes_max`.
    pub fn receiving(bytes_max: u64) -> SnapshotBuffer {
        SnapshotBuffer { data: Cursor::new(Vec::new()), bytes_max }
    }

    /// A complete snapshot, to be read.
    pub fn holding(data: Vec<u8>) -> SnapshotBuffer {
        let bytes_max = data.len() as u64;
        SnapshotBuffer { data: Cursor::new(data), bytes_max }
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.data.into_inner()
    }

    fn len(&self) -> u64 {
        self.data.get_ref().len() as u64
    }
}

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

impl AsyncRead for SnapshotBuffer {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().data).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotBuffer {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let end = this.data.position().checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > this.bytes_max) {
            let why =
                format!("snapshot data past {} bytes exceeds the limit of {}", this.data.position(), this.bytes_max);
            return Poll::Ready(Err(refused(why)));
        }
        Pin::new(&mut this.data).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().data).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().data).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotBuffer {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let target = match position {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => this.len().checked_add_signed(delta),
            SeekFrom::Current(delta) => this.data.position().checked_add_signed(delta),
        };
        match target {
            Some(target) if target <= this.len() => Pin::new(&mut this.data).start_seek(SeekFrom::Start(target)),
            _ => Err(refused(format!("seek to {position:?} leaves a hole after the {} bytes received", this.len()))),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.get_mut().data).poll_complete(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_chunk_may_not_leave_a_hole_nor_pass_the_limit() {
        let mut buffer = SnapshotBuffer::receiving(8);
        buffer.write_all(b"abcd").await.unwrap();
        // A chunk sent again lands where it did; one further on than the data is refused.
        buffer.seek(SeekFrom::Start(2)).await.unwrap();
        buffer.write_all(b"CD").await.unwrap();
        assert!(buffer.seek(SeekFrom::Start(1 << 40)).await.is_err());
        assert!(buffer.seek(SeekFrom::Start(5)).await.is_err());
        // Up to the limit, and not a byte past it.
        buffer.seek(SeekFrom::Start(4)).await.unwrap();
        buffer.write_all(b"efgh").await.unwrap();
        assert!(buffer.write_all(b"i").await.is_err());
        assert_eq!(buffer.into_inner(), b"abCDefgh");

        let mut held = SnapshotBuffer::holding(b"xyz".to_vec());
        assert_eq!(held.seek(SeekFrom::End(0)).await.unwrap(), 3);
        held.seek(SeekFrom::Start(1)).await.unwrap();
        let mut read = String::new();
        held.read_to_string(&mut read).await.unwrap();
        assert_eq!(read, "yz");
    }
}
