#!/usr/bin/env python3
"""What reading compressed batches and authorization cost (issues 16 and 17), measured with
`runnel perf produce` (librdkafka; 1 KB messages, perf's default acks=1 and 1 partition,
linger 5 ms) against release nodes on 127.0.0.1:

1. Codecs. One node; per round, a fresh topic per codec (none, lz4, zstd, gzip, snappy)
   produced to for --seconds with `--compression CODEC`. The broker reads every compressed
   batch as a stream of records to check their count and offset deltas (what Kafka does);
   uncompressed batches are written as they came. Reported: MB/s of uncompressed payload
   (as perf reports it), broker and client CPU seconds per GB of payload, the bytes the
   broker stored per payload byte, each codec's broker CPU/GB against `none`, and the
   broker's and the client's extra CPU per GB over `none`, round by round. Those
   differences are net of what compression saves (the broker writes about 1% of the
   bytes, the client sends about 1%), so they cannot tell whether the issue's criterion,
   "the validation should cost less than the client's compression", holds. For that the
   script then profiles one more run per codec with `perf record --call-graph dwarf` on
   the broker and on the client (unless --no-profile, or without the perf tool) and takes
   the share of samples under `BatchView::validate_records` (the broker's check of a
   batch's records, decompression included) and under librdkafka's
   `rd_kafka_msgset_writer_compress` (the client's compression); those shares times the
   rounds' median CPU per GB are what validation and compression cost on their own.
2. Authorizer. Three nodes side by side: no authorizer ("off"); StandardAuthorizer with the
   anonymous PLAINTEXT principal as super user ("super user": every request goes through
   the authorizer, which allows it at once); StandardAuthorizer with `super.users=User:nobody`
   and literal ACLs allowing User:ANONYMOUS All on the cluster and on each topic the run
   uses ("ACLs": every request is matched against the ACLs). The ACLs are added with
   `runnel acl add` while ANONYMOUS is still a super user, then the node restarts with
   `super.users=User:nobody` (ACLs live in the metadata log); the script checks that they
   survived and that a produce to a topic without an ACL is refused. Uncompressed produce;
   MB/s and broker CPU/GB against "off".

The cases take turns within each round (--rounds, default 3) so that the noise of a shared
machine falls on all of them alike; ratios are taken within a round. Broker CPU is user+sys
from /proc/<pid>/stat, client CPU the perf process's (os.times of children). Each topic is
deleted after its case and the disk synced before the next, so writeback of one case does
not land in the next.

    cargo build --release -p runnel && python3 scripts/bench/compression.py [--seconds 10] [--rounds 3] [--no-profile]

Every step is bounded: a node must print its listening line within 60 s, each `runnel perf`
call is killed after --seconds + 90 s (+ 120 s under perf record), each `perf report`
after 600 s, each other command after 60 s.

Note: perf's messages are 1 KB of the byte 'x', which every codec shrinks to almost nothing;
real payloads compress less, so both the client's compression and the broker's
decompression do more work per GB than here, and the broker writes more bytes.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from run import BINARY, GB, Server

CODECS = ("none", "lz4", "zstd", "gzip", "snappy")
AUTH_MODES = ("off", "super user", "ACLs")
STANDARD_AUTHORIZER = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
COMMAND_TIMEOUT = 60


class Timeout(Exception):
    pass


def bounded(seconds, what, function, *args, **kwargs):
    """Runs `function` and raises Timeout if it takes longer than `seconds` (for reads of a
    node's stdout, which have no timeout of their own)."""
    def expire(_signum, _frame):
        raise Timeout(f"{what} took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(int(seconds))
    try:
        return function(*args, **kwargs)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def start_server(*settings):
    return bounded(COMMAND_TIMEOUT, "starting a node", Server, *settings)


def command(*args, timeout=COMMAND_TIMEOUT):
    out = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "RUST_BACKTRACE": "0"})
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {out.stderr.strip()[:500]}")
    return out.stdout


def stored_bytes(server, topic):
    """Bytes of the topic's segment files (`*.log` in its partition directories)."""
    total = 0
    for entry in os.scandir(server.data_dir):
        if entry.is_dir() and entry.name.rsplit("-", 1)[0] == topic:
            for root, _dirs, files in os.walk(entry.path):
                for name in files:
                    if name.endswith(".log"):
                        try:
                            total += os.path.getsize(os.path.join(root, name))
                        except FileNotFoundError:
                            pass
    return total


