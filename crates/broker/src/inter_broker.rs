//! How this node connects to other brokers (the replica fetchers): through their endpoints on
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
use std::path::Path;
use std::sync::Arc;

use runnel_client::security::{read_certificates, tls_config, ClientSecurity, SaslCredentials};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{BrokerConfig, ConfigError};
use crate::listeners::ListenerName;

fn invalid(key: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: String::new(), why: why.into() }
}

fn lookup<'a>(settings: &'a BTreeMap<String, String>, listener: &ListenerName, key: &str) -> Option<&'a str> {
    let specific = format!("listener.name.{}.{key}", listener.as_str().to_ascii_lowercase());
    settings.get(&specific).or_else(|| settings.get(key)).map(String::as_str).filter(|v| !v.trim().is_empty())
}

/// Whether host names are verified on `listener`'s client connections: an empty value (or
/// `none`) of `ssl.endpoint.identification.algorithm` turns it off, as in Kafka.
fn verify_hostname(listener: &ListenerName, settings: &BTreeMap<String, String>) -> bool {
    let key = "ssl.endpoint.identification.algorithm";
    let specific = format!("listener.name.{}.{key}", listener.as_str().to_ascii_lowercase());
    let algorithm = settings.get(&specific).or_else(|| settings.get(key)).map(|v| v.trim());
    !matches!(algorithm, Some("" | "none"))
}

/// A TLS client configuration for connecting to other nodes' `listener`: its trust store
/// verifies them, its key store is this node's client certificate.
pub fn client_tls(
    listener: &ListenerName,
    settings: &BTreeMap<String, String>,
) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let get = |key: &str| lookup(settings, listener, key);
    let roots = match (get("ssl.truststore.location"), get("ssl.truststore.certificates")) {
        (Some(path), _) => {
            read_certificates(Path::new(path)).map_err(|e| invalid("ssl.truststore.location", e.to_string()))?
        }
        (None, Some(pem)) => CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("ssl.truststore.certificates", e.to_string()))?,
        (None, None) => {
            return Err(invalid(
                "ssl.truststore.location",
                format!("listener {listener} uses TLS between nodes: its trust store verifies the other nodes"),
            ))
        }
    };
    let identity = match get("ssl.keystore.location") {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| invalid("ssl.keystore.location", format!("{path}: {e}")))?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| invalid("ssl.keystore.location", e.to_string()))?;
            let key =
                PrivateKeyDer::from_pem_slice(&pem).map_err(|e| invalid("ssl.keystore.location", e.to_string()))?;
            Some((chain, key))
        }
        None => None,
    };
    tls_config(roots, identity, verify_hostname(listener, settings))
        .map_err(|e| invalid("ssl.truststore.location", e.to_string()))
}

/// The security of this node's connections to other brokers.
pub fn client_security(config: &BrokerConfig) -> Result<ClientSecurity, ConfigError> {
    let listener = config.listeners.inter_broker();
    let settings = &config.security;
    let get = |key: &str| lookup(settings, &listener.name, key);
    let tls = if listener.protocol.uses_tls() { Some(client_tls(&listener.name, settings)?) } else { None };
    let verify_hostname = verify_hostname(&listener.name, settings);
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
            return Err(invalid(&jaas_key, "the JAAS configuration needs username=\"...\" and password=\"...\""));
        };
        Some(
            SaslCredentials::new(&mechanism, username, password)
                .map_err(|e| invalid("sasl.mechanism.inter.broker.protocol", e.to_string()))?,
        )
    } else {
        None
    };
    Ok(ClientSecurity { tls, verify_hostname, sasl })
}
