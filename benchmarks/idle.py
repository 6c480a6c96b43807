"""Memory of idle streams: N streams waiting for a first token, heartbeats only.

    python -m benchmarks.idle --streams 5000 [--workers 2]

Starts the fake provider and `sseserver serve` (heartbeat every 1 s), opens N
streams whose provider waits a minute before its first token, waits until every
stream has had its response head and a heartbeat, then reports the server's RSS
(all processes) before and with the streams open, and per stream. Each stream holds a
client and an upstream socket, so one process needs 2N file descriptors: beyond the
open-file limit, use workers.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from contextlib import ExitStack

import orjson

from benchmarks.load import (
    _family,
    _stop,
    clean_env,
    free_port,
    rss_bytes,
    start,
    start_fake_provider,
)


class IdleClient(asyncio.Protocol):
    def __init__(self, request: bytes, ready: asyncio.Future[None]) -> None:
        self.request = request
        self.ready = ready

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if b": ping" in data and not self.ready.done():
            self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"stream closed: {exc}"))


async def hold(port: int, streams: int, seconds: float) -> int:
    body = orjson.dumps({"model": "m", "messages": [
        {"role": "user", "content": '#fake {"tokens": 1, "ttfb_ms": 60000}'}]})
    request = (b"POST /v1/stream HTTP/1.1\r\nHost: idle\r\nContent-Length: %d\r\n\r\n%b"
               % (len(body), body))
    loop = asyncio.get_running_loop()
    ready = []
    transports = []
    for _ in range(streams):
        future: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda f=future: IdleClient(request, f), "127.0.0.1", port)
        transports.append(transport)
        ready.append(future)
    results = await asyncio.wait_for(asyncio.gather(*ready, return_exceptions=True), 120)
    await asyncio.sleep(seconds)
    for transport in transports:
        transport.close()
    return sum(1 for r in results if r is None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    env = clean_env()
    with ExitStack() as stack:
        fake, fake_port = start_fake_provider(env)
        stack.callback(_stop, fake)
        server, url = start(
            [sys.executable, "-m", "sseserver", "serve", "--port", str(free_port()),
             "--workers", str(args.workers)],
            {**env, "OPENAI_API_KEY": "idle", "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
             "SSESERVER_STREAMS_HEARTBEAT_INTERVAL": "1",
             "SSESERVER_SERVER_MAX_CONNECTIONS": str(args.streams * 2),
             # every stream comes from 127.0.0.1, as through a reverse proxy; the
             # total stays derived from the open-file limit (9,990 under 20,000)
             "SSESERVER_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0"},
            r"listening on (http://\S+)")
        stack.callback(_stop, server)
        time.sleep(0.5)
        pids = _family(server.pid)
        before = sum(map(rss_bytes, pids))
        import uvloop

        async def run() -> tuple[int, int]:
            task = asyncio.ensure_future(hold(int(url.rsplit(":", 1)[1]), args.streams, 2.0))
            peak = 0
            while not task.done():
                peak = max(peak, sum(map(rss_bytes, pids)))
                await asyncio.sleep(0.25)
            return await task, peak

        ready, peak = uvloop.run(run())
    mib = 1024 * 1024
    print(f"streams={args.streams} heartbeating={ready} workers={args.workers} "
          f"rss_before={before / mib:.1f}MiB rss_with_streams={peak / mib:.1f}MiB "
          f"per_stream={(peak - before) / max(1, ready) / 1024:.2f}KiB")


if __name__ == "__main__":
    main()
