#!/usr/bin/env python3
"""What log compaction costs (issue 17): the cleaner's throughput on a log of --gb GB with
10,000 keys (1 KB values, 64 MiB segments), against release nodes on 127.0.0.1.

Per round (uncompressed batches: perf's payload, 1 KB of one byte, would shrink to almost
nothing in any codec and leave the whole log in its active segment, which is never cleaned):
1. A node with `log.cleaner.enable=false` takes `runnel perf produce --keys 10000` into a
   compacted topic until the log holds --gb GB; the produce's MB/s is the baseline.
2. The node stops; a node with the cleaner on (`log.cleaner.backoff.ms=100`) opens the same
   data directory. Its CPU is read when it prints its listening line and again when the
   partition's files have shrunk below a tenth of the log, polled every 50 ms (the active
   segment is never cleaned, so this is the end of the first pass).

Reported: MB/s of log cleaned (the log's bytes before over the pass's wall time), broker
CPU seconds per GB of log cleaned, and cleaning MB/s over producing MB/s of the same log in
the same round (a ratio, so that a shared machine's noise cancels). The cleaner reads the
log twice (once to map the keys of the dirty part, once to recopy it) and writes only the
latest value of each key, about 10 MB here.

    cargo build --release -p runnel && python3 scripts/bench/cleaner.py [--gb 1] [--rounds 2]

Every step is bounded: a node must print its listening line within 60 s, `runnel perf` is
killed after 1800 s, a pass must finish within 600 s.
"""
import argparse
import os
import statistics
import time

from run import GB, Server, perf

KEYS = 10_000
SEGMENT_BYTES = 64 << 20
PASS_TIMEOUT_S = 600


def log_bytes(server, topic):
    folder = os.path.join(server.data_dir, f"{topic}-0")
    return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder) if name.endswith(".log"))


def one_round(codec, gb):
    topic = "cdc"
    writer = Server("log.cleaner.enable=false")
    try:
        produced = perf(
            writer, "produce", "--topic", topic, "--keys", str(KEYS), "--size", "1024", "--compression", codec,
            "--count", str(int(gb * GB / 1024)),
            "--topic-config", "cleanup.policy=compact", "--topic-config", f"segment.bytes={SEGMENT_BYTES}",
        )
        before = log_bytes(writer, topic)
        writer.stop()
        cleaner = Server("log.cleaner.backoff.ms=100", data_dir=writer.data_dir)
        cpu_start, started = cleaner.cpu_s(), time.monotonic()
        while log_bytes(cleaner, topic) * 10 > before:
            assert time.monotonic() - started < PASS_TIMEOUT_S, "the pass did not finish"
            time.sleep(0.05)
        wall = time.monotonic() - started
        cpu = cleaner.cpu_s() - cpu_start
        after = log_bytes(cleaner, topic)
        cleaner.destroy()
        return {
            "produce_mb_s": produced["mb_per_s"],
            "log_mb": before / 1e6,
            "after_mb": after / 1e6,
            "clean_mb_s": before / 1e6 / wall,
            "cpu_s_per_gb": cpu / (before / GB),
        }
    finally:
        writer.destroy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results = {codec: [] for codec in ("none",)}
    for r in range(args.rounds):
        for codec in results:
            result = one_round(codec, args.gb)
            result["ratio"] = result["clean_mb_s"] / result["produce_mb_s"]
            results[codec].append(result)
            print(f"round {r + 1} {codec}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()), flush=True)
    for codec, rows in results.items():
        median = lambda key: statistics.median(row[key] for row in rows)
        print(
            f"{codec}: log {median('log_mb'):.0f} MB -> {median('after_mb'):.1f} MB; cleaned at {median('clean_mb_s'):.0f} MB/s, "
            f"{median('cpu_s_per_gb'):.2f} broker CPU s/GB; produce {median('produce_mb_s'):.0f} MB/s; "
            f"clean/produce {median('ratio'):.2f} (medians of {len(rows)} rounds)"
        )


if __name__ == "__main__":
    main()
