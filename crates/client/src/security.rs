//! The client side of Kafka's security: TLS (rustls) and SASL (PLAIN, SCRAM-SHA-256/512)
//! for Runnel's own connections, configured with the client property names librdkafka and
//! the Java client use (`security.protocol`, `sasl.mechanism`, `sasl.username`,
//! `sasl.password`, `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`,
//! `ssl.endpoint.identification.algorithm`). The broker's replica fetchers use it on the
//! inter-broker listener, the CLI with `--command-config`.
//!
//! SCRAM's arithmetic (RFC 5802) lives here once: the broker's server side uses the same
//! functions.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a security configuration or a SASL exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{key}: {why}")]
    Setting { key: &'static str, why: String },
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("SASL: {0}")]
    Sasl(String),
}

fn setting(key: &'static str, why: impl Into<String>) -> SecurityError {
    SecurityError::Setting { key, why: why.into() }
}

/// The SCRAM hash functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    pub fn key_bytes(self) -> usize {
        match self {
            ScramHash::Sha256 => 32,
            ScramHash::Sha512 => 64,
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let alg = match self {
            ScramHash::Sha256 => hmac::HMAC_SHA256,
            ScramHash::Sha512 => hmac::HMAC_SHA512,
        };
        hmac::sign(&hmac::Key::new(alg, key), data).as_ref().to_vec()
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            ScramHash::Sha256 => &digest::SHA256,
            ScramHash::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }

    /// `Hi(password, salt, iterations)`: the salted password.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        let alg = match self {
            ScramHash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramHash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        };
        let mut out = vec![0u8; self.key_bytes()];
        let iterations = std::num::NonZeroU32::new(iterations.max(1)).expect("at least one iteration");
        pbkdf2::derive(alg, iterations, salt, password.as_bytes(), &mut out);
        out
    }
}

/// A SASL mechanism and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslCredentials {
    Plain { username: String, password: String },
    Scram { hash: ScramHash, username: String, password: String },
}

impl SaslCredentials {
    /// From a mechanism name and credentials.
    pub fn new(mechanism: &str, username: &str, password: &str) -> Result<Self, SecurityError> {
        let (username, password) = (username.to_string(), password.to_string());
        match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslCredentials::Plain { username, password }),
            "SCRAM-SHA-256" => Ok(SaslCredentials::Scram { hash: ScramHash::Sha256, username, password }),
            "SCRAM-SHA-512" => Ok(SaslCredentials::Scram { hash: ScramHash::Sha512, username, password }),
            other => Err(setting(
                "sasl.mechanism",
                format!("{other} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"),
            )),
        }
    }

    pub fn mechanism(&self) -> &'static str {
        match self {
            SaslCredentials::Plain { .. } => "PLAIN",
            SaslCredentials::Scram { hash: ScramHash::Sha256, .. } => "SCRAM-SHA-256",
            SaslCredentials::Scram { hash: ScramHash::Sha512, .. } => "SCRAM-SHA-512",
        }
    }
}

/// How to secure a connection.
#[derive(Clone, Default)]
pub struct ClientSecurity {
    /// TLS configuration when the protocol is SSL or SASL_SSL (host name verification, from
    /// `ssl.endpoint.identification.algorithm`, is part of it).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslCredentials>,
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(SaslCredentials::mechanism))
            .finish()
    }
}

/// The CA certificates of a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let pem = std::fs::read(path).map_err(|e| setting("ssl.ca.location", format!("{}: {e}", path.display())))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| setting("ssl.ca.location", format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(setting("ssl.ca.location", format!("{} holds no certificate", path.display())));
    }
    Ok(certs)
}

