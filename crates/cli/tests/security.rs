//! Listeners and TLS against real clients: a node serving PLAINTEXT and SSL side by side
//! answers each listener's clients with that listener's addresses; kcat (librdkafka with
//! OpenSSL) produces and consumes over TLS; a listener that requires client certificates
//! refuses a client without one; new certificate files are picked up without a restart;
//! settings that cannot work are refused at start. Certificates are generated here with
//! rcgen, never downloaded.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::secure::*;
use support::*;
use tempfile::TempDir;

fn args(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}

/// A node on a fresh data directory serving `listeners`, with a key store signed by `pki`
/// (in `certs`) and `extra` settings (`--set` pairs given as `key=value`).
fn tls_node(data: &TempDir, certs: &TempDir, pki: &Pki, listeners: &str, extra: &[String]) -> Node {
    let keystore = certs.path().join("broker.pem");
    pki.write_keystore(&keystore);
    let mut settings = vec![format!("listeners={listeners}"), format!("ssl.keystore.location={}", keystore.display())];
    settings.extend(extra.iter().cloned());
    let flags: Vec<String> = settings.into_iter().flat_map(|s| ["--set".to_string(), s]).collect();
    Node::start(data.path(), &args(&flags))
}

/// kcat properties presenting the client certificate `cert` with `key`.
fn with_client_cert(
    mut properties: Vec<(&'static str, String)>,
    (cert, key): (PathBuf, PathBuf),
) -> Vec<(&'static str, String)> {
    properties.extend([
        ("ssl.certificate.location", cert.display().to_string()),
        ("ssl.key.location", key.display().to_string()),
    ]);
    properties
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssl_listener_serves_kafka_clients_beside_plaintext_with_its_own_addresses() {
    let (dir, certs) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let pki = Pki::new(certs.path(), "main");
    let node = tls_node(&dir, &certs, &pki, "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", &[]);
    let (plain, ssl) = (node.listener("PLAINTEXT").to_string(), node.listener("SSL").to_string());
    assert_eq!(node.bootstrap(), plain, "the first listener is the one printed as listening");
    create_topic(&plain, "secret", 2, &[]).await;

    let lines: Vec<String> = (0..40).map(|i| format!("k{}:value {i}", i % 5)).collect();
    let (ok, _, err) = kcat(&ssl, &ssl_client(&pki.ca_path()), &["-P", "-t", "secret", "-K:"], Some(&lines.join("\n")));
    assert!(ok, "producing over TLS: {err}");
    let (ok, out, err) = kcat(
        &ssl,
        &ssl_client(&pki.ca_path()),
        &["-C", "-t", "secret", "-o", "beginning", "-e", "-f", "%k:%s\n"],
        None,
    );
    assert!(ok, "consuming over TLS: {err}");
    let mut got: Vec<String> = out.lines().map(str::to_string).collect();
    let mut sent = lines.clone();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "everything produced over TLS reads back over TLS");

    // Each listener's clients are told that listener's address.
    let (ok, listing, err) = kcat(&ssl, &ssl_client(&pki.ca_path()), &["-L"], None);
    assert!(ok, "metadata over TLS: {err}");
    assert_eq!(listed_brokers(&listing), vec![ssl.clone()], "{listing}");
    let (ok, listing, err) = kcat(&plain, &[], &["-L"], None);
    assert!(ok, "metadata over PLAINTEXT: {err}");
    assert_eq!(listed_brokers(&listing), vec![plain.clone()], "{listing}");

    // A client that does not trust the broker's CA is refused by the client, and one that
    // speaks plaintext to the SSL port gets no answer it can read.
    let other = Pki::new(certs.path(), "other");
    let (ok, _, _) = kcat(&ssl, &ssl_client(&other.ca_path()), &["-L"], None);
    assert!(!ok, "a client trusting another CA must not connect");
    let (ok, _, _) = kcat(&ssl, &[], &["-L"], None);
    assert!(!ok, "plaintext to the SSL listener must fail");
    // The node still serves both listeners.
    let (ok, _, err) = kcat(&plain, &[], &["-L"], None);
    assert!(ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_requiring_client_certificates_refuses_clients_without_one_or_without_a_principal() {
    let (dir, certs) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let pki = Pki::new(certs.path(), "main");
    let extra = [
        format!("ssl.truststore.location={}", pki.ca_path().display()),
        "ssl.client.auth=required".to_string(),
        // Only alice's certificate maps to a principal; any other subject is refused.
        "ssl.principal.mapping.rules=RULE:^CN=(alice)$/$1/L".to_string(),
    ];
    let node = tls_node(&dir, &certs, &pki, "SSL://127.0.0.1:0", &extra);
    let ssl = node.listener("SSL").to_string();
    let (ok, _, _) = kcat(&ssl, &ssl_client(&pki.ca_path()), &["-L"], None);
    assert!(!ok, "a client without a certificate must be refused");
    let stranger = Pki::new(certs.path(), "stranger");
    let with_foreign = with_client_cert(ssl_client(&pki.ca_path()), stranger.write_client("mallory"));
    let (ok, _, _) = kcat(&ssl, &with_foreign, &["-L"], None);
    assert!(!ok, "a client certificate from an untrusted CA must be refused");
    let with_cert = with_client_cert(ssl_client(&pki.ca_path()), pki.write_client("alice"));
    let (ok, listing, err) = kcat(&ssl, &with_cert, &["-L"], None);
    assert!(ok, "a client with a trusted certificate connects: {err}");
    assert_eq!(listed_brokers(&listing), vec![ssl.clone()]);
    // A trusted certificate whose subject no mapping rule takes is refused too, as in Kafka.
    let unmapped = with_client_cert(ssl_client(&pki.ca_path()), pki.write_client("bob"));
    let (ok, _, _) = kcat(&ssl, &unmapped, &["-L"], None);
    assert!(!ok, "CN=bob matches no ssl.principal.mapping.rules entry");
    poll_until(Duration::from_secs(10), Duration::from_millis(50), "the refusal to be logged", || {
        node.log_tail().contains("no ssl.principal.mapping.rules entry matches CN=bob").then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_certificate_files_are_used_without_a_restart() {
    let (dir, certs) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (first, second) = (Pki::new(certs.path(), "first"), Pki::new(certs.path(), "second"));
    let node = tls_node(&dir, &certs, &first, "SSL://127.0.0.1:0", &[]);
    let keystore = certs.path().join("broker.pem");
    let ssl = node.listener("SSL").to_string();
    let (ok, _, err) = kcat(&ssl, &ssl_client(&first.ca_path()), &["-L"], None);
    assert!(ok, "{err}");

    // Rotate to a certificate from another CA: new connections get it.
    second.write_keystore(&keystore);
    poll_until(Duration::from_secs(20), Duration::from_millis(200), "the rotated certificate to be served", || {
        kcat(&ssl, &ssl_client(&second.ca_path()), &["-L"], None).0.then_some(())
    });
    let (ok, _, _) = kcat(&ssl, &ssl_client(&first.ca_path()), &["-L"], None);
    assert!(!ok, "the old certificate is no longer served");

    // A broken file keeps the working material.
    std::fs::write(&keystore, "not a key store").unwrap();
    poll_until(Duration::from_secs(20), Duration::from_millis(100), "the damaged file to be noticed", || {
        node.log_tail().contains("does not load; keeping the previous").then_some(())
    });
    let (ok, _, err) = kcat(&ssl, &ssl_client(&second.ca_path()), &["-L"], None);
    assert!(ok, "a damaged key store file must not take TLS down: {err}");
}

#[test]
fn settings_that_cannot_work_are_refused_at_start() {
    let dir = TempDir::new().unwrap();
    let refused = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .arg("server")
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run runnel server");
        assert!(!output.status.success(), "{extra:?} must be refused");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let no_keystore = refused(&["--set", "listeners=SSL://127.0.0.1:0"]);
    assert!(no_keystore.contains("ssl.keystore.location"), "{no_keystore}");
    let unmapped = refused(&["--set", "listeners=INTERNAL://127.0.0.1:0"]);
    assert!(unmapped.contains("no security protocol"), "{unmapped}");
    let missing_file =
        refused(&["--set", "listeners=SSL://127.0.0.1:0", "--set", "ssl.keystore.location=/nonexistent/broker.pem"]);
    assert!(missing_file.contains("/nonexistent/broker.pem"), "{missing_file}");
    let jks = refused(&["--set", "listeners=SSL://127.0.0.1:0", "--set", "ssl.keystore.type=JKS"]);
    assert!(jks.contains("only PEM"), "{jks}");
    let unknown = refused(&["--set", "ssl.keystore.colour=blue"]);
    assert!(unknown.contains("ssl.keystore.colour"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_quorum_speaks_mutual_tls_when_its_listener_is_ssl() {
    use std::io::{Read, Write};
    use support::cluster::{create_topic_via, free_ports, Cluster, Spec};
    let certs = TempDir::new().unwrap();
    let pki = Pki::new(certs.path(), "quorum");
    let keystore = pki.keystore();
    let settings = vec![
        "--set".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL".to_string(),
        "--set".to_string(),
        "listener.name.controller.ssl.client.auth=required".to_string(),
        "--set".to_string(),
        format!("listener.name.controller.ssl.keystore.location={}", keystore.display()),
        "--set".to_string(),
        format!("listener.name.controller.ssl.truststore.location={}", pki.ca_path().display()),
    ];
    let ports = free_ports(3);
    let specs: Vec<Spec> = (1..=3)
        .map(|id| {
            let port = ports[id as usize - 1];
            Spec::combined(id).with_controller(port, format!("127.0.0.1:{port}")).with_args(&args(&settings))
        })
        .collect();
    let mut cluster = Cluster::start(&specs);
    cluster.await_brokers_listed(support::cluster::CONVERGE_TIMEOUT).await;
    // The quorum formed and commits over mutual TLS.
    create_topic_via(cluster.kafka_addr(2), "quorum-tls", 3, 3).await.unwrap_or_else(|e| panic!("creating: {e}"));
    // A node that joins later asks to be a learner over the same mutual TLS.
    cluster.join(Spec::broker(4).with_args(&args(&settings)));

    // A peer without the cluster's certificate gets no hello: the TLS handshake refuses it.
    let mut stranger = std::net::TcpStream::connect(("127.0.0.1", ports[0])).unwrap();
    stranger.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let hello = br#"{"Hello":{"cluster_id":"whatever"}}"#;
    let mut frame = (hello.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(hello);
    let _ = stranger.write_all(&frame);
    let mut answer = Vec::new();
    let _ = stranger.read_to_end(&mut answer);
    assert!(!answer.windows(5).any(|w| w == b"Hello"), "a plaintext peer must not be greeted: {answer:?}");
    poll_until(Duration::from_secs(10), Duration::from_millis(50), "the refusal to be logged", || {
        cluster.node(1).log_tail().contains("refused a quorum peer: TLS handshake failed").then_some(())
    });
}

#[test]
fn an_ssl_quorum_without_client_certificates_is_refused_at_start() {
    let dir = TempDir::new().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["server", "--node-id", "1", "--listen", "127.0.0.1:0", "--controller-listen", "127.0.0.1:0"])
        .args(["--controller-quorum", "1@127.0.0.1:1", "--roles", "broker,controller"])
        .args(["--set", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL"])
        .args(["--set", "ssl.keystore.location=/nonexistent.pem"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ssl.client.auth=required"), "{stderr}");
}

/// A listener's key store changed at runtime (Kafka's dynamic `listener.name.<l>.ssl.*`):
/// new connections get the new certificate with no restart; a key store that does not load
/// is refused with INVALID_REQUEST and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_store_set_at_runtime_is_served_without_a_restart() {
    let (dir, certs) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (first, second) = (Pki::new(certs.path(), "first"), Pki::new(certs.path(), "second"));
    let node = tls_node(&dir, &certs, &first, "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", &[]);
    let (plain, ssl) = (node.listener("PLAINTEXT").to_string(), node.listener("SSL").to_string());
    let rotated = certs.path().join("rotated.pem");
    second.write_keystore(&rotated);
    let config = |setting: String| {
        let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["config", "set", "--broker", "1", &setting, "--bootstrap", &plain])
            .output()
            .expect("run runnel config set");
        (output.status.success(), String::from_utf8_lossy(&output.stderr).to_string())
    };
    let missing = certs.path().join("missing.pem");
    let (ok, err) = config(format!("listener.name.ssl.ssl.keystore.location={}", missing.display()));
    assert!(!ok && err.contains("InvalidRequest") && err.contains("do not load"), "{err}");
    let (ok, _, err) = kcat(&ssl, &ssl_client(&first.ca_path()), &["-L"], None);
    assert!(ok, "a refused change leaves the served certificate: {err}");

    let (ok, err) = config(format!("listener.name.ssl.ssl.keystore.location={}", rotated.display()));
    assert!(ok, "{err}");
    poll_until(Duration::from_secs(20), Duration::from_millis(200), "the new key store to be served", || {
        kcat(&ssl, &ssl_client(&second.ca_path()), &["-L"], None).0.then_some(())
    });
    let (ok, _, _) = kcat(&ssl, &ssl_client(&first.ca_path()), &["-L"], None);
    assert!(!ok, "the old certificate is no longer served");
}
