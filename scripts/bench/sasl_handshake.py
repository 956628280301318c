#!/usr/bin/env python3
"""How long a SCRAM authentication takes on loopback: a release node with a SASL_PLAINTEXT
listener and a SCRAM-SHA-512 user; a raw client (this script) opens N connections and on
each does SaslHandshake v1 and the two SaslAuthenticate v1 round trips. Reported: the
broker's share (the three round trips, without the client's own PBKDF2) and the whole
authentication including the client's work, as p50/p99/max in milliseconds.

    cargo build --release -p runnel && python3 scripts/bench/sasl_handshake.py [--count 500]
"""
import argparse
import base64
import hashlib
import hmac
import os
import socket
import struct
import time

from run import Server

USER, PASSWORD = "bench", "bench-secret"


def request(sock, api_key, version, correlation, body):
    client_id = b"bench"
    header = struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    response = recv_exact(sock, size)
    assert struct.unpack(">i", response[:4])[0] == correlation
    return response[4:]


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def authenticate(sock, token, correlation):
    """SaslAuthenticate v1: bytes in; error, message, bytes, lifetime out."""
    body = struct.pack(">i", len(token)) + token
    response = request(sock, 36, 1, correlation, body)
    error = struct.unpack(">h", response[:2])[0]
    at = 2
    length = struct.unpack(">h", response[at:at + 2])[0]
    at += 2 + max(length, 0)
    length = struct.unpack(">i", response[at:at + 4])[0]
    auth = response[at + 4:at + 4 + length]
    if error:
        raise RuntimeError(f"authentication error {error}")
    return auth


def scram_round(address):
    """One connection's authentication; returns (broker seconds, total seconds)."""
    start = time.perf_counter()
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    broker = 0.0
    t = time.perf_counter()
    mechanism = b"SCRAM-SHA-512"
    response = request(sock, 17, 1, 1, struct.pack(">h", len(mechanism)) + mechanism)
    assert struct.unpack(">h", response[:2])[0] == 0, "handshake refused"
    broker += time.perf_counter() - t
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n={USER},r={nonce}"
    t = time.perf_counter()
    server_first = authenticate(sock, f"n,,{first_bare}".encode(), 2).decode()
    broker += time.perf_counter() - t
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha512", PASSWORD.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha512).digest()
    stored_key = hashlib.sha512(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, hashlib.sha512).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    t = time.perf_counter()
    authenticate(sock, f"{without_proof},p={base64.b64encode(proof).decode()}".encode(), 3)
    broker += time.perf_counter() - t
    total = time.perf_counter() - start
    sock.close()
    return broker, total


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    server = Server(
        "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "sasl.failed.authentications.per.minute=1000000",
        args=["--add-scram", f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"],
    )
    try:
        host, port = server.listeners["SASL_PLAINTEXT"].rsplit(":", 1)
        address = (host, int(port))
        deadline = time.monotonic() + 300
        broker, total = [], []
        for _ in range(args.count):
            if time.monotonic() > deadline:
                break
            b, t = scram_round(address)
            broker.append(b * 1000)
            total.append(t * 1000)
        print(f"{len(broker)} SCRAM-SHA-512 authentications (4096 iterations) on loopback, one at a time")
        print("| | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|")
        for name, values in (("broker (3 round trips)", broker), ("whole, with the client's PBKDF2", total)):
            print(f"| {name} | {percentile(values, 0.5):.2f} | {percentile(values, 0.99):.2f} | {max(values):.2f} |")
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