/// A rustls client configuration trusting `roots`, presenting `identity` (a chain and its
/// key) when given.
pub fn tls_config(
    roots: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    verify_hostname: bool,
) -> Result<Arc<rustls::ClientConfig>, SecurityError> {
    #[allow(deprecated)] // ring's provider: see the broker's tls.rs
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        store.add(cert)?;
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = if verify_hostname {
        builder.with_root_certificates(store)
    } else {
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
            .build()
            .map_err(|e| setting("ssl.ca.location", e.to_string()))?;
        builder.dangerous().with_custom_certificate_verifier(Arc::new(verify::ChainOnly(verifier)))
    };
    let config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

impl ClientSecurity {
    pub fn plaintext() -> Self {
        ClientSecurity::default()
    }

    /// From client properties by Kafka's names (a `--command-config` file).
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self, SecurityError> {
        let get = |key: &str| properties.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let protocol = get("security.protocol").unwrap_or("PLAINTEXT").to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => return Err(setting("security.protocol", format!("unknown protocol {other}"))),
        };
        // Present but empty turns the check off, as in the Java client; absent is https.
        let algorithm = properties.get("ssl.endpoint.identification.algorithm").map(|v| v.trim());
        let verify_hostname = match algorithm.unwrap_or("https") {
            "https" => true,
            "none" | "" => false,
            other => {
                return Err(setting("ssl.endpoint.identification.algorithm", format!("{other}: use https or none")))
            }
        };
        let tls = if tls {
            let ca = get("ssl.ca.location").ok_or_else(|| setting("ssl.ca.location", "TLS needs the CA to trust"))?;
            let roots = read_certificates(Path::new(ca))?;
            let identity = match (get("ssl.certificate.location"), get("ssl.key.location")) {
                (Some(cert), Some(key)) => {
                    let chain = read_certificates(Path::new(cert))?;
                    let key_pem = std::fs::read(key).map_err(|e| setting("ssl.key.location", format!("{key}: {e}")))?;
                    let key = PrivateKeyDer::from_pem_slice(&key_pem)
                        .map_err(|e| setting("ssl.key.location", format!("{key}: {e}")))?;
                    Some((chain, key))
                }
                (None, None) => None,
                _ => {
                    return Err(setting("ssl.key.location", "give both ssl.certificate.location and ssl.key.location"))
                }
            };
            Some(tls_config(roots, identity, verify_hostname)?)
        } else {
            None
        };
        let sasl = if sasl {
            let mechanism = get("sasl.mechanism").or(get("sasl.mechanisms")).unwrap_or("PLAIN");
            // librdkafka's names, else the Java client's JAAS line (`username="..." password="..."`).
            let jaas = match get("sasl.jaas.config") {
                Some(jaas) => jaas_options(jaas).map_err(|why| setting("sasl.jaas.config", why))?.1,
                None => BTreeMap::new(),
            };
            let username = get("sasl.username")
                .or(jaas.get("username").map(String::as_str))
                .ok_or_else(|| setting("sasl.username", "SASL needs a user name"))?;
            let password = get("sasl.password")
                .or(jaas.get("password").map(String::as_str))
                .ok_or_else(|| setting("sasl.password", "SASL needs a password"))?;
            Some(SaslCredentials::new(mechanism, username, password)?)
        } else {
            None
        };
        Ok(ClientSecurity { tls, sasl })
    }
}

/// A JAAS configuration (`<LoginModule class> <flag> key="value" ...;`): the login module's
/// class name and its options. `Err` names what is wrong.
pub fn jaas_options(jaas: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let body = jaas.trim().strip_suffix(';').ok_or("a JAAS configuration ends with ';'")?;
    let mut words = body.splitn(3, char::is_whitespace);
    let module = words.next().unwrap_or_default().to_string();
    let flag = words.next().unwrap_or_default();
    if !matches!(flag, "required" | "requisite" | "sufficient" | "optional") {
        return Err(format!("control flag {flag:?} is not one of required, requisite, sufficient, optional"));
    }
    let mut options = BTreeMap::new();
    let mut rest = words.next().unwrap_or_default().trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').ok_or("options are key=\"value\"")?;
        let after = after.trim_start().strip_prefix('"').ok_or("option values are quoted")?;
        let end = after.find('"').ok_or("unterminated option value")?;
        options.insert(key.trim().to_string(), after[..end].to_string());
        rest = after[end + 1..].trim_start();
    }
    Ok((module, options))
}

