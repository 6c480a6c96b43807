"""`sseserver serve --demo` as a separate process, for measures that must not share the
test's interpreter: another client's latency while hostile load runs, the server's
RSS, its open-file limit."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    port: int
    log: list[str] = field(default_factory=list)

    def rss_mib(self) -> float:
        status = open(f"/proc/{self.process.pid}/status").read()  # noqa: SIM115
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


@contextmanager
def serve(*args: str, env: dict[str, str] | None = None, preexec: object = None
          ) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``sseserver serve --port 0 *args`` with the test's provider variables cleared,
    once it says where it listens; killed on the way out."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("SSESERVER_", "OPENAI_", "ANTHROPIC_"))}
    environment.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "sseserver", "serve", "--port", "0", *args],
        env=environment, stderr=subprocess.PIPE, text=True,
        preexec_fn=preexec)  # type: ignore[arg-type]
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 15
        url = ""
        while time.monotonic() < deadline and not url:
            line = process.stderr.readline()
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                url = match.group(1)
            elif not line and process.poll() is not None:
                break
        assert url, "the server did not start"
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


@contextmanager
def served(env: dict[str, str] | None = None, preexec: object = None) -> Iterator[Served]:
    """The demo server, its log read on as it comes."""
    with serve("--demo", env=env, preexec=preexec) as (process, url):
        server = Served(process, url, int(url.rsplit(":", 1)[1]))
        threading.Thread(target=lambda: server.log.extend(process.stderr),  # type: ignore[arg-type]
                         daemon=True).start()
        yield server


class HealthProbe:
    """Asks /healthz on one kept-alive connection, over and over, and keeps the
    slowest answer: how long any other client waits for the loop."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.settimeout(30)
        self.latencies: list[float] = []

    def once(self) -> float:
        started = time.monotonic()
        self._sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n")
        data = b""
        while not data.endswith(b'{"status":"ok"}'):
            chunk = self._sock.recv(4096)
            assert chunk, "the server closed the probe"
            data += chunk
        elapsed = time.monotonic() - started
        self.latencies.append(elapsed)
        return elapsed

    def run_for(self, seconds: float, interval: float = 0.01) -> float:
        """Probe for ``seconds``; returns the slowest answer."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.once()
            time.sleep(interval)
        return max(self.latencies)

    def close(self) -> None:
        self._sock.close()
