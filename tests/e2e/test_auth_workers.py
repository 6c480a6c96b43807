"""The gate's limits hold for the server, not per worker: ``--workers 2`` processes
count streams, requests a minute and spent create tokens in one shared table."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import sseserver
from sseserver.core.auth import hash_key
from tests.e2e.served import serve
from tests.e2e.stack import request_body
from tests.e2e.test_process import _children

LIMITED_KEY = "gw-workers-Lm4Qcanary8Tz"
SLOW_KEY = "gw-workers-Rp2Wcanary5Hx"
SECRET = "token-secret-workers-" + "7" * 16


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, str]]:
    """(parent pid, port, url) of ``sseserver serve --workers 2`` with both workers up."""
    config = Path(tmp_path_factory.mktemp("workers")) / "sseserver.toml"
    config.write_text(
        f'[auth]\ntoken_secret = "{SECRET}"\n'
        f'[auth.keys.limited]\nhash = "{hash_key(LIMITED_KEY)}"\nmax_streams = 10\n'
        f'[auth.keys.slow]\nhash = "{hash_key(SLOW_KEY)}"\nrequests_per_minute = 6\n')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve("--demo", "--workers", "2", "--port", str(port), "--config", str(config)
               ) as (process, url):
        _wait_for_workers(process.pid, 2)
        yield process.pid, port, url
        process.send_signal(signal.SIGTERM)  # the workers with it, not orphaned
        assert process.wait(15) == 0


def _wait_for_workers(parent: int, count: int, but_not: tuple[int, ...] = ()) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = _children(parent)
        if len(children) == count and not set(children) & set(but_not):
            time.sleep(0.5)  # a new worker's listener takes its share of connections
            return
        time.sleep(0.05)
    raise AssertionError("the workers did not start")


def _first_lines(port: int, credential: str, body: dict[str, object], count: int
                 ) -> tuple[list[socket.socket], list[bytes]]:
    """``count`` requests at once, each on its own connection (the kernel spreads
    them over the workers); the status of each, the sockets still open."""
    payload = json.dumps(body).encode()
    head = (f"POST /v1/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {credential}"
            f"\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
            ).encode()
    socks = []
    for _ in range(count):
        sock = _connect(port)
        sock.sendall(head + payload)
        socks.append(sock)
    return socks, [sock.recv(64).split(b" ")[1] for sock in socks]


def _connect(port: int) -> socket.socket:
    """A connection, once a worker listens (a new one may still be starting)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _close(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def test_200_parallel_requests_across_two_workers_admit_exactly_10(
        workers: tuple[int, int, str]) -> None:
    _, port, url = workers
    socks, statuses = _first_lines(port, LIMITED_KEY, request_body(
        {"tokens": 400, "rate": 40}), 200)
    try:
        assert statuses.count(b"200") == 10 and statuses.count(b"429") == 190
    finally:
        _close(socks)
    _wait_until_admitted(url)  # the clients left: their streams ended, in both workers


def _wait_until_admitted(url: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answers = [httpx.post(url + "/v1/stream", json=request_body(), timeout=10,
                              headers={"authorization": f"Bearer {LIMITED_KEY}"})
                   for _ in range(4)]  # new connections: either worker
        if all(a.status_code == 200 for a in answers):
            return
        time.sleep(0.1)
    raise AssertionError("the streams were not released")


def test_a_create_token_is_spent_for_every_worker(workers: tuple[int, int, str]) -> None:
    url = workers[2]
    for _ in range(20):  # on new connections: about half the second uses meet the other
        token = sseserver.mint_token(SECRET, "limited", ttl=60)
        statuses = []
        for _ in range(2):
            with httpx.Client() as client:
                statuses.append(client.post(url + "/v1/stream", json=request_body(
                    {"tokens": 1}), headers={"authorization": f"Bearer {token}"},
                    timeout=10).status_code)
        assert statuses == [200, 403]


def test_the_rate_bucket_is_the_servers(workers: tuple[int, int, str]) -> None:
    _, port, _ = workers
    socks, statuses = _first_lines(port, SLOW_KEY, request_body({"tokens": 1}), 30)
    _close(socks)
    # 6 a minute refills one every 10 s: a seventh only if the burst took that long;
    # counted per worker, 12 would pass
    assert statuses.count(b"200") in (6, 7) and statuses.count(b"200") + statuses.count(
        b"429") == 30


def test_a_dead_worker_releases_the_streams_it_held(workers: tuple[int, int, str]
                                                   ) -> None:
    parent, port, _ = workers
    socks, statuses = _first_lines(port, LIMITED_KEY, request_body(
        {"tokens": 400, "rate": 40}), 10)
    assert statuses.count(b"200") == 10
    before = _children(parent)
    try:
        for pid in before:  # the streams die with them, no end counted
            os.kill(pid, signal.SIGKILL)
        _wait_for_workers(parent, 2, but_not=tuple(before))
    finally:
        _close(socks)
    again, statuses = _first_lines(port, LIMITED_KEY, request_body(
        {"tokens": 400, "rate": 40}), 10)
    _close(again)
    assert statuses.count(b"200") == 10


def _key_streams(url: str, key: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f'sseserver_key_streams_total{{key="{key}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sseserver_key_streams_total for {key}")


def test_metrics_count_a_keys_streams_on_every_worker(workers: tuple[int, int, str]
                                                      ) -> None:
    url = workers[2]
    before = _key_streams(url, "limited")
    for _ in range(12):  # new connections: the kernel spreads them over both workers
        answer = httpx.post(url + "/v1/stream", json=request_body({"tokens": 1}),
                            headers={"authorization": f"Bearer {LIMITED_KEY}"}, timeout=10)
        assert answer.status_code == 200
    # whichever worker answers the scrape, it counts the other's streams too
    assert [_key_streams(url, "limited") - before for _ in range(4)] == [12.0] * 4
