//! One client connection, served by one task: read a size-prefixed frame (the size is
//! checked before anything is reserved for it), handle it, write its response, then take the
//! next. Responses therefore leave in request order, and one request per connection is in
//! progress at a time, as in Kafka (which mutes a channel until its response is sent).
//! Pipelined requests wait in the kernel's socket buffer and in a read buffer that holds at
//! most one frame plus [`READ_AHEAD_BYTES`]. Doing the reading in the same task as the
//! handling saves a task wake-up and a cross-thread hand-off per request.
//!
//! On a TLS listener the handshake comes first (bounded by `request.timeout.ms`), then the
//! same loop runs over the encrypted stream; record data is then read into a bounded
//! buffer and encrypted, as sendfile cannot encrypt (see `sendfile.rs`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use runnel_protocol::frame::{check_bound, check_size, FrameError, SIZE_PREFIX_BYTES};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::broker::Broker;
use crate::handlers;
use crate::sendfile::ResponseWriter;
use crate::session::Session;
use crate::tls::TlsContext;

/// How much a read may take beyond the current frame: small pipelined requests then cost
/// one read for several.
const READ_AHEAD_BYTES: usize = 64 * 1024;
/// A read buffer grown past this by a large frame is given back once the frame is taken.
const READ_BUFFER_KEPT_BYTES: usize = 4 * READ_AHEAD_BYTES;

/// A request frame and its share of the node's `queued.max.request.bytes`, returned when
/// the request has been answered.
pub struct Admitted {
    pub frame: Bytes,
    _budget: OwnedSemaphorePermit,
    /// How long the request waited for the node's request budget (its queue time).
    queued: Duration,
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("no complete request within {0:?}")]
    Timeout(Duration),
}

/// Serves one accepted connection of a listener (`tls` set for SSL and SASL_SSL).
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    session: Session,
    tls: Option<Arc<TlsContext>>,
    stop: watch::Receiver<bool>,
) {
    let peer = session.peer;
    let Some(tls) = tls else {
        let (reader, writer) = stream.into_split();
        return serve_stream(broker, reader, ResponseWriter::Plain(writer), session, stop).await;
    };
    let handshake_timeout = Duration::from_millis(broker.config.request_timeout_ms);
    match tokio::time::timeout(handshake_timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => {
            match tls.principal_of(stream.get_ref().1.peer_certificates()) {
                Ok(Some(principal)) => {
                    tracing::debug!(%peer, %principal, "TLS client authenticated");
                    session.set_tls_principal(principal);
                }
                Ok(None) => {}
                Err(why) => {
                    tracing::warn!(%peer, listener = %session.listener, why, "client certificate refused; closing");
                    return;
                }
            }
            let (reader, writer) = tokio::io::split(stream);
            serve_stream(broker, reader, ResponseWriter::Tls(Box::new(writer), Vec::new()), session, stop).await
        }
        Ok(Err(e)) => {
            broker.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, listener = %session.listener, error = %e, "TLS handshake failed; closing");
        }
        Err(_) => tracing::warn!(%peer, listener = %session.listener, "TLS handshake timed out; closing"),
    }
}

