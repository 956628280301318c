//! TLS for the SSL and SASL_SSL listeners, with rustls (no OpenSSL), configured by Kafka's
//! names: `ssl.keystore.type=PEM` with `ssl.keystore.location` (a PEM file holding the
//! private key and the certificate chain) or inline `ssl.keystore.key` and
//! `ssl.keystore.certificate.chain`; `ssl.truststore.type=PEM` with
//! `ssl.truststore.location` or inline `ssl.truststore.certificates`; `ssl.client.auth`
//! (`required`, `requested`, `none`); `ssl.enabled.protocols` (TLSv1.2, TLSv1.3);
//! `ssl.principal.mapping.rules` (how a client certificate's subject becomes the
//! connection's principal, see `principal.rs`). A setting
//! prefixed `listener.name.<name>.` applies to that listener only and wins over the plain
//! one, as in Kafka.
//!
//! Certificates, keys and trust stores given as files are re-read when a file changes
//! (checked by [`TlsContext::reload_if_changed`], which the server calls every second):
//! new connections get the new material, established ones keep theirs. A reload that fails
//! (a half-written file) keeps the previous material and is retried at the next change.
//!
//! Invariants: a [`TlsContext`] always holds a complete, valid server configuration; the
//! private key is never logged; encrypted keys and non-PEM stores are refused at start with
//! the setting's name.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio_rustls::TlsAcceptor;

use crate::config::ConfigError;
use crate::listeners::{listener_setting, listener_setting_raw, ListenerName};
use crate::locks::{MutexExt, RwLockExt};
use crate::principal::PrincipalMapper;

/// Whether and how clients present certificates (`ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Required,
    Requested,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    File(PathBuf),
    Inline(String),
}

/// A listener's TLS settings, as configured.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    listener: ListenerName,
    /// The key and its chain: one file holding both, or the two inline values.
    key: Source,
    chain: Option<Source>,
    trust: Option<Source>,
    client_auth: ClientAuth,
    tls12: bool,
    tls13: bool,
    mapper: PrincipalMapper,
    /// As a client of this listener on other nodes: verify their host names
    /// (`ssl.endpoint.identification.algorithm`, empty or `none` turns it off).
    pub verify_hostname: bool,
}

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("listener {listener}: reading {what} from {path}: {source}")]
    Read { listener: ListenerName, what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("listener {listener}: {what}: {why}")]
    Material { listener: ListenerName, what: &'static str, why: String },
    #[error("listener {listener}: {0}", listener = .1)]
    Rustls(rustls::Error, ListenerName),
}

/// The settings Kafka's `ssl.*` family may hold for a listener; the listener-specific form
/// (`listener.name.<name>.ssl.x`) wins over the plain one.
fn invalid(key: &str, value: &str, why: &str) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: value.into(), why: why.into() }
}

