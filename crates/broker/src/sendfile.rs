//! Writing a response frame: encoded bytes with write(2), record data with sendfile(2)
//! straight from the segment file to the socket, never through a user-space buffer. A TLS
//! connection cannot use sendfile (no kTLS here): its record data is read from the file
//! into a buffer of at most [`TLS_READ_BYTES`] at a time and written through the encrypting
//! stream.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};

use std::os::unix::fs::FileExt;

use tokio::io::{AsyncWriteExt, Interest, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::response::{Chunk, Frame};
use runnel_storage::FileSlice;

/// The bytes of record data a TLS connection reads from a segment file at a time.
pub const TLS_READ_BYTES: usize = 64 * 1024;

/// The sending half of a connection.
pub enum ResponseWriter {
    Plain(OwnedWriteHalf),
    /// The stream, and the connection's buffer for record data (at most
    /// [`TLS_READ_BYTES`], kept across responses rather than allocated per fetch).
    Tls(Box<WriteHalf<TlsStream<TcpStream>>>, Vec<u8>),
}

impl ResponseWriter {
    /// Writes every chunk of `frame`; bytes moved by sendfile are counted in
    /// `sendfile_bytes`.
    pub async fn write_frame(&mut self, frame: Frame, sendfile_bytes: &AtomicU64) -> io::Result<()> {
        match self {
            ResponseWriter::Plain(stream) => write_frame(stream, frame, sendfile_bytes).await,
            ResponseWriter::Tls(stream, buffer) => write_frame_buffered(stream.as_mut(), buffer, frame).await,
        }
    }
}

/// Writes `frame` through a stream that transforms its bytes (TLS): file ranges are read
/// into a bounded buffer first.
async fn write_frame_buffered<W: tokio::io::AsyncWrite + Unpin>(
    stream: &mut W,
    buffer: &mut Vec<u8>,
    frame: Frame,
) -> io::Result<()> {
    for chunk in frame.chunks {
        match chunk {
            Chunk::Bytes(bytes) => stream.write_all(&bytes).await?,
            Chunk::File(slice) => {
                let mut position = slice.position;
                let mut remaining = slice.len as usize;
                if buffer.len() < remaining.min(TLS_READ_BYTES) {
                    buffer.resize(remaining.min(TLS_READ_BYTES), 0);
                }
                while remaining > 0 {
                    let step = remaining.min(TLS_READ_BYTES);
                    let read = slice.file.read_at(&mut buffer[..step], position)?;
                    if read == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "segment shorter than the fetched range",
                        ));
                    }
                    stream.write_all(&buffer[..read]).await?;
                    position += read as u64;
                    remaining -= read;
                }
            }
        }
    }
    stream.flush().await
}

/// Writes every chunk of `frame`, counting the bytes sendfile moved into `sendfile_bytes`.
async fn write_frame(stream: &mut OwnedWriteHalf, frame: Frame, sendfile_bytes: &AtomicU64) -> io::Result<()> {
    for chunk in frame.chunks {
        match chunk {
            Chunk::Bytes(bytes) => stream.write_all(&bytes).await?,
            Chunk::File(slice) => {
                send_file(stream, &slice).await?;
                sendfile_bytes.fetch_add(u64::from(slice.len), Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
async fn send_file(stream: &mut OwnedWriteHalf, slice: &FileSlice) -> io::Result<()> {
    let socket = stream.as_ref();
    let file_fd = slice.file.as_raw_fd();
    let mut offset = slice.position as libc::off_t;
    let mut remaining = slice.len as usize;
    while remaining > 0 {
        socket.writable().await?;
        let sent = socket.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call (the socket is
            // borrowed, the file is held by the Arc in `slice`); `offset` is a valid pointer.
            let n = unsafe { libc::sendfile(socket.as_raw_fd(), file_fd, &mut offset, remaining) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => {
                // The file ended before the range did: the segment was truncated under us.
                // The frame is now short, so the connection cannot continue.
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment shorter than the fetched range"));
            }
            Ok(n) => remaining -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
