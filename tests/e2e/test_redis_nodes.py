"""Two server processes sharing one real redis-server, as two machines behind a load
balancer: a client cut at random points resumes on either, a DELETE on one stops the
generation on the other, and a server killed with SIGKILL leaves its readers elsewhere
an ``owner_lost`` error instead of a hang."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from httpx_sse import connect_sse

from sseserver.streams.redis import FOLLOW_BLOCK_MS, LEASE
from tests.e2e.served import serve
from tests.e2e.stack import request_body
from tests.streams.redis_server import RedisServer, free_port, needs_redis, redis_server

pytestmark = needs_redis


@contextmanager
def fake_provider() -> Iterator[str]:
    """``sseserver fake-provider`` in its own process; its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "sseserver", "fake-provider",
                                "--port", str(port), "--log-level", "warning"])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(url + "/_fake/stats", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the fake provider did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.kill()
        process.wait(10)


@contextmanager
def node(redis: RedisServer, fake: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {"OPENAI_API_KEY": "sk-test-key", "OPENAI_BASE_URL": fake + "/v1",
           "SSESERVER_STREAMS_STORE": redis.url, "SSESERVER_STREAMS_RETENTION": "60",
           "SSESERVER_STREAMS_HEARTBEAT_INTERVAL": "0.5"}
    with serve(env=env) as (process, url):
        # read its log on as it comes: a full pipe would stop the server
        threading.Thread(target=lambda: process.stderr.read(),  # type: ignore[union-attr]
                         daemon=True).start()
        yield process, url


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[RedisServer, str, list[tuple[Any, str]]]]:
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server())
        fake = stack.enter_context(fake_provider())
        nodes = [stack.enter_context(node(redis, fake)) for _ in range(2)]
        yield redis, fake, nodes


def start(url: str, script: dict[str, Any]) -> str:
    deadline = time.monotonic() + 10
    while True:  # 503 until the server's store has connected
        response = httpx.post(url + "/v1/streams", json=request_body(script))
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert response.status_code == 201, response.text
    return str(response.json()["url"])


def read(url: str, after: int | None, limit: int | None = None,
         timeout: float = 15) -> list[tuple[int, str, str]]:
    headers = {} if after is None else {"last-event-id": str(after)}
    events: list[tuple[int, str, str]] = []
    with httpx.Client(timeout=timeout) as client, \
            connect_sse(client, "GET", url, headers=headers) as source:
        if source.response.status_code == 204:
            return events
        assert source.response.status_code == 200
        for event in source.iter_sse():
            events.append((int(event.id) if event.id else 0, event.event, event.data))
            if limit is not None and len(events) >= limit:
                break
    return events


def test_two_hundred_cuts_and_resumes_across_servers_lose_and_repeat_nothing(
        cluster: tuple[RedisServer, str, list[tuple[Any, str]]]) -> None:
    _, _, nodes = cluster
    urls = [url for _, url in nodes]
    rng = random.Random(15)
    cycles, streams = 0, 0
    deadline = time.monotonic() + 90
    while cycles < 200:
        assert time.monotonic() < deadline, f"only {cycles} cycles in time"
        # each stream starts on either server, runs for about two seconds
        stream = start(rng.choice(urls), {"tokens": 400, "rate": 200})
        streams += 1
        seen: list[tuple[int, str, str]] = []
        while not seen or seen[-1][2] != "[DONE]":
            cycles += 1
            after = seen[-1][0] if seen else None
            seen += read(rng.choice(urls) + stream, after, limit=rng.randint(1, 12))
        assert [e[0] for e in seen] == list(range(1, 404)), f"stream {streams}"
        assert seen == read(urls[0] + stream, None) == read(urls[1] + stream, None)
    assert streams >= 1


