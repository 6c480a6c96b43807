"""``sseserver serve --demo --workers 2`` as one server, in real processes on loopback:
a request for a stream lands on either worker (the kernel spreads connections,
SO_REUSEPORT) and is answered by the one that holds it; /metrics sums both; a killed
worker's streams are gone, the other's are not, and /readyz says so until it is back.

Each test shows that requests did land on the worker that does not hold their stream:
the handoffs counted in /metrics, by worker and direction.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from tests.e2e.served import serve
from tests.e2e.stack import request_body

WORKERS = 2


@dataclass
class Workers:
    process: subprocess.Popen[str]
    url: str
    log: list[str] = field(default_factory=list)

    def pids(self) -> dict[int, int]:
        """slot -> pid of its newest worker, from the workers' own log lines."""
        found: dict[int, int] = {}
        for line in list(self.log):
            match = re.search(r"worker (\d+) of \d+ \(pid (\d+)", line)
            if match:
                found[int(match.group(1))] = int(match.group(2))
        return found

    def metrics(self) -> dict[str, float]:
        text = httpx.get(self.url + "/metrics", timeout=10).text
        return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
                for line in text.splitlines() if line and not line.startswith("#")}

    def handoffs(self) -> tuple[float, float]:
        """Connections handed out and taken in, over all workers."""
        values = self.metrics()
        return tuple(sum(value for name, value in values.items()  # type: ignore[return-value]
                         if name.startswith("sseserver_worker_handoffs_total") and
                         f'direction="{direction}"' in name) for direction in ("out", "in"))

    def wait_ready(self, timeout: float = 20) -> None:
        wait_for(lambda: httpx.get(self.url + "/readyz", timeout=5).status_code == 200,
                 timeout, "the server is not ready")


