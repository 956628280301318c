"""Cross-client smoke suite: Debian's kcat, confluent-kafka and kafka-python against a real
runnel process. Each scenario is a function; the runner prints 'N passed, N failed'."""
import glob
import os
import subprocess
import sys
import time
import traceback
import uuid

from node import Cluster, Node

MESSAGES = 1000
DEADLINE_S = 60


def kcat(node, *args, stdin=None):
    result = subprocess.run(["kcat", "-b", node.bootstrap, *args], input=stdin, capture_output=True, text=True, timeout=DEADLINE_S)
    assert result.returncode == 0, f"kcat {args} failed: {result.stderr}"
    return result.stdout


def test_kcat_metadata_produce_consume(node):
    topic = "kcat-" + uuid.uuid4().hex[:8]
    lines = [f"key{i % 7}:value-{i}" for i in range(MESSAGES)]
    kcat(node, "-P", "-t", topic, "-K:", stdin="\n".join(lines) + "\n")
    listing = kcat(node, "-L", "-t", topic)
    assert f'topic "{topic}"' in listing and "leader 1" in listing, listing
    out = kcat(node, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o %k:%s\n")
    got = out.strip().split("\n")
    assert len(got) == MESSAGES, len(got)
    for offset, (line, sent) in enumerate(zip(got, lines)):
        assert line == f"{offset} {sent}", (line, sent)


def confluent_produce(bootstrap, topic, records, acks="all", **settings):
    """Produces (key, value) records and waits for every report; returns value ->
    (partition, offset, key). `settings` override the producer's librdkafka settings."""
    from confluent_kafka import Producer
    config = {"bootstrap.servers": bootstrap, "acks": acks, "enable.idempotence": False, "linger.ms": 5}
    config.update({key.replace("_", "."): value for key, value in settings.items()})
    producer = Producer(config)
    acked = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.value()] = (msg.partition(), msg.offset(), msg.key())

    deadline = time.monotonic() + DEADLINE_S
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=report)
                break
            except BufferError:
                assert time.monotonic() < deadline, "the producer queue stayed full"
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(DEADLINE_S)
    assert remaining == 0 and not errors, (remaining, errors[:3])
    assert len(acked) == len(records)
    return acked


def confluent_read_all(bootstrap, topic, partitions, expected):
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "smoke", "enable.auto.commit": False, "fetch.max.bytes": 8 << 20})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 1.0):
            assert msg.error() is None, msg.error()
            got.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
    consumer.close()
    assert len(got) == expected, (len(got), expected)
    return got


def test_confluent_kafka_produce_consume(node):
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = "ck-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
        future.result(DEADLINE_S)
    records = [(f"k{i % 10}".encode(), f"v{i}".encode()) for i in range(MESSAGES)]
    acked = confluent_produce(node.bootstrap, topic, records)
    for partition, offset, key, value in confluent_read_all(node.bootstrap, topic, 2, MESSAGES):
        assert acked[value] == (partition, offset, key)


def test_kafka_python_produce_consume(node):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    topic = "kp-" + uuid.uuid4().hex[:8]
    # Idempotence needs InitProducerId (a later issue); kafka-python 3 turns it on by default.
    producer = KafkaProducer(bootstrap_servers=node.bootstrap, acks="all", linger_ms=5, enable_idempotence=False)
    futures = [producer.send(topic, key=f"k{i % 5}".encode(), value=f"value-{i}".encode()) for i in range(MESSAGES)]
    producer.flush(DEADLINE_S)
    acked = {}
    for i, future in enumerate(futures):
        meta = future.get(timeout=DEADLINE_S)
        acked[f"value-{i}".encode()] = (meta.partition, meta.offset)
    producer.close()
    partitions = sorted({p for p, _ in acked.values()})
    consumer = KafkaConsumer(bootstrap_servers=node.bootstrap, enable_auto_commit=False, group_id=None, consumer_timeout_ms=5000)
    consumer.assign([TopicPartition(topic, p) for p in partitions])
    consumer.seek_to_beginning()
    got = {}
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < MESSAGES and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                got[record.value] = (record.partition, record.offset)
    consumer.close()
    assert got == acked, (len(got), len(acked))


