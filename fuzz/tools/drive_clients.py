#!/usr/bin/env python3
"""Drives a Runnel broker with confluent-kafka (librdkafka) and kafka-python so that as many
request kinds and versions as possible cross the capture proxy (fuzz/tools/capture_proxy.py).

    drive_clients.py BOOTSTRAP          (topics, produce with every codec, consume, groups)
    drive_clients.py BOOTSTRAP more     (what needs the first pass's data: offsets, reassignments)

Best effort: a step that fails is reported and skipped.
"""

import sys
import time
import traceback

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:19093"


def step(name, fn):
    try:
        fn()
        print("ok   ", name, flush=True)
    except Exception as e:  # noqa: BLE001 - best effort
        print("FAIL ", name, type(e).__name__, e, flush=True)
        traceback.print_exc(limit=2)


def confluent():
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (
        AdminClient,
        ConfigResource,
        NewPartitions,
        NewTopic,
        ResourceType,
    )

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})

    def create():
        fs = admin.create_topics(
            [
                NewTopic("ck-a", 3, 1, config={"retention.ms": "3600000"}),
                NewTopic("ck-b", 1, 1, config={"message.timestamp.type": "LogAppendTime"}),
                NewTopic("ck-c", 2, 1),
            ]
        )
        for f in fs.values():
            f.result()

    step("ck create topics", create)
    step("ck list topics", lambda: admin.list_topics(timeout=10))
    step("ck create partitions", lambda: [f.result() for f in admin.create_partitions([NewPartitions("ck-c", 4)]).values()])
    step(
        "ck describe configs",
        lambda: [
            f.result()
            for f in admin.describe_configs(
                [ConfigResource(ResourceType.TOPIC, "ck-a"), ConfigResource(ResourceType.BROKER, "1")]
            ).values()
        ],
    )
    step("ck describe cluster", lambda: admin.describe_cluster(request_timeout=10).result())

    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        for idempotent in [False, True]:

            def produce(codec=codec, idempotent=idempotent):
                p = Producer(
                    {
                        "bootstrap.servers": BOOTSTRAP,
                        "compression.codec": codec,
                        "enable.idempotence": idempotent,
                        "linger.ms": 5,
                        "acks": "all" if idempotent else "1",
                    }
                )
                for i in range(20):
                    headers = [("h", b"v%d" % i)] if i % 3 == 0 else None
                    key = None if i % 4 == 0 else b"key-%d" % i
                    p.produce("ck-a", value=b"value %d %s" % (i, codec.encode()) * (1 + i % 5), key=key,
                              partition=i % 3, headers=headers, timestamp=1_700_000_000_000 + i)
                p.produce("ck-b", value=None, key=b"tombstone")
                p.flush(15)

            step("ck produce %s idempotent=%s" % (codec, idempotent), produce)

    def produce_acks0():
        p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "0"})
        for i in range(5):
            p.produce("ck-c", value=b"acks0-%d" % i)
        p.flush(10)

    step("ck produce acks=0", produce_acks0)

    def consume_group():
        c = Consumer(
            {
                "bootstrap.servers": BOOTSTRAP,
                "group.id": "ck-group",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "group.instance.id": "ck-static-1",
            }
        )
        c.subscribe(["ck-a", "ck-b"])
        deadline = time.time() + 20
        seen = 0
        while time.time() < deadline and seen < 50:
            m = c.poll(1.0)
            if m is not None and not m.error():
                seen += 1
        c.commit(asynchronous=False)
        c.committed([TopicPartition("ck-a", 0), TopicPartition("ck-a", 1)], timeout=10)
        c.offsets_for_times([TopicPartition("ck-a", 0, 1_700_000_000_005)], timeout=10)
        c.get_watermark_offsets(TopicPartition("ck-a", 0), timeout=10)
        c.close()

    step("ck consume group", consume_group)

    def consume_assign():
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "ck-assign", "enable.auto.commit": True,
                      "auto.commit.interval.ms": 200, "isolation.level": "read_uncommitted"})
        c.assign([TopicPartition("ck-a", 1, 0), TopicPartition("ck-c", 0, 0)])
        deadline = time.time() + 5
        while time.time() < deadline:
            c.poll(0.5)
        c.close()

    step("ck consume assign", consume_assign)
    step("ck list groups", lambda: admin.list_consumer_groups().result())
    step("ck describe groups", lambda: [f.result() for f in admin.describe_consumer_groups(["ck-group", "ck-assign"]).values()])

    def delete_offsets():
        from confluent_kafka import ConsumerGroupTopicPartitions

        fs = admin.delete_consumer_group_offsets([ConsumerGroupTopicPartitions("ck-assign", [TopicPartition("ck-c", 0)])])
        for f in fs.values():
            f.result()

    step("ck delete group offsets", delete_offsets)

    def list_offsets():
        from confluent_kafka import OffsetSpec

        fs = admin.list_offsets({TopicPartition("ck-a", 0): OffsetSpec.earliest(), TopicPartition("ck-a", 1): OffsetSpec.latest(),
                                 TopicPartition("ck-a", 2): OffsetSpec.max_timestamp()})
        for f in fs.values():
            f.result()

    step("ck list offsets", list_offsets)

    def elect():
        from confluent_kafka import ElectionType

        admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("ck-a", 0)]).result()

    step("ck elect leaders", elect)
    step("ck delete groups", lambda: [f.result() for f in admin.delete_consumer_groups(["ck-assign"]).values()])
    step("ck delete topics", lambda: [f.result() for f in admin.delete_topics(["ck-b"]).values()])


