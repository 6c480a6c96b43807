"""A soak: streams without pause for minutes, some resumable, and the server's RSS and
per-event CPU over time.

    python -m benchmarks.soak --concurrency 300 --minutes 4 --resumable 0.2 --retention 60

Starts the fake provider and ``sseserver serve`` (its retention window shortened, so
that it fills within the run), keeps ``concurrency`` streams of T tokens running (a
new one as each ends; that share of them ``"resumable": true``), and prints a row per
interval: the server's RSS, its CPU seconds, events relayed, and events per
CPU-second. Once the window is full the finished streams held stay level, so should
RSS and the cost of an event. With ``--stats`` the server is
:mod:`benchmarks.serve_stats`, and its lines on where the memory is (allocator arenas,
glibc's heap, live objects) follow the table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import orjson
import uvloop

from benchmarks.load import (
    _stop,
    clean_env,
    contender_argv,
    cpu_seconds,
    free_port,
    pinned,
    rss_bytes,
    start,
    start_fake_provider,
)

MiB = 1024 * 1024


def request(tokens: int, rate: float, resumable: bool) -> bytes:
    script = orjson.dumps({"tokens": tokens, "rate": rate}).decode()
    body = orjson.dumps({"model": "soak", "resumable": resumable,
                         "messages": [{"role": "user", "content": f"#fake {script}"}]})
    return (b"POST /v1/stream HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))


class Counts:
    def __init__(self) -> None:
        self.events = 0
        self.streams = 0
        self.errors = 0


async def one_stream(port: int, data: bytes, counts: Counts) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        counts.errors += 1
        await asyncio.sleep(0.1)
        return
    try:
        writer.write(data)
        while chunk := await reader.read(65536):
            counts.events += chunk.count(b"\n\n")
        counts.streams += 1
    except OSError:
        counts.errors += 1
    finally:
        writer.close()


async def worker(port: int, requests: tuple[bytes, bytes], share: float, counts: Counts,
                 until: float) -> None:
    while time.monotonic() < until:
        await one_stream(port, requests[random.random() < share], counts)


async def soak(port: int, pid: int, args: argparse.Namespace) -> None:
    requests = (request(args.tokens, args.rate, False), request(args.tokens, args.rate, True))
    counts = Counts()
    started = time.monotonic()
    until = started + args.minutes * 60
    workers = [asyncio.ensure_future(worker(port, requests, args.resumable, counts, until))
               for _ in range(args.concurrency)]
    print(f"{'s':>5} {'RSS MiB':>8} {'streams':>8} {'events':>9} {'CPU s':>6} "
          f"{'events/CPU-s':>12} {'errors':>6}", flush=True)
    cpu, events = cpu_seconds(pid), 0
    while time.monotonic() < until:
        await asyncio.sleep(args.interval)
        now_cpu, now_events = cpu_seconds(pid), counts.events
        used = now_cpu - cpu
        rate = (now_events - events) / used if used else 0.0
        print(f"{time.monotonic() - started:5.0f} {rss_bytes(pid) / MiB:8.1f} "
              f"{counts.streams:8d} {now_events - events:9d} {used:6.2f} {rate:12,.0f} "
              f"{counts.errors:6d}", flush=True)
        cpu, events = now_cpu, now_events
    await asyncio.gather(*workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--resumable", type=float, default=0.2, help="share resumable")
    parser.add_argument("--retention", type=float, default=60.0, help="s, streams.retention")
    parser.add_argument("--interval", type=float, default=15.0, help="s between rows")
    parser.add_argument("--stats", action="store_true",
                        help="the server logs where its memory is (benchmarks.serve_stats)")
    args = parser.parse_args()
    env = clean_env()
    with ExitStack() as stack:
        fake, fake_port = start_fake_provider(env)
        stack.callback(_stop, fake)
        argv, extra = contender_argv("sseserver", fake_port, 1)
        extra["SSESERVER_STREAMS_RETENTION"] = str(args.retention)
        if args.stats:
            argv = [sys.executable, "-m", "benchmarks.serve_stats", "--port",
                    str(free_port()), "--interval", str(args.interval)]
        server, url = start(pinned(0, argv), {**env, **extra}, r"listening on (http://\S+)")
        stack.callback(_stop, server)
        uvloop.run(soak(int(url.rsplit(":", 1)[1]), server.pid, args))
        if args.stats:
            log = Path(server.log.name).read_text()  # type: ignore[attr-defined]
            print("\n".join(line for line in log.splitlines() if line.startswith("stats:")))


if __name__ == "__main__":
    main()
