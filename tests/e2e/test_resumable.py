"""Resumable streams end to end: resume from anywhere, fan-out, cancel, retention,
bounds, slow subscribers, CORS."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import connect_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sseserver.core.sse import SSEParser
from tests.e2e.stack import Stack, request_body


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 0.2, "streams.retention": 3.0,
                "streams.max_events": 60, "streams.detached_idle_timeout": 0.5,
                "server.cors_origins": ("http://app.example",)}) as s:
        yield s


def start(stack: Stack, script: dict[str, Any], **fields: Any) -> str:
    response = httpx.post(stack.url + "/v1/streams", json=request_body(script, **fields))
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == body["url"] == f"/v1/streams/{body['id']}"
    return str(body["url"])


def read(stack: Stack, url: str, last_event_id: int | None = None, query: bool = False
         ) -> list[Any]:
    headers = {}
    if last_event_id is not None and not query:
        headers["last-event-id"] = str(last_event_id)
    if last_event_id is not None and query:
        url += f"?lastEventId={last_event_id}"
    with httpx.Client(timeout=10) as client, \
            connect_sse(client, "GET", stack.url + url, headers=headers) as source:
        assert source.response.status_code == 200
        return list(source.iter_sse())


def wait_ended(stack: Stack, url: str) -> None:
    stream_id = url.rsplit("/", 1)[1]
    for _ in range(200):
        resumable = stack.server.gateway.store.get(stream_id)  # type: ignore[union-attr]
        if resumable is None or resumable.output.log.finished:
            return
        time.sleep(0.01)
    raise AssertionError("stream did not end")


def ids(events: list[Any]) -> list[int]:
    return [int(e.id) for e in events]


def test_resume_from_every_position_of_a_finished_stream(stack: Stack) -> None:
    url = start(stack, {"tokens": 6})
    wait_ended(stack, url)
    full = read(stack, url)
    assert [e.event for e in full] == ["metadata", *["message"] * 6, "usage", "message"]
    assert ids(full) == list(range(1, 10)) and full[-1].data == "[DONE]"
    for position in range(0, 9):
        rest = read(stack, url, position, query=position % 2 == 1)
        assert [(e.id, e.data) for e in rest] == [(e.id, e.data) for e in full[position:]]
    # nothing left: 204 tells EventSource to stop reconnecting
    done = httpx.get(stack.url + url, headers={"last-event-id": "9"})
    assert done.status_code == 204


def test_resume_a_live_stream_and_two_subscribers_see_the_same(stack: Stack) -> None:
    url = start(stack, {"tokens": 20, "rate": 40})
    results: dict[str, list[Any]] = {}

    def subscribe(name: str, after: int | None) -> None:
        results[name] = read(stack, url, after)

    threads = [threading.Thread(target=subscribe, args=("a", None)),
               threading.Thread(target=subscribe, args=("b", None))]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    late = read(stack, url, 3)  # joins mid-stream, from id 3
    for thread in threads:
        thread.join(10)
    assert [(e.id, e.data) for e in results["a"]] == [(e.id, e.data) for e in results["b"]]
    assert ids(results["a"]) == list(range(1, 24))
    assert ids(late) == list(range(4, 24))


def test_post_stream_resumable_streams_directly_and_can_be_resumed(stack: Stack) -> None:
    with httpx.Client(timeout=10) as client, connect_sse(
            client, "POST", stack.url + "/v1/stream",
            json=request_body({"tokens": 5}, resumable=True)) as source:
        url = source.response.headers["location"]
        first = list(source.iter_sse())
    assert first[-1].data == "[DONE]"
    assert ids(read(stack, url, 2)) == list(range(3, 9))


def test_a_dropped_subscriber_resumes_without_gap_or_duplicate(stack: Stack) -> None:
    url = start(stack, {"tokens": 30, "rate": 60})
    seen: list[tuple[str, str]] = []
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        sock.sendall(b"GET " + url.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)
        raw = sock.recv(65536)  # then vanish mid-stream, perhaps mid-event
    body = raw.split(b"\r\n\r\n", 1)[1]
    parser = SSEParser()
    for chunk in _dechunk(body):
        seen.extend((e.id, e.data) for e in parser.feed(chunk))
    last = int(seen[-1][0])
    rest = read(stack, url, last)
    combined = seen + [(e.id, e.data) for e in rest]
    assert [int(i) for i, _ in combined] == list(range(1, 34))


def _dechunk(body: bytes) -> Iterator[bytes]:
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        if not rest:
            return
        size = int(size_line, 16)
        if size == 0 or len(rest) < size:
            yield rest[:size]
            return
        yield rest[:size]
        body = rest[size + 2:]


def test_cancel_ends_the_stream_and_closes_the_upstream(stack: Stack) -> None:
    stack.reset_fake()
    url = start(stack, {"tokens": 1000, "rate": 20})
    stack.wait_for(lambda s: s["active"] == 1)
    response = httpx.delete(stack.url + url)
    assert response.json()["status"] == "cancelled"
    events = read(stack, url)
    error = orjson.loads(events[-2].data)
    assert error["type"] == "cancelled" and events[-1].data == "[DONE]"
    stats, _ = stack.wait_for(lambda s: s["cancelled"] == 1)
    assert stats["active"] == 0
    assert httpx.delete(stack.url + url).json()["status"] == "ended"


def test_unknown_and_expired_streams_are_404(stack: Stack) -> None:
    assert httpx.get(stack.url + "/v1/streams/nope").status_code == 404
    assert httpx.delete(stack.url + "/v1/streams/nope").status_code == 404
    url = start(stack, {"tokens": 1})
    wait_ended(stack, url)
    assert httpx.get(stack.url + url).status_code == 200
    time.sleep(4.0)  # retention 3 s (room for a busy machine), swept every 0.75 s
    missing = httpx.get(stack.url + url)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"


def test_bad_last_event_id_is_a_400(stack: Stack) -> None:
    url = start(stack, {"tokens": 1})
    response = httpx.get(stack.url + url, headers={"last-event-id": "abc"})
    assert response.status_code == 400


def test_stream_ids_are_unguessable(stack: Stack) -> None:
    urls = {start(stack, {"tokens": 1}) for _ in range(5)}
    assert len(urls) == 5
    assert all(len(u.rsplit("/", 1)[1]) >= 22 for u in urls)  # 128 bits in base64url


def test_the_memory_bound_ends_a_runaway_stream(stack: Stack) -> None:
    url = start(stack, {"tokens": 500})
    wait_ended(stack, url)
    events = read(stack, url)
    # the bound holds to within one upstream read (the fake sends 32 tokens per write)
    assert 60 <= len(events) <= 60 + 32 + 3
    assert orjson.loads(events[-2].data)["type"] == "stream_too_large"
    assert events[-1].data == "[DONE]"


def test_generation_goes_on_without_subscribers_then_idles_out(stack: Stack) -> None:
    stack.reset_fake()
    url = start(stack, {"tokens": 10, "rate": 50})
    time.sleep(0.4)  # nobody reads; it still completes
    events = read(stack, url)
    assert len([e for e in events if e.event == "message"]) == 11
    slow = start(stack, {"tokens": 1000, "rate": 20})
    time.sleep(2.5)  # detached_idle_timeout 0.5 s, swept every 0.75 s, nobody reading
    events = read(stack, slow)
    assert orjson.loads(events[-2].data)["type"] == "cancelled"


def _healthy_read_times(stack: Stack, url: str) -> list[float]:
    """Arrival time of each content frame at a subscriber that reads promptly."""
    times: list[float] = []
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        sock.sendall(b"GET " + url.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while b"[DONE]" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            now = time.monotonic()
            times.extend([now] * chunk.count(b'data: {"content"'))
            data = data[-16:] + chunk
    return times


def test_a_stalled_subscriber_does_not_delay_another(stack: Stack) -> None:
    """The same paced stream read by a healthy subscriber, alone and next to one that
    never reads (and is paused by backpressure): the frames arrive on the same
    schedule. 50 frames of 100 KB at 200/s: far more than the socket buffers hold."""
    script = {"text": " ".join(["x" * 100_000] * 50), "rate": 200}
    alone = _healthy_read_times(stack, start(stack, script))
    shared_url = start(stack, {**script, "key": "with-a-stalled-peer"})
    with socket.create_connection(("127.0.0.1", stack.port)) as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET " + shared_url.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.05)
        shared = _healthy_read_times(stack, shared_url)
        stream_id = shared_url.rsplit("/", 1)[1]
        paused = stack.run_sync(lambda: [
            s._paused for s in stack.server.gateway.store.get(stream_id).output.subscribers])
    assert paused == [True], "the stalled subscriber must be held back by backpressure"
    assert len(alone) == len(shared) == 50
    spread_alone = alone[-1] - alone[0]
    spread_shared = shared[-1] - shared[0]
    print(f"healthy subscriber: alone {spread_alone * 1000:.1f} ms, next to a stalled one "
          f"{spread_shared * 1000:.1f} ms for 50 frames of 100 KB at 200/s")
    # Held back by its peer, the healthy reader would wait for the slow-consumer
    # eviction (seconds); a busy machine only adds scheduling noise to either run.
    assert spread_shared < 2 * spread_alone + 0.25


def test_cors_preflight_and_stream_headers(stack: Stack) -> None:
    origin = {"origin": "http://app.example"}
    preflight = httpx.options(stack.url + "/v1/stream", headers={
        **origin, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-custom"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://app.example"
    assert "x-custom" in preflight.headers["access-control-allow-headers"]
    assert "last-event-id" in preflight.headers["access-control-allow-headers"]
    assert "POST" in preflight.headers["access-control-allow-methods"]
    url = start(stack, {"tokens": 1})
    with httpx.Client() as client, client.stream("GET", stack.url + url,
                                                 headers=origin) as response:
        assert response.headers["access-control-allow-origin"] == "http://app.example"
        assert "x-stream-id" in response.headers["access-control-expose-headers"]
    other = httpx.options(stack.url + "/v1/stream", headers={"origin": "http://evil.example"})
    assert other.status_code == 403
    assert "access-control-allow-origin" not in httpx.get(
        stack.url + "/healthz", headers={"origin": "http://evil.example"}).headers


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, 4000), min_size=1, max_size=4))
def test_random_disconnects_never_lose_or_repeat_an_event(cuts: list[int]) -> None:
    """Cut the connection after random byte counts, resume with the last id seen."""
    stack = _shared_stack()
    url = start(stack, {"tokens": 40, "rate": 400})
    seen: list[int] = []
    for cut in cuts:
        last = seen[-1] if seen else None
        request = b"GET " + url.encode() + b" HTTP/1.1\r\nHost: t\r\n"
        if last is not None:
            request += b"Last-Event-ID: %d\r\n" % last
        with socket.create_connection(("127.0.0.1", stack.port)) as sock:
            sock.sendall(request + b"\r\n")
            data = b""
            sock.settimeout(5)
            while len(data) < cut and not data.endswith(b"\r\n0\r\n\r\n") and \
                    not data.startswith(b"HTTP/1.1 204"):
                chunk = sock.recv(cut - len(data))
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            break  # 204: everything was seen already
        parser = SSEParser()
        for chunk in _dechunk(data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""):
            seen.extend(int(e.id) for e in parser.feed(chunk))
    rest = read(stack, url, seen[-1] if seen else None) if not seen or seen[-1] < 43 else []
    seen.extend(int(e.id) for e in rest)
    assert seen == list(range(1, 44))


_STACK: list[Stack] = []


def _shared_stack() -> Stack:
    if not _STACK:
        stack = Stack({"streams.heartbeat_interval": 5})
        stack.__enter__()
        _STACK.append(stack)
    return _STACK[0]


def teardown_module() -> None:
    for stack in _STACK:
        stack.__exit__(None, None, None)
