//! ACLs against real clients: a node with Kafka's StandardAuthorizer settings, users from
//! SASL PLAIN, bindings made with `runnel acl` and with confluent-kafka's admin client
//! (CreateAcls, DescribeAcls, DeleteAcls on the wire), and kcat producing, consuming and
//! listing as each user: what is not allowed answers Kafka's authorization errors, DENY
//! wins, topics a user may not describe are not disclosed, ACLs survive a restart, and a
//! node without an authorizer answers SECURITY_DISABLED.

mod support;

use std::path::Path;
use std::process::Command;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::Connection;

use support::secure::*;
use support::*;
use tempfile::TempDir;

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-pw" user_alice="alice-pw" user_bob="bob-pw";"#;

/// A node with one SASL_PLAINTEXT listener (PLAIN users admin, alice, bob; admin a super
/// user) and one PLAINTEXT listener (anonymous), with the authorizer on.
fn guarded_node(data: &Path, extra: &[&str]) -> Node {
    let mut args: Vec<String> = vec![
        "--set".into(),
        "listeners=SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0".into(),
        "--set".into(),
        "sasl.enabled.mechanisms=PLAIN".into(),
        "--set".into(),
        format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
        "--set".into(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        "--set".into(),
        "super.users=User:admin".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Node::start(data, &refs)
}

fn user(name: &str) -> Vec<(&'static str, String)> {
    sasl_client("sasl_plaintext", "PLAIN", name, &format!("{name}-pw"))
}

/// A client properties file for the CLI's `--command-config`.
fn command_config(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.properties"));
    let text = format!(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{name}\" password=\"{name}-pw\";\n"
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `runnel <args> --bootstrap B [--command-config F]`: (success, stdout + stderr).
fn runnel(bootstrap: &str, config: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runnel"));
    command.args(args).args(["--bootstrap", bootstrap]);
    if let Some(config) = config {
        command.args(["--command-config", config]);
    }
    let output = command.output().expect("run runnel");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn produce(bootstrap: &str, who: &[(&str, String)], topic: &str, lines: &[&str]) -> (bool, String) {
    let (ok, _, err) = kcat(bootstrap, who, &["-P", "-t", topic, "-K:"], Some(&lines.join("\n")));
    (ok && !err.contains("ERROR"), err)
}

/// Consumes a topic to its end, in `group` when given (a group consumer commits).
fn consume(bootstrap: &str, who: &[(&str, String)], topic: &str, group: Option<&str>) -> (bool, String, String) {
    let mut args = vec!["-C", "-o", "beginning", "-e", "-f", "%k:%s\n", "-X", "enable.partition.eof=true"];
    let group_args;
    if let Some(group) = group {
        group_args = ["-G".to_string(), group.to_string(), topic.to_string()];
        args.retain(|a| *a != "-C" && *a != "-o" && *a != "beginning");
        args.extend(["-X", "auto.offset.reset=earliest"]);
        args.extend(group_args.iter().map(String::as_str));
    } else {
        args.extend(["-t", topic]);
    }
    let (ok, out, err) = kcat(bootstrap, who, &args, None);
    (ok && !err.contains("ERROR"), out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_decide_what_each_user_may_do_and_survive_a_restart() {
    let (data, work) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut node = guarded_node(data.path(), &[]);
    let sasl = node.listener("SASL_PLAINTEXT").to_string();
    let plain = node.listener("PLAINTEXT").to_string();
    let admin = command_config(work.path(), "admin");
    let (alice, bob) = (user("alice"), user("bob"));

    // The super user creates topics; nobody else may do anything yet.
    for topic in ["orders", "secret"] {
        let (ok, out) = runnel(&sasl, Some(&admin), &["topic", "create", topic, "--partitions", "2"]);
        assert!(ok, "{out}");
    }
    let (ok, err) = produce(&sasl, &alice, "orders", &["a:1"]);
    assert!(!ok && err.contains("Topic authorization failed"), "alice may not write yet: {err}");
    let (ok, out) = runnel(&sasl, Some(&command_config(work.path(), "alice")), &["topic", "create", "mine"]);
    assert!(!ok && out.contains("TopicAuthorizationFailed"), "alice may not create topics: {out}");
    let (ok, listing, err) = kcat(&plain, &[], &["-L"], None);
    assert!(ok, "{err}");
    assert!(listing.contains("0 topics"), "anonymous sees no topic: {listing}");

    // alice produces to orders; bob consumes it in group billing (kafka-acls' --consumer).
    let (ok, out) = runnel(
        &sasl,
        Some(&admin),
        &["acl", "add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", "orders"],
    );
    assert!(ok, "{out}");
    let (ok, out) = runnel(
        &sasl,
        Some(&admin),
        &["acl", "add", "--allow-principal", "User:bob", "--consumer", "--topic", "orders", "--group", "billing"],
    );
    assert!(ok, "{out}");
    let lines = ["k1:v1", "k2:v2", "k3:v3"];
    let (ok, err) = produce(&sasl, &alice, "orders", &lines);
    assert!(ok, "alice writes orders: {err}");
    let (ok, err) = produce(&sasl, &alice, "secret", &["x:y"]);
    assert!(!ok && err.contains("Topic authorization failed"), "alice may not write secret: {err}");
    let (ok, out, err) = consume(&sasl, &user("admin"), "secret", None);
    assert!(ok && out.is_empty(), "nothing of the refused write was appended: {out}{err}");
    let (ok, out, err) = consume(&sasl, &bob, "orders", Some("billing"));
    assert!(ok, "bob consumes in billing: {err}");
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    assert_eq!(got, lines);
    let (ok, _, err) = consume(&sasl, &bob, "orders", Some("other-group"));
    assert!(!ok && err.contains("Group authorization failed"), "bob may not use another group: {err}");
    let (ok, _, err) = consume(&sasl, &alice, "orders", None);
    assert!(!ok && err.contains("Topic authorization failed"), "Write does not imply Read: {err}");
    // Write implies Describe: alice sees orders, and only orders.
    let (ok, listing, err) = kcat(&sasl, &alice, &["-L"], None);
    assert!(ok, "{err}");
    assert!(listing.contains("topic \"orders\"") && !listing.contains("secret"), "{listing}");

    // DENY wins over ALLOW, through a prefix and for every user.
    let (ok, out) = runnel(
        &sasl,
        Some(&admin),
        &[
            "acl",
            "add",
            "--deny-principal",
            "User:*",
            "--operation",
            "Read",
            "--topic",
            "ord",
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    assert!(ok, "{out}");
    let (ok, _, err) = consume(&sasl, &bob, "orders", None);
    assert!(!ok && err.contains("Topic authorization failed"), "the prefixed DENY wins: {err}");

    // The bindings are listed as made, and survive a restart.
    let (ok, listed) = runnel(&sasl, Some(&admin), &["acl", "list"]);
    assert!(ok, "{listed}");
    for needle in ["User:alice", "User:bob", "User:*", "billing", "PREFIXED"] {
        assert!(listed.to_uppercase().contains(&needle.to_uppercase()), "{needle} in {listed}");
    }
    node.kill9();
    node.restart();
    let sasl = node.listener("SASL_PLAINTEXT").to_string();
    let (ok, relisted) = runnel(&sasl, Some(&admin), &["acl", "list"]);
    assert!(ok && relisted == listed, "after restart:\n{relisted}\nbefore:\n{listed}");
    let (ok, _, err) = consume(&sasl, &bob, "orders", None);
    assert!(!ok && err.contains("Topic authorization failed"), "still denied after restart: {err}");

    // Removing the DENY lets bob read again; removing alice's ALLOW stops her writes.
    let (ok, out) = runnel(
        &sasl,
        Some(&admin),
        &[
            "acl",
            "remove",
            "--deny-principal",
            "User:*",
            "--operation",
            "Read",
            "--topic",
            "ord",
            "--resource-pattern-type",
            "prefixed",
            "--force",
        ],
    );
    assert!(ok, "{out}");
    let (ok, _, err) = consume(&sasl, &bob, "orders", None);
    assert!(ok, "bob reads after the DENY is gone: {err}");
    let (ok, out) = runnel(
        &sasl,
        Some(&admin),
        &["acl", "remove", "--allow-principal", "User:alice", "--operation", "Write", "--topic", "orders", "--force"],
    );
    assert!(ok, "{out}");
    let (ok, err) = produce(&sasl, &alice, "orders", &["k4:v4"]);
    assert!(!ok && err.contains("Topic authorization failed"), "alice's writes stop: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_operations_need_cluster_acls() {
    let (data, work) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let node = guarded_node(data.path(), &[]);
    let sasl = node.listener("SASL_PLAINTEXT").to_string();
    let (admin, alice) = (command_config(work.path(), "admin"), command_config(work.path(), "alice"));
    // Describing and changing ACLs and users is for the cluster's administrators.
    let (ok, out) = runnel(&sasl, Some(&alice), &["acl", "list"]);
    assert!(!ok && out.contains("ClusterAuthorizationFailed"), "{out}");
    let (ok, out) = runnel(
        &sasl,
        Some(&alice),
        &["acl", "add", "--allow-principal", "User:alice", "--operation", "All", "--cluster"],
    );
    assert!(!ok && out.contains("ClusterAuthorizationFailed"), "alice may not grant herself: {out}");
    let (ok, out) = runnel(&sasl, Some(&alice), &["user", "scram", "set", "eve", "--password", "pw"]);
    assert!(!ok && out.contains("ClusterAuthorizationFailed"), "{out}");
    // Create on the cluster admits every topic; Alter on the cluster admits ACL changes.
    let (ok, out) = runnel(
        &sasl,
        Some(&admin),
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Create",
            "--operation",
            "Alter",
            "--cluster",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = runnel(&sasl, Some(&alice), &["topic", "create", "alices", "--partitions", "1"]);
    assert!(ok, "{out}");
    let (ok, out) = runnel(
        &sasl,
        Some(&alice),
        &["acl", "add", "--allow-principal", "User:bob", "--operation", "Read", "--topic", "alices"],
    );
    assert!(ok, "Alter on the cluster lets alice make ACLs: {out}");
    // But not delete what she may not Delete.
    let (ok, out) = runnel(&sasl, Some(&alice), &["topic", "delete", "alices"]);
    assert!(!ok && out.contains("TopicAuthorizationFailed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_admin_creates_describes_and_deletes_acls() {
    let data = TempDir::new().unwrap();
    let node = guarded_node(data.path(), &[]);
    let sasl = node.listener("SASL_PLAINTEXT").to_string();
    let script = r#"
import sys
from confluent_kafka.admin import (AdminClient, AclBinding, AclBindingFilter, ResourceType,
    ResourcePatternType, AclOperation, AclPermissionType)
conf = {"bootstrap.servers": sys.argv[1], "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN", "sasl.username": sys.argv[2], "sasl.password": sys.argv[2] + "-pw"}
admin = AdminClient(conf)
binding = AclBinding(ResourceType.TOPIC, "t1", ResourcePatternType.LITERAL, "User:carol", "*",
                     AclOperation.READ, AclPermissionType.ALLOW)
try:
    for f in admin.create_acls([binding], request_timeout=10).values():
        f.result()
    anyfilter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                 AclOperation.ANY, AclPermissionType.ANY)
    found = admin.describe_acls(anyfilter, request_timeout=10).result()
    print("described", ",".join(sorted(f"{b.name}:{b.principal}:{b.operation.name}" for b in found)))
    for f in admin.delete_acls([anyfilter], request_timeout=10).values():
        print("deleted", len(f.result()))
    print("left", len(admin.describe_acls(anyfilter, request_timeout=10).result()))
except Exception as e:
    print("error", e)
"#;
    let run = |who: &str| {
        let output = Command::new("python3").args(["-c", script, &sasl, who]).output().expect("python3");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let out = run("admin");
    assert!(out.contains("described t1:User:carol:READ"), "{out}");
    assert!(out.contains("deleted 1") && out.contains("left 0"), "{out}");
    let out = run("alice");
    assert!(out.contains("error") && out.to_uppercase().contains("CLUSTER_AUTHORIZATION_FAILED"), "{out}");

    // A node without an authorizer answers SECURITY_DISABLED.
    let plain_data = TempDir::new().unwrap();
    let open = Node::start(plain_data.path(), &[]);
    let (ok, out) = runnel(open.bootstrap(), None, &["acl", "list"]);
    assert!(!ok && out.contains("SecurityDisabled"), "{out}");
}

/// A three-node cluster with the authorizer on: the brokers replicate over a SASL
/// inter-broker listener as `User:broker`, a super user (a follower's fetch needs
/// ClusterAction); a user with Write alone produces with acks=all, which needs every
/// follower to have fetched; ACLs made through one node decide on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_cluster_replicates_as_its_broker_principal_and_applies_acls_everywhere() {
    use std::time::Duration;
    use support::cluster::{Cluster, Spec};
    let work = TempDir::new().unwrap();
    let settings: Vec<String> = vec![
        "--set".into(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT".into(),
        "--set".into(),
        "inter.broker.listener.name=INTERNAL".into(),
        "--set".into(),
        "listener.name.internal.sasl.enabled.mechanisms=SCRAM-SHA-512".into(),
        "--set".into(),
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512".into(),
        "--set".into(),
        r#"listener.name.internal.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-pw";"#.into(),
        "--set".into(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        "--set".into(),
        "super.users=User:broker;User:admin".into(),
    ];
    let mut args: Vec<&str> = settings.iter().map(String::as_str).collect();
    for user in ["broker", "admin", "alice"] {
        args.push("--add-scram");
        args.push(match user {
            "broker" => "SCRAM-SHA-512=[name=broker,password=broker-pw]",
            "admin" => "SCRAM-SHA-512=[name=admin,password=admin-pw]",
            _ => "SCRAM-SHA-512=[name=alice,password=alice-pw]",
        });
    }
    let specs: Vec<Spec> =
        (1..=3).map(|id| Spec::combined(id).with_listeners("INTERNAL://127.0.0.1:0").with_args(&args)).collect();
    let cluster = Cluster::start(&specs);
    cluster.await_brokers_listed(support::cluster::CONVERGE_TIMEOUT).await;
    let internal: Vec<String> = (1..=3).map(|id| cluster.node(id).listener("INTERNAL").to_string()).collect();
    let admin_config = work.path().join("admin.properties");
    std::fs::write(
        &admin_config,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password=admin-pw\n",
    )
    .unwrap();
    let admin = admin_config.display().to_string();
    let (ok, out) = runnel(
        &internal[0],
        Some(&admin),
        &["topic", "create", "guarded", "--partitions", "3", "--replication-factor", "3"],
    );
    assert!(ok, "{out}");
    // Anonymous (PLAINTEXT) is refused like any principal without ACLs.
    let (ok, err) = produce(cluster.kafka_addr(2), &[], "guarded", &["a:b"]);
    assert!(!ok && err.contains("Topic authorization failed"), "{err}");
    // An ACL made through node 1 admits alice at node 3.
    let (ok, out) = runnel(
        &internal[0],
        Some(&admin),
        &["acl", "add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", "guarded"],
    );
    assert!(ok, "{out}");
    let mut alice = sasl_client("sasl_plaintext", "SCRAM-SHA-512", "alice", "alice-pw");
    alice.push(("acks", "all".to_string()));
    let lines: Vec<String> = (0..30).map(|i| format!("k{i}:v{i}")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    poll_until(Duration::from_secs(30), Duration::from_millis(200), "alice's acks=all writes through node 3", || {
        produce(&internal[2], &alice, "guarded", &refs).0.then_some(())
    });
    // The followers copied every write as User:broker: every node holds the same bytes.
    cluster.await_same_replica_sizes("guarded", 3);
}

/// A client that may read a topic, fetching as a consumer, gets its records; the same
/// client claiming a follower's replica id (which would move the high watermark and the
/// ISR) needs ClusterAction on the cluster and gets TOPIC_AUTHORIZATION_FAILED instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_claiming_a_follower_id_without_cluster_action_is_refused() {
    let (data, work) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let node = guarded_node(data.path(), &[]);
    let sasl = node.listener("SASL_PLAINTEXT").to_string();
    let admin = command_config(work.path(), "admin");
    let (ok, out) = runnel(&sasl, Some(&admin), &["topic", "create", "reads", "--partitions", "1"]);
    assert!(ok, "{out}");
    let (ok, err) = produce(&sasl, &user("admin"), "reads", &["k:v"]);
    assert!(ok, "{err}");
    let (ok, out) = runnel(
        &sasl,
        Some(&admin),
        &["acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Read", "--topic", "reads"],
    );
    assert!(ok, "{out}");
    let fetch = |replica: i32| {
        FetchRequest::default()
            .with_replica_id(BrokerId(replica))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("reads")))
                .with_partitions(vec![FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20)])])
    };
    let mut conn = Connection::connect(node.listener("PLAINTEXT")).await.unwrap();
    let as_consumer = conn.send(&fetch(-1), 12).await.unwrap();
    let partition = &as_consumer.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert!(partition.records.as_ref().is_some_and(|r| !r.is_empty()), "the consumer reads the record");
    let as_follower = conn.send(&fetch(1), 12).await.unwrap();
    let partition = &as_follower.responses[0].partitions[0];
    assert_eq!(partition.error_code, 29, "TOPIC_AUTHORIZATION_FAILED");
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()), "nothing is read for a refused follower");
}

/// On an SSL listener with client certificates, the principal the ACLs see is the mapped
/// certificate subject: `CN=writer` becomes `User:writer` and may write; `CN=reader` may
/// only read; a certificate the rules leave unmapped keeps its full subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_principals_are_what_acls_decide_on() {
    let (data, certs, work) = (TempDir::new().unwrap(), TempDir::new().unwrap(), TempDir::new().unwrap());
    let pki = Pki::new(certs.path(), "mtls");
    let keystore = pki.keystore();
    let keystore_setting = format!("ssl.keystore.location={}", keystore.display());
    let truststore_setting = format!("ssl.truststore.location={}", pki.ca_path().display());
    let node = guarded_node(
        data.path(),
        &[
            "--set",
            "listeners=SASL_PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
            "--set",
            &keystore_setting,
            "--set",
            &truststore_setting,
            "--set",
            "listener.name.ssl.ssl.client.auth=required",
            "--set",
            "ssl.principal.mapping.rules=RULE:^CN=(writer|reader)$/$1/,DEFAULT",
        ],
    );
    let (sasl, ssl) = (node.listener("SASL_PLAINTEXT").to_string(), node.listener("SSL").to_string());
    let admin = command_config(work.path(), "admin");
    let (ok, out) = runnel(&sasl, Some(&admin), &["topic", "create", "certs", "--partitions", "1"]);
    assert!(ok, "{out}");
    for (principal, operation) in [("User:writer", "Write"), ("User:reader", "Read")] {
        let (ok, out) = runnel(
            &sasl,
            Some(&admin),
            &["acl", "add", "--allow-principal", principal, "--operation", operation, "--topic", "certs"],
        );
        assert!(ok, "{out}");
    }
    let (ok, out) = runnel(
        &sasl,
        Some(&admin),
        &["acl", "add", "--allow-principal", "User:reader", "--operation", "Read", "--group", "certs-readers"],
    );
    assert!(ok, "{out}");
    let client = |name: &str| {
        let (cert, key) = pki.write_client(name);
        let mut properties = ssl_client(&pki.ca_path());
        properties.push(("ssl.certificate.location", cert.display().to_string()));
        properties.push(("ssl.key.location", key.display().to_string()));
        properties
    };
    let (writer, reader, other) = (client("writer"), client("reader"), client("other"));
    let (ok, err) = produce(&ssl, &writer, "certs", &["a:1", "b:2"]);
    assert!(ok, "CN=writer is User:writer and may write: {err}");
    // The rdkafka crate (librdkafka with OpenSSL) with the writer's certificate, too.
    let writer_settings: Vec<(&str, &str)> = writer.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rdkafka_writer = producer(&ssl, &writer_settings);
    let placed = produce_all(&rdkafka_writer, "certs", Some(0), &[Msg::new("c", "3")], None).await;
    assert_eq!(placed.len(), 1, "the rdkafka crate writes over mTLS");
    let rdkafka_reader = producer(&ssl, &reader.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    let refused = rdkafka_reader
        .send(rdkafka::producer::FutureRecord::to("certs").key("d").payload("4"), std::time::Duration::from_secs(10))
        .await;
    let error = refused.expect_err("User:reader may not write").0;
    assert_eq!(error.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed));
    let (ok, err) = produce(&ssl, &reader, "certs", &["c:3"]);
    assert!(!ok && err.contains("Topic authorization failed"), "User:reader may not write: {err}");
    let (ok, out, err) = consume(&ssl, &reader, "certs", None);
    assert!(ok, "User:reader reads: {err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["a:1", "b:2", "c:3"]);
    // confluent-kafka with the reader's certificate reads the same.
    let script = r#"
import sys
from confluent_kafka import Consumer, TopicPartition
conf = {"bootstrap.servers": sys.argv[1], "security.protocol": "SSL", "ssl.ca.location": sys.argv[2],
        "ssl.certificate.location": sys.argv[3], "ssl.key.location": sys.argv[4],
        "group.id": "certs-readers", "enable.auto.commit": False}
consumer = Consumer(conf)
consumer.assign([TopicPartition("certs", 0, 0)])
seen = []
while len(seen) < 3:
    message = consumer.poll(10)
    if message is None:
        break
    if message.error():
        print("error", message.error())
        break
    seen.append(f"{message.key().decode()}:{message.value().decode()}")
print(",".join(seen))
"#;
    let setting = |key: &str| reader.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()).unwrap();
    let output = Command::new("python3")
        .args(["-c", script, &ssl])
        .args([setting("ssl.ca.location"), setting("ssl.certificate.location"), setting("ssl.key.location")])
        .output()
        .expect("python3 with confluent-kafka");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "a:1,b:2,c:3",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (ok, _, err) = consume(&ssl, &other, "certs", None);
    assert!(!ok && err.contains("Topic authorization failed"), "User:CN=other has no ACL: {err}");
}

/// Kafka's TransactionalId ACLs: a transactional producer needs Write (and Describe, to
/// find its coordinator) on its transactional id besides Write on the topics; kafka-acls'
/// `--producer --transactional-id` grants both, and DescribeTransactions answers only for
/// ids the principal may describe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_ids_need_their_acls() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let (data, work) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let node = guarded_node(data.path(), &["--set", "transaction.state.log.num.partitions=2"]);
    let sasl = node.listener("SASL_PLAINTEXT").to_string();
    let admin = command_config(work.path(), "admin");
    let (ok, out) = runnel(&sasl, Some(&admin), &["topic", "create", "orders", "--partitions", "1"]);
    assert!(ok, "{out}");
    let topic_only = ["acl", "add", "--allow-principal", "User:alice", "--producer", "--topic", "orders"];
    let (ok, out) = runnel(&sasl, Some(&admin), &topic_only);
    assert!(ok, "{out}");
    let transactional = || {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &sasl).set("broker.address.family", "v4").set("transactional.id", "tx-alice");
        for (key, value) in user("alice") {
            config.set(key, value);
        }
        config.create::<BaseProducer>().expect("producer")
    };
    let timeout = std::time::Duration::from_secs(20);
    let refused = tokio::task::block_in_place(|| transactional().init_transactions(timeout))
        .expect_err("no ACL on the transactional id");
    assert!(refused.to_string().contains("Transactional Id authorization failed"), "{refused}");

    let (ok, out) = runnel(
        &sasl,
        Some(&admin),
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--transactional-id",
            "tx-alice",
            "--topic",
            "orders",
        ],
    );
    assert!(ok, "{out}");
    tokio::task::block_in_place(|| {
        let producer = transactional();
        producer.init_transactions(timeout).expect("init with the ACLs");
        producer.begin_transaction().expect("begin");
        producer.send(BaseRecord::<str, str>::to("orders").partition(0).payload("paid")).expect("send");
        producer.commit_transaction(timeout).expect("commit");
    });
    let (ok, out) = runnel(&sasl, Some(&admin), &["transactions", "describe", "tx-alice"]);
    assert!(ok && out.contains("CompleteCommit"), "the committed transaction: {out}");
    let alice = command_config(work.path(), "alice");
    let (ok, out) = runnel(&sasl, Some(&alice), &["transactions", "describe", "tx-other"]);
    assert!(!ok && out.contains("TransactionalIdAuthorizationFailed"), "an id alice has no ACL on: {out}");
    let (ok, out) = runnel(&sasl, Some(&command_config(work.path(), "bob")), &["transactions", "list"]);
    assert!(ok && !out.contains("tx-alice"), "bob may not see alice's id: {out}");
}
