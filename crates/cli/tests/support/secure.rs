//! TLS and SASL helpers: a test certificate authority (rcgen; certificates are made by the
//! tests, never downloaded) and kcat, the librdkafka command-line client built with OpenSSL
//! and SASL, as the real client of secured listeners.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A certificate authority and what it signed, as PEM files in one directory.
pub struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    pub fn new(dir: &Path, name: &str) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
        Pki { dir: dir.join(name), ca, ca_key }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.with_file_name(format!("{}-ca.pem", self.dir.file_name().unwrap().to_string_lossy()))
    }

    /// Signs a certificate for `common_name` valid for localhost and 127.0.0.1; returns the
    /// certificate and key PEM.
    pub fn issue(&self, common_name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A Kafka PEM key store (the key, then the chain) for the broker, at `path`.
    pub fn write_keystore(&self, path: &Path) {
        let (cert, key) = self.issue("runnel broker");
        // Written beside and renamed, as a certificate rotation tool would.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{key}{cert}")).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    /// A fresh key store for a node, beside the CA; returns its path.
    pub fn keystore(&self) -> PathBuf {
        let path = self.dir.with_extension("keystore.pem");
        self.write_keystore(&path);
        path
    }

    /// A client certificate and key as two files; returns their paths.
    pub fn write_client(&self, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.issue(name);
        let (cert_path, key_path) =
            (self.dir.with_extension(format!("{name}.pem")), self.dir.with_extension(format!("{name}.key")));
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        (cert_path, key_path)
    }
}

/// kcat against `broker` with extra `-X` properties; returns (success, stdout, stderr).
pub fn kcat(broker: &str, properties: &[(&str, String)], args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new("kcat");
    // The test runner puts the build's own librdkafka (built without OpenSSL) on the
    // library path; kcat must load the system one it was built with.
    command.env_remove("LD_LIBRARY_PATH");
    command.args(["-b", broker, "-m", "5"]);
    for (key, value) in properties {
        command.arg("-X").arg(format!("{key}={value}"));
    }
    command.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("kcat is installed (Debian package kcat)");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub fn ssl_client(ca: &Path) -> Vec<(&'static str, String)> {
    vec![("security.protocol", "ssl".to_string()), ("ssl.ca.location", ca.display().to_string())]
}

/// The broker addresses a kcat metadata listing names.
pub fn listed_brokers(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.trim().strip_prefix("broker ")?.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

/// kcat properties for SASL over `protocol` (`sasl_plaintext` or `sasl_ssl`).
pub fn sasl_client(protocol: &str, mechanism: &str, user: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", protocol.to_string()),
        ("sasl.mechanism", mechanism.to_string()),
        ("sasl.username", user.to_string()),
        ("sasl.password", password.to_string()),
    ]
}