/// Parses a Java-style properties file: `key=value` lines, `#` and `!` comments.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .filter_map(|line| line.split_once(['=', ':']))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// The client side of one SCRAM exchange.
pub struct ScramClient {
    hash: ScramHash,
    username: String,
    password: String,
    nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

impl ScramClient {
    pub fn new(hash: ScramHash, username: &str, password: &str) -> Self {
        use ring::rand::SecureRandom;
        let mut random = [0u8; 24];
        ring::rand::SystemRandom::new().fill(&mut random).expect("the system random generator works");
        let nonce = B64.encode(random);
        let client_first_bare = format!("n={},r={nonce}", escape_name(username));
        ScramClient {
            hash,
            username: username.to_string(),
            password: password.to_string(),
            nonce,
            client_first_bare,
            server_signature: None,
        }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final message for the server-first message.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SecurityError> {
        let text =
            std::str::from_utf8(server_first).map_err(|_| SecurityError::Sasl("server-first is not UTF-8".into()))?;
        let attribute = |name: &str| text.split(',').find_map(|a| a.strip_prefix(name)).map(str::to_string);
        let nonce = attribute("r=").ok_or_else(|| SecurityError::Sasl("no nonce from the server".into()))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(SecurityError::Sasl("the server's nonce does not extend ours".into()));
        }
        let salt = attribute("s=")
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| SecurityError::Sasl("no salt from the server".into()))?;
        let iterations: u32 = attribute("i=")
            .and_then(|i| i.parse().ok())
            // Kafka's bounds: a server (or a man in the middle) asking for fewer iterations
            // would get a proof that is cheap to brute-force.
            .filter(|i| (4096..=16384).contains(i))
            .ok_or_else(|| SecurityError::Sasl("bad iteration count from the server".into()))?;
        let salted = self.hash.salted_password(&self.password, &salt, iterations);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let stored_key = self.hash.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = self.hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_key = self.hash.hmac(&salted, b"Server Key");
        self.server_signature = Some(self.hash.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server proves it knows the credential too.
    pub fn check_server_final(&self, server_final: &[u8]) -> Result<(), SecurityError> {
        let text =
            std::str::from_utf8(server_final).map_err(|_| SecurityError::Sasl("server-final is not UTF-8".into()))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(SecurityError::Sasl(format!("server error {error}")));
        }
        let claimed = text.strip_prefix("v=").and_then(|v| B64.decode(v).ok());
        match (claimed, &self.server_signature) {
            (Some(claimed), Some(expected)) if claimed == *expected => Ok(()),
            _ => Err(SecurityError::Sasl(format!("the server did not prove it knows {}'s credential", self.username))),
        }
    }
}

mod verify {
    //! Chain verification without host name checking (`ssl.endpoint.identification.algorithm=none`).
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    pub struct ChainOnly(pub Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
                | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                    Ok(ServerCertVerified::assertion())
                }
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_as_java_reads_them() {
        let props = parse_properties("# comment\nsecurity.protocol = SASL_PLAINTEXT\n! also\nsasl.mechanism=SCRAM-SHA-512\nsasl.username: admin\nsasl.password=a=b\n");
        assert_eq!(props["sasl.password"], "a=b");
        let security = ClientSecurity::from_properties(&props).unwrap();
        assert!(security.tls.is_none());
        assert_eq!(security.sasl.unwrap().mechanism(), "SCRAM-SHA-512");
        let mut bad = props.clone();
        bad.insert("security.protocol".into(), "TLS".into());
        assert!(ClientSecurity::from_properties(&bad).is_err());
        bad.insert("security.protocol".into(), "SSL".into());
        assert!(ClientSecurity::from_properties(&bad).is_err(), "SSL without a CA");
    }

    #[test]
    fn the_scram_client_refuses_a_server_that_cannot_prove_itself() {
        let mut client = ScramClient::new(ScramHash::Sha256, "al,ice", "secret");
        assert!(String::from_utf8(client.client_first()).unwrap().starts_with("n,,n=al=2Cice,r="));
        let nonce = client.nonce.clone();
        let first = format!("r={nonce}server,s={},i=4096", B64.encode(b"salt"));
        client.client_final(first.as_bytes()).unwrap();
        assert!(client.check_server_final(b"v=AAAA").is_err());
        assert!(client.check_server_final(b"e=invalid-proof").is_err());
        let mut other = ScramClient::new(ScramHash::Sha256, "a", "b");
        assert!(other.client_final(b"r=someone-else,s=c2FsdA==,i=4096").is_err(), "nonce must extend ours");
    }
}
