"""The Redis store with two servers in this process sharing a real redis-server: a
stream started on one is read and cancelled on the other; Redis down, restarted and
expiring; the unix socket. (tests/e2e/test_redis_nodes.py runs separate processes.)"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from sseserver.streams.redis import RedisStreams
from tests.e2e.stack import Stack, request_body
from tests.streams.redis_server import RedisServer, free_port, needs_redis, redis_server

pytestmark = needs_redis


def settings_for(url: str, **more: Any) -> dict[str, Any]:
    return {"streams.store": url, "streams.heartbeat_interval": 0.5,
            "streams.retention": 2.0, **more}


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def nodes(redis: RedisServer) -> Iterator[tuple[Stack, Stack]]:
    with Stack(settings_for(redis.url)) as a, Stack(settings_for(redis.url)) as b:
        yield a, b


def start(stack: Stack, script: dict[str, Any], deadline: float = 10) -> str:
    """A resumable stream on ``stack``, once its store is connected (503 before)."""
    until = time.monotonic() + deadline
    while True:
        response = httpx.post(stack.url + "/v1/streams", json=request_body(script))
        if response.status_code == 201 or time.monotonic() > until:
            break
        assert response.status_code == 503, response.text
        time.sleep(0.05)
    assert response.status_code == 201, response.text
    return str(response.json()["url"])


def read(stack: Stack, url: str, after: int | None = None, limit: int | None = None
         ) -> list[tuple[str, str, str]]:
    headers = {} if after is None else {"last-event-id": str(after)}
    events = []
    with httpx.Client(timeout=15) as client, \
            connect_sse(client, "GET", stack.url + url, headers=headers) as source:
        assert source.response.status_code == 200, source.response.read()
        for event in source.iter_sse():
            events.append((event.id, event.event, event.data))
            if limit is not None and len(events) >= limit:
                break
    return events


def wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_stream_of_one_server_is_read_on_the_other_the_same(
        nodes: tuple[Stack, Stack]) -> None:
    a, b = nodes
    assert a.server.gateway.store.shared  # type: ignore[union-attr]
    url = start(a, {"tokens": 30, "rate": 200})
    live = read(b, url, after=3)  # joined mid-stream: replay, then live
    assert [int(e[0]) for e in live] == list(range(4, 34)) and live[-1][2] == "[DONE]"
    whole = read(a, url)
    assert whole[3:] == live
    assert read(b, url) == whole  # after the end, from the start
    assert httpx.get(b.url + url, headers={"last-event-id": "33"}).status_code == 204


def test_an_unknown_stream_is_404_on_every_server(nodes: tuple[Stack, Stack]) -> None:
    a, b = nodes
    for stack in nodes:
        response = httpx.get(stack.url + "/v1/streams/no-such-stream")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found_error"
    assert httpx.delete(b.url + "/v1/streams/no-such-stream").status_code == 404
    assert a.url != b.url


def test_delete_on_the_other_server_stops_the_generation(nodes: tuple[Stack, Stack]) -> None:
    a, b = nodes
    assert a.fake is not None
    before = a.fake.counters.cancelled
    url = start(a, {"tokens": 500, "rate": 20})
    first = read(b, url, limit=2)
    answer = httpx.delete(b.url + url)
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    wait_for(lambda: a.fake.counters.cancelled == before + 1)  # type: ignore[union-attr]
    rest = read(b, url, after=int(first[-1][0]))
    assert rest[-2][1] == "error" and '"cancelled"' in rest[-2][2] and rest[-1][2] == "[DONE]"
    assert httpx.delete(b.url + url).json()["status"] == "ended"


def test_a_slow_reader_elsewhere_gets_everything_in_order(nodes: tuple[Stack, Stack]) -> None:
    a, b = nodes
    url = start(a, {"tokens": 400})
    with httpx.Client(timeout=15) as client, \
            connect_sse(client, "GET", b.url + url) as source:
        events = []
        for event in source.iter_sse():
            events.append(int(event.id))
            if len(events) % 100 == 0:
                time.sleep(0.1)  # the client stalls; the follower waits for room
    assert events == list(range(1, 404))


def test_retention_expiry_forgets_the_stream_on_both(nodes: tuple[Stack, Stack]) -> None:
    a, b = nodes
    url = start(a, {"tokens": 3})
    wait_for(lambda: len(read(b, url)) == 6)
    wait_for(lambda: httpx.get(b.url + url).status_code == 404, seconds=8)
    wait_for(lambda: httpx.get(a.url + url).status_code == 404, seconds=8)


def test_unreachable_redis_refuses_new_resumable_streams_only(
        caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    with Stack(settings_for(url)) as stack:
        refused = httpx.post(stack.url + "/v1/streams", json=request_body({"tokens": 3}))
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert "stream store" in refused.json()["error"]["message"]
        resumable = httpx.post(stack.url + "/v1/stream",
                               json=request_body({"tokens": 3}, resumable=True))
        assert resumable.status_code == 503
        plain = httpx.post(stack.url + "/v1/stream", json=request_body({"tokens": 3}))
        assert plain.status_code == 200 and plain.text.endswith("data: [DONE]\n\n")
        assert "hunter2" not in refused.text
        time.sleep(0.5)  # a few more attempts to connect
    said = [r.getMessage() for r in caplog.records if r.name == "sseserver.streams"]
    assert len([line for line in said if "unreachable" in line]) == 1, said
    assert not any("hunter2" in line for line in said)


def test_a_redis_restart_mid_stream_loses_no_event(caplog: pytest.LogCaptureFixture) -> None:
    kept = {"streams.retention": 30.0}  # the finished stream outlives the test
    with redis_server() as own, Stack(settings_for(own.url, **kept)) as a, \
            Stack(settings_for(own.url, **kept)) as b:
        finished = start(a, {"tokens": 5})
        before = read(b, finished)
        url = start(a, {"tokens": 150, "rate": 50})
        first = read(b, url, limit=20)
        own.restart()  # empty, as a restart without persistence
        # the owner's readers are served meanwhile, from its memory
        local = read(a, url, after=int(first[-1][0]), limit=10)
        assert [int(e[0]) for e in local] == list(range(21, 31))
        wait_for(lambda: httpx.post(b.url + "/v1/streams",
                                    json=request_body({"tokens": 1})).status_code == 201)
        rest = read(b, url, after=int(first[-1][0]))
        whole = first + rest
        assert [int(e[0]) for e in whole] == list(range(1, 154))
        assert whole == read(a, url)
        assert read(b, finished) == before  # stored again from the owner's memory
    said = [r.getMessage() for r in caplog.records if r.name == "sseserver.streams"]
    assert any("stream store unreachable" in line for line in said), said


def test_a_unix_socket_url() -> None:
    with redis_server(unix=True) as server, Stack(settings_for(server.url)) as a, \
            Stack(settings_for(server.url)) as b:
        url = start(a, {"tokens": 5})
        assert len(read(b, url)) == 8


def test_the_memory_store_is_not_shared() -> None:
    with Stack() as stack:
        assert stack.server.gateway.store.shared is False  # type: ignore[union-attr]


def test_redis_streams_is_the_store_a_redis_url_names(nodes: tuple[Stack, Stack]) -> None:
    assert isinstance(nodes[0].server.gateway.store, RedisStreams)  # type: ignore[union-attr]


def test_a_reader_elsewhere_keeps_a_detached_generation_going(redis: RedisServer) -> None:
    # above the owner's look at the readers elsewhere (every second)
    settings = settings_for(redis.url, **{"streams.detached_idle_timeout": 2.0})
    with Stack(settings) as a, Stack(settings) as b:
        url = start(a, {"tokens": 200, "rate": 50})  # 4 s; nobody reads it on A
        events = read(b, url)
        assert [e[1] for e in events[-3:]] == ["message", "usage", "message"]
        assert len(events) == 203
        unread = start(a, {"tokens": 500, "rate": 50})  # 10 s
        resumable = a.server.gateway.store.get(unread.rsplit("/", 1)[1])  # type: ignore[union-attr]
        assert read(b, unread, after=0, limit=1)  # one look, then nobody
        # the reader's mark lapses with a lease (3 s), then the idle limit (2 s) runs
        wait_for(lambda: resumable.relay.status == "cancelled", seconds=9)


def test_a_ui_message_stream_is_read_elsewhere_with_its_headers(
        nodes: tuple[Stack, Stack]) -> None:
    a, b = nodes
    response = httpx.post(a.url + "/v1/streams",
                          json=request_body({"tokens": 4}, format="ai-sdk"))
    assert response.status_code == 201, response.text
    url = response.json()["url"]
    here = httpx.get(a.url + url)
    there = httpx.get(b.url + url)
    assert there.status_code == 200 and there.text == here.text
    assert there.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert there.text.endswith("data: [DONE]\n\n")


def test_a_resumable_chat_completion_is_resumed_elsewhere(nodes: tuple[Stack, Stack]) -> None:
    a, b = nodes
    body = {**request_body({"tokens": 5}), "stream": True}
    with httpx.stream("POST", a.url + "/v1/chat/completions", json=body,
                      headers={"x-resumable": "true"}) as response:
        stream_id = response.headers["x-stream-id"]
        first = response.read().decode()
    rest = httpx.get(f"{b.url}/v1/streams/{stream_id}", headers={"last-event-id": "2"})
    frames = [f + "\n\n" for f in first.split("\n\n") if f]
    assert rest.text == "".join(frames[2:])  # numbered frames: the same bytes after id 2


def test_a_reader_elsewhere_that_stops_reading_is_paused_not_overfilled(
        redis: RedisServer) -> None:
    """About 7 MiB of frames, more than the kernel's socket buffers take, and a client
    that reads nothing for two seconds: without the pause, the server would pass its
    1 MiB write buffer and drop the client."""
    settings = settings_for(redis.url, **{"streams.max_events": 200_000,
                                          "streams.max_bytes": 64 << 20,
                                          "streams.retention": 60.0})
    with Stack(settings) as a, Stack(settings) as b:
        url = start(a, {"tokens": 150_000})
        wait_for(lambda: a.server.gateway.store.get(  # type: ignore[union-attr]
            url.rsplit("/", 1)[1]).output.log.finished, seconds=60)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            sock.connect(("127.0.0.1", b.port))
            sock.sendall(f"GET {url} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
            time.sleep(2.0)
            sock.settimeout(15)
            received = bytearray()
            while not received.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"):
                chunk = sock.recv(1 << 20)
                assert chunk, f"dropped after {len(received)} bytes: {bytes(received[-300:])!r}"
                received += chunk
        assert b"\nid: 150003\n" in received or b"id: 150003\n" in received
