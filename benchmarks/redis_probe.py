"""The redis-server of ``benchmarks.load --store redis``: started on a free port with no
persistence, pinned beside the load generator (CPU 1) so the server keeps CPU 0; its
CPU time from /proc, and its memory and command counts from INFO, around a run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RedisProbe:
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None
    before: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, pinned: list[str]) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("--store redis needs redis-server (apt install redis-server)")
        directory = tempfile.mkdtemp(prefix="sseserver-bench-redis-")
        self.process = subprocess.Popen(
            [*pinned, binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.command("PING").startswith(b"+PONG"):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)

    def command(self, *args: str) -> bytes:
        payload = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%b\r\n" % (len(a), a.encode()) for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(payload)
            data = b""
            while not _complete(data):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
            return data

    def snapshot(self) -> dict[str, Any]:
        """CPU seconds, used memory, calls of each command so far."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        memory = _info(self.command("INFO", "memory"))
        calls = {name[len("cmdstat_"):]: int(value.split(",")[0].split("=")[1])
                 for name, value in _info(self.command("INFO", "commandstats")).items()}
        return {"cpu": cpu, "used_memory": int(memory["used_memory"]), "calls": calls}

    def begin(self) -> None:
        self.before = self.snapshot()

    def report(self, streams: int, events: int) -> dict[str, Any]:
        """What the run cost Redis: its CPU, memory per stream still held (finished
        streams wait out their retention), commands per event delivered."""
        after, before = self.snapshot(), self.before
        calls = {name: count - before["calls"].get(name, 0)
                 for name, count in after["calls"].items()}
        calls = {name: count for name, count in calls.items() if count}
        total = sum(count for name, count in calls.items() if name != "info")
        return {
            "redis_cpu_s": round(after["cpu"] - before["cpu"], 3),
            "redis_bytes_per_stream": round(
                (after["used_memory"] - before["used_memory"]) / streams),
            "redis_commands_per_event": round(total / events, 3) if events else 0,
            "redis_commands": calls,
        }


def _complete(reply: bytes) -> bool:
    """Whether a simple or bulk string reply (all INFO and PING answer) is whole."""
    if not reply.endswith(b"\r\n"):
        return False
    if not reply.startswith(b"$"):
        return True
    head = reply.index(b"\r\n")
    return len(reply) >= head + 2 + int(reply[1:head]) + 2


def _info(reply: bytes) -> dict[str, str]:
    text = reply.decode(errors="replace")
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