def test_kafka_python_group_consumers_split_partitions_and_commit(node):
    """Two KafkaConsumers in one group share a topic's partitions, commit what they processed,
    and the group's offsets and state read back through the admin client."""
    import threading
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    topic = "kpg-" + uuid.uuid4().hex[:8]
    group = "kpg-group-" + uuid.uuid4().hex[:8]
    admin = KafkaAdminClient(bootstrap_servers=node.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=node.bootstrap, enable_idempotence=False, linger_ms=5)
    sent = {f"v{i}".encode() for i in range(400)}
    for value in sent:
        producer.send(topic, key=value, value=value)
    producer.flush(DEADLINE_S)
    producer.close()
    got = {}
    assignments = [set(), set()]
    lock = threading.Lock()
    stop = threading.Event()

    def run(index):
        consumer = KafkaConsumer(topic, bootstrap_servers=node.bootstrap, group_id=group, auto_offset_reset="earliest",
                                 enable_auto_commit=False, session_timeout_ms=10000, heartbeat_interval_ms=500,
                                 max_poll_interval_ms=30000)
        while not stop.is_set():
            batches = consumer.poll(timeout_ms=200)
            with lock:
                for records in batches.values():
                    for record in records:
                        got.setdefault(record.value, set()).add(index)
                assignments[index] = {tp.partition for tp in consumer.assignment()}
            if batches:
                consumer.commit()
        consumer.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            with lock:
                split = all(assignments) and not (assignments[0] & assignments[1])
                done = split and assignments[0] | assignments[1] == set(range(4)) and set(got) == sent
            if done:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(DEADLINE_S)
    assert set(got) == sent, (len(got), len(sent))
    assert all(assignments) and not (assignments[0] & assignments[1]), assignments
    assert assignments[0] | assignments[1] == set(range(4)), assignments
    ends = KafkaConsumer(bootstrap_servers=node.bootstrap).end_offsets([TopicPartition(topic, p) for p in range(4)])
    committed = {tp: meta.offset for tp, meta in admin.list_group_offsets({group: None})[group].items()}
    assert committed == ends, (committed, ends)
    listed = admin.list_groups(states_filter=["Empty"])
    assert {"group_id": group, "protocol_type": "consumer"}.items() <= next(g for g in listed if g["group_id"] == group).items()
    described = admin.describe_groups([group])[group]
    assert described["group_state"] == "Empty" and not described["members"], described
    admin.close()


def verify_keyed(bootstrap, topic, acked, partitions):
    got = confluent_read_all(bootstrap, topic, partitions, len(acked))
    key_partition = {}
    last_offset = {}
    for partition, offset, key, value in got:
        assert acked[value] == (partition, offset, key), "message not at its acknowledged offset"
        assert key_partition.setdefault(key, partition) == partition, "a key was split across partitions"
        assert offset > last_offset.get(partition, -1), "offsets out of order"
        last_offset[partition] = offset


def test_twenty_thousand_keyed_1kb_messages_survive_kill9_and_torn_tail(node):
    """The issue's acceptance scenario, as a new user would try it."""
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = "accept-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        future.result(DEADLINE_S)
    pad = b"x" * 1000
    records = [(f"key-{i % 97}".encode(), b"%08d" % i + pad[8:]) for i in range(20_000)]
    acked = confluent_produce(node.bootstrap, topic, records, acks="all")
    verify_keyed(node.bootstrap, topic, acked, 3)
    node.kill9()
    node.restart()
    verify_keyed(node.bootstrap, topic, acked, 3)
    for partition in range(3):
        active = sorted(glob.glob(os.path.join(node.partition_dir(topic, partition), "*.log")))[-1]
        with open(active, "ab") as f:
            f.write(os.urandom(3000))
    node.kill9()
    node.restart()
    verify_keyed(node.bootstrap, topic, acked, 3)
    more = confluent_produce(node.bootstrap, topic, [(b"key-1", b"after-restart")])
    partition, offset, _ = more[b"after-restart"]
    assert offset == 1 + max(o for p, o, _ in acked.values() if p == partition)


def test_describe_configs_v0_raw(node):
    """DescribeConfigs v0 (no codec in kafka-protocol, encoded by hand) for a topic."""
    import socket
    import struct
    topic = "dc0-" + uuid.uuid4().hex[:8]
    kcat(node, "-P", "-t", topic, stdin="x\n")
    host, port = node.bootstrap.split(":")
    name = topic.encode()
    body = struct.pack(">i", 1) + struct.pack(">bh", 2, len(name)) + name + struct.pack(">i", -1)
    header = struct.pack(">hhih", 32, 0, 9, 4) + b"test"
    frame = header + body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        data = sock.recv(size, socket.MSG_WAITALL)
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values

    def string():
        nonlocal pos
        (length,) = take(">h")
        if length < 0:
            return None
        value = data[pos:pos + length].decode()
        pos += length
        return value

    correlation, throttle, results = take(">iii")
    assert (correlation, results) == (9, 1)
    (error,) = take(">h")
    assert error == 0 and string() is None
    (resource_type,) = take(">b")
    assert resource_type == 2 and string() == topic
    (count,) = take(">i")
    configs = {}
    for _ in range(count):
        key, value = string(), string()
        read_only, is_default, sensitive = take(">bbb")
        configs[key] = (value, is_default)
    assert pos == len(data), "trailing bytes in the v0 response"
    assert configs["cleanup.policy"] == ("delete", 1), configs
    assert "retention.ms" in configs


