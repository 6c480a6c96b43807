"""The real command: `sseserver serve` as a process, its signals, its errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import orjson
from httpx_sse import connect_sse

from tests.e2e.served import serve
from tests.e2e.stack import request_body


def test_demo_server_streams_and_sigterm_drains_with_exit_0() -> None:
    env = {"SSESERVER_STREAMS_DRAIN_TIMEOUT": "0.5"}
    with serve("--demo", env=env) as (process, url), httpx.Client(timeout=5) as probe:
        assert probe.get(url + "/readyz").status_code == 200  # a kept-alive connection
        events = []
        with httpx.Client(timeout=10) as client, connect_sse(
                client, "POST", url + "/v1/stream",
                json=request_body({"tokens": 1000, "rate": 20})) as source:
            for event in source.iter_sse():
                events.append(event)
                if len(events) == 3:
                    process.send_signal(signal.SIGTERM)
                    time.sleep(0.1)
                    # the listener is closed; a kept-alive connection hears "not ready"
                    assert probe.get(url + "/readyz").status_code == 503
                    refused = probe.post(url + "/v1/stream", json=request_body({}))
                    assert refused.status_code == 503
        assert events[0].event == "metadata"
        assert orjson.loads(events[0].data)["provider"] == "demo"
        assert events[-2].event == "error"
        error = orjson.loads(events[-2].data)
        assert error["type"] == "shutdown" and error["retryable"] is True
        assert events[-1].data == "[DONE]"
        assert process.wait(10) == 0


def test_stream_end_is_logged_as_one_json_line() -> None:
    with serve("--demo") as (process, url):
        httpx.post(url + "/v1/stream", json=request_body({"tokens": 2}), timeout=10)
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stderr is not None
        lines = [orjson.loads(line) for line in process.stderr.read().splitlines()
                 if line.startswith("{")]
    record = next(line for line in lines if line.get("event") == "stream_end")
    assert record["status"] == "ok"
    assert record["provider"] == "demo"
    assert record["events"] == 5
    assert set(record) >= {"id", "model", "ttft_ms", "duration_ms", "bytes", "reason"}


def test_bad_configuration_is_a_clear_error() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SSESERVER_")}
    result = subprocess.run(
        [sys.executable, "-m", "sseserver", "serve"], env={**base, "SSESERVER_SERVER_PROT": "1"},
        capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "unknown environment variable SSESERVER_SERVER_PROT" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "sseserver", "serve", "--config", "/nonexistent.toml"],
        env=base, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr


def test_fake_provider_command() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sseserver", "fake-provider", "--port", "0"],
        stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"on (http://\S+)", line)
        assert match, line
        stats = httpx.get(match.group(1) + "/_fake/stats", timeout=5).json()
        assert stats["requests"] == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    with open(path) as file:
        return [int(child) for child in file.read().split()]


def test_workers_share_the_port_restart_when_killed_and_drain_on_sigterm() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve("--demo", "--workers", "2", "--port", str(port)) as (process, url):
        deadline = time.monotonic() + 10
        while len(_children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = _children(process.pid)
        assert len(workers) == 2
        for _ in range(6):  # both workers answer on the one port
            response = httpx.post(url + "/v1/stream", json=request_body({"tokens": 1}),
                                  timeout=10)
            assert response.status_code == 200 and b"[DONE]" in response.content
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = _children(process.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.05)
        assert len(now) == 2 and workers[0] not in now, "a dead worker is replaced"
        # serve() read the first worker's start line; the second one's and the
        # replacement's follow, on the same port
        assert process.stderr is not None
        listening: list[str] = []
        while len(listening) < 2:
            line = process.stderr.readline()
            assert line, "the log ended before the replacement worker started"
            listening += re.findall(r"listening on (http://\S+)", line)
        assert listening == [f"http://127.0.0.1:{port}"] * 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_exit_when_their_parent_is_killed() -> None:
    # Nobody would supervise them or pass them a stop signal: left running, they would
    # hold the port for ever, beside the workers of a parent started again.
    with serve("--demo", "--workers", "2") as (process, url):
        deadline = time.monotonic() + 10
        while len(_children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = _children(process.pid)
        assert len(workers) == 2
        response = httpx.post(url + "/v1/stream", json=request_body({"tokens": 1}),
                              timeout=10)
        assert response.status_code == 200
        process.kill()
        process.wait(10)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in workers), "a worker outlived its parent"
