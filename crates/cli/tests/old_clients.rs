//! Older clients: the oldest request versions Kafka 3.9 accepts (ListOffsets v0, OffsetCommit
//! v0-1, OffsetFetch v0, CreateTopics v0-1, DeleteTopics v0, the ACL APIs v0, DescribeLogDirs
//! v0, with ApiVersions advertising them) against a real node, encoded and decoded by
//! kafka-python's classic protocol classes (`old_clients.py`; kafka-python and
//! confluent-kafka come from `.ci/run`).

mod support;

use std::process::Command;

use support::*;
use tempfile::TempDir;

#[test]
fn kafka_python_old_request_versions_take_effect() {
    let data = TempDir::new().unwrap();
    let node = Node::start(
        data.path(),
        &[
            "--set",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            // The plaintext listener's principal: allowed everything, ACLs or not.
            "--set",
            "super.users=User:ANONYMOUS",
            "--set",
            "auto.create.topics.enable=false",
        ],
    );
    let output = Command::new("python3")
        .args(["-c", include_str!("old_clients.py"), node.bootstrap()])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            // Produce from v3 and Fetch from v4 (record format v2); the rest from v0.
            "min 0:3 1:4 2:0 8:0 9:0 19:0 20:0 29:0 30:0 31:0 35:0",
            "create v0 0",
            "create v1 again 36",
            "metadata v0 [('old', 0, 2)]",
            // After five records: the log end, the log start, and both (one segment).
            "list_offsets v0 latest (0, [5])",
            "list_offsets v0 earliest (0, [0])",
            "list_offsets v0 latest 10 (0, [5, 0])",
            // v0 knows LATEST and EARLIEST only, as in Kafka 3.9.
            "list_offsets v0 max timestamp (35, [])",
            "commit v1 0",
            "fetch v1 [3, 'meta', 0]",
            // ZooKeeper's versions: UNSUPPORTED_VERSION per partition, as Kafka 3.9 in KRaft mode.
            "commit v0 35",
            "fetch v0 [-1, '', 35]",
            "log dirs v0 0 True 0",
            "create acls v0 [0]",
            "create acls v1 prefixed [0]",
            // v0 sees and deletes LITERAL bindings only.
            "describe acls v0 0 [(2, 'old', ['User:alice'])]",
            "delete acls v0 [(0, [('old', 'User:alice')])]",
            "describe acls v1 any [('ol', 4)]",
            "delete topics v0 ['old', 0]",
            "metadata v0 after delete [('old', 3)]",
        ],
        "{stdout}"
    );
}
