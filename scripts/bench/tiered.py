#!/usr/bin/env python3
"""What tiered storage costs (issue 19): upload throughput and broker CPU per GB uploaded,
and a catch-up consume of data that lives only in the object store against the same
consume from local segments, on one release node on 127.0.0.1.

Per round, for the local-directory backend (and with --s3 for moto's S3 server too):
1. A node with `remote.log.storage.system.enable=true` and an upload interval of one hour
   (nothing is uploaded yet) takes --gb GB of 1 KB records into a topic with
   `remote.storage.enable=true`, 64 MiB segments and `local.retention.bytes` of 64 MiB.
2. Local baseline: `runnel perf consume --client runnel` (raw fetches that only walk batch
   headers: what the broker serves) reads the topic from offset 0, all from local segments.
3. The node restarts on the same data with an interval of 100 ms: the uploader copies
   every closed segment. Measured from the listening line until the store holds every
   closed segment's bytes: upload MB/s and broker CPU seconds per GB uploaded. Local
   retention then deletes the uploaded segments down to about 64 MiB.
4. Remote: the same consume from offset 0, now served (all but the last ~64 MiB) from the
   object store through the remote reader (4 MiB chunks, read-ahead, 128 MiB cache).

Reported per round: both consume rates and their ratio (target: remote at least 0.5 of
local for the local-directory backend), upload MB/s and CPU s/GB. Moto is a Python
server: its figures say what Runnel does against a slow store, not what S3 would give.

    cargo build --release -p runnel && python3 scripts/bench/tiered.py [--gb 2] [--rounds 2] [--s3]

Bounded: nodes must listen within 60 s, `runnel perf` is killed after 1800 s, uploads
must finish within 900 s.
"""
import argparse
import os
import subprocess
import sys
import time

from run import GB, Server, measured, perf

SEGMENT_BYTES = 64 << 20
UPLOAD_TIMEOUT_S = 900


def tree_bytes(folder, suffix):
    total = 0
    for root, _, files in os.walk(folder):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(suffix))
    return total


def closed_bytes(data_dir, topic):
    folder = os.path.join(data_dir, f"{topic}-0")
    logs = sorted(f for f in os.listdir(folder) if f.endswith(".log"))
    return sum(os.path.getsize(os.path.join(folder, f)) for f in logs[:-1])


class Moto:
    def __init__(self, bucket):
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        self.address = None
        while self.address is None:
            assert time.monotonic() < deadline, "moto did not start"
            line = self.proc.stderr.readline()
            if "Running on http://" in line:
                self.address = line.split("Running on http://")[1].strip()
        script = (f"import boto3; boto3.client('s3', endpoint_url='http://{self.address}', aws_access_key_id='t', "
                  f"aws_secret_access_key='t', region_name='us-east-1').create_bucket(Bucket='{bucket}')")
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        self.settings = [
            "remote.log.storage.backend=s3", f"remote.log.storage.s3.endpoint=http://{self.address}",
            f"remote.log.storage.s3.bucket={bucket}", "remote.log.storage.s3.access.key.id=t",
            "remote.log.storage.s3.secret.access.key=t",
        ]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def uploaded(server, store_settings, topic):
    """Bytes the store holds: the local backend's folder, or the node's metric."""
    if store_settings:
        return copied_metric(server)
    return tree_bytes(os.path.join(server.data_dir, "remote-log-storage"), ".log")


def copied_metric(server):
    import urllib.request
    with urllib.request.urlopen(f"http://{server.metrics}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("runnel_remote_copied_bytes_total "):
                return int(line.split()[1])
    return 0


def one_round(gb, store_settings, label):
    topic = "tiered"
    common = ["remote.log.storage.system.enable=true", *store_settings]
    writer = Server(*common, "remote.log.manager.task.interval.ms=3600000")
    try:
        perf(writer, "produce", "--topic", topic, "--size", "1024", "--acks", "1", "--count", str(int(gb * GB / 1024)),
             "--topic-config", "remote.storage.enable=true", "--topic-config", f"segment.bytes={SEGMENT_BYTES}",
             "--topic-config", f"local.retention.bytes={SEGMENT_BYTES}")
        local = measured(writer, "consume", "--topic", topic, "--client", "runnel")
        expected = closed_bytes(writer.data_dir, topic)
        writer.stop()
        tiering = Server(*common, "remote.log.manager.task.interval.ms=100", "log.retention.check.interval.ms=100",
                         data_dir=writer.data_dir, args=["--metrics-listen", "127.0.0.1:0"])
        # The metrics line follows the listening line.
        tiering.metrics = tiering.proc.stdout.readline().split("http://")[1].split("/")[0]
        cpu_start, started = tiering.cpu_s(), time.monotonic()
        while uploaded(tiering, store_settings, topic) < expected:
            assert time.monotonic() - started < UPLOAD_TIMEOUT_S, "uploads did not finish"
            time.sleep(0.05)
        upload_s = time.monotonic() - started
        upload_cpu = tiering.cpu_s() - cpu_start
        while tree_bytes(os.path.join(tiering.data_dir, f"{topic}-0"), ".log") > 3 * SEGMENT_BYTES:
            assert time.monotonic() - started < UPLOAD_TIMEOUT_S, "local retention did not run"
            time.sleep(0.05)
        remote = measured(tiering, "consume", "--topic", topic, "--client", "runnel")
        tiering.destroy()
    finally:
        writer.destroy()
    ratio = remote["mb_per_s"] / local["mb_per_s"]
    print(f"{label}: local consume {local['mb_per_s']:.0f} MB/s ({local['cpu_s_per_gb']:.2f} CPU s/GB), "
          f"remote consume {remote['mb_per_s']:.0f} MB/s ({remote['cpu_s_per_gb']:.2f} CPU s/GB), ratio {ratio:.2f}; "
          f"upload {expected / 1e6 / upload_s:.0f} MB/s, {upload_cpu / (expected / GB):.2f} CPU s/GB uploaded",
          flush=True)
    return ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--s3", action="store_true", help="also against moto's S3 server")
    args = parser.parse_args()
    for r in range(args.rounds):
        one_round(args.gb, [], f"round {r + 1} local directory")
        if args.s3:
            moto = Moto("runnel-bench")
            try:
                one_round(args.gb, moto.settings, f"round {r + 1} S3 (moto)")
            finally:
                moto.stop()


if __name__ == "__main__":
    main()
