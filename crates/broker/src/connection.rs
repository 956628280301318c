//! One client connection. A reader task reads size-prefixed frames (size checked before the
//! buffer is allocated) into a bounded queue; this task handles them one at a time and
//! writes each response before taking the next, so responses leave in request order and at
//! most `max.inflight.requests.per.connection` requests wait per connection.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use runnel_protocol::frame::{check_size, FrameError};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::handlers;
use crate::sendfile::write_frame;

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("no complete request within {0:?}")]
    Timeout(Duration),
}

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>) {
    let (reader, mut writer) = stream.into_split();
    let (frames_tx, mut frames_rx) = mpsc::channel::<Bytes>(broker.config.max_inflight_requests_per_connection);
    let read_task = tokio::spawn(read_loop(broker.clone(), reader, peer, frames_tx, stop.clone()));
    while let Some(frame) = frames_rx.recv().await {
        broker.stats.requests.fetch_add(1, Ordering::Relaxed);
        match handlers::handle(&broker, frame, &stop).await {
            Ok(Some(response)) => {
                if let Err(e) = write_frame(&mut writer, response, &broker.stats.sendfile_bytes).await {
                    tracing::debug!(%peer, error = %e, "writing response failed; closing");
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                broker.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, error = %e, "closing connection after a bad request");
                break;
            }
        }
    }
    read_task.abort();
}

async fn read_loop(
    broker: Arc<Broker>,
    mut reader: OwnedReadHalf,
    peer: SocketAddr,
    frames: mpsc::Sender<Bytes>,
    mut stop: watch::Receiver<bool>,
) {
    let limit = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let body_timeout = Duration::from_millis(broker.config.request_timeout_ms);
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, limit, idle, body_timeout) => frame,
            _ = stop.changed() => return,
        };
        match frame {
            Ok(Some(frame)) => {
                if frames.send(frame).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                broker.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                return;
            }
        }
    }
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
async fn read_frame(
    reader: &mut OwnedReadHalf,
    limit: usize,
    idle: Duration,
    body_timeout: Duration,
) -> Result<Option<Bytes>, ReadError> {
    let mut prefix = [0u8; 4];
    match tokio::time::timeout(idle, reader.read_exact(&mut prefix)).await {
        Err(_) => return Err(ReadError::Timeout(idle)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(result) => {
            result?;
        }
    }
    let size = check_size(prefix, limit)?;
    // Read into spare capacity: the buffer is never zeroed, only written by the socket.
    let mut body = BytesMut::with_capacity(size);
    let read_body = async {
        while body.len() < size {
            let mut limited = (&mut *reader).take((size - body.len()) as u64);
            if limited.read_buf(&mut body).await? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed mid-frame"));
            }
        }
        Ok(())
    };
    match tokio::time::timeout(body_timeout, read_body).await {
        Err(_) => Err(ReadError::Timeout(body_timeout)),
        Ok(result) => {
            result?;
            Ok(Some(body.freeze()))
        }
    }
}