def test_delete_on_one_server_stops_the_generation_on_the_other(
        cluster: tuple[RedisServer, str, list[tuple[Any, str]]]) -> None:
    _, fake, nodes = cluster
    (_, a), (_, b) = nodes
    before = httpx.get(fake + "/_fake/stats").json()["cancelled"]
    stream = start(a, {"tokens": 1000, "rate": 20})
    first = read(b + stream, None, limit=2)
    answer = httpx.delete(b + stream)
    assert answer.json() == {"id": stream.rsplit("/", 1)[1], "status": "cancelled"}
    deadline = time.monotonic() + 5
    while httpx.get(fake + "/_fake/stats").json()["cancelled"] == before:
        assert time.monotonic() < deadline, "the generation went on"
        time.sleep(0.02)
    rest = read(b + stream, first[-1][0])
    assert rest[-2][1] == "error" and orjson.loads(rest[-2][2])["type"] == "cancelled"


def test_a_killed_owner_ends_its_streams_elsewhere_with_owner_lost() -> None:
    with redis_server() as redis, fake_provider() as fake, node(redis, fake) as (a, a_url), \
            node(redis, fake) as (_, b_url):
        stream = start(a_url, {"tokens": 1000, "rate": 20})
        with httpx.Client(timeout=15) as client, \
                connect_sse(client, "GET", b_url + stream) as source:
            events = source.iter_sse()
            first = [next(events) for _ in range(3)]
            a.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            rest = list(events)
        waited = time.monotonic() - killed
        error = orjson.loads(rest[-2].data)
        assert rest[-2].event == "error" and error["type"] == "owner_lost"
        assert error["retryable"] is True and rest[-1].data == "[DONE]"
        ids = [int(e.id) for e in first + rest]
        assert ids == list(range(1, len(ids) + 1))  # the ending numbered after the last
        # the lease lapses, then one more block: generous bound for a shared machine
        assert waited < LEASE + 2 * FOLLOW_BLOCK_MS / 1000 + 3


def test_with_workers_any_worker_serves_any_stream() -> None:
    """``--workers 2`` shares the listening port: a GET may land on the worker that
    does not run the stream, which serves it from Redis (no 404 for a live stream)."""
    with redis_server() as redis, fake_provider() as fake:
        env = {"OPENAI_API_KEY": "sk-test-key", "OPENAI_BASE_URL": fake + "/v1",
               "SSESERVER_STREAMS_STORE": redis.url}
        with serve("--workers", "2", env=env) as (process, url):
            threading.Thread(target=lambda: process.stderr.read(),  # type: ignore[union-attr]
                             daemon=True).start()
            streams = [start(url, {"tokens": 100, "rate": 200}) for _ in range(8)]
            for stream in streams:
                events = read(url + stream, None)
                assert [e[0] for e in events] == list(range(1, 104))


def chat_turn(chat_id: str, script: dict[str, Any]) -> dict[str, Any]:
    text = "#fake " + orjson.dumps(script).decode()
    return {"id": chat_id, "model": "gpt-4o-mini", "trigger": "submit-message",
            "messages": [{"id": "u1", "role": "user",
                          "parts": [{"type": "text", "text": text}]}]}


def test_a_chat_running_on_one_server_is_resumed_on_the_other(
        cluster: tuple[RedisServer, str, list[tuple[Any, str]]]) -> None:
    """useChat's resume (GET /v1/chat/{id}/stream) lands on either server: the one
    that does not run the turn finds it through Redis and replays it from its start."""
    _, _, nodes = cluster
    (_, a), (_, b) = nodes
    chat_id = "chat r+é"
    resume = f"/v1/chat/{quote(chat_id, safe='')}/stream"  # as encodeURIComponent
    with httpx.Client(timeout=15) as client, client.stream(
            "POST", a + "/v1/chat", json=chat_turn(chat_id, {"tokens": 40, "rate": 20})
            ) as started:
        assert started.status_code == 200
        chunks = started.iter_text()
        first = next(chunks)
        resumed = httpx.get(b + resume, timeout=15)
        rest = "".join(chunks)
    assert resumed.status_code == 200, resumed.text
    assert resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert resumed.text == first + rest  # replayed from the start, then followed live
    assert resumed.text.endswith("data: [DONE]\n\n")
    for server in (a, b):  # the turn is over: nothing to resume, on either server
        assert httpx.get(server + resume).status_code == 204
    assert httpx.get(b + "/v1/chat/never/stream").status_code == 204
