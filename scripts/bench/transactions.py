#!/usr/bin/env python3
"""What transactions cost (issue 21), measured with `runnel perf` (librdkafka, 1 KB
messages) against one release node on 127.0.0.1:

1. Produce. For 1 and 8 partitions, eight producer clients at once: idempotent acks=all
   with linger 5 ms (the baseline), then transactional ones committing every 1, 10 and 100
   messages (`--transaction-size`, linger 0: a commit flushes at once, as Java's does). A
   transaction is a chain of round trips (AddPartitionsToTxn, Produce, EndTxn), so a lone
   transactional producer is bound by latency; eight show what the broker sustains.
   Each case writes a fresh topic; the cases take turns within each round (--rounds) so the
   noise of a shared machine falls on all alike, and each ratio is taken within its round.
   Reported: MB/s, transactions/s, the ratio to idempotent produce, and the broker's CPU
   seconds per GB. Target: transactions of 100 messages reach at least 60% of idempotent
   produce.
2. Catch-up consume of the 8-partition topic written in transactions of 100 (it holds a
   marker after every transaction) with isolation.level=read_committed against
   read_uncommitted, alternating. Target: read_committed at least 90% of read_uncommitted.

    cargo build --release -p runnel && python3 scripts/bench/transactions.py [--count N] [--rounds R]

Bounded: every `runnel perf` call is killed after 600 s.
"""
import argparse
import statistics

from run import GB, Server, measured

SIZES = (1, 10, 100)
# Producer clients per case, each with its own connection (and, transactional, its own id).
PRODUCERS = 8


def produce_round(server, round_no, partitions, count):
    """One round of the produce cases on `partitions`: {case: perf result}."""
    results = {}
    topic = f"idem-{partitions}-{round_no}"
    results["idempotent"] = measured(server, "produce", "--topic", topic, "--partitions", str(partitions),
                                     "--count", str(count), "--acks", "all", "--producers", str(PRODUCERS),
                                     "--producer-config", "enable.idempotence=true")
    for size in SIZES:
        # Fewer messages for small transactions: each costs a coordinator round trip.
        n = count if size >= 100 else max(count * size // 100, 10_000)
        topic = f"txn{size}-{partitions}-{round_no}"
        # Linger 0: a commit sends what is left at once (Java's and librdkafka's own commit
        # flush immediately; perf waits for the acknowledgements itself, see produce.rs).
        results[size] = measured(server, "produce", "--topic", topic, "--partitions", str(partitions),
                                 "--count", str(n), "--transaction-size", str(size), "--linger-ms", "0",
                                 "--producers", str(PRODUCERS))
        results[size]["transactions_per_s"] = results[size]["msgs_per_s"] / size
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000, help="messages per idempotent case")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = Server("transaction.state.log.num.partitions=4")
    try:
        for partitions in (1, 8):
            ratios = {size: [] for size in SIZES}
            rows = {case: [] for case in ("idempotent", *SIZES)}
            for round_no in range(args.rounds):
                results = produce_round(server, round_no, partitions, args.count)
                for case, result in results.items():
                    rows[case].append(result)
                for size in SIZES:
                    ratios[size].append(results[size]["mb_per_s"] / results["idempotent"]["mb_per_s"])
            base = rows["idempotent"]
            print(f"{partitions} partition(s): idempotent acks=all "
                  f"{statistics.median(r['mb_per_s'] for r in base):.0f} MB/s, "
                  f"{statistics.median(r['cpu_s_per_gb'] for r in base):.2f} broker CPU s/GB")
            for size in SIZES:
                runs = rows[size]
                ratio = statistics.median(ratios[size])
                print(f"  transactions of {size:>3}: {statistics.median(r['mb_per_s'] for r in runs):.1f} MB/s, "
                      f"{statistics.median(r['transactions_per_s'] for r in runs):.0f} transactions/s, "
                      f"{ratio:.0%} of idempotent (rounds {', '.join(f'{x:.0%}' for x in ratios[size])}), "
                      f"{statistics.median(r['cpu_s_per_gb'] for r in runs):.2f} broker CPU s/GB"
                      + ("  [target >= 60%]" if size == 100 else ""))
        # Catch-up consume of a topic written in transactions of 100 over 8 partitions.
        topic = "txn100-8-0"
        committed, uncommitted = [], []
        for _ in range(args.rounds):
            for isolation, into in (("read_committed", committed), ("read_uncommitted", uncommitted)):
                r = measured(server, "consume", "--topic", topic, "--count", str(args.count),
                             "--consumer-config", f"isolation.level={isolation}")
                into.append(r)
        ratios = [c["mb_per_s"] / u["mb_per_s"] for c, u in zip(committed, uncommitted)]
        print(f"catch-up consume of {topic}: read_committed "
              f"{statistics.median(r['mb_per_s'] for r in committed):.0f} MB/s, read_uncommitted "
              f"{statistics.median(r['mb_per_s'] for r in uncommitted):.0f} MB/s: "
              f"{statistics.median(ratios):.0%} (rounds {', '.join(f'{x:.0%}' for x in ratios)})  [target >= 90%]")
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