def kafka_python():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="kp-admin")
    step("kp create topics", lambda: admin.create_topics([NewTopic("kp-a", 2, 1), NewTopic("kp-b", 1, 1)]))
    step("kp list topics", lambda: admin.list_topics())
    step("kp describe topics", lambda: admin.describe_topics(["kp-a"]))
    step("kp describe configs", lambda: admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-a")]))
    step("kp create partitions", lambda: admin.create_partitions({"kp-b": NewPartitions(2)}))
    step("kp describe cluster", lambda: admin.describe_cluster())
    for codec in [None, "gzip", "snappy", "lz4", "zstd"]:

        def produce(codec=codec):
            p = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=codec, linger_ms=5)
            for i in range(15):
                p.send("kp-a", value=b"kp %d" % i * (1 + i % 3), key=b"k%d" % (i % 4),
                       headers=[("x", b"y")] if i % 2 else None)
            p.flush(15)
            p.close()

        step("kp produce %s" % codec, produce)

    def produce_idempotent():
        p = KafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all")
        for i in range(10):
            p.send("kp-b", value=b"idem %d" % i)
        p.flush(15)
        p.close()

    step("kp produce idempotent", produce_idempotent)

    def consume():
        c = KafkaConsumer("kp-a", bootstrap_servers=BOOTSTRAP, group_id="kp-group", auto_offset_reset="earliest",
                          consumer_timeout_ms=5000, enable_auto_commit=False)
        n = 0
        for _ in c:
            n += 1
            if n > 20:
                break
        c.commit()
        tp = TopicPartition("kp-a", 0)
        c.offsets_for_times({tp: 0})
        c.beginning_offsets([tp])
        c.end_offsets([tp])
        c.close()

    step("kp consume group", consume)
    step("kp list groups", lambda: admin.list_consumer_groups())
    step("kp describe groups", lambda: admin.describe_consumer_groups(["kp-group"]))
    step("kp list group offsets", lambda: admin.list_consumer_group_offsets("kp-group"))
    step("kp delete groups", lambda: admin.delete_consumer_groups(["kp-group"]))
    step("kp describe log dirs", lambda: admin.describe_log_dirs())
    step("kp delete topics", lambda: admin.delete_topics(["kp-b"]))
    admin.close()


if __name__ == "__main__" and len(sys.argv) <= 2:
    confluent()
    kafka_python()


def more():
    """APIs the first passes miss: offsets deletion, list offsets, group admin through
    kafka-python, reassignments, the metadata quorum, offset validation."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTP
    from kafka.protocol.admin.topics import ElectionType

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})

    def list_offsets():
        fs = admin.list_offsets({TopicPartition("ck-a", 0): OffsetSpec.earliest(),
                                 TopicPartition("ck-a", 1): OffsetSpec.latest(),
                                 TopicPartition("ck-a", 2): OffsetSpec.max_timestamp(),
                                 TopicPartition("ck-c", 0): OffsetSpec.for_timestamp(1_700_000_000_000)})
        for f in fs.values():
            f.result()

    step("ck list offsets", list_offsets)
    step("ck list group offsets",
         lambda: [f.result() for f in admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("ck-group")]).values()])
    step("ck alter group offsets",
         lambda: [f.result() for f in admin.alter_consumer_group_offsets(
             [ConsumerGroupTopicPartitions("ck-alter", [TopicPartition("ck-a", 0, 3)])]).values()])

    def resume():
        # Resuming from committed offsets (with leader epochs) makes librdkafka validate
        # them with OffsetForLeaderEpoch.
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "ck-group", "enable.auto.commit": False})
        c.subscribe(["ck-a"])
        deadline = time.time() + 10
        while time.time() < deadline:
            c.poll(0.5)
        c.close()

    step("ck resume group", resume)

    kp = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="kp-admin-2")
    step("kp list groups", lambda: kp.list_groups())
    step("kp describe groups", lambda: kp.describe_groups(["ck-group"]))
    step("kp list group offsets", lambda: kp.list_group_offsets("ck-group"))
    step("kp delete group offsets", lambda: kp.delete_group_offsets("ck-alter", [KTP("ck-a", 0)]))
    step("kp list partition offsets", lambda: kp.list_partition_offsets({KTP("ck-a", 0): -1, KTP("ck-a", 1): -2}))
    step("kp alter reassignments", lambda: kp.alter_partition_reassignments({KTP("ck-a", 0): [1]}))
    step("kp list reassignments", lambda: kp.list_partition_reassignments())
    step("kp describe quorum", lambda: kp.describe_metadata_quorum())
    step("kp elect leaders", lambda: kp.elect_leaders(ElectionType.PREFERRED, [KTP("ck-a", 0)]))
    step("kp delete groups", lambda: kp.delete_groups(["ck-alter"]))
    kp.close()


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[2] == "more":
    more()
