#!/usr/bin/env python3
"""What security costs: one release node with PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512)
listeners side by side, measured with `runnel perf` itself (librdkafka) through each, with
`--command-config` files like the ones Kafka's tools take. Per listener and round:

- produce for --seconds (1 KB messages, acks=all, 4 partitions, linger 5 ms);
- catch-up consume of what was just produced, with librdkafka (what applications see; the
  client decodes every record) and with `--client runnel` (raw fetches that only walk batch
  headers: what the broker can serve);
- the broker's CPU seconds per GB for each (user+sys from /proc/<pid>/stat).

The listeners are interleaved round by round (--rounds, default 2) so that the noise of a
shared machine falls on all of them alike, and the ratios against PLAINTEXT are taken per
round, then the rounds' figures are shown side by side.

    cargo build --release -p runnel && python3 scripts/bench/security.py [--seconds 10] [--rounds 2]

Certificates are made locally with the openssl command (a throwaway CA and server key, in a
temporary directory). All traffic is on 127.0.0.1. Every step is bounded: produce runs for
--seconds, each consume gives up after --timeout seconds (the raw client after 30 s without
a fetch response), and each `runnel perf` call is killed after --seconds + --timeout + 60
seconds. A consume that fails is reported and run again (twice at most):
over TLS the raw client sometimes stalls until its 30 s request timeout.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from run import BINARY, GB, Server

LISTENERS = ("PLAINTEXT", "SSL", "SASL_SSL")
USER, PASSWORD = "bench", "bench-secret"


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


def command_configs(directory, ca):
    """A --command-config file per listener (None for PLAINTEXT)."""
    texts = {
        "SSL": f"security.protocol=SSL\nssl.ca.location={ca}\n",
        # The Java client's JAAS line, as kafka-*.sh users write it: perf turns it into
        # librdkafka's sasl.username and sasl.password.
        "SASL_SSL": f"security.protocol=SASL_SSL\nssl.ca.location={ca}\nsasl.mechanism=SCRAM-SHA-512\n"
                    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                    f'username="{USER}" password="{PASSWORD}";\n',
    }
    files = {"PLAINTEXT": None}
    for name, text in texts.items():
        files[name] = os.path.join(directory, f"{name.lower()}.properties")
        with open(files[name], "w") as f:
            f.write(text)
    return files


FAILURES = []


def perf(server, address, config, timeout, *args, retries=0):
    """Runs `runnel perf` and returns its JSON report with the broker's and the client's CPU
    seconds per GB. With `retries` (for reads, which can be repeated), a failed run is
    reported and run again, up to that many times."""
    command = [BINARY, "perf", "--bootstrap", address, "--json"]
    if config:
        command += ["--command-config", config]
    command += list(args)
    before, client_before = server.cpu_s(), os.times()
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "RUST_BACKTRACE": "0"})
    cpu, client_after = server.cpu_s() - before, os.times()
    if out.returncode != 0:
        error = out.stderr.strip()[:500]
        if not retries:
            sys.exit(f"{' '.join(command)} failed: {error}")
        FAILURES.append(f"{' '.join(command)}: {error}")
        print(f"WARNING: {' '.join(command)} failed ({error}); running it again", flush=True)
        return perf(server, address, config, timeout, *args, retries=retries - 1)
    client_cpu = (client_after.children_user + client_after.children_system
                  - client_before.children_user - client_before.children_system)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_s_per_gb"] = cpu / max(result["bytes"] / GB, 1e-9)
    result["client_cpu_s_per_gb"] = client_cpu / max(result["bytes"] / GB, 1e-9)
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10, help="seconds of produce per listener and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each over every listener in turn")
    parser.add_argument("--size", type=int, default=1024, help="message bytes")
    parser.add_argument("--timeout", type=float, default=30, help="seconds per consume at most")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="runnel-bench-security-")
    keystore, ca = make_certs(work)
    configs = command_configs(work, ca)
    server = Server(
        "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        f"ssl.keystore.location={keystore}",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        args=["--add-scram", f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"],
    )
    limit = args.seconds + args.timeout + 60
    results = {name: [] for name in LISTENERS}  # per round: (produce, consume, raw consume)
    try:
        for round_ in range(args.rounds):
            for name in LISTENERS:
                address, config = server.listeners[name], configs[name]
                topic = f"bench-{name.lower()}-{round_}"
                produced = perf(server, address, config, limit, "produce", "--topic", topic, "--partitions", "4",
                                "--duration", str(args.seconds), "--size", str(args.size), "--acks", "all",
                                "--linger-ms", "5")
                consumed = perf(server, address, config, limit, "consume", "--topic", topic,
                                "--timeout", str(args.timeout), retries=2)
                raw = perf(server, address, config, limit, "consume", "--topic", topic, "--client", "runnel",
                           retries=2)
                results[name].append((produced, consumed, raw))
                # Each case writes gigabytes: free the disk before the next.
                subprocess.run([BINARY, "topic", "delete", topic, "--bootstrap", server.listeners["PLAINTEXT"]],
                               capture_output=True, timeout=60)
                print(f"round {round_ + 1} {name}: " + ", ".join(
                    f"{label} {r['mb_per_s']:.0f} MB/s (CPU s/GB broker {r['cpu_s_per_gb']:.2f}, "
                    f"client {r['client_cpu_s_per_gb']:.2f})"
                    for label, r in (("produce", produced), ("consume", consumed), ("raw consume", raw))), flush=True)
        print()
        print(f"runnel perf, {args.seconds:g} s of {args.size}-byte produce (acks=all, 4 partitions) per listener "
              f"and round, {args.rounds} rounds interleaved; figures per round separated by /")
        print("| listener | produce MB/s (vs PLAINTEXT) | broker CPU s/GB produce | consume MB/s, librdkafka (vs PLAINTEXT) "
              "| broker CPU s/GB | consume MB/s, raw client (vs PLAINTEXT) | broker CPU s/GB |")
        print("|---|---|---|---|---|---|---|")
        for name in LISTENERS:
            cells = []
            for kind in range(3):
                rates = [r[kind]["mb_per_s"] for r in results[name]]
                ratios = [r[kind]["mb_per_s"] / b[kind]["mb_per_s"] for r, b in zip(results[name], results["PLAINTEXT"])]
                cells.append(" / ".join(f"{x:.0f}" for x in rates) + " (" + " / ".join(f"{x:.2f}" for x in ratios) + ")")
                cells.append(" / ".join(f"{r[kind]['cpu_s_per_gb']:.2f}" for r in results[name]))
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()
        for name in LISTENERS[1:]:
            for kind, label, target in ((0, "produce", 0.70), (1, "consume (librdkafka)", 0.50), (2, "consume (raw)", 0.50)):
                ratios = [r[kind]["mb_per_s"] / b[kind]["mb_per_s"] for r, b in zip(results[name], results["PLAINTEXT"])]
                cpu = [r[kind]["cpu_s_per_gb"] / b[kind]["cpu_s_per_gb"] for r, b in zip(results[name], results["PLAINTEXT"])]
                client = [r[kind]["client_cpu_s_per_gb"] / b[kind]["client_cpu_s_per_gb"]
                          for r, b in zip(results[name], results["PLAINTEXT"])]
                met = "met" if min(ratios) >= target else "NOT met" if max(ratios) < target else "met in some rounds"
                print(f"{name} {label}: {min(ratios):.2f}-{max(ratios):.2f} of PLAINTEXT (target >= {target:.2f}: {met}); "
                      f"CPU per GB broker {min(cpu):.1f}-{max(cpu):.1f}x, client {min(client):.1f}-{max(client):.1f}x")
        for failure in FAILURES:
            print(f"failed (then rerun): {failure}")
    finally:
        server.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
