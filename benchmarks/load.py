"""Load benchmark: N concurrent streams through a real server process, against peers.

    python -m benchmarks.load --streams 100 1000 --tokens 40 --rate 20
    python -m benchmarks.load --contenders sseserver floor starlette aiohttp --plot out.png
    python -m benchmarks.load --streams 1000 --resumable --store redis

For each contender (sseserver, and peers doing the same job: the floor, a minimal
hand-written uvloop relay; uvicorn + sse-starlette + httpx; aiohttp + aiohttp-sse;
Node.js + Express, benchmarks/peers/express_relay.mjs) it
starts the fake provider and the server as separate processes, the server pinned to
CPU 0 and the fake provider and this load generator to CPU 1 (`taskset`), opens N
streams at once over raw sockets and reports: events/s delivered, events per
CPU-second of the server process (from /proc), added latency p50/p99 (each token
carries the fake's send time, CLOCK_MONOTONIC being shared by all processes), p99 gap
between frames of one stream, time to first token, RSS per stream, and errors (every
stream must end with [DONE] after the expected number of tokens). Each server first
serves one warm-up stream outside the measurement. With --repeat K, each contender
runs K times per N, in turns, and the table shows its median run. With --resumable
every stream is a resumable one (its POST is its first reader); --store redis starts a
redis-server too (CPU 1), points the server's streams.store at it, and reports Redis's
CPU, its memory per stream and its commands per event.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.redis_probe import RedisProbe

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CONTENT_MARKER = b'data: {"content"'
# the same token as a chat.completion.chunk of /v1/chat/completions
CHAT_CONTENT_MARKER = b'"delta":{"content"'
DONE_MARKER = b"data: [DONE]"
STAMP = re.compile(rb"t(\d{6,}) ")
CONTENDERS = ("sseserver", "sseserver-chat", "floor", "starlette", "aiohttp", "express")
# The Node/Express peer runs from the repository's npm packages (`npm ci`).
EXPRESS_RELAY = Path(__file__).resolve().parent / "peers" / "express_relay.mjs"
# Contenders that stream another endpoint than /v1/stream: the same server, its
# OpenAI-compatible endpoint (the same relay with the chat.completion.chunk formatter).
CHAT_PATH = "/v1/chat/completions"
PATHS = {"sseserver-chat": CHAT_PATH}
# Served by every contender before its measurement: first-use costs (lazy imports,
# first allocations) are not what a running server spends per stream.
WARMUP_STREAMS = 1


@dataclass
class StreamResult:
    tokens: int = 0
    done: bool = False
    error: str = ""
    started: float = 0.0
    first_token: float | None = None
    latencies: list[float] = field(default_factory=list)  # seconds, per token
    gaps: list[float] = field(default_factory=list)  # seconds between frames
    last_arrival: float | None = None


@dataclass
class RunResult:
    contender: str
    streams: int
    tokens_per_stream: int
    wall: float
    server_cpu: float
    rss_idle: int
    rss_active: int
    results: list[StreamResult] = field(default_factory=list)
    store: dict[str, Any] = field(default_factory=dict)  # what the run cost Redis

    @property
    def events(self) -> int:
        return sum(r.tokens for r in self.results)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results
                   if r.error or not r.done or r.tokens != self.tokens_per_stream)

    def summary(self) -> dict[str, Any]:
        ttft = [(r.first_token - r.started) * 1000 for r in self.results
                if r.first_token is not None]
        latency = [v * 1000 for r in self.results for v in r.latencies]
        gaps = [v * 1000 for r in self.results for v in r.gaps]
        return {
            "contender": self.contender, "streams": self.streams, "events": self.events,
            "errors": self.errors, "wall_s": round(self.wall, 3),
            "server_cpu_s": round(self.server_cpu, 3),
            "events_per_s": round(self.events / self.wall) if self.wall else 0,
            "events_per_cpu_s": round(self.events / self.server_cpu) if self.server_cpu else 0,
            "latency_p50_ms": _pct(latency, 0.5), "latency_p99_ms": _pct(latency, 0.99),
            "gap_p99_ms": _pct(gaps, 0.99), "ttft_p50_ms": _pct(ttft, 0.5),
            "ttft_p99_ms": _pct(ttft, 0.99),
            "rss_per_stream_kib": round((self.rss_active - self.rss_idle) / self.streams / 1024,
                                        2),
            **self.store,
        }


def _pct(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))], 3)


class StreamClient(asyncio.Protocol):
    """Counts content frames, reads their stamps, waits for [DONE]."""

    def __init__(self, request: bytes, result: StreamResult, done: asyncio.Future[None],
                 stamped: bool, marker: bytes = CONTENT_MARKER) -> None:
        self.request = request
        self.marker = marker
        self.result = result
        self.done = done
        self.stamped = stamped
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.result.started = time.monotonic()
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now_ns = time.monotonic_ns()
        now = now_ns / 1e9
        buffer = self.buffer + data
        # the end of the last complete event (peers may end lines with CRLF)
        cut = max(buffer.rfind(b"\n\n") + 2, buffer.rfind(b"\n\r\n") + 3, 0)
        complete, self.buffer = buffer[:cut], buffer[cut:]
        count = complete.count(self.marker)
        result = self.result
        if count:
            if result.first_token is None:
                result.first_token = now
            if result.last_arrival is not None:
                result.gaps.append(now - result.last_arrival)
            result.last_arrival = now
            result.tokens += count
            if self.stamped:
                result.latencies.extend((now_ns - int(m)) / 1e9 for m in STAMP.findall(complete))
        if DONE_MARKER in complete:
            result.done = True
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.result.done and not self.result.error:
            self.result.error = f"closed early: {exc}"
        if not self.done.done():
            self.done.set_result(None)


def request_bytes(tokens: int, rate: float, stamp: bool, path: str = "/v1/stream",
                  resumable: bool = False) -> bytes:
    script = orjson.dumps({"tokens": tokens, "rate": rate, "stamp": stamp}).decode()
    request: dict[str, Any] = {"model": "bench", "messages": [
        {"role": "user", "content": f"#fake {script}"}]}
    if resumable:
        request["resumable"] = True
    if path == CHAT_PATH:
        request["stream"] = True
    body = orjson.dumps(request)
    return (b"POST %b HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%b" % (
                path.encode(), len(body), body))


async def drive(port: int, streams: int, tokens: int, rate: float, stamp: bool = False,
                path: str = "/v1/stream", resumable: bool = False) -> list[StreamResult]:
    loop = asyncio.get_running_loop()
    request = request_bytes(tokens, rate, stamp, path, resumable)
    marker = CHAT_CONTENT_MARKER if path == CHAT_PATH else CONTENT_MARKER
    results = [StreamResult() for _ in range(streams)]
    futures = []
    for result in results:
        done: asyncio.Future[None] = loop.create_future()
        futures.append(done)
        try:
            await loop.create_connection(
                lambda r=result, d=done: StreamClient(request, r, d, stamp, marker),
                "127.0.0.1", port)
        except OSError as exc:
            result.error = str(exc)
            done.set_result(None)
    await asyncio.wait_for(asyncio.gather(*futures), timeout=900)
    return results


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def pinned(cpu: int, argv: list[str]) -> list[str]:
    cpus = os.cpu_count() or 1
    if shutil.which("taskset") and cpus > cpu:
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
        if match and _accepts(match.group(1)):
            return process, match.group(1)
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{' '.join(argv)} did not start: {Path(log.name).read_text()[-500:]}")


def _accepts(url: str) -> bool:
    """True once the server accepts connections (some announce before binding)."""
    try:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def contender_argv(name: str, fake_port: int, workers: int) -> tuple[list[str], dict[str, str]]:
    if name in ("sseserver", "sseserver-chat"):
        return ([sys.executable, "-m", "sseserver", "serve", "--port", str(free_port()),
                 "--workers", str(workers)],
                {"OPENAI_API_KEY": "bench",
                 "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
                 "SSESERVER_SERVER_MAX_CONNECTIONS": "100000",
                 # every stream comes from 127.0.0.1, as through a reverse proxy
                 "SSESERVER_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0"})
    if name == "express":
        node = shutil.which("node")
        if node is None:
            raise SystemExit("the express contender needs Node.js and `npm ci`")
        return [node, str(EXPRESS_RELAY), str(free_port()), str(fake_port)], {}
    module = {"floor": "floor", "starlette": "starlette_app", "aiohttp": "aiohttp_app"}[name]
    return ([sys.executable, "-m", f"benchmarks.peers.{module}", str(free_port()),
             str(fake_port)], {})


def clean_env() -> dict[str, str]:
    """This environment without any setting of the server's or a provider's: each
    benchmark says what its processes get."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SSESERVER_", "OPENAI_", "ANTHROPIC_"))}


