"""Load benchmark: N concurrent streams through a real server process.

    python -m benchmarks.load --streams 100 --tokens 200 --rate 0

Starts the fake provider and `sseserver serve` as separate processes, the server
pinned to CPU 0 and the fake provider and this load generator to CPU 1 (`taskset`),
then opens N streams at once over raw sockets and reports events/s delivered, events
per CPU-second of the server process (from /proc), time to first token and errors
(every stream must end with [DONE] after the expected number of tokens).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

import orjson

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONTENT_MARKER = b'data: {"content"'
DONE_MARKER = b"data: [DONE]"


@dataclass
class StreamResult:
    tokens: int = 0
    done: bool = False
    error: str = ""
    started: float = 0.0
    first_token: float | None = None
    finished: float = 0.0


@dataclass
class RunResult:
    streams: int
    tokens_per_stream: int
    wall: float
    server_cpu: float
    results: list[StreamResult] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(r.tokens for r in self.results)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results
                   if r.error or not r.done or r.tokens != self.tokens_per_stream)

    def summary(self) -> dict[str, float]:
        ttft = sorted((r.first_token - r.started) * 1000 for r in self.results
                      if r.first_token is not None)
        return {
            "streams": self.streams, "events": self.events, "errors": self.errors,
            "wall_s": round(self.wall, 3), "server_cpu_s": round(self.server_cpu, 3),
            "events_per_s": round(self.events / self.wall),
            "events_per_cpu_s": round(self.events / self.server_cpu) if self.server_cpu else 0,
            "ttft_p50_ms": round(statistics.median(ttft), 2) if ttft else 0,
            "ttft_p99_ms": round(ttft[int(len(ttft) * 0.99) - 1 if len(ttft) > 1 else 0], 2)
            if ttft else 0,
        }


class StreamClient(asyncio.Protocol):
    """Counts content frames and waits for [DONE]; no parsing beyond that."""

    def __init__(self, request: bytes, result: StreamResult, done: asyncio.Future[None]
                 ) -> None:
        self.request = request
        self.result = result
        self.done = done
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.result.started = time.monotonic()
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        window = self.tail + data
        count = window.count(CONTENT_MARKER)
        if count:
            if self.result.first_token is None:
                self.result.first_token = time.monotonic()
            self.result.tokens += count
        if DONE_MARKER in window:
            self.result.done = True
            self.result.finished = time.monotonic()
            self.transport.close()
        self.tail = window[-(len(CONTENT_MARKER) - 1):]
        if self.tail.count(CONTENT_MARKER):  # pragma: no cover - tail is shorter
            self.tail = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.result.done and not self.result.error:
            self.result.error = f"closed early: {exc}"
        if not self.done.done():
            self.done.set_result(None)


def request_bytes(tokens: int, rate: float) -> bytes:
    script = orjson.dumps({"tokens": tokens, "rate": rate}).decode()
    body = orjson.dumps({"model": "bench", "messages": [
        {"role": "user", "content": f"#fake {script}"}]})
    return (b"POST /v1/stream HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))


async def drive(port: int, streams: int, tokens: int, rate: float) -> list[StreamResult]:
    loop = asyncio.get_running_loop()
    request = request_bytes(tokens, rate)
    results = [StreamResult() for _ in range(streams)]
    futures = []
    for result in results:
        done: asyncio.Future[None] = loop.create_future()
        futures.append(done)
        try:
            await loop.create_connection(lambda r=result, d=done: StreamClient(request, r, d),
                                         "127.0.0.1", port)
        except OSError as exc:
            result.error = str(exc)
            done.set_result(None)
    await asyncio.wait_for(asyncio.gather(*futures), timeout=600)
    return results


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def pinned(cpu: int, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > cpu:  # type: ignore[operator]
        return ["taskset", "-c", str(cpu), *argv]
    return argv


def start(argv: list[str], env: dict[str, str], pattern: str) -> tuple[subprocess.Popen[str], str]:
    """Start a process and wait for its log line; its stderr goes to a file, never a
    pipe that could fill up and stall it."""
    # lives as long as the process; the OS reclaims it with the benchmark run
    log = tempfile.NamedTemporaryFile("w+", prefix="sseserver-bench-")  # noqa: SIM115
    process = subprocess.Popen(argv, env=env, stderr=log, text=True)
    process.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        match = re.search(pattern, Path(log.name).read_text())
        if match:
            return process, match.group(1)
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{' '.join(argv)} did not start: {Path(log.name).read_text()[-500:]}")


def run(streams: int, tokens: int, rate: float) -> RunResult:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SSESERVER_", "OPENAI_", "ANTHROPIC_"))}
    with ExitStack() as stack:
        fake, fake_url = start(pinned(1, [sys.executable, "-m", "sseserver", "fake-provider",
                                          "--port", "0"]),
                               {**env, "PYTHONUNBUFFERED": "1"}, r"on (http://\S+)")
        stack.callback(_stop, fake)
        server_env = {**env, "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": fake_url + "/v1",
                      "SSESERVER_SERVER_MAX_CONNECTIONS": str(streams * 2 + 100)}
        server, url = start(pinned(0, [sys.executable, "-m", "sseserver", "serve", "--port",
                                       "0"]), server_env,
                            r"listening on (http://\S+)")
        stack.callback(_stop, server)
        port = int(url.rsplit(":", 1)[1])
        os.sched_setaffinity(0, {1}) if hasattr(os, "sched_setaffinity") else None
        cpu_before = cpu_seconds(server.pid)
        started = time.monotonic()
        results = asyncio.run(drive(port, streams, tokens, rate))
        wall = time.monotonic() - started
        cpu = cpu_seconds(server.pid) - cpu_before
    return RunResult(streams, tokens, wall, cpu, results)


def _stop(process: subprocess.Popen[str]) -> None:
    with suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0.0, help="tokens/s per stream, 0 = max")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    for streams in args.streams:
        summary = run(streams, args.tokens, args.rate).summary()
        if args.json:
            print(orjson.dumps(summary).decode())
        else:
            print("  ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
