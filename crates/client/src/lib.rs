//! A small async Kafka client on `kafka-protocol`, for Runnel's own tools and connections
//! (the admin CLI, `runnel perf`, and the broker's replica fetchers). One connection, one request at a
//! time, typed requests and responses, bounded response size. Connections may use TLS and
//! SASL (`security`).

pub mod fetcher;
pub mod security;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::security::{ClientSecurity, SaslCredentials, ScramClient, SecurityError};

/// A byte stream a connection runs over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

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
    #[error("the server answered with TLS: this listener needs security.protocol=SSL or SASL_SSL")]
    TlsListener,
    #[error("response correlation id {got} does not match request {expected}")]
    Correlation { expected: i32, got: i32 },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Security(#[from] SecurityError),
}

pub struct Connection {
    stream: Box<dyn Io>,
    correlation_id: i32,
    client_id: StrBytes,
    timeout: Duration,
}

impl Connection {
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        Self::connect_from(addr, None).await
    }

    /// Connects with `security`: TLS first when configured (the host name of `addr` is
    /// the name the certificate must carry), then SASL when configured.
    pub async fn connect_secure(
        addr: &str,
        bind: Option<std::net::IpAddr>,
        security: &ClientSecurity,
    ) -> Result<Self, ClientError> {
        let tcp = open_tcp(addr, bind).await?;
        let mut connection = match &security.tls {
            None => Connection::over(Box::new(tcp)),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host).trim_matches(['[', ']']);
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| SecurityError::Setting { key: "bootstrap", why: format!("{host}: {e}") })?;
                let handshake = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp);
                let timeout = Duration::from_secs(30);
                let stream =
                    tokio::time::timeout(timeout, handshake).await.map_err(|_| ClientError::Timeout(timeout))??;
                Connection::over(Box::new(stream))
            }
        };
        if let Some(credentials) = &security.sasl {
            connection.authenticate(credentials).await?;
        }
        Ok(connection)
    }

    /// SaslHandshake v1 and SaslAuthenticate v2 exchanges for `credentials`.
    async fn authenticate(&mut self, credentials: &SaslCredentials) -> Result<(), ClientError> {
        let mechanism = StrBytes::from_static_str(credentials.mechanism());
        let handshake = self.send(&SaslHandshakeRequest::default().with_mechanism(mechanism), 1).await?;
        if handshake.error_code != 0 {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(SecurityError::Sasl(format!(
                "the broker does not offer {} (it offers {offered:?})",
                credentials.mechanism()
            ))
            .into());
        }
        match credentials {
            SaslCredentials::Plain { username, password } => {
                self.sasl_step(format!("\0{username}\0{password}").into_bytes()).await?;
            }
            SaslCredentials::Scram { hash, username, password } => {
                let mut scram = ScramClient::new(*hash, username, password);
                let server_first = self.sasl_step(scram.client_first()).await?;
                let client_final = scram.client_final(&server_first)?;
                let server_final = self.sasl_step(client_final).await?;
                scram.check_server_final(&server_final)?;
            }
        }
        Ok(())
    }

    async fn sasl_step(&mut self, token: Vec<u8>) -> Result<Bytes, ClientError> {
        let answer = self.send(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)), 2).await?;
        if answer.error_code != 0 {
            let message = answer.error_message.map(|m| m.to_string()).unwrap_or_default();
            return Err(SecurityError::Sasl(format!("authentication failed: {message}")).into());
        }
        Ok(answer.auth_bytes)
    }

    /// Connects from `bind` (any port) when given, rather than an address the kernel picks.
    pub async fn connect_from(addr: &str, bind: Option<std::net::IpAddr>) -> Result<Self, ClientError> {
        Ok(Connection::over(Box::new(open_tcp(addr, bind).await?)))
    }

    fn over(stream: Box<dyn Io>) -> Self {
        Connection {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_static_str("runnel-cli"),
            timeout: Duration::from_secs(30),
        }
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
        // A TLS stream may hold encrypted bytes back when the socket was not ready: without
        // a flush the request can stay buffered while both ends wait.
        self.stream.flush().await?;
        let prefix = self.stream.read_i32().await?;
        // A TLS record (an alert or a handshake, version 3.x) where a size was expected: a
        // plaintext client on a TLS listener.
        let [content_type, major, ..] = prefix.to_be_bytes();
        if matches!(content_type, 0x15 | 0x16) && major == 0x03 {
            return Err(ClientError::TlsListener);
        }
        let size = usize::try_from(prefix).map_err(|_| ClientError::Codec("negative response size".into()))?;
        if size > RESPONSE_BYTES_MAX {
            return Err(ClientError::TooLarge(size));
        }
        let mut body = BytesMut::zeroed(size);
        self.stream.read_exact(&mut body).await?;
        Ok(body.freeze())
    }
}

/// A TCP connection to `addr`, from `bind` when given, without Nagle.
async fn open_tcp(addr: &str, bind: Option<std::net::IpAddr>) -> Result<TcpStream, ClientError> {
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
    Ok(stream)
}
