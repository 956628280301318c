# Drives a Runnel node with the oldest request versions Kafka 3.9 accepts, encoded and
# decoded by kafka-python's classic protocol classes (kafka.protocol.old), over a plain
# socket. Each check prints one line; old_clients.rs compares them. Usage: BOOTSTRAP.
import socket
import struct
import sys

from confluent_kafka import Producer
from kafka.protocol.old import admin, api_versions, commit, list_offsets, metadata

host, port = sys.argv[1].rsplit(":", 1)
sock = socket.create_connection((host, int(port)), timeout=30)
correlation = 0


def call(request, response_class):
    global correlation
    correlation += 1
    request.with_header(correlation_id=correlation, client_id="old-clients")
    sock.sendall(request.encode(header=True, framed=True))
    size = struct.unpack(">i", read(4))[0]
    response = response_class.decode(read(size), header=True)
    assert response.header.correlation_id == correlation
    return response


def read(n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


TOPIC = 2
ANY, ALL, READ = 1, 2, 3
ALLOW = 3

# ApiVersions: Kafka 3.9's minimums for the APIs whose oldest versions this is about.
versions = call(api_versions.ApiVersionsRequest[0](), api_versions.ApiVersionsResponse[0])
ranges = {k: (lo, hi) for k, lo, hi in versions.api_keys}
print("min", " ".join(f"{key}:{ranges[key][0]}" for key in (0, 1, 2, 8, 9, 19, 20, 29, 30, 31, 35)))

# CreateTopics v0 (no validate_only); the topic is in Metadata v0.
created = call(admin.CreateTopicsRequest[0]([("old", 2, 1, [], [])], 10000), admin.CreateTopicsResponse[0])
print("create v0", created.topics[0][1])
again = call(admin.CreateTopicsRequest[1]([("old", 2, 1, [], [])], 10000, False), admin.CreateTopicsResponse[1])
print("create v1 again", again.topics[0][1])
meta = call(metadata.MetadataRequest[0](["old"]), metadata.MetadataResponse[0])
print("metadata v0", [(t[1], t[0], len(t[2])) for t in meta.topics])

# Five records in partition 0; ListOffsets v0 answers segment boundaries, newest first.
producer = Producer({"bootstrap.servers": sys.argv[1]})
for i in range(5):
    producer.produce("old", value=b"v%d" % i, partition=0)
assert producer.flush(30) == 0


def old_style(timestamp, max_num_offsets):
    request = list_offsets.ListOffsetsRequest[0](-1, [("old", [(0, timestamp, max_num_offsets)])])
    partition = call(request, list_offsets.ListOffsetsResponse[0]).topics[0][1][0]
    return partition[1], list(partition[2])


print("list_offsets v0 latest", old_style(-1, 1))
print("list_offsets v0 earliest", old_style(-2, 1))
print("list_offsets v0 latest 10", old_style(-1, 10))
print("list_offsets v0 max timestamp", old_style(-3, 1))

# OffsetCommit v1 (generation -1, no member: a standalone commit, with a commit timestamp)
# then OffsetFetch v1; v0 of both is ZooKeeper's, refused as by Kafka 3.9 in KRaft mode.
committed = call(commit.OffsetCommitRequest[1]("g", -1, "", [("old", [(0, 3, -1, "meta")])]), commit.OffsetCommitResponse[1])
print("commit v1", committed.topics[0][1][0][1])
fetched = call(commit.OffsetFetchRequest[1]("g", [("old", [0])]), commit.OffsetFetchResponse[1])
print("fetch v1", list(fetched.topics[0][1][0][1:]))
committed = call(commit.OffsetCommitRequest[0]("g0", [("old", [(0, 4, "m")])]), commit.OffsetCommitResponse[0])
print("commit v0", committed.topics[0][1][0][1])
fetched = call(commit.OffsetFetchRequest[0]("g", [("old", [0])]), commit.OffsetFetchResponse[0])
print("fetch v0", list(fetched.topics[0][1][0][1:]))

# DescribeLogDirs v0 (all topics): partition 0 of the topic holds the five records.
dirs = call(admin.DescribeLogDirsRequest[0](None), admin.DescribeLogDirsResponse[0])
sizes = {(t[0], p[0]): p[1] for d in dirs.log_dirs for t in d[2] for p in t[1]}
print("log dirs v0", dirs.log_dirs[0][0], sizes[("old", 0)] > 0, sizes[("old", 1)])

# ACLs v0: no pattern type, which means LITERAL. A PREFIXED binding (v1) stays out of it.
made = call(admin.CreateAclsRequest[0]([(TOPIC, "old", "User:alice", "*", READ, ALLOW)]), admin.CreateAclsResponse[0])
print("create acls v0", [r[0] for r in made.creation_responses])
made = call(admin.CreateAclsRequest[1]([(TOPIC, "ol", 4, "User:bob", "*", READ, ALLOW)]), admin.CreateAclsResponse[1])
print("create acls v1 prefixed", [r[0] for r in made.creation_responses])
described = call(admin.DescribeAclsRequest[0](TOPIC, None, None, None, ANY, ANY), admin.DescribeAclsResponse[0])
print("describe acls v0", described.error_code, [(r[0], r[1], [a[0] for a in r[2]]) for r in described.resources])
deleted = call(admin.DeleteAclsRequest[0]([(TOPIC, None, None, None, ANY, ANY)]), admin.DeleteAclsResponse[0])
print("delete acls v0", [(f[0], [(m[3], m[4]) for m in f[2]]) for f in deleted.filter_responses])
described = call(admin.DescribeAclsRequest[1](TOPIC, None, 1, None, None, ANY, ANY), admin.DescribeAclsResponse[1])
print("describe acls v1 any", [(r[1], r[2]) for r in described.resources])

# DeleteTopics v0; Metadata v0 no longer knows the topic.
deleted = call(admin.DeleteTopicsRequest[0](["old"], 10000), admin.DeleteTopicsResponse[0])
print("delete topics v0", list(deleted.topic_error_codes[0]))
meta = call(metadata.MetadataRequest[0](["old"]), metadata.MetadataResponse[0])
print("metadata v0 after delete", [(t[1], t[0]) for t in meta.topics])