async fn serve_stream<R: AsyncRead + Unpin>(
    broker: Arc<Broker>,
    reader: R,
    mut writer: ResponseWriter,
    session: Session,
    mut stop: watch::Receiver<bool>,
) {
    let peer: SocketAddr = session.peer;
    let mut frames = FrameReader::new(reader, &broker);
    let write_timeout = Duration::from_millis(broker.config.request_timeout_ms);
    loop {
        let frame = tokio::select! {
            frame = frames.next(read_limits(&broker, &session)) => frame,
            _ = stop.changed() => return,
        };
        let Admitted { frame, _budget, queued } = match frame {
            Ok(Some(admitted)) => admitted,
            Ok(None) => return,
            // A TLS client that leaves without close_notify (librdkafka, most clients) is an
            // ordinary end of connection, not a bad frame.
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof && session.protocol.uses_tls() => {
                tracing::debug!(%peer, error = %e, "TLS client left without close_notify");
                return;
            }
            Err(e) => {
                broker.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                return;
            }
        };
        broker.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mute = match handlers::handle(&broker, frame, &stop, &session).await {
            Ok(handlers::Answer { frame: Some(response), mute, timing }) => {
                // A client that stops reading must not hold its connection slot (and the
                // request's budget) for ever.
                let write = writer.write_frame(response, &broker.stats.sendfile_bytes);
                let sending = std::time::Instant::now();
                let written = tokio::time::timeout(write_timeout, write).await;
                if let Some(timing) = timing {
                    handlers::record_timing(&broker, &session, timing, queued, sending.elapsed());
                }
                match written {
                    Ok(Ok(())) if session.closing() => {
                        tracing::debug!(%peer, "closing connection after its response (failed authentication)");
                        return;
                    }
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "writing response failed; closing");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, timeout = ?write_timeout, "response not taken in time; closing");
                        return;
                    }
                }
                mute
            }
            Ok(handlers::Answer { frame: None, mute, timing }) => {
                if let Some(timing) = timing {
                    handlers::record_timing(&broker, &session, timing, queued, Duration::ZERO);
                }
                mute
            }
            Err(e) => {
                broker.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, error = %e, "closing connection after a bad request");
                return;
            }
        };
        // A throttled client: its connection is muted (nothing more is read from it) for the
        // throttle time, whether or not the client honours the hint in the response.
        if !mute.is_zero() {
            drop(_budget);
            tokio::select! {
                _ = tokio::time::sleep(mute) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// What the next frame may be: its largest size, and whether it is a raw SASL token.
#[derive(Debug, Clone, Copy)]
struct ReadLimits {
    max_bytes: usize,
    raw_token: bool,
}

/// Before a client on a SASL listener has authenticated, its frames are bounded by
/// `sasl.server.max.receive.size` (Kafka's 512 KiB), not `socket.request.max.bytes`: a
/// stranger cannot take the node's request budget with large frames it trickles in.
fn read_limits(broker: &Broker, session: &Session) -> ReadLimits {
    if session.sasl.is_none() {
        return ReadLimits { max_bytes: usize::MAX, raw_token: false };
    }
    let max_bytes = if session.is_authenticated() { usize::MAX } else { broker.config.sasl_server_max_receive_size };
    ReadLimits { max_bytes, raw_token: session.expects_raw_token() }
}

/// Splits the byte stream into frames, reading ahead a bounded amount.
struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
    limit: usize,
    idle: Duration,
    body_timeout: Duration,
    budget: Arc<Semaphore>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(reader: R, broker: &Broker) -> Self {
        FrameReader {
            reader,
            buf: BytesMut::new(),
            limit: broker.config.socket_request_max_bytes,
            idle: Duration::from_millis(broker.config.connections_max_idle_ms),
            body_timeout: Duration::from_millis(broker.config.request_timeout_ms),
            budget: broker.request_budget.clone(),
        }
    }

    /// Reads until the buffer holds `wanted` bytes; false at a clean end of stream before
    /// any byte of a new frame arrived.
    async fn fill(&mut self, wanted: usize) -> Result<bool, ReadError> {
        while self.buf.len() < wanted {
            self.buf.reserve(wanted - self.buf.len() + READ_AHEAD_BYTES);
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(false);
                }
                return Err(
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed mid-frame").into()
                );
            }
        }
        Ok(true)
    }

    /// The next frame (without its size prefix); `Ok(None)` at a clean end of stream. The
    /// body is read only once the node's budget of request bytes in flight has room for it
    /// (Kafka's `queued.max.request.bytes`): until then it waits in the socket.
    async fn next(&mut self, limits: ReadLimits) -> Result<Option<Admitted>, ReadError> {
        if self.buf.capacity() > READ_BUFFER_KEPT_BYTES && self.buf.len() <= READ_AHEAD_BYTES {
            self.buf = BytesMut::from(&self.buf[..]);
        }
        let idle = self.idle;
        match tokio::time::timeout(idle, self.fill(SIZE_PREFIX_BYTES)).await {
            Err(_) => return Err(ReadError::Timeout(idle)),
            Ok(Ok(false)) => return Ok(None),
            Ok(result) => {
                result?;
            }
        }
        let prefix: [u8; 4] = self.buf[..SIZE_PREFIX_BYTES].try_into().expect("filled above");
        let limit = limits.max_bytes.min(self.limit);
        // A raw SASL token (after a v0 handshake) has no request header: only its bound.
        let size = if limits.raw_token { check_bound(prefix, limit)? } else { check_size(prefix, limit)? };
        let permits = u32::try_from(size.max(1)).unwrap_or(u32::MAX);
        let waiting = std::time::Instant::now();
        let budget = match tokio::time::timeout(idle, self.budget.clone().acquire_many_owned(permits)).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(std::io::Error::other("request budget closed").into()),
            Err(_) => return Err(ReadError::Timeout(idle)),
        };
        let queued = waiting.elapsed();
        let body_timeout = self.body_timeout;
        match tokio::time::timeout(body_timeout, self.fill(SIZE_PREFIX_BYTES + size)).await {
            Err(_) => return Err(ReadError::Timeout(body_timeout)),
            Ok(result) => {
                result?;
            }
        }
        self.buf.advance(SIZE_PREFIX_BYTES);
        Ok(Some(Admitted { frame: self.buf.split_to(size).freeze(), _budget: budget, queued }))
    }
}
