#!/usr/bin/env python3
"""What the web console costs the broker (issue 20): broker CPU per GB under the standard
produce benchmark (`runnel perf produce`, 1 KB records, acks=1, linger 5 ms) on a node
without the console against a node serving it with a page open in headless Chromium (the
overview, which reloads its data every 5 s, while the console samples its charts every
10 s). Rounds alternate the two so drift hits both alike; each run has its own node.

    cargo build --release -p runnel && python3 scripts/bench/console.py [--count 2000000] [--rounds 3]

Reported: CPU s/GB of each run, and the console's cost as (with - without) / without over
the sums of all rounds (target: under 5%). Bounded: perf is killed after 1800 s, Chromium
after the run.
"""
import argparse
import shutil
import subprocess
import tempfile

from run import GB, Server, measured


def produce(server, count):
    return measured(server, "produce", "--count", str(count), "--acks", "1", "--linger-ms", "5")


def with_page(count):
    server = Server(args=["--http-listen", "127.0.0.1:0"])
    line = server.proc.stdout.readline()
    assert line.startswith("runnel console on "), line
    url = line.split(" on ", 1)[1].strip()
    profile = tempfile.mkdtemp(prefix="runnel-bench-chromium-")
    browser = subprocess.Popen(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                f"--user-data-dir={profile}", url + "#/"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return produce(server, count)
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)
        server.destroy()


def without(count):
    server = Server()
    try:
        return produce(server, count)
    finally:
        server.destroy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sums = {"without": [0.0, 0.0], "with": [0.0, 0.0]}
    for round_ in range(args.rounds):
        order = [("without", without), ("with", with_page)]
        if round_ % 2:
            order.reverse()
        for name, run in order:
            r = run(args.count)
            sums[name][0] += r["broker_cpu_s"]
            sums[name][1] += r["bytes"] / GB
            print(f"round {round_ + 1} {name:>7} console page: {r['mb_per_s']:.0f} MB/s, "
                  f"{r['cpu_s_per_gb']:.2f} broker CPU s/GB", flush=True)
    base = sums["without"][0] / sums["without"][1]
    page = sums["with"][0] / sums["with"][1]
    cost = (page - base) / base * 100
    print(f"console cost: {base:.3f} -> {page:.3f} CPU s/GB ({cost:+.1f}%), target under 5%: "
          f"{'met' if cost < 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
