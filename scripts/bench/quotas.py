#!/usr/bin/env python3
"""What client quotas cost when they do not bind: one release node, `runnel perf produce`
(1 KB messages, acks=1, 1 partition, linger 5 ms) and a catch-up `runnel perf consume` of
what was produced, first with no quota stored anywhere (the request path reads one atomic
flag and measures nothing) and then with default-user quotas far above what the client
reaches (every request's thread time is measured and charged, Produce and Fetch bytes
are charged, every response carries a throttle time of 0).

The two are interleaved round by round (--rounds, default 3) on the same node, so that the
noise of a shared machine falls on both alike; ratios are taken per round.

    cargo build --release -p runnel && python3 scripts/bench/quotas.py [--count 1000000] [--rounds 3]

All traffic is on 127.0.0.1; each perf call is bounded (run.py's perf: 30 minutes).
"""
import argparse
import subprocess

from run import BINARY, Server, measured

QUOTAS = ["producer_byte_rate=1e15", "consumer_byte_rate=1e15", "request_percentage=1e9"]


def quota(server, *args):
    subprocess.run([BINARY, "quota", "--bootstrap", server.bootstrap, *args], check=True, capture_output=True, timeout=60)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = Server()
    try:
        rows = []
        for round_ in range(args.rounds):
            figures = {}
            for mode in ("none", "quota"):
                if mode == "quota":
                    quota(server, "set", "--user-default", *QUOTAS)
                topic = f"q{round_}{mode}"
                p = measured(server, "produce", "--topic", topic, "--count", str(args.count), "--acks", "1", "--linger-ms", "5")
                c = measured(server, "consume", "--topic", topic, "--count", str(args.count))
                figures[mode] = (p, c)
                if mode == "quota":
                    quota(server, "delete", "--user-default", *(q.split("=")[0] for q in QUOTAS))
            (p0, c0), (p1, c1) = figures["none"], figures["quota"]
            rows.append((round_, p0, p1, c0, c1))
        print("| round | produce MB/s none / quota (ratio) | broker CPU s/GB none / quota | consume MB/s none / quota (ratio) | broker CPU s/GB none / quota |")
        print("|---|---|---|---|---|")
        for round_, p0, p1, c0, c1 in rows:
            print(f"| {round_ + 1} | {p0['mb_per_s']:.0f} / {p1['mb_per_s']:.0f} ({p1['mb_per_s'] / p0['mb_per_s']:.2f}) "
                  f"| {p0['cpu_s_per_gb']:.2f} / {p1['cpu_s_per_gb']:.2f} "
                  f"| {c0['mb_per_s']:.0f} / {c1['mb_per_s']:.0f} ({c1['mb_per_s'] / c0['mb_per_s']:.2f}) "
                  f"| {c0['cpu_s_per_gb']:.2f} / {c1['cpu_s_per_gb']:.2f} |")
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