def produce(server, topic, args, *extra):
    """One `runnel perf produce` run: its JSON report with the broker's and the client's CPU
    seconds per GB of payload and the bytes the broker stored for the topic."""
    cmd = [BINARY, "perf", "--bootstrap", server.bootstrap, "--json", "produce", "--topic", topic,
           "--partitions", str(args.partitions), "--duration", str(args.seconds), "--size", str(args.size),
           "--acks", args.acks, "--linger-ms", "5", *extra]
    before, client_before = server.cpu_s(), os.times()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 90,
                         env={**os.environ, "RUST_BACKTRACE": "0"})
    cpu, client_after = server.cpu_s() - before, os.times()
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stderr.strip()[:500]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["errors"]:
        sys.exit(f"{' '.join(cmd)}: {result['errors']} messages failed")
    gb = max(result["bytes"] / GB, 1e-9)
    result["cpu_s_per_gb"] = cpu / gb
    result["client_cpu_s_per_gb"] = (client_after.children_user + client_after.children_system
                                     - client_before.children_user - client_before.children_system) / gb
    result["stored_per_payload"] = stored_bytes(server, topic) / max(result["bytes"], 1)
    return result


def delete_topic(server, topic):
    command("topic", "delete", topic, "--bootstrap", server.bootstrap)
    os.sync()


VALIDATION_SYMBOL = "runnel_protocol::batch::BatchView::validate_records"
COMPRESSION_SYMBOL = "rd_kafka_msgset_writer_compress"


def inclusive_share(data, symbol):
    """The fraction of a perf.data file's samples with `symbol` on the stack."""
    out = subprocess.run(["perf", "report", "-i", data, "--children", "--sort", "sym", "--stdio", "-g", "none"],
                         capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0].endswith("%") and line.split("] ", 1)[-1].split(" (inlined)")[0] == symbol:
            return float(fields[0].rstrip("%")) / 100
    return 0.0


