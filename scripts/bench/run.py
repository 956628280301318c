#!/usr/bin/env python3
"""Runnel benchmark suite: starts real servers (release build), runs the scenarios of
docs/performance.md with `runnel perf` (librdkafka), and reports each figure with the
broker's CPU time (user+sys from /proc) per GB moved. Ratios are taken against baselines
measured in the same run (a discarding broker, fio), because the machine is shared.

    cargo build --release -p runnel && python3 scripts/bench/run.py [--quick] [--only NAME ...]

Prints a markdown table and writes it, with the raw JSON, to target/bench/.
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("RUNNEL_BIN", os.path.join(ROOT, "target", "release", "runnel"))
TICKS = os.sysconf("SC_CLK_TCK")
GB = 1e9


def read_listening(proc):
    """Reads a started `runnel server`'s stdout up to its listening line: returns the first
    listener's address and every listener's address by name (the `runnel listener NAME
    PROTOCOL on ADDR` lines printed before it)."""
    listeners = {}
    while True:
        line = proc.stdout.readline()
        assert line, f"runnel exited before listening: {proc.poll()}"
        if line.startswith("runnel listener "):
            name, _protocol, _on, addr = line.split()[2:6]
            listeners[name] = addr
        elif line.startswith("runnel listening on "):
            return line.split()[-1], listeners


class Server:
    """A release `runnel server`: `settings` go to `--set`, `args` (e.g. `--add-scram`) as
    given. A `listeners=` setting replaces the default `--listen 127.0.0.1:0`."""

    def __init__(self, *settings, data_dir=None, args=()):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="runnel-bench-", dir=os.environ.get("BENCH_DIR"))
        self.settings = list(settings)
        self.args = list(args)
        self.start()

    def start(self):
        # Start from a quiet disk: dirty pages left by the previous scenario would be written
        # back during this one and throttle its writes (balance_dirty_pages), which is noise.
        os.sync()
        args = [BINARY, "server", "--data-dir", self.data_dir]
        if not any(s.startswith("listeners=") for s in self.settings):
            args += ["--listen", "127.0.0.1:0"]
        for s in self.settings:
            args += ["--set", s]
        args += self.args
        # The console (on by default for a single node) only where a scenario asks for it.
        if "--http-listen" not in self.args:
            args += ["--http-listen", "off"]
        self.log = open(os.path.join(os.path.dirname(self.data_dir), os.path.basename(self.data_dir) + ".log"), "ab")
        started = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True, env={**os.environ, "RUST_LOG": "warn"})
        self.bootstrap, self.listeners = read_listening(self.proc)
        self.startup_s = time.monotonic() - started

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)

    def destroy(self):
        if self.proc.poll() is None:
            self.stop(signal.SIGKILL)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def perf(server, *args):
    out = subprocess.run([BINARY, "perf", "--bootstrap", server.bootstrap, "--json", *args], capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def measured(server, *args):
    before = server.cpu_s()
    result = perf(server, *args)
    result["broker_cpu_s"] = server.cpu_s() - before
    result["cpu_s_per_gb"] = result["broker_cpu_s"] / max(result["bytes"] / GB, 1e-9)
    return result


ROWS = []


def row(name, figure, target, met, command, extra=""):
    ROWS.append({"scenario": name, "figure": figure, "target": target, "met": met, "command": command, "extra": extra})
    print(f"{'OK  ' if met else 'MISS' if met is False else '    '} {name}: {figure} ({extra}) target {target}", flush=True)


def produce_scenarios(q):
    count = str(300_000 if q else 2_000_000)
    sink = Server("runnel.bench.discard.produce=true")
    base = measured(sink, "produce", "--count", count, "--acks", "1", "--linger-ms", "5")
    sink.destroy()
    for acks in ("1", "all"):
        for partitions in ("1", "8"):
            server = Server()
            r = measured(server, "produce", "--count", count, "--acks", acks, "--partitions", partitions, "--linger-ms", "5")
            server.destroy()
            ratio = r["mb_per_s"] / base["mb_per_s"]
            cmd = f"runnel perf produce --count {count} --acks {acks} --partitions {partitions} --linger-ms 5"
            met = (ratio >= 0.7 and r["cpu_s_per_gb"] <= 0.4) if (acks, partitions) == ("1", "1") else None
            row(f"produce acks={acks}, {partitions} partition(s)", f"{r['mb_per_s']:.0f} MB/s = {ratio:.0%} of discard sink ({base['mb_per_s']:.0f} MB/s)",
                ">= 70%, <= 0.4 CPU s/GB" if met is not None else "-", met, cmd,
                f"broker {r['cpu_s_per_gb']:.2f} CPU s/GB, p99 ack {r['p99_ms']:.1f} ms")


def fio_fdatasync_mb_s(directory):
    out = subprocess.run(["fio", "--name=fsync", f"--directory={directory}", "--rw=write", "--bs=1M", "--size=1G",
                          "--fdatasync=1", "--ioengine=sync", "--output-format=json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["jobs"][0]["write"]["bw_bytes"] / 1e6


def fsync_scenario(q):
    server = Server("log.flush.before.ack=true")
    count = str(200_000 if q else 1_000_000)
    r = measured(server, "produce", "--count", count, "--acks", "all", "--linger-ms", "5")
    fio_dir = tempfile.mkdtemp(dir=os.path.dirname(server.data_dir))
    server.destroy()
    if shutil.which("fio"):
        fio = fio_fdatasync_mb_s(fio_dir)
        ratio = r["mb_per_s"] / fio
        row("produce with fsync before ack", f"{r['mb_per_s']:.0f} MB/s = {ratio:.0%} of fio fdatasync/1MiB ({fio:.0f} MB/s)", ">= 60%", ratio >= 0.6,
            f"runnel server --set log.flush.before.ack=true; runnel perf produce --count {count} --acks all", f"p99 ack {r['p99_ms']:.1f} ms")
    shutil.rmtree(fio_dir, ignore_errors=True)


def consume_scenario(q):
    server = Server()
    count = str(300_000 if q else 2_000_000)
    perf(server, "produce", "--count", count, "--acks", "1", "--topic", "catchup")
    r = measured(server, "consume", "--topic", "catchup", "--client", "runnel")
    lib = measured(server, "consume", "--topic", "catchup")
    server.destroy()
    gb_s = r["mb_per_s"] / 1000
    row("catch-up consume from page cache (raw client)", f"{gb_s:.2f} GB/s", ">= 1.5 GB/s, <= 0.15 CPU s/GB", gb_s >= 1.5 and r["cpu_s_per_gb"] <= 0.15,
        f"runnel perf consume --topic catchup --client runnel (after producing {count} x 1 KB)", f"broker {r['cpu_s_per_gb']:.3f} CPU s/GB")
    row("catch-up consume from page cache (librdkafka)", f"{lib['mb_per_s'] / 1000:.2f} GB/s", "-", None,
        "runnel perf consume --topic catchup", f"broker {lib['cpu_s_per_gb']:.3f} CPU s/GB; the client decodes every record and is the bottleneck")


def e2e_scenarios(q):
    for rate, label in ((10_000, "10 MB/s"), (100_000, "100 MB/s")):
        server = Server()
        duration = "5" if q else "20"
        r = measured(server, "e2e", "--rate", str(rate), "--duration", duration, "--acks", "all")
        server.destroy()
        met = (r["p99_ms"] < 3 and r["p999_ms"] < 10) if rate == 10_000 else None
        row(f"end-to-end latency at {label}, acks=all", f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, p99.9 {r['p999_ms']:.2f} ms",
            "p99 < 3 ms, p99.9 < 10 ms" if met is not None else "-", met, f"runnel perf e2e --rate {rate} --duration {duration} --acks all",
            f"{r['msgs_per_s']:.0f} msgs/s received, broker {r['cpu_s_per_gb']:.2f} CPU s/GB")


def roll_scenario(q):
    """Segment rolls must not stall the append path: the same e2e run with the default 1 GiB
    segments (no roll) and with 50 MB segments (a roll every few seconds), in one run."""
    duration = "15" if q else "50"
    args = ["e2e", "--rate", "20000", "--duration", duration, "--acks", "all", "--partitions", "4"]
    results = {}
    for label, segment in (("1 GiB", "1073741824"), ("50 MB", "50000000")):
        server = Server(f"log.segment.bytes={segment}")
        results[label] = measured(server, *args)
        server.destroy()
    base, rolled = results["1 GiB"], results["50 MB"]
    ratio = rolled["p99_ms"] / max(base["p99_ms"], 1e-9)
    row("end-to-end latency with a roll every few seconds (50 MB segments), acks=all",
        f"p99 {rolled['p99_ms']:.2f} ms = {ratio:.2f}x the same run with 1 GiB segments ({base['p99_ms']:.2f} ms)",
        "<= 1.5x", ratio <= 1.5, f"runnel perf {' '.join(args)} with log.segment.bytes=50000000 and 1073741824",
        f"p99.9 {rolled['p999_ms']:.2f} ms vs {base['p999_ms']:.2f} ms")


def partitions_scenario(q):
    server = Server()
    count = str(200_000 if q else 1_000_000)
    r = measured(server, "produce", "--topic", "wide", "--partitions", "1000", "--count", count, "--acks", "1")
    row("produce into 1,000 partitions", f"{r['mb_per_s']:.0f} MB/s", "-", None, f"runnel perf produce --partitions 1000 --count {count}",
        f"broker {r['cpu_s_per_gb']:.2f} CPU s/GB")
    server.stop()
    server.start()
    row("startup with 1,000 partitions after clean shutdown", f"{server.startup_s:.2f} s", "< 2 s", server.startup_s < 2,
        "time from spawn to 'runnel listening' after SIGTERM")
    server.destroy()


def connections_scenario(q):
    server = Server()
    producers = "100" if q else "1000"
    r = measured(server, "produce", "--topic", "many", "--partitions", "8", "--producers", producers, "--count", str(int(producers) * 100), "--acks", "1", "--linger-ms", "5")
    server.destroy()
    row(f"{producers} concurrent producer connections", f"{r['msgs_per_s']:.0f} msgs/s, p99 ack {r['p99_ms']:.1f} ms", "-", None,
        f"runnel perf produce --producers {producers} --count {int(producers) * 100}", f"{r['errors']} errors")


def recovery_scenario(q):
    server = Server("log.segment.bytes=1073741824")
    count = str(500_000 if q else 5_000_000)
    perf(server, "produce", "--topic", "big", "--count", count, "--acks", "1")
    server.stop(signal.SIGKILL)
    server.start()
    size_gb = int(count) * 1024 / GB
    row(f"recovery after kill -9 with {size_gb:.1f} GB", f"{server.startup_s:.2f} s", "< 5 s", server.startup_s < 5, "time from spawn to 'runnel listening' after kill -9")
    server.destroy()


def codecs_scenario(q):
    """Produce with lz4 and zstd batches (1 KB records, linger 5 ms) against uncompressed in
    the same run: the broker reads every compressed batch's records (scripts/bench/compression.py
    has the full comparison and the profile of validation against compression)."""
    server = Server()
    count = "200000" if q else "2000000"
    results = {}
    for codec in ("none", "lz4", "zstd"):
        results[codec] = measured(server, "produce", "--topic", f"codec-{codec}", "--count", count, "--compression", codec)
    base = results["none"]
    for codec in ("lz4", "zstd"):
        r = results[codec]
        row(f"produce {codec} 1 KB", f"{r['mb_per_s']:.0f} MB/s, {r['cpu_s_per_gb']:.2f} broker CPU s/GB", "-", None,
            f"runnel perf produce --compression {codec} --count {count}",
            f"{r['mb_per_s'] / base['mb_per_s']:.2f}x MB/s and {r['cpu_s_per_gb'] / base['cpu_s_per_gb']:.2f}x CPU/GB of none")
    server.destroy()


def cleaner_scenario(q):
    import cleaner  # it imports this module: load it only when asked
    r = cleaner.one_round("none", 0.2 if q else 1.0)
    row(f"log cleaner, {r['log_mb']:.0f} MB log, 10,000 keys", f"{r['clean_mb_s']:.0f} MB/s, {r['cpu_s_per_gb']:.2f} broker CPU s/GB", "-", None,
        "python3 scripts/bench/cleaner.py", f"{r['clean_mb_s'] / r['produce_mb_s']:.2f}x the produce rate of the same log; {r['after_mb']:.1f} MB left")


SCENARIOS = {"produce": produce_scenarios, "fsync": fsync_scenario, "consume": consume_scenario, "e2e": e2e_scenarios, "roll": roll_scenario,
             "partitions": partitions_scenario, "connections": connections_scenario, "recovery": recovery_scenario,
             "codecs": codecs_scenario, "cleaner": cleaner_scenario}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--only", nargs="*", choices=list(SCENARIOS))
    args = parser.parse_args()
    for name, scenario in SCENARIOS.items():
        if not args.only or name in args.only:
            scenario(args.quick)
    out_dir = os.path.join(ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    table = ["| scenario | figure | target | met | details | command |", "|---|---|---|---|---|---|"]
    for r in ROWS:
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        table.append(f"| {r['scenario']} | {r['figure']} | {r['target']} | {met} | {r['extra']} | `{r['command']}` |")
    text = "\n".join(table)
    print(text)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(ROWS, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
