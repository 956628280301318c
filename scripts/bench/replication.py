#!/usr/bin/env python3
"""What replication costs: a 3-node cluster on loopback (release build), the same acks=all
workloads against a topic with replication factor 1 (the baseline, measured in the same
run on the same cluster) and one with replication factor 3 and min.insync.replicas=2.
Reports throughput, latency percentiles and the ratio RF3 / RF1, plus the CPU seconds the
three brokers spent per GB produced. End-to-end runs: a low rate with linger 0 (every
message its own request) and a high rate with linger 5 ms (librdkafka batches): a
connection serves one request at a time, as in Kafka, so with acks=all unbatched requests
are limited by the replication round trip.

    cargo build --release -p runnel && python3 scripts/bench/replication.py [--count N] [--rate R]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from run import read_listening

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("RUNNEL_BIN", os.path.join(ROOT, "target", "release", "runnel"))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, nodes=3):
        self.root = tempfile.mkdtemp(prefix="runnel-repl-bench-")
        ports = [(free_port(), free_port()) for _ in range(nodes)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
        self.procs, self.bootstrap = [], ",".join(f"127.0.0.1:{k}" for k, _ in ports)
        for i, (kafka, controller) in enumerate(ports):
            args = [BINARY, "server", "--node-id", str(i + 1), "--data-dir", os.path.join(self.root, f"data-{i + 1}"),
                    "--listen", f"127.0.0.1:{kafka}", "--controller-listen", f"127.0.0.1:{controller}",
                    "--controller-quorum", voters]
            log = open(os.path.join(self.root, f"node-{i + 1}.log"), "ab")
            self.procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True,
                                               env={**os.environ, "RUST_LOG": "warn"}))
        for p in self.procs:
            read_listening(p)

    def cpu_s(self):
        total = 0.0
        for p in self.procs:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
        return total

    def run(self, *args):
        out = subprocess.run([BINARY, *args], check=True, capture_output=True, text=True, timeout=600)
        return out.stdout

    def create(self, name, rf):
        # Every node has registered once it printed its listening line, but node 1's image
        # may not have the others yet: retry briefly.
        first = self.bootstrap.split(",")[0]
        for _ in range(50):
            done = subprocess.run([BINARY, "topic", "create", name, "--partitions", "1", "--replication-factor",
                                   str(rf), "--config", f"min.insync.replicas={min(rf, 2)}", "--bootstrap", first],
                                  capture_output=True, text=True, timeout=60)
            if done.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"creating {name}: {done.stderr}")

    def destroy(self):
        for p in self.procs:
            p.kill()
            p.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300_000, help="messages per produce run")
    parser.add_argument("--rate", type=int, default=10_000, help="messages/s of the end-to-end run with linger 5 ms")
    parser.add_argument("--low-rate", type=int, default=2_000, help="messages/s of the end-to-end run with linger 0")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each end-to-end run")
    opts = parser.parse_args()
    cluster = Cluster()
    try:
        # Warm up: the first consumer group creates __consumer_offsets (50 partitions).
        cluster.create("warm-up", 1)
        cluster.run("perf", "e2e", "--bootstrap", cluster.bootstrap, "--topic", "warm-up", "--rate", "100",
                    "--duration", "1", "--json")
        rows = {}
        for rf in (1, 3):
            for name in (f"produce-rf{rf}", f"e2e-rf{rf}"):
                cluster.create(name, rf)
            # Start each measurement from a quiet disk: dirty pages of the previous run being
            # written back throttle this one's writes (balance_dirty_pages), and with three
            # copies that noise dominates.
            os.sync()
            before = cluster.cpu_s()
            produce = json.loads(cluster.run("perf", "produce", "--bootstrap", cluster.bootstrap, "--topic",
                                             f"produce-rf{rf}", "--count", str(opts.count), "--acks", "all",
                                             "--json").strip().splitlines()[-1])
            cpu = cluster.cpu_s() - before
            e2e = {}
            os.sync()
            for rate, linger in ((opts.low_rate, 0), (opts.rate, 5)):
                e2e[rate] = json.loads(cluster.run(
                    "perf", "e2e", "--bootstrap", cluster.bootstrap, "--topic", f"e2e-rf{rf}", "--rate", str(rate),
                    "--linger-ms", str(linger), "--duration", str(opts.duration), "--acks", "all", "--json"
                ).strip().splitlines()[-1])
            rows[rf] = (produce, cpu, e2e)
        print("| acks=all, 1 partition, 1 KB | RF 1 (baseline) | RF 3, min.insync 2 | RF3 / RF1 |")
        print("|---|---|---|---|")

        def row(label, f):
            a, b = f(rows[1]), f(rows[3])
            print(f"| {label} | {a:.2f} | {b:.2f} | {b / a:.2f} |" if a else f"| {label} | {a} | {b} | - |")

        row("produce MB/s", lambda r: r[0]["mb_per_s"])
        row("produce p99 ms (send to ack)", lambda r: r[0]["p99_ms"])
        row("broker CPU s per GB produced (3 nodes)", lambda r: r[1] / (r[0]["bytes"] / 1e9))
        for rate, linger in ((opts.low_rate, 0), (opts.rate, 5)):
            for q in ("p50", "p99", "p999"):
                row(f"e2e {rate} msg/s, linger {linger} ms: {q} ms", lambda r, rate=rate, q=q: r[2][rate][f"{q}_ms"])
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
