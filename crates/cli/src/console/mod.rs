//! The web console: `runnel server --http-listen HOST:PORT` serves a single-page app and
//! its JSON API from the binary itself (the page, script and style are compiled in; nothing
//! is fetched from elsewhere).
//!
//! Invariants:
//! - The console is a Kafka client of its own node: every read and every change goes through
//!   the Kafka API, by the same functions the CLI's commands use (`topic`, `group`,
//!   `config`, `cluster`), never around it. So there is no second source of truth, and on a
//!   SASL listener every API call runs as the user who signed in to the console (HTTP Basic
//!   credentials used for SASL): Kafka's authentication and ACLs apply unchanged.
//! - Every change (create or delete a topic, alter settings, reset offsets) is a POST or
//!   DELETE carrying the `x-runnel-console: confirm` header, which the page sends only after
//!   the user confirms, and which a cross-site form cannot send; an `Origin` must be the
//!   console's own. Every request must name the console by address, `localhost` or a name
//!   given with `--http-host`, so another site cannot rebind its name to the console's
//!   address (DNS rebinding) and drive it from the operator's browser.
//! - Bounded: at most [`CONNECTIONS_MAX`] open HTTP connections, request heads of
//!   [`HEAD_BYTES_MAX`], bodies of [`BODY_BYTES_MAX`], [`REQUEST_TIMEOUT`] per request; the
//!   message browser reads at most 4 pages at once, each at most 100 records and 1 MiB of
//!   keys, values and headers (a larger value is cut, and says so); the history keeps at most one hour
//!   of samples for at most `history::TOPICS_MAX` topics and `history::GROUPS_MAX` groups.

mod api;
mod browse;
mod history;
mod http;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_broker::request_metrics::Throughput;
use runnel_client::security::{ClientSecurity, SaslCredentials};
use runnel_client::Connection;

#[cfg(doc)]
use http::{BODY_BYTES_MAX, CONNECTIONS_MAX, HEAD_BYTES_MAX, REQUEST_TIMEOUT};

/// The address the console listens on for a single node when `--http-listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9644";

/// SASL mechanisms the console tries for a user's credentials, strongest first.
const MECHANISMS: [&str; 3] = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"];
/// Message pages read at once, at most.
const BROWSING_MAX: usize = 4;
/// Users whose working mechanism is remembered, at most.
const REMEMBERED_USERS_MAX: usize = 1000;

/// How the console reaches its node's Kafka API.
pub struct Options {
    /// A PLAINTEXT or SASL_PLAINTEXT listener of this node.
    pub kafka: SocketAddr,
    /// The listener needs SASL: console users sign in.
    pub sasl: bool,
    /// The principal the background sampler uses on a SASL listener (`--http-sampler-config`);
    /// without one, only this node's own traffic is charted there.
    pub sampler_security: Option<ClientSecurity>,
    /// How often the history is sampled.
    pub sample_interval: Duration,
    /// Host names the console answers to besides IP addresses and `localhost`
    /// (`--http-host`).
    pub hosts: Vec<String>,
}

pub struct Console {
    kafka: String,
    sasl: bool,
    /// The mechanism that worked for each user, so one sign-in costs one SASL exchange.
    mechanisms: Mutex<HashMap<String, &'static str>>,
    history: Arc<history::History>,
    /// Host names allowed in `Host` (see `http::host_allowed`).
    hosts: Vec<String>,
    /// Message pages read at once, at most (each may hold a batch decompressed).
    browsing: tokio::sync::Semaphore,
}

/// Who is asking: the HTTP Basic credentials of the request, if any.
pub type Credentials = Option<(String, String)>;

/// Why a console request failed, as the HTTP status it gets.
#[derive(Debug)]
pub enum ApiError {
    /// Sign-in needed or refused (401).
    Unauthorized(String),
    /// The Kafka API refused for authorization (403).
    Forbidden(String),
    NotFound(String),
    /// The request is malformed or the Kafka API refused it (400).
    Bad(String),
    /// The node could not be reached (502).
    Unavailable(String),
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        let text = crate::one_line(&error);
        if text.contains("AuthorizationFailed") || text.contains("AUTHORIZATION_FAILED") {
            ApiError::Forbidden(text)
        } else if text.contains("UnknownTopicOrPartition") || text.contains("does not exist") {
            ApiError::NotFound(text)
        } else {
            ApiError::Bad(text)
        }
    }
}

impl Console {
    /// A connection to this node as the requesting user.
    pub async fn connect(&self, who: &Credentials) -> Result<(Connection, ClientSecurity), ApiError> {
        if !self.sasl {
            let security = ClientSecurity::plaintext();
            let conn = Connection::connect(&self.kafka).await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
            return Ok((conn, security));
        }
        let Some((user, password)) = who else {
            return Err(ApiError::Unauthorized("sign in with a Kafka user of this cluster".into()));
        };
        let known = self.mechanisms.lock().expect("console lock").get(user).copied();
        let tried: Vec<&'static str> = known.into_iter().chain(MECHANISMS.iter().copied()).collect();
        let mut last = String::new();
        for mechanism in tried {
            let credentials = SaslCredentials::new(mechanism, user, password).expect("a known mechanism");
            let security = ClientSecurity { tls: None, sasl: Some(credentials) };
            match Connection::connect_secure(&self.kafka, None, &security).await {
                Ok(conn) => {
                    let mut remembered = self.mechanisms.lock().expect("console lock");
                    if remembered.len() < REMEMBERED_USERS_MAX || remembered.contains_key(user) {
                        remembered.insert(user.clone(), mechanism);
                    }
                    return Ok((conn, security));
                }
                Err(runnel_client::ClientError::Io(e)) => return Err(ApiError::Unavailable(e.to_string())),
                // A mechanism the listener does not offer says nothing about the password.
                Err(e) if e.to_string().contains("does not offer") && !last.is_empty() => {}
                Err(e) if e.to_string().contains("does not offer") => last = e.to_string(),
                Err(e) => {
                    last = e.to_string();
                    if known.is_some() {
                        break;
                    }
                }
            }
        }
        Err(ApiError::Unauthorized(format!("sign-in refused: {last}")))
    }
}

/// Serves the console on `listener` (bound by the caller before the node starts, so an
/// address that cannot be had is known at once) and starts its sampler.
pub fn start(
    listener: tokio::net::TcpListener,
    options: Options,
    throughput: Arc<dyn Fn() -> Throughput + Send + Sync>,
) {
    let history = Arc::new(history::History::default());
    let console = Arc::new(Console {
        kafka: options.kafka.to_string(),
        sasl: options.sasl,
        mechanisms: Mutex::new(HashMap::new()),
        history: history.clone(),
        hosts: options.hosts.clone(),
        browsing: tokio::sync::Semaphore::new(BROWSING_MAX),
    });
    let sampler_security = if options.sasl { options.sampler_security } else { Some(ClientSecurity::plaintext()) };
    tokio::spawn(history::sample(
        history,
        options.kafka.to_string(),
        sampler_security,
        throughput,
        options.sample_interval,
    ));
    tokio::spawn(http::serve(listener, console));
}

/// The address the console reaches a listener at: a wildcard bind is reached on loopback.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    }
}
