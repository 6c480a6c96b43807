"""Time to first token added by the gateway over the fake provider.

    python -m benchmarks.ttft --requests 300

Sends the same streaming request, one at a time, straight to the fake provider and
through `sseserver serve` (pinned to CPU 0; the fake and this client on CPU 1), each on
a new connection, and reports p50/p99 of the time from sending the request to the
first content byte, for both and for the difference.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from contextlib import ExitStack

import orjson

from benchmarks.load import _stop, clean_env, pinned, start, start_fake_provider


def first_token_time(port: int, path: bytes, body: bytes, marker: bytes) -> float:
    request = (b"POST %b HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
               b"Authorization: Bearer bench\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%b"
               % (path, len(body), body))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        sock.sendall(request)
        seen = b""
        while marker not in seen:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"stream ended before the first token: {seen[-200:]!r}")
            seen += chunk
        elapsed = time.perf_counter() - started
        while sock.recv(65536):
            pass
    return elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    env = clean_env()
    messages = [{"role": "user", "content": '#fake {"tokens": 3}'}]
    with ExitStack() as stack:
        fake, fake_port = start_fake_provider(env)
        stack.callback(_stop, fake)
        server, url = start(pinned(0, [sys.executable, "-m", "sseserver", "serve", "--port",
                                       "0"]),
                            {**env, "OPENAI_API_KEY": "bench",
                             "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1"},
                            r"listening on (http://\S+)")
        stack.callback(_stop, server)
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {1})
        gateway_port = int(url.rsplit(":", 1)[1])
        direct_body = orjson.dumps({"model": "m", "stream": True, "messages": messages})
        gateway_body = orjson.dumps({"model": "m", "messages": messages})
        direct, through = [], []
        for _ in range(args.requests):
            direct.append(first_token_time(fake_port, b"/v1/chat/completions", direct_body,
                                           b'"content":"tok0 "'))
            through.append(first_token_time(gateway_port, b"/v1/stream", gateway_body,
                                            b'data: {"content"'))
    added = [t - d for t, d in zip(through, direct, strict=True)]
    for name, values in (("direct", direct), ("gateway", through), ("added", added)):
        print(f"{name:8} p50={statistics.median(values) * 1000:.3f} ms  "
              f"p99={percentile(values, 0.99) * 1000:.3f} ms")


if __name__ == "__main__":
    main()
