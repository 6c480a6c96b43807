"""Memory of finished resumable streams held for resuming (the retention window).

    python -m benchmarks.held --streams 2000 --tokens 40 [--top 12]

Runs the fake provider and a server in this process, starts N resumable streams
(``POST /v1/streams``) of T tokens each, waits until every one has ended, and reports
what the held streams cost: bytes per stream that tracemalloc sees (live Python
objects), and the lines that allocated the most of it; the objects per stream that the
collector tracks (each full collection walks them all), by type; the stream logs
alone, too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tracemalloc
from collections import Counter

import orjson

from sseserver.config import load_config
from sseserver.core.stream_log import StreamLog
from sseserver.fake import FakeProvider
from sseserver.server import Server

# Streams started at once: enough to keep the server busy, few enough for its queue.
BATCH = 100


async def start_streams(port: int, streams: int, tokens: int) -> None:
    body = orjson.dumps({"model": "m", "messages": [
        {"role": "user",
         "content": "#fake " + orjson.dumps({"tokens": tokens, "rate": 0}).decode()}]})
    request = (b"POST /v1/streams HTTP/1.1\r\nHost: held\r\nContent-Type: application/json"
               b"\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
    for first in range(0, streams, BATCH):
        await asyncio.gather(*(post(port, request)
                               for _ in range(min(BATCH, streams - first))))


async def post(port: int, request: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 201"):
        raise RuntimeError(head.decode("latin-1"))
    writer.close()
    await writer.wait_closed()


async def measure(streams: int, tokens: int, top: int) -> None:
    fake = FakeProvider("127.0.0.1", 0)
    await fake.start()
    env = {"OPENAI_API_KEY": "sk-held", "OPENAI_BASE_URL": fake.base_url + "/v1"}
    server = Server(load_config(None, env, {"server.port": 0, "streams.retention": 3600.0}))
    await server.start()
    try:
        await start_streams(server.port, 20, tokens)  # warm every cache and free list
        await ended(server)
        gc.collect()
        tracked = Counter(type(o).__name__ for o in gc.get_objects())
        tracemalloc.start(8)
        before = tracemalloc.take_snapshot()
        await start_streams(server.port, streams, tokens)
        await ended(server)
        gc.collect()
        after = tracemalloc.take_snapshot()
        held = len(server.gateway.store)
        report(before, after, streams, held, top)
        tracked_after = Counter(type(o).__name__ for o in gc.get_objects())
        tracked_after.subtract(tracked)
        print(f"{tracked_after.total() / streams:.1f} objects tracked by the collector per "
              "held stream: " + ", ".join(f"{name} {count / streams:.1f}" for name, count
                                          in tracked_after.most_common(top)))
    finally:
        tracemalloc.stop()
        await server.close()
        await fake.close()


async def ended(server: Server) -> None:
    while server.gateway.relays:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # connections closing


def report(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, streams: int,
           held: int, top: int) -> None:
    stats = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in stats)
    print(f"{streams} streams ended, {held} held: {total / streams:,.0f} bytes per held "
          f"stream (tracemalloc)")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / streams:8,.0f} B  {stat.count_diff / streams:6.1f} "
              f"blocks  {frame.filename.rpartition('sseserver/')[2]}:{frame.lineno}")


def log_alone(tokens: int, logs: int = 2000) -> float:
    """Bytes per finished log of ``tokens`` token frames, the metadata, usage and end."""
    frames = [b'id: 1\nevent: metadata\ndata: {"stream_id":"3mfb0DOKGpcQ3-dgDqCDQw",'
              b'"provider":"openai","model":"m"}\n\n']
    frames += [b'id: %d\ndata: {"content":"tok%d "}\n\n' % (n + 2, n) for n in range(tokens)]
    frames += [b'id: %d\nevent: usage\ndata: {"input_tokens":10,"output_tokens":%d}\n\n'
               % (tokens + 2, tokens), b"id: %d\ndata: [DONE]\n\n" % (tokens + 3)]
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    held = []
    for _ in range(logs):
        log = StreamLog()
        for frame in frames:
            log.append(b"%b" % frame)  # each its own object, as a formatter's are
        log.finish()
        held.append(log)
    size = (tracemalloc.get_traced_memory()[0] - start) / logs
    tracemalloc.stop()
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    print(f"a finished log alone ({args.tokens} tokens): "
          f"{log_alone(args.tokens):,.0f} bytes")
    asyncio.run(measure(args.streams, args.tokens, args.top))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