def profile(server, topic, args, codec, directory):
    """One produce run with `perf record` on the broker and on the client: the shares of the
    broker's samples in validation and of the client's in compression."""
    broker_data, client_data = os.path.join(directory, f"broker-{codec}.data"), os.path.join(directory, f"client-{codec}.data")
    sampling = ["-F", "499", "--call-graph", "dwarf,16384"]
    recorder = subprocess.Popen(["perf", "record", *sampling, "-p", str(server.proc.pid), "-o", broker_data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        cmd = ["perf", "record", *sampling, "-o", client_data, "--", BINARY, "perf", "--bootstrap", server.bootstrap,
               "--json", "produce", "--topic", topic, "--partitions", str(args.partitions), "--duration",
               str(args.seconds), "--size", str(args.size), "--acks", args.acks, "--linger-ms", "5",
               "--compression", codec]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 120)
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {out.stderr.strip()[:500]}")
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=COMMAND_TIMEOUT)
    return inclusive_share(broker_data, VALIDATION_SYMBOL), inclusive_share(client_data, COMPRESSION_SYMBOL)


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def spread(values, fmt="{:.2f}"):
    return " / ".join(fmt.format(v) for v in values)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10, help="seconds of produce per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each over every case in turn")
    parser.add_argument("--size", type=int, default=1024, help="message bytes")
    parser.add_argument("--acks", default="1", help="producer acks (perf's default: 1)")
    parser.add_argument("--partitions", type=int, default=1, help="partitions per topic (perf's default: 1)")
    parser.add_argument("--only", choices=("codecs", "auth"), help="run one part only")
    parser.add_argument("--no-profile", action="store_true", help="skip the perf record run per codec")
    args = parser.parse_args()
    profiling = args.only != "auth" and not args.no_profile and shutil.which("perf") is not None
    if args.only != "auth" and not args.no_profile and not profiling:
        print("the perf tool is not installed: no profile of validation and compression", flush=True)
    shares = {}
    started = time.strftime("%Y-%m-%d %H:%M")
    servers = {}
    codecs = {codec: [] for codec in CODECS}
    auth = {mode: [] for mode in AUTH_MODES}
    try:
        if args.only != "auth":
            servers["codecs"] = start_server()
        if args.only != "codecs":
            servers["off"] = start_server()
            servers["super user"] = start_server(STANDARD_AUTHORIZER, "super.users=User:ANONYMOUS")
            acl = start_server(STANDARD_AUTHORIZER, "super.users=User:ANONYMOUS")
            servers["ACLs"] = acl
            command("acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "All", "--cluster",
                    "--bootstrap", acl.bootstrap)
            for round_ in range(args.rounds):
                command("acl", "add", "--allow-principal", "User:ANONYMOUS", "--operation", "All", "--topic",
                        f"auth-acls-{round_}", "--bootstrap", acl.bootstrap)
            acl.stop()
            acl.settings = [STANDARD_AUTHORIZER, "super.users=User:nobody"]
            bounded(COMMAND_TIMEOUT, "restarting the ACL node", acl.start)
            listed = command("acl", "list", "--bootstrap", acl.bootstrap)
            if listed.count("ANONYMOUS") < 1 + args.rounds:
                sys.exit(f"the ACLs did not survive the restart:\n{listed}")
            # The ACLs are what allows the produces: a topic without one is refused.
            denied = json.loads(command("perf", "--bootstrap", acl.bootstrap, "--json", "produce", "--topic",
                                        "auth-no-acl", "--count", "10", "--producer-config",
                                        "message.timeout.ms=5000").strip().splitlines()[-1])
            if denied["messages"] or denied["errors"] != 10:
                sys.exit(f"a produce to a topic without an ACL was not refused: {denied}")
        os.sync()
        for round_ in range(args.rounds):
            if args.only != "auth":
                server = servers["codecs"]
                for codec in CODECS:
                    topic = f"codec-{codec}-{round_}"
                    r = produce(server, topic, args, "--compression", codec)
                    delete_topic(server, topic)
                    codecs[codec].append(r)
                    print(f"round {round_ + 1} {codec}: {r['mb_per_s']:.0f} MB/s, CPU s/GB broker "
                          f"{r['cpu_s_per_gb']:.3f}, client {r['client_cpu_s_per_gb']:.3f}, stored "
                          f"{r['stored_per_payload']:.4f} B per payload B", flush=True)
            if args.only != "codecs":
                for mode in AUTH_MODES:
                    server = servers[mode]
                    topic = f"auth-{mode.split()[0].lower()}-{round_}"
                    r = produce(server, topic, args)
                    delete_topic(server, topic)
                    auth[mode].append(r)
                    print(f"round {round_ + 1} authorizer {mode}: {r['mb_per_s']:.0f} MB/s, CPU s/GB broker "
                          f"{r['cpu_s_per_gb']:.3f}, client {r['client_cpu_s_per_gb']:.3f}", flush=True)
        if profiling:
            directory = tempfile.mkdtemp(prefix="runnel-bench-perf-")
            try:
                for codec in CODECS:
                    topic = f"profile-{codec}"
                    shares[codec] = profile(servers["codecs"], topic, args, codec, directory)
                    delete_topic(servers["codecs"], topic)
                    print(f"profile {codec}: broker samples in validation {shares[codec][0]:.1%}, client samples "
                          f"in compression {shares[codec][1]:.1%}", flush=True)
            finally:
                shutil.rmtree(directory, ignore_errors=True)
    finally:
        for server in servers.values():
            server.destroy()

    print()
    print(f"started {started}; runnel perf produce, {args.seconds:g} s of {args.size}-byte messages per case and "
          f"round (acks={args.acks}, {args.partitions} partition(s), linger 5 ms), {args.rounds} rounds "
          f"interleaved; figures per round separated by /")
    if args.only != "auth":
        base = codecs["none"]
        print()
        print("| codec | produce MB/s | vs none | broker CPU s/GB | vs none | client CPU s/GB | stored B per payload B "
              "| broker extra CPU s/GB over none | client extra CPU s/GB over none (compression) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for codec in CODECS:
            rs = codecs[codec]
            print(f"| {codec} | {spread([r['mb_per_s'] for r in rs], '{:.0f}')} "
                  f"| {spread([r['mb_per_s'] / b['mb_per_s'] for r, b in zip(rs, base)])} "
                  f"| {spread([r['cpu_s_per_gb'] for r in rs])} "
                  f"| {spread([r['cpu_s_per_gb'] / b['cpu_s_per_gb'] for r, b in zip(rs, base)])} "
                  f"| {spread([r['client_cpu_s_per_gb'] for r in rs])} "
                  f"| {spread([r['stored_per_payload'] for r in rs], '{:.4f}')} "
                  f"| {spread([r['cpu_s_per_gb'] - b['cpu_s_per_gb'] for r, b in zip(rs, base)])} "
                  f"| {spread([r['client_cpu_s_per_gb'] - b['client_cpu_s_per_gb'] for r, b in zip(rs, base)])} |")
        print()
        for codec in CODECS[1:]:
            rs = codecs[codec]
            broker = [r["cpu_s_per_gb"] - b["cpu_s_per_gb"] for r, b in zip(rs, base)]
            client = [r["client_cpu_s_per_gb"] - b["client_cpu_s_per_gb"] for r, b in zip(rs, base)]
            whole = [r["cpu_s_per_gb"] < c for r, c in zip(rs, client)]
            met = [x < c for x, c in zip(broker, client)]
            verdict = "met" if all(met) else "NOT met" if not any(met) else f"met in {sum(met)} of {len(met)} rounds"
            ratio = [r["cpu_s_per_gb"] / b["cpu_s_per_gb"] for r, b in zip(rs, base)]
            print(f"{codec}: broker CPU/GB {min(ratio):.2f}-{max(ratio):.2f}x none; broker extra over none "
                  f"{spread(broker)} s/GB vs client extra over none {spread(client)} s/GB (both net of what "
                  f"compression saves): broker's smaller {verdict}; the broker's whole CPU/GB below the client's "
                  f"extra in {sum(whole)} of {len(whole)} rounds")
    if shares:
        print()
        print("| codec | broker samples in validate_records | validation CPU s/GB (x median broker CPU/GB) "
              "| client samples in compression | compression CPU s/GB (x median client CPU/GB) | validation / compression |")
        print("|---|---|---|---|---|---|")
        for codec in CODECS:
            validation = shares[codec][0] * median([r["cpu_s_per_gb"] for r in codecs[codec]])
            compression = shares[codec][1] * median([r["client_cpu_s_per_gb"] for r in codecs[codec]])
            ratio = f"{validation / compression:.2f}" if compression > 0 else "-"
            print(f"| {codec} | {shares[codec][0]:.1%} | {validation:.3f} | {shares[codec][1]:.1%} | {compression:.3f} "
                  f"| {ratio} |")
        print()
        for codec in CODECS[1:]:
            validation = shares[codec][0] * median([r["cpu_s_per_gb"] for r in codecs[codec]])
            compression = shares[codec][1] * median([r["client_cpu_s_per_gb"] for r in codecs[codec]])
            print(f"{codec}: validation {validation:.3f} s/GB vs compression {compression:.3f} s/GB: \"the "
                  f"validation should cost less than the client's compression\" "
                  f"{'met' if validation < compression else 'NOT met'} (profile)")
    if args.only != "codecs":
        base = auth["off"]
        print()
        print("| authorizer | produce MB/s | vs off | broker CPU s/GB | vs off | client CPU s/GB |")
        print("|---|---|---|---|---|---|")
        for mode in AUTH_MODES:
            rs = auth[mode]
            print(f"| {mode} | {spread([r['mb_per_s'] for r in rs], '{:.0f}')} "
                  f"| {spread([r['mb_per_s'] / b['mb_per_s'] for r, b in zip(rs, base)])} "
                  f"| {spread([r['cpu_s_per_gb'] for r in rs])} "
                  f"| {spread([r['cpu_s_per_gb'] / b['cpu_s_per_gb'] for r, b in zip(rs, base)])} "
                  f"| {spread([r['client_cpu_s_per_gb'] for r in rs])} |")
    print()
    print(json.dumps({"args": vars(args), "started": started, "codecs": codecs, "auth": auth, "profile": shares}))


if __name__ == "__main__":
    main()