def wait_for(predicate: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


@contextmanager
def workers(count: int = WORKERS) -> Iterator[Workers]:
    with socket.socket() as probe:  # one port for all (port 0 would give each its own)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve("--demo", "--workers", str(count), "--port", str(port)) as (process, url):
        served = Workers(process, url)
        threading.Thread(target=lambda: served.log.extend(process.stderr),  # type: ignore[arg-type]
                         daemon=True).start()
        wait_for(lambda: len(served.pids()) == count, 20, "the workers did not start")
        served.wait_ready()
        yield served
    assert not [line for line in served.log if "Traceback" in line]


@pytest.fixture(scope="module")
def server() -> Iterator[Workers]:
    with workers() as served:
        yield served


def start(server: Workers, **script: Any) -> str:
    response = httpx.post(server.url + "/v1/streams", json=request_body(script), timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["url"])


def read(server: Workers, url: str, after: int | None = None, limit: int | None = None
         ) -> list[ServerSentEvent]:
    """The stream's events after ``after``, on a connection of its own; ``limit``
    events at most, then the connection is cut."""
    headers = {"last-event-id": str(after)} if after is not None else {}
    events: list[ServerSentEvent] = []
    with httpx.Client(timeout=20) as client, \
            connect_sse(client, "GET", server.url + url, headers=headers) as source:
        assert source.response.status_code == 200, (url, source.response.status_code)
        for event in source.iter_sse():
            events.append(event)
            if len(events) == limit:
                break
    return events


def texts(events: list[ServerSentEvent]) -> list[str]:
    return [orjson.loads(e.data)["content"]
            for e in events if e.event == "message" and e.data != "[DONE]"]


def test_every_stream_is_served_whichever_worker_the_request_lands_on(
        server: Workers) -> None:
    before = server.metrics()
    urls = [start(server, tokens=3 + number, rate=20) for number in range(20)]
    assert {url.split("/")[-1].split(".")[0] for url in urls} == {"0", "1"}
    with ThreadPoolExecutor(len(urls)) as pool:  # each GET on a connection of its own
        readings = list(pool.map(lambda url: read(server, url), urls))
    for number, (url, events) in enumerate(zip(urls, readings, strict=True)):
        assert orjson.loads(events[0].data)["stream_id"] == url.rsplit("/", 1)[1]
        assert texts(events) == [f"tok{i} " for i in range(3 + number)]
        assert events[-1].data == "[DONE]"
    after = server.metrics()
    assert after["sseserver_streams_started_total"] - \
        before["sseserver_streams_started_total"] == 20
    assert after["sseserver_workers_missing"] == 0 and after["sseserver_workers"] == WORKERS
    out, taken_in = server.handoffs()
    assert out == taken_in and out >= 3  # ~10 of the 20 GETs landed on the other worker


def test_random_cuts_and_resumes_across_workers_see_every_event_once_in_order(
        server: Workers) -> None:
    chance = random.Random(15)
    urls = [start(server, tokens=150, rate=150) for _ in range(4)]
    seen: dict[str, list[ServerSentEvent]] = {url: [] for url in urls}
    out_before, _ = server.handoffs()
    for _ in range(50):
        url = chance.choice(urls)
        after = int(seen[url][-1].id) if seen[url] else None
        if seen[url] and seen[url][-1].data == "[DONE]":
            continue
        seen[url] += read(server, url, after, limit=chance.randint(1, 12))
    for url, events in seen.items():
        after = int(events[-1].id) if events else None
        if not events or events[-1].data != "[DONE]":
            events += read(server, url, after)
        assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
        assert texts(events) == [f"tok{i} " for i in range(150)]
    out_after, _ = server.handoffs()
    assert out_after - out_before >= 5  # resumes did land on the other worker


def test_delete_reaches_the_worker_that_holds_the_stream(server: Workers) -> None:
    before = server.metrics()
    url = start(server, tokens=1000, rate=20)
    answers = [httpx.delete(server.url + url, timeout=10) for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 8
    assert answers[0].json()["status"] == "cancelled"
    assert {a.json()["status"] for a in answers[1:]} == {"ended"}
    events = read(server, url)
    assert events[-1].data == "[DONE]" and any(e.event == "error" for e in events)
    after = server.metrics()
    assert after['sseserver_streams_total{status="cancelled"}'] - \
        before['sseserver_streams_total{status="cancelled"}'] == 1


def test_a_chat_turn_resumes_on_either_worker(server: Workers) -> None:
    chat_id = "chat w+\u00e9"
    body = {"id": chat_id, "model": "gpt-4o-mini", "trigger": "submit-message",
            "messages": [{"id": "u1", "role": "user", "parts": [
                {"type": "text", "text": "#fake " + orjson.dumps(
                    {"tokens": 400, "rate": 20}).decode()}]}]}
    resume_url = server.url + "/v1/chat/" + "chat%20w%2B%C3%A9" + "/stream"
    out_before, _ = server.handoffs()
    with httpx.Client(timeout=20) as client, client.stream(
            "POST", server.url + "/v1/chat", json=body) as turn:
        assert turn.status_code == 200
        # the replay's start, on a fresh connection each: twelve, so that all landing
        # on the worker running the turn (no handoff to see) is a 1-in-4096 chance
        for _ in range(12):
            with httpx.Client(timeout=20) as resumer, \
                    connect_sse(resumer, "GET", resume_url) as replay:
                assert replay.response.status_code == 200
                assert orjson.loads(next(replay.iter_sse()).data)["type"] == "start"
    assert server.handoffs()[0] > out_before  # asked, and handed to the one running it
    for _ in range(4):
        assert httpx.get(server.url + "/v1/chat/never/stream", timeout=10).status_code == 204


def test_pipelined_requests_after_a_handed_over_one_are_answered_in_order(
        server: Workers) -> None:
    urls = [start(server, tokens=2) for _ in range(6)]
    time.sleep(0.3)  # ended: each answer is whole
    out_before, _ = server.handoffs()
    for _ in range(4):  # on a fresh connection each: some land on the other worker
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
                                      ) as sock:
            sock.sendall(b"".join(f"GET {url} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
                                  for url in urls) + b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
                         b"Connection: close\r\n\r\n")
            data = b""
            sock.settimeout(10)
            while chunk := sock.recv(65536):
                data += chunk
        assert data.count(b"HTTP/1.1 200 OK") == len(urls) + 1
        assert data.count(b"data: [DONE]") == len(urls) and data.endswith(b'{"status":"ok"}')
    assert server.handoffs()[0] > out_before


def test_a_killed_worker_takes_its_streams_and_readiness_until_it_is_back() -> None:
    with workers() as server:
        urls: list[str] = []
        while {u.split("/")[-1][0] for u in urls} != {"0", "1"}:
            assert len(urls) < 40
            urls.append(start(server, tokens=5000, rate=20))  # live all test long
        lost = [u for u in urls if u.split("/")[-1].startswith("1.")]
        kept = [u for u in urls if u.split("/")[-1].startswith("0.")]
        os.kill(server.pids()[1], signal.SIGKILL)
        wait_for(lambda: httpx.get(server.url + "/readyz", timeout=5).status_code == 503,
                 5, "/readyz stays ready with a worker down")
        check_streams(server, lost, kept)
        server.wait_ready()
        out_before, _ = server.handoffs()
        check_streams(server, lost, kept)
        assert server.handoffs()[0] > out_before  # the new worker hands the old streams on
        fresh = [start(server, tokens=2) for _ in range(6)]
        assert any(u.split("/")[-1].startswith("1.1.") for u in fresh)
        for url in fresh:
            assert read(server, url)[-1].data == "[DONE]"


def check_streams(server: Workers, lost: list[str], kept: list[str]) -> None:
    for _ in range(6):  # fresh connections, on either worker
        for url in lost:
            answer = httpx.get(server.url + url, timeout=10)
            assert answer.status_code == 404 and "expired" in answer.text
        for url in kept:
            assert read(server, url, limit=1)


def test_one_kept_alive_connection_goes_from_worker_to_worker_with_its_requests(
        server: Workers) -> None:
    """Each request on the connection about the other worker's stream moves the
    connection there: neither side's giving it up resets or ends it."""
    urls: list[str] = []
    while {u.split("/")[-1][0] for u in urls} != {"0", "1"}:
        assert len(urls) < 40
        urls.append(start(server, tokens=2))
    time.sleep(0.3)  # ended: each answer is whole
    by_worker = {worker: next(u for u in urls if u.split("/")[-1][0] == worker)
                 for worker in "01"}
    out_before, _ = server.handoffs()
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        for turn in range(8):
            url = by_worker["01"[turn % 2]]
            sock.sendall(f"GET {url} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            answer = b""
            while not answer.endswith(b"0\r\n\r\n"):  # the chunked body's end
                chunk = sock.recv(65536)
                assert chunk, f"the connection ended at request {turn}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 OK") and b"data: [DONE]" in answer
    assert server.handoffs()[0] - out_before >= 7


def test_three_workers_each_reach_the_other_two() -> None:
    with workers(3) as server:
        urls = [start(server, tokens=2 + number % 5, rate=20) for number in range(30)]
        assert {url.split("/")[-1].split(".")[0] for url in urls} == {"0", "1", "2"}
        with ThreadPoolExecutor(10) as pool:
            readings = list(pool.map(lambda url: read(server, url), urls))
        for number, events in enumerate(readings):
            assert texts(events) == [f"tok{i} " for i in range(2 + number % 5)]
        values = server.metrics()
        assert values["sseserver_streams_started_total"] == 30
        assert values["sseserver_workers"] == 3 and values["sseserver_workers_missing"] == 0
        handed_in = {worker: values[f'sseserver_worker_handoffs_total{{worker="{worker}",'
                                    f'direction="in"}}'] for worker in "012"}
        assert sum(handed_in.values()) >= 5 and sum(v > 0 for v in handed_in.values()) >= 2
