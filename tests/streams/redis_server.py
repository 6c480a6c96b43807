"""A real redis-server for the Redis store's tests: started on a free port (or a unix
socket) in a temporary directory, no persistence, killed on the way out. Tests that
need it skip when Debian's redis-server is not installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
needs_redis = pytest.mark.skipif(not Path(REDIS_SERVER).exists(),
                                 reason="redis-server is not installed (apt install redis-server)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; :meth:`restart` brings it back empty, as a restart
    without persistence does."""

    def __init__(self, directory: Path, unix: bool = False) -> None:
        self.directory = directory
        self.port = 0 if unix else free_port()
        self.socket_path = directory / "redis.sock" if unix else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.socket_path is not None:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                "--protected-mode", "no"]
        if self.socket_path is not None:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def ping(self) -> bool:
        try:
            return self.command("PING") == b"+PONG\r\n"
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command over a raw socket; the raw reply."""
        payload = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%b\r\n" % (len(a.encode()), a.encode()) for a in args)
        if self.socket_path is not None:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(self.socket_path))
        else:
            sock = socket.create_connection(("127.0.0.1", self.port))
        with sock:
            sock.settimeout(5)
            sock.sendall(payload)
            return sock.recv(1 << 20)

    def info(self, section: str) -> dict[str, str]:
        text = self.command("INFO", section).decode(errors="replace")
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def redis_server(unix: bool = False) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="sseserver-redis-") as directory:
        server = RedisServer(Path(directory), unix)
        server.start()
        try:
            yield server
        finally:
            server.stop()
