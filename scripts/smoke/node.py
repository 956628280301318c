"""Start and stop a real runnel process for the cross-client smoke suite."""
import os
import signal
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("RUNNEL_BIN", os.path.join(ROOT, "target", "debug", "runnel"))
START_TIMEOUT_S = 15


class Node:
    """One runnel server on an ephemeral 127.0.0.1 port, with its own data directory."""

    def __init__(self, *extra_args):
        self.data_dir = tempfile.mkdtemp(prefix="runnel-smoke-")
        self.extra_args = list(extra_args)
        self.proc = None
        self.bootstrap = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.data_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [BINARY, "server", "--data-dir", os.path.join(self.data_dir, "data"), "--listen", "127.0.0.1:0", *self.extra_args],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"runnel exited before listening: {self.proc.poll()}")
            if line.startswith("runnel listening on "):
                self.bootstrap = line.split()[-1]
                return
        raise RuntimeError("runnel did not start in time")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        assert code == 0, f"runnel exited with {code} on SIGTERM"

    def restart(self):
        self.start()

    def partition_dir(self, topic, partition):
        return os.path.join(self.data_dir, "data", f"{topic}-{partition}")

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
