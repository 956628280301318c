//! SASL against real clients: SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN over SASL_PLAINTEXT and
//! SASL_SSL with kcat (librdkafka), SCRAM with kafka-python; users created at start
//! (`--add-scram`) and at runtime (`runnel user scram`, AlterUserScramCredentials) and
//! known at once; wrong passwords, deleted users and requests before authentication are
//! refused and the connection closed; a session expires after `connections.max.reauth.ms`
//! unless the client re-authenticates on its connection (KIP-368).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use runnel_client::Connection;
use support::secure::*;
use support::*;
use tempfile::TempDir;

const PLAIN_JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_plainuser="plain-secret" user_other="other-secret" user_u="pw";"#;

/// A node with a PLAINTEXT listener (for administration), SASL_PLAINTEXT and SASL_SSL, PLAIN
/// users from JAAS on both SASL listeners, and `admin` created at start with SCRAM-SHA-512.
fn secured_node(data: &TempDir, certs: &TempDir, extra: &[&str]) -> (Node, Pki) {
    let pki = Pki::new(certs.path(), "main");
    let keystore = pki.keystore();
    let mut settings: Vec<String> = [
        "--set",
        "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        "--set",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "--add-scram",
        "SCRAM-SHA-512=[name=admin,password=admin-secret]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    settings.extend(["--set".into(), format!("ssl.keystore.location={}", keystore.display())]);
    for listener in ["sasl_plaintext", "sasl_ssl"] {
        settings.extend(["--set".into(), format!("listener.name.{listener}.plain.sasl.jaas.config={PLAIN_JAAS}")]);
    }
    settings.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    (Node::start(data.path(), &refs), pki)
}

fn runnel_user(bootstrap: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["user", "scram"])
        .args(args)
        .args(["--bootstrap", bootstrap])
        .output()
        .expect("run runnel user");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn with_ca(mut properties: Vec<(&'static str, String)>, pki: &Pki) -> Vec<(&'static str, String)> {
    properties.push(("ssl.ca.location", pki.ca_path().display().to_string()));
    properties
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_and_plain_users_authenticate_on_both_sasl_listeners_and_strangers_do_not() {
    let (data, certs) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (node, pki) = secured_node(&data, &certs, &[]);
    let (plain, sasl, sasl_ssl) = (
        node.listener("PLAINTEXT").to_string(),
        node.listener("SASL_PLAINTEXT").to_string(),
        node.listener("SASL_SSL").to_string(),
    );
    create_topic(&plain, "guarded", 1, &[]).await;
    let (ok, out) =
        runnel_user(&plain, &["set", "alice", "--password", "alice-secret", "--mechanism", "SCRAM-SHA-256"]);
    assert!(ok, "{out}");

    // The user created at start, SCRAM-SHA-512 over SASL_PLAINTEXT, produces.
    let admin = sasl_client("sasl_plaintext", "SCRAM-SHA-512", "admin", "admin-secret");
    let lines: Vec<String> = (0..20).map(|i| format!("k{i}:v{i}")).collect();
    let (ok, _, err) = kcat(&sasl, &admin, &["-P", "-t", "guarded", "-K:"], Some(&lines.join("\n")));
    assert!(ok, "admin produces over SASL_PLAINTEXT: {err}");
    // The user created at runtime, SCRAM-SHA-256 over SASL_SSL, reads it back.
    let alice = with_ca(sasl_client("sasl_ssl", "SCRAM-SHA-256", "alice", "alice-secret"), &pki);
    let (ok, out, err) =
        kcat(&sasl_ssl, &alice, &["-C", "-t", "guarded", "-o", "beginning", "-e", "-f", "%k:%s\n"], None);
    assert!(ok, "alice consumes over SASL_SSL: {err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), lines.iter().map(String::as_str).collect::<Vec<_>>());
    // Metadata on a SASL listener names that listener's address.
    let (ok, listing, err) = kcat(&sasl_ssl, &alice, &["-L"], None);
    assert!(ok, "{err}");
    assert_eq!(listed_brokers(&listing), vec![sasl_ssl.clone()]);
    // PLAIN with a JAAS user, on both listeners.
    let (ok, _, err) = kcat(&sasl, &sasl_client("sasl_plaintext", "PLAIN", "plainuser", "plain-secret"), &["-L"], None);
    assert!(ok, "PLAIN over SASL_PLAINTEXT: {err}");
    let (ok, _, err) =
        kcat(&sasl_ssl, &with_ca(sasl_client("sasl_ssl", "PLAIN", "plainuser", "plain-secret"), &pki), &["-L"], None);
    assert!(ok, "PLAIN over SASL_SSL: {err}");

    // Refusals: a wrong password, a user of another mechanism, an unknown user, no SASL.
    for (mechanism, user, password) in [
        ("SCRAM-SHA-512", "admin", "guess"),
        ("SCRAM-SHA-512", "alice", "alice-secret"),
        ("SCRAM-SHA-256", "nobody", "x"),
        ("PLAIN", "plainuser", "wrong"),
    ] {
        let (ok, _, _) = kcat(&sasl, &sasl_client("sasl_plaintext", mechanism, user, password), &["-L"], None);
        assert!(!ok, "{mechanism} {user}/{password} must be refused");
    }
    let (ok, _, _) = kcat(&sasl, &[], &["-L"], None);
    assert!(!ok, "a client without SASL must not be served on a SASL listener");
    // A request before authentication closes the connection, answering nothing.
    let mut raw = Connection::connect(&sasl).await.unwrap();
    raw.set_timeout(Duration::from_secs(5));
    assert!(raw.send(&MetadataRequest::default(), 12).await.is_err(), "Metadata before authentication");

    // Every node-side view agrees: both users are listed; a deleted user is refused at once.
    let (ok, listed) = runnel_user(&plain, &["list"]);
    assert!(ok && listed.contains("admin") && listed.contains("alice"), "{listed}");
    assert!(listed.contains("SCRAM-SHA-512 (iterations 4096)"), "{listed}");
    let (ok, out) = runnel_user(&plain, &["delete", "alice", "--mechanism", "SCRAM-SHA-256"]);
    assert!(ok, "{out}");
    let (ok, _, _) = kcat(&sasl_ssl, &alice, &["-L"], None);
    assert!(!ok, "a deleted user must be refused");
    let (ok, out) = runnel_user(&plain, &["delete", "alice", "--mechanism", "SCRAM-SHA-256"]);
    assert!(!ok && out.contains("ResourceNotFound"), "{out}");
    let (ok, out) = runnel_user(&plain, &["set", "bob", "--password", "x", "--iterations", "10"]);
    assert!(!ok && out.contains("UnacceptableCredential"), "{out}");

    // The node still serves everyone after the failures.
    let (ok, _, err) = kcat(&sasl, &admin, &["-L"], None);
    assert!(ok, "{err}");

    // The CLI over SASL_SSL with --command-config, as Kafka's tools take it.
    let properties = certs.path().join("admin.properties");
    std::fs::write(
        &properties,
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password=admin-secret\nssl.ca.location={}\n",
            pki.ca_path().display()
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(args)
            .args(["--bootstrap", &sasl_ssl, "--command-config"])
            .arg(&properties)
            .output()
            .unwrap();
        (
            output.status.success(),
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
        )
    };
    let (ok, out) = cli(&["topic", "list"]);
    assert!(ok && out.contains("guarded"), "{out}");
    let (ok, out) = cli(&["user", "scram", "list"]);
    assert!(ok && out.contains("admin"), "{out}");
    std::fs::write(
        &properties,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password=nope\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["topic", "list", "--bootstrap", &sasl, "--command-config"])
        .arg(&properties)
        .output()
        .unwrap();
    assert!(!output.status.success(), "a wrong password fails the CLI too");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("authentication failed"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_authenticates_with_scram() {
    let (data, certs) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (node, _pki) = secured_node(&data, &certs, &[]);
    let sasl = node.listener("SASL_PLAINTEXT").to_string();
    create_topic(node.listener("PLAINTEXT"), "py", 1, &[]).await;
    let script = r#"
import sys
from kafka import KafkaProducer, KafkaConsumer
bootstrap, password = sys.argv[1], sys.argv[2]
auth = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username="admin", sasl_plain_password=password)
producer = KafkaProducer(bootstrap_servers=bootstrap, **auth)
for i in range(5):
    producer.send("py", f"python {i}".encode())
producer.flush()
producer.close()
consumer = KafkaConsumer("py", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                         consumer_timeout_ms=10000, **auth)
print(",".join(m.value.decode() for m in consumer))
"#;
    let run = |password: &str| {
        Command::new("python3").args(["-c", script, &sasl, password]).output().expect("python3 with kafka-python")
    };
    let output = run("admin-secret");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "python 0,python 1,python 2,python 3,python 4");
    let refused = run("wrong");
    assert!(!refused.status.success(), "a wrong password must fail kafka-python too");
}

/// SaslHandshake v1 and SaslAuthenticate with PLAIN on a raw connection; the session
/// lifetime the broker gave.
async fn authenticate_plain(conn: &mut Connection, user: &str, password: &str) -> Result<i64, String> {
    let handshake = conn
        .send(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")), 1)
        .await
        .map_err(|e| e.to_string())?;
    if handshake.error_code != 0 {
        return Err(format!("handshake error {}", handshake.error_code));
    }
    let token = Bytes::from(format!("\0{user}\0{password}"));
    let answer =
        conn.send(&SaslAuthenticateRequest::default().with_auth_bytes(token), 2).await.map_err(|e| e.to_string())?;
    if answer.error_code != 0 {
        return Err(format!("authenticate error {}", answer.error_code));
    }
    Ok(answer.session_lifetime_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_expires_after_connections_max_reauth_ms_unless_the_client_reauthenticates() {
    let (data, certs) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (node, _pki) = secured_node(&data, &certs, &["--set", "connections.max.reauth.ms=1500"]);
    let sasl = node.listener("SASL_PLAINTEXT").to_string();

    // A client that re-authenticates before its session ends keeps being served.
    let mut renewing = Connection::connect(&sasl).await.unwrap();
    let lifetime = authenticate_plain(&mut renewing, "plainuser", "plain-secret").await.unwrap();
    assert_eq!(lifetime, 1500, "SaslAuthenticate v1+ tells the client its session lifetime");
    let mut idle = Connection::connect(&sasl).await.unwrap();
    authenticate_plain(&mut idle, "plainuser", "plain-secret").await.unwrap();
    let started = Instant::now();
    assert!(renewing.send(&MetadataRequest::default(), 12).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1000).saturating_sub(started.elapsed())).await;
    authenticate_plain(&mut renewing, "plainuser", "plain-secret").await.expect("re-authentication");
    // Past the first session's end (the broker's clock decides; waiting for it is the test).
    tokio::time::sleep(Duration::from_millis(1700).saturating_sub(started.elapsed())).await;
    assert!(renewing.send(&MetadataRequest::default(), 12).await.is_ok(), "re-authenticated: still served");
    assert!(idle.send(&MetadataRequest::default(), 12).await.is_err(), "expired: the connection is closed");

    // Re-authenticating as someone else is refused.
    let mut switching = Connection::connect(&sasl).await.unwrap();
    authenticate_plain(&mut switching, "plainuser", "plain-secret").await.unwrap();
    let err = authenticate_plain(&mut switching, "other", "other-secret").await.unwrap_err();
    assert!(err.contains("error"), "{err}");
}

/// An OAuth issuer for the test: a P-256 key, its JWKS file, and signed tokens.
struct Issuer {
    key: ring::signature::EcdsaKeyPair,
    jwks: std::path::PathBuf,
}

impl Issuer {
    fn new(dir: &std::path::Path) -> Issuer {
        use base64::Engine;
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = key.public_key().as_ref().to_vec();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "test", "use": "sig",
            "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..65])}]});
        let path = dir.join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        Issuer { key, jwks: path }
    }

    /// A token for `subject` expiring `expires_in_s` seconds from now (negative: expired).
    fn token(&self, subject: &str, expires_in_s: i64) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let header = b64.encode(serde_json::json!({"alg": "ES256", "kid": "test", "typ": "JWT"}).to_string());
        let claims = serde_json::json!({"sub": subject, "iss": "https://issuer.test", "aud": "runnel",
            "iat": now - 5, "exp": now + expires_in_s, "scope": "kafka"});
        let signed = format!("{header}.{}", b64.encode(claims.to_string()));
        let signature = self.key.sign(&ring::rand::SystemRandom::new(), signed.as_bytes()).unwrap();
        format!("{signed}.{}", b64.encode(signature.as_ref()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_accepts_signed_current_tokens_from_confluent_kafka_and_refuses_others() {
    let (data, certs) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let issuer = Issuer::new(certs.path());
    let jwks = format!("sasl.oauthbearer.jwks.endpoint.url=file://{}", issuer.jwks.display());
    let settings = [
        "--set",
        "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "--set",
        "sasl.enabled.mechanisms=OAUTHBEARER,SCRAM-SHA-512",
        "--set",
        &jwks,
        "--set",
        "sasl.oauthbearer.expected.issuer=https://issuer.test",
        "--set",
        "sasl.oauthbearer.expected.audience=runnel",
    ];
    let node = Node::start(data.path(), &settings);
    let sasl = node.listener("SASL_PLAINTEXT").to_string();
    create_topic(node.listener("PLAINTEXT"), "tokens", 1, &[]).await;
    let script = r#"
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
bootstrap, token = sys.argv[1], sys.argv[2]
conf = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "OAUTHBEARER", "oauth_cb": lambda _config: (token, time.time() + 300)}
failures = []
producer = Producer({**conf, "message.timeout.ms": 8000,
                     "error_cb": lambda e: failures.append(str(e))})
producer.poll(0)
delivered = []
for i in range(3):
    producer.produce("tokens", f"oauth {i}".encode(), on_delivery=lambda err, msg: delivered.append(err))
producer.flush(15)
if not delivered or any(delivered):
    print("refused", failures[:1], delivered[:1])
    sys.exit(3)
consumer = Consumer({**conf, "group.id": "oauth", "auto.offset.reset": "earliest"})
consumer.assign([TopicPartition("tokens", 0, 0)])
seen = []
deadline = time.time() + 20
while len(seen) < 3 and time.time() < deadline:
    m = consumer.poll(1.0)
    if m is not None and not m.error():
        seen.append(m.value().decode())
consumer.close()
print(",".join(seen))
"#;
    let run = |token: &str| Command::new("python3").args(["-c", script, &sasl, token]).output().expect("python3");
    let good = run(&issuer.token("carol", 600));
    assert!(
        good.status.success(),
        "{}{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&good.stdout).trim(), "oauth 0,oauth 1,oauth 2");
    // An expired token and one signed by another key are refused.
    let expired = run(&issuer.token("carol", -120));
    assert_eq!(expired.status.code(), Some(3), "expired token: {}", String::from_utf8_lossy(&expired.stdout));
    let elsewhere = TempDir::new().unwrap();
    let stranger = Issuer::new(elsewhere.path());
    let forged = run(&stranger.token("carol", 600));
    assert_eq!(forged.status.code(), Some(3), "foreign key: {}", String::from_utf8_lossy(&forged.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_sasl_clients_on_every_node_with_each_listeners_addresses() {
    use support::cluster::{create_topic_via, Cluster, Spec};
    let specs: Vec<Spec> = (1..=3)
        .map(|id| {
            Spec::combined(id)
                .with_listeners("SASL_PLAINTEXT://127.0.0.1:0")
                .with_args(&["--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]"])
        })
        .collect();
    let cluster = Cluster::start(&specs);
    cluster.await_brokers_listed(support::cluster::CONVERGE_TIMEOUT).await;
    create_topic_via(cluster.kafka_addr(1), "replicated", 3, 3).await.unwrap_or_else(|e| panic!("creating: {e}"));
    let sasl: Vec<String> = (1..=3).map(|id| cluster.node(id).listener("SASL_PLAINTEXT").to_string()).collect();
    let admin = sasl_client("sasl_plaintext", "SCRAM-SHA-512", "admin", "admin-secret");

    // Metadata on the SASL listener names every broker's SASL address, not its PLAINTEXT one.
    let listing =
        poll_until(Duration::from_secs(30), Duration::from_millis(200), "all three brokers over SASL", || {
            let (ok, listing, _) = kcat(&sasl[1], &admin, &["-L"], None);
            (ok && listed_brokers(&listing).len() == 3).then_some(listing)
        });
    let mut listed = listed_brokers(&listing);
    listed.sort();
    let mut expected = sasl.clone();
    expected.sort();
    assert_eq!(listed, expected, "{listing}");

    // acks=all through node 2's SASL listener; replicated over PLAINTEXT between nodes;
    // read back through node 3's.
    let lines: Vec<String> = (0..30).map(|i| format!("k{i}:v{i}")).collect();
    let mut producer = admin.clone();
    producer.push(("acks", "all".to_string()));
    let (ok, _, err) = kcat(&sasl[1], &producer, &["-P", "-t", "replicated", "-K:"], Some(&lines.join("\n")));
    assert!(ok, "{err}");
    let (ok, out, err) =
        kcat(&sasl[2], &admin, &["-C", "-t", "replicated", "-o", "beginning", "-e", "-f", "%k:%s\n"], None);
    assert!(ok, "{err}");
    let (mut got, mut sent): (Vec<&str>, Vec<&str>) =
        (out.lines().collect(), lines.iter().map(String::as_str).collect());
    got.sort();
    sent.sort();
    assert_eq!(got, sent);

    // A user created through node 1 authenticates at node 3 once node 3 has the record.
    let (ok, out) = runnel_user(cluster.kafka_addr(1), &["set", "dave", "--password", "dave-secret"]);
    assert!(ok, "{out}");
    let dave = sasl_client("sasl_plaintext", "SCRAM-SHA-256", "dave", "dave-secret");
    poll_until(Duration::from_secs(30), Duration::from_millis(200), "dave to authenticate at node 3", || {
        kcat(&sasl[2], &dave, &["-L"], None).0.then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_fetch_from_each_other_over_tls_with_scram_on_the_inter_broker_listener() {
    use support::cluster::{create_topic_via, Cluster, Spec};
    let certs = TempDir::new().unwrap();
    let pki = Pki::new(certs.path(), "cluster");
    let keystore = pki.keystore();
    let settings: Vec<String> = vec![
        "--set".into(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL".into(),
        "--set".into(),
        "inter.broker.listener.name=INTERNAL".into(),
        "--set".into(),
        "listener.name.internal.sasl.enabled.mechanisms=SCRAM-SHA-512".into(),
        "--set".into(),
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512".into(),
        "--set".into(),
        r#"listener.name.internal.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";"#.into(),
        "--set".into(),
        format!("ssl.keystore.location={}", keystore.display()),
        "--set".into(),
        format!("ssl.truststore.location={}", pki.ca_path().display()),
        "--add-scram".into(),
        "SCRAM-SHA-512=[name=broker,password=broker-secret]".into(),
    ];
    let args: Vec<&str> = settings.iter().map(String::as_str).collect();
    let specs: Vec<Spec> =
        (1..=3).map(|id| Spec::combined(id).with_listeners("INTERNAL://127.0.0.1:0").with_args(&args)).collect();
    let cluster = Cluster::start(&specs);
    cluster.await_brokers_listed(support::cluster::CONVERGE_TIMEOUT).await;
    create_topic_via(cluster.kafka_addr(1), "secured", 3, 3).await.unwrap_or_else(|e| panic!("creating: {e}"));
    // Followers can only be in sync by fetching over SASL_SSL: wait for full ISRs.
    let sent = (0..40).map(|i| format!("k{i}:v{i}")).collect::<Vec<_>>();
    let producer = vec![("acks", "all".to_string())];
    let (ok, _, err) = kcat(cluster.kafka_addr(1), &producer, &["-P", "-t", "secured", "-K:"], Some(&sent.join("\n")));
    assert!(ok, "acks=all needs the followers: {err}");
    support::cluster::eventually(Duration::from_secs(30), "every replica in sync", || async {
        let view = cluster.view(1).await?;
        let topic = view.topic("secured").ok_or("no topic")?.clone();
        match topic.partitions.iter().find(|p| p.isr.len() != 3) {
            Some(p) => Err(format!("not in sync: {p:?}")),
            None => Ok(()),
        }
    })
    .await;
    // Every node holds the same bytes for every partition: the followers copied them over
    // the secured listener (an unauthenticated fetch would have been refused).
    cluster.await_same_replica_sizes("secured", 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_raw_tokens_authenticate_and_garbage_closes_only_its_connection() {
    use std::io::{Read, Write};
    let (data, certs) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (node, _pki) = secured_node(&data, &certs, &[]);
    let sasl = node.listener("SASL_PLAINTEXT").to_string();
    // SaslHandshake v0 (PLAIN), then the token as a raw size-prefixed frame, as clients
    // before KIP-152 did.
    let handshake_v0 = |stream: &mut std::net::TcpStream| {
        let mut body = vec![0, 17, 0, 0, 0, 0, 0, 7, 0, 1, b'c'];
        body.extend_from_slice(&5i16.to_be_bytes());
        body.extend_from_slice(b"PLAIN");
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend(body);
        stream.write_all(&frame).unwrap();
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).unwrap();
        let mut answer = vec![0u8; u32::from_be_bytes(size) as usize];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(&answer[..4], &7i32.to_be_bytes(), "correlation id");
        assert_eq!(&answer[4..6], &0i16.to_be_bytes(), "PLAIN is enabled");
    };
    let raw_token = |stream: &mut std::net::TcpStream, token: &[u8]| -> Option<Vec<u8>> {
        let mut frame = (token.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(token);
        stream.write_all(&frame).ok()?;
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).ok()?;
        let mut answer = vec![0u8; u32::from_be_bytes(size) as usize];
        stream.read_exact(&mut answer).ok()?;
        Some(answer)
    };
    let open = || {
        let stream = std::net::TcpStream::connect(&sasl).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    };
    let mut good = open();
    handshake_v0(&mut good);
    assert_eq!(raw_token(&mut good, b"\0plainuser\0plain-secret"), Some(Vec::new()), "authenticated: an empty token");
    // After the raw exchange the connection speaks Kafka requests again: ApiVersions v0.
    let api_versions = raw_token(&mut good, &[0, 18, 0, 0, 0, 0, 0, 9, 0, 1, b'c']).expect("an answer");
    assert_eq!(&api_versions[..6], &[0, 0, 0, 9, 0, 0], "correlation id 9, no error");
    let mut bad = open();
    handshake_v0(&mut bad);
    assert_eq!(raw_token(&mut bad, &[0xff; 300]), None, "garbage closes the connection without an answer");
    // A short raw PLAIN token (below a request header's 8 bytes) is still a token.
    let mut short = open();
    handshake_v0(&mut short);
    assert_eq!(raw_token(&mut short, b"\0u\0pw"), Some(Vec::new()), "a 6-byte token authenticates");
    // Before authentication a frame may claim at most sasl.server.max.receive.size (512 KiB):
    // a larger size prefix closes the connection before any budget is taken for its body.
    let mut large = open();
    large.write_all(&(1u32 << 20).to_be_bytes()).unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(large.read(&mut byte), Ok(0) | Err(_)), "a 1 MiB frame before authentication is refused");
    // The node serves everyone else: the authenticated raw-token connection, and new clients.
    let mut conn = Connection::connect(&sasl).await.unwrap();
    authenticate_plain(&mut conn, "plainuser", "plain-secret").await.unwrap();
    assert!(conn.send(&MetadataRequest::default(), 12).await.is_ok());
}