def start_fake_provider(env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    """The fake provider on CPU 1 and a free port: (its process, its port)."""
    fake, fake_url = start(pinned(1, [sys.executable, "-m", "sseserver", "fake-provider",
                                      "--port", "0"]), env, r"on (http://\S+)")
    return fake, int(fake_url.rsplit(":", 1)[1])


def run(contender: str, streams: int, tokens: int, rate: float, stamp: bool = True,
        workers: int = 1, resumable: bool = False, store: str = "memory") -> RunResult:
    env = clean_env()
    with ExitStack() as stack:
        redis = None
        if store == "redis":
            redis = RedisProbe()
            redis.start(pinned(1, []))
            stack.callback(redis.stop)
            env["SSESERVER_STREAMS_STORE"] = redis.url
        fake, fake_port = start_fake_provider(env)
        stack.callback(_stop, fake)
        argv, extra_env = contender_argv(contender, fake_port, workers)
        # the server gets CPU 0; with workers, all of them share it unless --workers says
        server_cpu = "0" if workers == 1 else "0,1"
        command = ["taskset", "-c", server_cpu, *argv] if shutil.which("taskset") else argv
        server, url = start(command, {**env, **extra_env}, r"listening on (http://\S+)")
        stack.callback(_stop, server)
        port = int(url.rsplit(":", 1)[1])
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
        pids = _family(server.pid)
        asyncio.run(drive(port, WARMUP_STREAMS, 1, 0.0, resumable=resumable))
        rss_idle = sum(map(rss_bytes, pids))
        if redis is not None:
            redis.begin()
        cpu_before = sum(map(cpu_seconds, pids))
        started = time.monotonic()
        results = asyncio.run(_drive_sampling(port, streams, tokens, rate, stamp, pids,
                                              PATHS.get(contender, "/v1/stream"), resumable))
        wall = time.monotonic() - started
        cpu = sum(map(cpu_seconds, pids)) - cpu_before
        rss_active = _PEAK_RSS.pop() if _PEAK_RSS else rss_idle
        outcome = RunResult(contender, streams, tokens, wall, cpu, rss_idle, rss_active,
                            results)
        if redis is not None:
            outcome.store = redis.report(streams, outcome.events)
    return outcome


_PEAK_RSS: list[int] = []


async def _drive_sampling(port: int, streams: int, tokens: int, rate: float, stamp: bool,
                          pids: list[int], path: str, resumable: bool = False
                          ) -> list[StreamResult]:
    """Drive the load while sampling the server's RSS (its peak is the active RSS)."""
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            with suppress(OSError):
                peak = max(peak, sum(map(rss_bytes, pids)))
            await asyncio.sleep(0.05)

    sampler = asyncio.ensure_future(sample())
    try:
        return await drive(port, streams, tokens, rate, stamp, path, resumable)
    finally:
        sampler.cancel()
        _PEAK_RSS.append(peak)


def _family(pid: int) -> list[int]:
    """The process and its children (workers), after they started."""
    time.sleep(0.2)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [pid]
    if children.exists():
        for child in children.read_text().split():
            found.extend(_family(int(child)))
    return found


def _stop(process: subprocess.Popen[str]) -> None:
    with suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


COLUMNS = ("contender", "streams", "errors", "events_per_s", "events_per_cpu_s",
           "latency_p50_ms", "latency_p99_ms", "gap_p99_ms", "ttft_p50_ms",
           "rss_per_stream_kib")


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median events per CPU-second (the lower middle of an even
    count), with every run's figure beside it and the errors of all of them."""
    ordered = sorted(runs, key=lambda run: run["events_per_cpu_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        chosen["events_per_cpu_s_runs"] = [run["events_per_cpu_s"] for run in runs]
        chosen["errors"] = sum(run["errors"] for run in runs)
    return chosen


def table(rows: list[dict[str, Any]]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.rjust(widths[c]) for c in COLUMNS)]
    lines.extend("  ".join(str(r[c]).rjust(widths[c]) for c in COLUMNS) for r in rows)
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for contender in dict.fromkeys(r["contender"] for r in rows):
        mine = [r for r in rows if r["contender"] == contender]
        n = [r["streams"] for r in mine]
        left.plot(n, [r["events_per_cpu_s"] for r in mine], marker="o", label=contender)
        right.plot(n, [r["latency_p99_ms"] for r in mine], marker="o", label=contender)
    for axis, title in ((left, "events per CPU-second of the server"),
                        (right, "p99 added latency (ms)")):
        axis.set_xscale("log")
        axis.set_xlabel("concurrent streams")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    right.set_yscale("log")
    left.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100])
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--rate", type=float, default=20.0,
                        help="tokens/s per stream (0 = as fast as possible)")
    parser.add_argument("--contenders", nargs="+", default=["sseserver"], choices=CONTENDERS)
    parser.add_argument("--workers", type=int, default=1, help="sseserver worker processes")
    parser.add_argument("--resumable", action="store_true",
                        help="resumable streams (sseserver only): each POST is the first "
                             "reader of its stream's log")
    parser.add_argument("--store", choices=("memory", "redis"), default="memory",
                        help="sseserver's streams.store; redis starts a redis-server and "
                             "implies --resumable")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--plot", help="write a PNG plot to this file")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per contender and N, taken in turns; the table shows "
                             "the run with the median events per CPU-second")
    args = parser.parse_args()
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    rows = []
    for streams in args.streams:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.contenders}
        for _ in range(args.repeat):  # in turns: a noisy spell hits every contender
            for contender in args.contenders:
                summary = run(contender, streams, args.tokens, args.rate,
                              workers=args.workers,
                              resumable=args.resumable or args.store == "redis",
                              store=args.store).summary()
                summary.update(tokens=args.tokens, rate=args.rate, workers=args.workers,
                               store=args.store)
                runs[contender].append(summary)
                print(orjson.dumps(summary).decode(), file=sys.stderr, flush=True)
        rows.extend(median_run(runs[contender]) for contender in args.contenders)
    print(table(rows))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
