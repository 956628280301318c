//! A small async Kafka client on `kafka-protocol`, for Runnel's own tools and connections
//! (the admin CLI, `runnel perf`, and the broker's replica fetchers). One connection, one request at a
//! time, typed requests and responses, bounded response size.

pub mod fetcher;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response this client accepts.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("codec: {0}")]
    Codec(String),
    #[error("response of {0} bytes exceeds the client's limit")]
    TooLarge(usize),
    #[error("response correlation id {got} does not match request {expected}")]
    Correlation { expected: i32, got: i32 },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

pub struct Connection {
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
    timeout: Duration,
}

impl Connection {
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        Self::connect_from(addr, None).await
    }

    /// Connects from `bind` (any port) when given, rather than an address the kernel picks.
    pub async fn connect_from(addr: &str, bind: Option<std::net::IpAddr>) -> Result<Self, ClientError> {
        let stream = match bind {
            None => TcpStream::connect(addr).await?,
            Some(bind) => {
                let target = tokio::net::lookup_host(addr)
                    .await?
                    .find(|a| a.is_ipv4() == bind.is_ipv4())
                    .ok_or_else(|| std::io::Error::other(format!("{addr} has no address of the family of {bind}")))?;
                let socket =
                    if bind.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
                socket.bind(std::net::SocketAddr::new(bind, 0))?;
                socket.connect(target).await?
            }
        };
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_static_str("runnel-cli"),
            timeout: Duration::from_secs(30),
        })
    }

    /// How long one request may take, sending to response.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub fn set_client_id(&mut self, client_id: &'static str) {
        self.client_id = StrBytes::from_static_str(client_id);
    }

    /// Sends `request` as `version` and waits for its response.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = R::header_version(version);
        let codec = |e: anyhow::Error| ClientError::Codec(e.to_string());
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, header_version).map_err(codec)?;
        request.encode(&mut buf, version).map_err(codec)?;
        let size = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        let mut frame = tokio::time::timeout(self.timeout, self.round_trip(&buf))
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))??;
        let api = ApiKey::try_from(R::KEY).map_err(|_| ClientError::Codec("unknown api key".into()))?;
        let response_header =
            ResponseHeader::decode(&mut frame, api.response_header_version(version)).map_err(codec)?;
        if response_header.correlation_id != self.correlation_id {
            return Err(ClientError::Correlation {
                expected: self.correlation_id,
                got: response_header.correlation_id,
            });
        }
        let response = R::Response::decode(&mut frame, version).map_err(codec)?;
        Ok(response)
    }

    async fn round_trip(&mut self, request: &[u8]) -> Result<Bytes, ClientError> {
        self.stream.write_all(request).await?;
        let size = self.stream.read_i32().await?;
        let size = usize::try_from(size).map_err(|_| ClientError::Codec("negative response size".into()))?;
        if size > RESPONSE_BYTES_MAX {
            return Err(ClientError::TooLarge(size));
        }
        let mut body = BytesMut::zeroed(size);
        self.stream.read_exact(&mut body).await?;
        Ok(body.freeze())
    }
}
