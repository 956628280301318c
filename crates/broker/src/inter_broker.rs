//! How this node connects to other brokers (the replica fetchers, and the coordinators'
//! requests through [`BrokerConnections`]): through their endpoints on
//! `inter.broker.listener.name`, with that listener's security, as Kafka brokers do.
//!
//! - SSL and SASL_SSL: the listener's trust store verifies the other broker's certificate
//!   (its host name too, unless `ssl.endpoint.identification.algorithm` is empty or
//!   `none`), and the listener's key store is presented as this node's client certificate.
//! - SASL_PLAINTEXT and SASL_SSL: `sasl.mechanism.inter.broker.protocol` (default: the
//!   listener's first enabled mechanism) with the `username` and `password` options of the
//!   listener's JAAS configuration for that mechanism
//!   (`listener.name.<name>.<mechanism>.sasl.jaas.config`).
//!
//! Invariant: a node whose inter-broker listener needs credentials it was not given refuses
//! to start, rather than fetching without them.

use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_client::security::{tls_config, ClientSecurity, SaslCredentials};

use crate::broker::BrokerError;
use crate::config::{BrokerConfig, ConfigError};
use crate::listeners::{listener_setting, ListenerName};
use crate::tls::TlsSettings;

fn invalid(key: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: String::new(), why: why.into() }
}

/// A TLS client configuration for connecting to other nodes' `listener`: its trust store
/// verifies them (and their host names unless `ssl.endpoint.identification.algorithm` is
/// empty or `none`), its key store is this node's client certificate.
pub fn client_tls(
    listener: &ListenerName,
    settings: &BTreeMap<String, String>,
) -> Result<Arc<rustls::ClientConfig>, BrokerError> {
    let tls = TlsSettings::from_settings(listener, settings)?;
    let roots = tls.roots()?.ok_or_else(|| {
        invalid(
            "ssl.truststore.location",
            format!("listener {listener} uses TLS between nodes: its trust store verifies the other nodes"),
        )
    })?;
    tls_config(roots, Some(tls.identity()?), tls.verify_hostname).map_err(|e| BrokerError::Config(e.to_string()))
}

/// The security of this node's connections to other brokers.
pub fn client_security(config: &BrokerConfig) -> Result<ClientSecurity, BrokerError> {
    let listener = config.listeners.inter_broker();
    let settings = &config.security;
    let get = |key: &str| listener_setting(settings, &listener.name, key);
    let tls = if listener.protocol.uses_tls() { Some(client_tls(&listener.name, settings)?) } else { None };
    let sasl = if listener.protocol.uses_sasl() {
        let enabled = crate::sasl::SaslSettings::from_settings(&listener.name, settings)?;
        let mechanism = match settings.get("sasl.mechanism.inter.broker.protocol") {
            Some(name) => name.trim().to_string(),
            None => enabled.names().into_iter().find(|m| *m != "OAUTHBEARER").unwrap_or("PLAIN").to_string(),
        };
        let jaas_key = format!("{}.sasl.jaas.config", mechanism.to_ascii_lowercase());
        let jaas = get(&jaas_key).ok_or_else(|| {
            invalid(
                &format!("listener.name.{}.{jaas_key}", listener.name.as_str().to_ascii_lowercase()),
                format!(
                    "the inter-broker listener {} uses SASL: give this node's username and password",
                    listener.name
                ),
            )
        })?;
        let (_, options) = crate::sasl::plain::jaas_options(jaas).map_err(|why| invalid(&jaas_key, why))?;
        let (Some(username), Some(password)) = (options.get("username"), options.get("password")) else {
            return Err(invalid(&jaas_key, "the JAAS configuration needs username=\"...\" and password=\"...\"").into());
        };
        Some(
            SaslCredentials::new(&mechanism, username, password)
                .map_err(|e| invalid("sasl.mechanism.inter.broker.protocol", e.to_string()))?,
        )
    } else {
        None
    };
    Ok(ClientSecurity { tls, sasl })
}

/// Idle connections kept per node by [`BrokerConnections`].
const IDLE_PER_NODE: usize = 4;

/// Connections to other brokers for the coordinators' requests (WriteTxnMarkers to
/// partition leaders, KIP-890 verification to transaction coordinators), kept for reuse:
/// a connection is taken for one request and given back when it answered, at most
/// [`IDLE_PER_NODE`] idle ones per node. A kept connection that fails (its node restarted)
/// is dropped and the request tried once more on a fresh one.
#[derive(Default)]
pub struct BrokerConnections {
    idle: std::sync::Mutex<std::collections::HashMap<i32, Vec<(String, runnel_client::Connection)>>>,
}

impl BrokerConnections {
    /// Sends `request` to node `node` at its inter-broker address.
    pub async fn send<R: kafka_protocol::protocol::Request>(
        &self,
        broker: &crate::broker::Broker,
        node: i32,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        use crate::locks::MutexExt;
        let address = crate::replica_fetcher::leader_address(broker, node).ok_or("no address for the node")?;
        let kept = self.idle.locked().get_mut(&node).and_then(Vec::pop).filter(|(at, _)| *at == address);
        if let Some((_, mut connection)) = kept {
            if let Ok(response) = connection.send(request, version).await {
                self.give_back(node, address, connection);
                return Ok(response);
            }
            // The kept connection failed (its node restarted, say): a fresh one.
        }
        let mut connection = crate::replica_fetcher::connect(broker, &address).await.ok_or("could not connect")?;
        let response = connection.send(request, version).await.map_err(|e| e.to_string())?;
        self.give_back(node, address, connection);
        Ok(response)
    }

    fn give_back(&self, node: i32, address: String, connection: runnel_client::Connection) {
        use crate::locks::MutexExt;
        let mut idle = self.idle.locked();
        let kept = idle.entry(node).or_default();
        if kept.len() < IDLE_PER_NODE {
            kept.push((address, connection));
        }
    }
}