impl TlsSettings {
    /// Reads listener `listener`'s TLS settings out of the `ssl.*` settings; an SSL listener
    /// without a key store is refused.
    pub fn from_settings(listener: &ListenerName, settings: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |key: &str| listener_setting(settings, listener, key);
        for store in ["ssl.keystore.type", "ssl.truststore.type"] {
            if let Some(kind) = get(store).filter(|kind| !kind.eq_ignore_ascii_case("PEM")) {
                return Err(invalid(store, kind, "only PEM stores are supported (convert JKS or PKCS12 with openssl)"));
            }
        }
        if let Some(password) = get("ssl.key.password") {
            // Never echo a password back.
            let _ = password;
            return Err(invalid("ssl.key.password", "(hidden)", "encrypted private keys are not supported"));
        }
        let (key, chain) =
            match (get("ssl.keystore.location"), get("ssl.keystore.key"), get("ssl.keystore.certificate.chain")) {
                (Some(path), None, None) => (Source::File(PathBuf::from(path)), None),
                (None, Some(key), Some(chain)) => {
                    (Source::Inline(key.to_string()), Some(Source::Inline(chain.to_string())))
                }
                (None, None, None) => {
                    return Err(invalid(
                        "ssl.keystore.location",
                        "",
                        &format!("listener {listener} uses TLS and needs a key store (ssl.keystore.location)"),
                    ))
                }
                _ => {
                    return Err(invalid(
                        "ssl.keystore.location",
                        "",
                        "give either ssl.keystore.location or both ssl.keystore.key and ssl.keystore.certificate.chain",
                    ))
                }
            };
        let trust = match (get("ssl.truststore.location"), get("ssl.truststore.certificates")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "ssl.truststore.location",
                    "",
                    "give ssl.truststore.location or ssl.truststore.certificates, not both",
                ))
            }
            (Some(path), None) => Some(Source::File(PathBuf::from(path))),
            (None, Some(pem)) => Some(Source::Inline(pem.to_string())),
            (None, None) => None,
        };
        let client_auth = match get("ssl.client.auth").map(str::to_ascii_lowercase).as_deref() {
            None | Some("none") => ClientAuth::None,
            Some("requested") => ClientAuth::Requested,
            Some("required") => ClientAuth::Required,
            Some(other) => return Err(invalid("ssl.client.auth", other, "expected required, requested or none")),
        };
        if client_auth != ClientAuth::None && trust.is_none() {
            return Err(invalid(
                "ssl.truststore.location",
                "",
                "ssl.client.auth needs a trust store to verify client certificates",
            ));
        }
        let (mut tls12, mut tls13) = (false, false);
        for protocol in get("ssl.enabled.protocols").unwrap_or("TLSv1.2,TLSv1.3").split(',').map(str::trim) {
            match protocol {
                "TLSv1.2" => tls12 = true,
                "TLSv1.3" => tls13 = true,
                "" => {}
                other => return Err(invalid("ssl.enabled.protocols", other, "supported: TLSv1.2, TLSv1.3")),
            }
        }
        if !tls12 && !tls13 {
            return Err(invalid("ssl.enabled.protocols", "", "no protocol enabled"));
        }
        let rules = get("ssl.principal.mapping.rules").unwrap_or("DEFAULT");
        let mapper =
            PrincipalMapper::parse(rules).map_err(|why| invalid("ssl.principal.mapping.rules", rules, &why))?;
        let verify_hostname = !matches!(
            listener_setting_raw(settings, listener, "ssl.endpoint.identification.algorithm"),
            Some("" | "none")
        );
        Ok(TlsSettings {
            listener: listener.clone(),
            key,
            chain,
            trust,
            client_auth,
            tls12,
            tls13,
            mapper,
            verify_hostname,
        })
    }

    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// The files the material is read from (watched for changes).
    fn files(&self) -> Vec<PathBuf> {
        [Some(&self.key), self.chain.as_ref(), self.trust.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|source| match source {
                Source::File(path) => Some(path.clone()),
                Source::Inline(_) => None,
            })
            .collect()
    }

    fn read(&self, source: &Source, what: &'static str) -> Result<Vec<u8>, TlsError> {
        match source {
            Source::Inline(text) => Ok(text.as_bytes().to_vec()),
            Source::File(path) => std::fs::read(path).map_err(|source| TlsError::Read {
                listener: self.listener.clone(),
                what,
                path: path.clone(),
                source,
            }),
        }
    }

    fn material(&self, what: &'static str, why: impl Into<String>) -> TlsError {
        TlsError::Material { listener: self.listener.clone(), what, why: why.into() }
    }

    /// This node's certificate chain and private key, from the key store.
    pub fn identity(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let key_pem = self.read(&self.key, "the key store")?;
        let chain_pem = match &self.chain {
            Some(chain) => self.read(chain, "the certificate chain")?,
            None => key_pem.clone(),
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| self.material("certificate chain", e.to_string()))?;
        if chain.is_empty() {
            return Err(self.material("certificate chain", "no certificate found"));
        }
        if key_pem.windows(9).any(|w| w == b"ENCRYPTED") {
            return Err(self.material("private key", "encrypted private keys are not supported"));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| self.material("private key", format!("no usable PEM private key ({e})")))?;
        Ok((chain, key))
    }

    /// The trust store's certificates; `None` without a trust store.
    pub fn roots(&self) -> Result<Option<Vec<CertificateDer<'static>>>, TlsError> {
        let Some(trust) = &self.trust else { return Ok(None) };
        let pem = self.read(trust, "the trust store")?;
        let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| self.material("trust store", e.to_string()))?;
        if roots.is_empty() {
            return Err(self.material("trust store", "no certificate found"));
        }
        Ok(Some(roots))
    }

    /// Reads the material and builds the server configuration.
    pub fn build(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let (chain, key) = self.identity()?;
        // rustls marks ring's provider deprecated because ring has no post-quantum key
        // exchange; aws-lc-rs has one but needs cmake and a C build on every machine that
        // builds Runnel. Classic X25519/P-256 key exchange is what Kafka's JVM offers too.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
        if self.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        let rustls_error = |e| TlsError::Rustls(e, self.listener.clone());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(rustls_error)?;
        let trusted = if self.client_auth == ClientAuth::None { None } else { self.roots()? };
        let builder = match trusted {
            Some(certificates) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates {
                    roots.add(cert).map_err(rustls_error)?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier =
                    if self.client_auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
                let verifier = verifier.build().map_err(|e| self.material("trust store", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(chain, key).map_err(rustls_error)?;
        Ok(Arc::new(config))
    }
}

/// A file's identity for change detection: modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A listener's live TLS configuration, swapped when its files change or its settings
/// are changed at runtime (dynamic broker settings).
pub struct TlsContext {
    settings: RwLock<Arc<TlsSettings>>,
    /// The `ssl.*` entries (plain and this listener's) the settings were read from.
    inputs: Mutex<BTreeMap<String, String>>,
    current: RwLock<Arc<ServerConfig>>,
    stamps: Mutex<Vec<(PathBuf, Stamp)>>,
}

impl TlsContext {
    /// Loads the material; fails when it cannot be read or does not form a valid
    /// configuration (the node then refuses to start).
    pub fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        let stamps = settings.files().into_iter().map(|path| (path.clone(), stamp(&path))).collect();
        let config = settings.build()?;
        Ok(TlsContext {
            settings: RwLock::new(Arc::new(settings)),
            inputs: Mutex::new(BTreeMap::new()),
            current: RwLock::new(config),
            stamps: Mutex::new(stamps),
        })
    }

    fn settings(&self) -> Arc<TlsSettings> {
        self.settings.read_locked().clone()
    }

    /// Records the `ssl.*` entries the context was built from (see [`TlsContext::follow`]).
    pub fn built_from(self, security: &BTreeMap<String, String>) -> Self {
        let listener = self.settings().listener.clone();
        *self.inputs.locked() = Self::inputs_of(&listener, security);
        self
    }

    /// The `ssl.*` entries of `security` that listener `listener` reads.
    pub fn inputs_of(listener: &ListenerName, security: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let prefix = format!("listener.name.{}.", listener.as_str().to_ascii_lowercase());
        security
            .iter()
            .filter(|(key, _)| key.starts_with("ssl.") || key.to_ascii_lowercase().starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Follows the `ssl.*` settings in `security` (the node's live settings): when this
    /// listener's changed, its new material is loaded and installed; if it does not load,
    /// the current configuration stays and the error is returned. `Ok(true)`: installed.
    pub fn follow(&self, security: &BTreeMap<String, String>) -> Result<bool, String> {
        let listener = self.settings().listener.clone();
        let inputs = Self::inputs_of(&listener, security);
        let mut known = self.inputs.locked();
        if *known == inputs {
            return Ok(false);
        }
        *known = inputs;
        let settings = TlsSettings::from_settings(&listener, security).map_err(|e| e.to_string())?;
        let config = settings.build().map_err(|e| e.to_string())?;
        *self.stamps.locked() = settings.files().into_iter().map(|path| (path.clone(), stamp(&path))).collect();
        *self.current.write_locked() = config;
        tracing::info!(listener = %listener, "TLS settings changed at runtime");
        *self.settings.write_locked() = Arc::new(settings);
        Ok(true)
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read_locked().clone())
    }

    /// The principal of a client that presented `certificates` (verified by the handshake):
    /// `Ok(None)` without a certificate (the connection is anonymous, or authenticates with
    /// SASL), `Err` when no mapping rule matches its subject (the client is refused, as in
    /// Kafka).
    pub fn principal_of(&self, certificates: Option<&[CertificateDer<'_>]>) -> Result<Option<String>, String> {
        let Some(first) = certificates.and_then(<[_]>::first) else { return Ok(None) };
        let subject = crate::principal::subject_name(first).ok_or("the client certificate's subject does not parse")?;
        match self.settings().mapper.map(&subject) {
            Some(name) => Ok(Some(format!("User:{name}"))),
            None => Err(format!("no ssl.principal.mapping.rules entry matches {subject}")),
        }
    }

    /// Rebuilds the configuration if a file changed since the last look; true when new
    /// material was installed.
    pub fn reload_if_changed(&self) -> bool {
        let mut stamps = self.stamps.locked();
        let now: Vec<(PathBuf, Stamp)> = stamps.iter().map(|(path, _)| (path.clone(), stamp(path))).collect();
        if now == *stamps {
            return false;
        }
        *stamps = now;
        let settings = self.settings();
        match settings.build() {
            Ok(config) => {
                *self.current.write_locked() = config;
                tracing::info!(listener = %settings.listener, "TLS material reloaded");
                true
            }
            Err(error) => {
                tracing::warn!(listener = %settings.listener, %error, "TLS material changed but does not load; keeping the previous");
                false
            }
        }
    }
}
