"""Stopping `sseserver serve` as a user does: Ctrl-C drains, a second Ctrl-C stops at once.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group, so the
server runs in a process group of its own here and the test signals that group.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import orjson
from httpx_sse import connect_sse

from tests.e2e.stack import request_body

# Long enough that a stream which ends before it was cut by the second Ctrl-C.
DRAIN_TIMEOUT = 60
# Generous for a shared machine; the drain alone would take DRAIN_TIMEOUT.
STOP_BOUND = 10.0


@contextmanager
def serve_in_own_group(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("SSESERVER_", "OPENAI_", "ANTHROPIC_"))}
    environment["SSESERVER_STREAMS_DRAIN_TIMEOUT"] = str(DRAIN_TIMEOUT)
    process = subprocess.Popen([sys.executable, "-m", "sseserver", "serve", "--demo", *args],
                               env=environment, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        assert process.stderr is not None
        url = ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not url:
            line = process.stderr.readline()
            match = re.search(r"listening on (http://\S+)", line)
            url = match.group(1) if match else url
            if not line and process.poll() is not None:
                break
        assert url, "the server did not start"
        yield process, url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _ctrl_c_twice_during_a_stream(process: subprocess.Popen[str], url: str) -> None:
    events = []
    second_ctrl_c_at = 0.0
    with httpx.Client(timeout=30) as client, connect_sse(
            client, "POST", url + "/v1/stream",
            json=request_body({"tokens": 2000, "rate": 20})) as source:
        for event in source.iter_sse():
            events.append(event)
            if len(events) == 3:
                os.killpg(process.pid, signal.SIGINT)
            elif len(events) == 8:  # the stream went on after the first Ctrl-C
                assert process.poll() is None
                os.killpg(process.pid, signal.SIGINT)
                second_ctrl_c_at = time.monotonic()
    assert time.monotonic() - second_ctrl_c_at < STOP_BOUND
    assert events[-2].event == "error"
    assert orjson.loads(events[-2].data)["type"] == "shutdown"
    assert events[-1].data == "[DONE]"
    assert process.wait(STOP_BOUND) == 0


def test_second_ctrl_c_stops_at_once_with_a_stream_in_flight() -> None:
    with serve_in_own_group("--port", "0") as (process, url):
        _ctrl_c_twice_during_a_stream(process, url)
        assert process.stderr is not None
        log = process.stderr.read()
    assert "a second Ctrl-C stops at once" in log
    assert "stopping at once" in log


def test_second_ctrl_c_stops_every_worker_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve_in_own_group("--workers", "2", "--port", str(port)) as (process, url):
        _ctrl_c_twice_during_a_stream(process, url)


def test_one_ctrl_c_to_workers_drains_and_lets_the_stream_finish() -> None:
    """A Ctrl-C reaches parent and workers: together that is one request, not two."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve_in_own_group("--workers", "2", "--port", str(port)) as (process, url):
        events = []
        with httpx.Client(timeout=30) as client, connect_sse(
                client, "POST", url + "/v1/stream",
                json=request_body({"tokens": 10, "rate": 20})) as source:
            for event in source.iter_sse():
                events.append(event)
                if len(events) == 2:
                    os.killpg(process.pid, signal.SIGINT)
        contents = [orjson.loads(e.data)["content"] for e in events if e.event == "message"
                    and e.data != "[DONE]"]
        assert contents == [f"tok{i} " for i in range(10)]
        assert events[-1].data == "[DONE]"
        assert process.wait(STOP_BOUND) == 0
