#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that records every Kafka request frame passing through it.

    capture_proxy.py LISTEN_PORT UPSTREAM_PORT OUT_DIR [RESPONSE_DIR] [--quorum]

Each request frame (client to broker, without its 4-byte size prefix) is written to
OUT_DIR/<api key>-<api version>-<sha1 prefix>, so repeated frames are stored once; with
RESPONSE_DIR, the frames flowing back are written there too. With --quorum (the quorum
transport, `u32 length | JSON`) frames keep their length prefix and are named
<sha1 prefix>. Both
directions are forwarded unchanged. Start the broker with `--advertise 127.0.0.1:LISTEN_PORT`
so clients reconnect through the proxy after bootstrap. Used to build the seed corpus of the
`request_frame` fuzz target (see fuzz/README.md); loopback only.
"""

import hashlib
import os
import socket
import struct
import sys
import threading


def pump(src, dst, on_bytes=None):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if on_bytes:
                on_bytes(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def recorder(out_dir, quorum):
    buf = bytearray()

    def on_bytes(data):
        buf.extend(data)
        while len(buf) >= 4:
            (size,) = struct.unpack(">i", buf[:4])
            if size < 0 or len(buf) < 4 + size:
                return
            frame = bytes(buf[4 : 4 + size])
            if quorum:
                frame = bytes(buf[: 4 + size])
            del buf[: 4 + size]
            if quorum:
                name = hashlib.sha1(frame).hexdigest()[:12]
            elif len(frame) >= 4:
                key, version = struct.unpack(">hh", frame[:4])
                name = "%d-%d-%s" % (key, version, hashlib.sha1(frame).hexdigest()[:12])
            else:
                continue
            path = os.path.join(out_dir, name)
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(frame)

    return on_bytes


def main():
    quorum = "--quorum" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--quorum"]
    listen_port, upstream_port, out_dir = int(args[0]), int(args[1]), args[2]
    response_dir = args[3] if len(args) > 3 else None
    for d in filter(None, (out_dir, response_dir)):
        os.makedirs(d, exist_ok=True)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(64)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
        threading.Thread(target=pump, args=(client, upstream, recorder(out_dir, quorum)), daemon=True).start()
        back = recorder(response_dir, quorum) if response_dir else None
        threading.Thread(target=pump, args=(upstream, client, back), daemon=True).start()


if __name__ == "__main__":
    main()