def zigzag(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def raw_produce_v3(node, topic, batch):
    """Sends one Produce v3 request holding `batch` for partition 0; returns its error code."""
    import socket
    import struct
    name = topic.encode()
    body = struct.pack(">hhi", -1, -1, 10000) + struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch
    frame = struct.pack(">hhih", 0, 3, 5, 5) + b"smoke" + body
    host, port = node.bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        data = sock.recv(size, socket.MSG_WAITALL)
    correlation, topics, name_len = struct.unpack_from(">iih", data, 0)
    pos = 10 + name_len
    partitions, index, error = struct.unpack_from(">iih", data, pos)
    assert (correlation, topics, partitions, index) == (5, 1, 1, 0)
    return error


def test_corrupt_batch_is_refused_with_corrupt_message_and_nothing_appended(node):
    import struct
    topic = "corrupt-" + uuid.uuid4().hex[:8]
    kcat(node, "-P", "-t", topic, stdin="first\n")
    value = b"payload"
    record = b"\x00" + zigzag(0) + zigzag(0) + zigzag(-1) + zigzag(len(value)) + value + zigzag(0)
    records = zigzag(len(record)) + record
    after_length = struct.pack(">ibIhiqqqhii", -1, 2, 0xDEADBEEF, 0, 0, 0, 0, -1, -1, -1, 1) + records
    batch = struct.pack(">qi", 0, len(after_length)) + after_length
    assert raw_produce_v3(node, topic, batch) == 2, "CORRUPT_MESSAGE expected for a wrong CRC"
    truncated = batch[:-3]
    assert raw_produce_v3(node, topic, truncated) in (2, 87), "a batch shorter than its length is refused"
    out = kcat(node, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o %s\n")
    assert out == "0 first\n", out


def test_idempotent_producers_confluent_and_kafka_python_write_each_message_once(node):
    """enable.idempotence on in both clients (InitProducerId, sequence numbers per batch)."""
    from kafka import KafkaProducer
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = "idem-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
        future.result(DEADLINE_S)
    records = [(f"k{i % 10}".encode(), f"ck-{i}".encode()) for i in range(MESSAGES)]
    acked = confluent_produce(node.bootstrap, topic, records, enable_idempotence=True,
                              max_in_flight_requests_per_connection=5, linger_ms=2, batch_num_messages=50)
    kp = KafkaProducer(bootstrap_servers=node.bootstrap, acks="all", linger_ms=2, enable_idempotence=True)
    futures = [(f"kp-{i}".encode(), kp.send(topic, key=f"k{i % 10}".encode(), value=f"kp-{i}".encode()))
               for i in range(MESSAGES)]
    kp.flush(DEADLINE_S)
    for i, (value, future) in enumerate(futures):
        meta = future.get(timeout=DEADLINE_S)
        acked[value] = (meta.partition, meta.offset, f"k{i % 10}".encode())
    kp.close()
    assert len(acked) == 2 * MESSAGES
    got = confluent_read_all(node.bootstrap, topic, 2, 2 * MESSAGES)
    last = {}
    for partition, offset, key, value in got:
        assert acked[value] == (partition, offset, key), (value, acked[value], (partition, offset, key))
        client, index = value.split(b"-")
        assert int(index) > last.get((partition, client), -1), "send order per client and partition"
        last[(partition, client)] = int(index)


def test_replicated_topic_keeps_every_acknowledged_write_through_a_leader_kill9(node):
    """kafka-python and confluent-kafka against a 3-node cluster: replication factor 3,
    min.insync.replicas=2, acks=all; the leader of partition 0 is killed between the two
    producers and restarted; every acknowledged message is read back once, where it was
    acknowledged."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    cluster = Cluster("broker.session.timeout.ms=3000", "broker.heartbeat.interval.ms=500",
                      "replica.lag.time.max.ms=3000")
    try:
        topic = "repl-" + uuid.uuid4().hex[:8]
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        deadline = time.monotonic() + DEADLINE_S
        while True:  # every node has registered, but the first one's image may lag a moment
            try:
                new = NewTopic(topic, num_partitions=3, replication_factor=3, config={"min.insync.replicas": "2"})
                admin.create_topics([new])[topic].result(DEADLINE_S)
                break
            except Exception:
                assert time.monotonic() < deadline, "could not create the replicated topic"
                time.sleep(0.2)
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all", linger_ms=5, enable_idempotence=False)
        futures = [(f"kp-{i}".encode(), producer.send(topic, key=f"k{i % 7}".encode(), value=f"kp-{i}".encode()))
                   for i in range(MESSAGES)]
        producer.flush(DEADLINE_S)
        acked = {value: (f.get(timeout=DEADLINE_S).partition, f.get(timeout=DEADLINE_S).offset) for value, f in futures}
        producer.close()

        leader = admin.list_topics(topic, timeout=DEADLINE_S).topics[topic].partitions[0].leader
        cluster.nodes[leader].kill9()
        survivors = ",".join(f"127.0.0.1:{n.kafka_port}" for i, n in cluster.nodes.items() if i != leader)
        records = [(f"k{i % 7}".encode(), f"ck-{i}".encode()) for i in range(MESSAGES)]
        for value, (partition, offset, _) in confluent_produce(survivors, topic, records).items():
            acked[value] = (partition, offset)
        cluster.nodes[leader].restart()

        consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False, group_id=None)
        consumer.assign([TopicPartition(topic, p) for p in range(3)])
        consumer.seek_to_beginning()
        got = {}
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < len(acked) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                for record in batch:
                    assert record.value not in got, f"{record.value} read twice"
                    got[record.value] = (record.partition, record.offset)
        consumer.close()
        assert got == acked, (len(got), len(acked), sorted(set(acked) - set(got))[:5])
    except Exception:
        print(cluster.logs())
        raise
    finally:
        cluster.close()


def test_confluent_kafka_transactions_commit_abort_and_offsets(node):
    """confluent-kafka's transactional producer: a committed transaction over two partitions
    is read whole by read_committed, an aborted one only by read_uncommitted, and offsets
    sent to the transaction are committed with it."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = "ck-txn-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
        future.result(DEADLINE_S)
    producer = Producer({"bootstrap.servers": node.bootstrap, "transactional.id": "smoke-" + topic})
    producer.init_transactions(DEADLINE_S)
    group = "smoke-txn-" + topic
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": group, "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, key=b"k", value=f"committed-{i}".encode(), partition=i % 2)
    producer.send_offsets_to_transaction([TopicPartition(topic, 0, 7)], consumer.consumer_group_metadata(),
                                         DEADLINE_S)
    producer.commit_transaction(DEADLINE_S)
    producer.begin_transaction()
    for i in range(4):
        producer.produce(topic, key=b"k", value=f"aborted-{i}".encode(), partition=i % 2)
    producer.flush(DEADLINE_S)
    producer.abort_transaction(DEADLINE_S)

    def ends(isolation):
        client = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "smoke-ends",
                           "isolation.level": isolation})
        found = [client.get_watermark_offsets(TopicPartition(topic, p), DEADLINE_S)[1] for p in range(2)]
        client.close()
        return found

    # The abort's markers are written after abort_transaction returns: wait for them.
    deadline = time.monotonic() + DEADLINE_S
    while ends("read_committed") != ends("read_uncommitted"):
        assert time.monotonic() < deadline, "the last stable offset stays below the high watermark"
        time.sleep(0.05)

    def read(isolation):
        reader = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "smoke-txn-reader",
                           "enable.auto.commit": False, "isolation.level": isolation})
        stop = ends(isolation)
        reader.assign([TopicPartition(topic, p, 0) for p in range(2)])
        got = []
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            positions = reader.position([TopicPartition(topic, p) for p in range(2)])
            if all(tp.offset >= stop[tp.partition] for tp in positions):
                break
            for msg in reader.consume(100, 0.2):
                assert msg.error() is None, msg.error()
                got.append(msg.value().decode())
        reader.close()
        return sorted(got)

    assert read("read_committed") == sorted(f"committed-{i}" for i in range(10))
    everything = read("read_uncommitted")
    assert len(everything) == 14 and sum(v.startswith("aborted") for v in everything) == 4, everything
    committed = consumer.committed([TopicPartition(topic, 0)], DEADLINE_S)
    assert committed[0].offset == 7, committed
    consumer.close()


def main():
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_") and callable(fn)]
    only = sys.argv[1:]
    passed = failed = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        node = Node()
        started = time.monotonic()
        try:
            fn(node)
            passed += 1
            print(f"PASS {name} ({time.monotonic() - started:.1f}s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
            print(open(os.path.join(node.data_dir, "server.log"), errors="replace").read()[-3000:])
        finally:
            node.close()
    print(f"smoke: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
