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
        self.bootstrap = listening_address(self.proc, START_TIMEOUT_S, "runnel")

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


def listening_address(proc, timeout_s, who):
    """The address a started `runnel server` announces on stdout once it listens."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{who} exited before listening: {proc.poll()}")
        if line.startswith("runnel listening on "):
            return line.split()[-1]
    raise RuntimeError(f"{who} did not start in time")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClusterNode(Node):
    """One node of a `Cluster`: fixed Kafka and quorum ports, kept across restarts."""

    def __init__(self, node_id, kafka_port, controller_port, voters, *settings):
        self.node_id, self.kafka_port = node_id, kafka_port
        args = ["--node-id", str(node_id), "--controller-listen", f"127.0.0.1:{controller_port}",
                "--controller-quorum", voters]
        for setting in settings:
            args += ["--set", setting]
        self.data_dir = tempfile.mkdtemp(prefix=f"runnel-smoke-n{node_id}-")
        self.extra_args = args
        self.proc = None
        self.bootstrap = None

    def start(self):
        self.log = open(os.path.join(self.data_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [BINARY, "server", "--data-dir", os.path.join(self.data_dir, "data"),
             "--listen", f"127.0.0.1:{self.kafka_port}", *self.extra_args],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )

    def wait_listening(self, timeout_s=60):
        self.bootstrap = listening_address(self.proc, timeout_s, f"node {self.node_id}")

    def restart(self):
        self.start()
        self.wait_listening()


class Cluster:
    """Three combined broker+controller nodes on loopback, all started before any is
    waited for (a voter prints its listening line once the quorum has a leader)."""

    def __init__(self, *settings, size=3):
        ports = [(free_port(), free_port()) for _ in range(size)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
        self.nodes = {i + 1: ClusterNode(i + 1, k, c, voters, *settings) for i, (k, c) in enumerate(ports)}
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.wait_listening()
        self.bootstrap = ",".join(f"127.0.0.1:{n.kafka_port}" for n in self.nodes.values())

    def logs(self):
        return "\n".join(
            f"--- node {i} ---\n" + open(os.path.join(n.data_dir, "server.log"), errors="replace").read()[-2000:]
            for i, n in self.nodes.items()
        )

    def close(self):
        for node in self.nodes.values():
            node.close()
