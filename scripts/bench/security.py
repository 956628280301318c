#!/usr/bin/env python3
"""What security costs: one release node with PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512)
listeners side by side; the same confluent-kafka (librdkafka) producer and consumer move the
same data through each, and the script reports MB/s and the broker's CPU seconds per GB
(user+sys from /proc) for each, with ratios against PLAINTEXT from the same run.

    cargo build --release -p runnel && python3 scripts/bench/security.py [--mb 400] [--size 1024]

Certificates are made with the openssl command (a throwaway CA and server key). Every run
is bounded: each phase stops after --timeout seconds whether or not it finished.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from run import Server


def make_certs(directory):
    def run(*args):
        subprocess.run(args, check=True, capture_output=True, cwd=directory)

    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=bench CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.pem")
    run("openssl", "pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out", "server.pk8")
    with open(os.path.join(directory, "keystore.pem"), "w") as out:
        for name in ("server.pk8", "server.pem"):
            with open(os.path.join(directory, name)) as f:
                out.write(f.read())
    return os.path.join(directory, "keystore.pem"), os.path.join(directory, "ca.pem")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=400, help="megabytes moved per listener and direction")
    parser.add_argument("--size", type=int, default=1024, help="message bytes")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per phase at most")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="runnel-bench-security-")
    keystore, ca = make_certs(work)
    server = Server(
        "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        f"ssl.keystore.location={keystore}",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        args=["--add-scram", "SCRAM-SHA-512=[name=bench,password=bench-secret]"],
    )
    addresses = server.listeners
    try:
        clients = {
            "PLAINTEXT": {},
            "SSL": {"security.protocol": "ssl", "ssl.ca.location": ca},
            "SASL_SSL": {"security.protocol": "sasl_ssl", "ssl.ca.location": ca, "sasl.mechanism": "SCRAM-SHA-512",
                         "sasl.username": "bench", "sasl.password": "bench-secret"},
        }
        admin = AdminClient({"bootstrap.servers": addresses["PLAINTEXT"]})
        topics = [NewTopic(f"bench-{name.lower()}", 4, 1) for name in clients]
        for future in admin.create_topics(topics).values():
            future.result(30)
        count = args.mb * 1_000_000 // args.size
        payload = os.urandom(args.size)
        rows = []
        for name, security in clients.items():
            topic = f"bench-{name.lower()}"
            config = {"bootstrap.servers": addresses[name], **security}
            producer = Producer({**config, "linger.ms": 5, "batch.size": 1_000_000, "acks": "all",
                                 "queue.buffering.max.kbytes": 1_000_000})
            cpu, start = server.cpu_s(), time.monotonic()
            for i in range(count):
                while True:
                    try:
                        producer.produce(topic, payload)
                        break
                    except BufferError:
                        producer.poll(0.01)
                if time.monotonic() - start > args.timeout:
                    sys.exit(f"{name}: produce did not finish within {args.timeout}s")
            producer.flush(args.timeout)
            produce_s, produce_cpu = time.monotonic() - start, server.cpu_s() - cpu
            consumer = Consumer({**config, "group.id": f"bench-{name}", "enable.auto.commit": False,
                                 "fetch.max.bytes": 50_000_000, "max.partition.fetch.bytes": 10_000_000})
            consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
            cpu, start, seen = server.cpu_s(), time.monotonic(), 0
            while seen < count and time.monotonic() - start < args.timeout:
                seen += sum(1 for m in consumer.consume(10_000, 1.0) if not m.error())
            consume_s, consume_cpu = time.monotonic() - start, server.cpu_s() - cpu
            consumer.close()
            if seen < count:
                sys.exit(f"{name}: consumed {seen} of {count} within {args.timeout}s")
            gb = count * args.size / 1e9
            rows.append((name, gb * 1000 / produce_s, produce_cpu / gb, gb * 1000 / consume_s, consume_cpu / gb))
        base = rows[0]
        print(f"{args.mb} MB of {args.size}-byte messages per listener, one node, confluent-kafka")
        print("| listener | produce MB/s | vs PLAINTEXT | broker CPU s/GB | consume MB/s | vs PLAINTEXT | broker CPU s/GB |")
        print("|---|---|---|---|---|---|---|")
        for name, p, pc, c, cc in rows:
            print(f"| {name} | {p:.0f} | {p / base[1]:.2f} | {pc:.2f} | {c:.0f} | {c / base[3]:.2f} | {cc:.2f} |")
    finally:
        server.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
