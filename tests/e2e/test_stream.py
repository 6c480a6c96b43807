"""POST /v1/stream end to end: client -> sseserver -> fake provider, real sockets."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import sseclient
from httpx_sse import connect_sse

from sseserver.relay import Relay
from tests.e2e.stack import Stack, request_body


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack({"streams.heartbeat_interval": 0.2, "upstream.backoff_initial": 0.01,
                "upstream.backoff_max": 0.02, "upstream.idle_timeout": 0.5}) as s:
        yield s


def sse_events(stack: Stack, body: dict[str, Any]) -> list[Any]:
    with httpx.Client(timeout=10) as client, \
            connect_sse(client, "POST", stack.url + "/v1/stream", json=body) as source:
        assert source.response.status_code == 200
        return list(source.iter_sse())


def raw_stream(stack: Stack, body: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    with httpx.Client(timeout=10) as client, \
            client.stream("POST", stack.url + "/v1/stream", json=body) as response:
        return response, b"".join(response.iter_raw())


def test_stream_wire_format(stack: Stack) -> None:
    response, body = raw_stream(stack, request_body({"tokens": 3}))
    assert response.status_code == 200
    headers = response.headers
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache, no-store"
    assert headers["x-accel-buffering"] == "no"
    assert headers["transfer-encoding"] == "chunked"
    assert "date" in headers
    blocks = body.decode().split("\n\n")
    assert blocks[0].startswith("retry: 3000\nid: 1\nevent: metadata\ndata: {")
    metadata = orjson.loads(blocks[0].split("data: ", 1)[1])
    assert metadata == {"stream_id": headers["x-stream-id"], "provider": "openai",
                        "model": "gpt-4o-mini"}
    assert blocks[1:4] == ['id: 2\ndata: {"content":"tok0 "}', 'id: 3\ndata: {"content":"tok1 "}',
                           'id: 4\ndata: {"content":"tok2 "}']
    assert blocks[4].startswith("id: 5\nevent: usage\ndata: ")
    usage = orjson.loads(blocks[4].split("data: ", 1)[1])
    assert usage["output_tokens"] == 3
    assert blocks[5] == "id: 6\ndata: [DONE]"
    assert blocks[6] == ""


def test_httpx_sse_sees_exactly_the_events_sent(stack: Stack) -> None:
    events = sse_events(stack, request_body({"tokens": 10}))
    assert [e.event for e in events] == ["metadata"] + ["message"] * 10 + ["usage", "message"]
    assert all(e.data for e in events), "no empty events"
    assert [int(e.id) for e in events] == list(range(1, 14))
    assert events[0].retry == 3000
    text = "".join(orjson.loads(e.data)["content"] for e in events[1:11])
    assert text == "".join(f"tok{i} " for i in range(10))
    assert events[-1].data == "[DONE]"


def test_sseclient_py_reads_the_stream(stack: Stack) -> None:
    with httpx.Client(timeout=10) as client, client.stream(
            "POST", stack.url + "/v1/stream", json=request_body({"text": "hi there you"})
    ) as response:
        events = list(sseclient.SSEClient(response.iter_bytes()).events())
    contents = [orjson.loads(e.data)["content"] for e in events if e.event == "message"
                and e.data != "[DONE]"]
    assert "".join(contents) == "hi there you"
    assert events[-1].data == "[DONE]"


def test_heartbeats_while_waiting_for_the_first_token(stack: Stack) -> None:
    started = time.monotonic()
    response, body = raw_stream(stack, request_body({"tokens": 2, "ttfb_ms": 700}))
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.6
    preamble, _, rest = body.decode().partition(": ping\n")
    assert preamble == "retry: 3000\n", body
    head, _, _rest = (": ping\n" + rest).partition("id: 1\n")
    assert head.count(": ping\n") >= 2, body
    assert set(head.split("\n")) <= {": ping", ""}
    assert "\n\n" not in head, "a heartbeat is a bare comment line"
    events = sse_events(stack, request_body({"tokens": 2, "ttfb_ms": 500}))
    assert all(e.data for e in events)
    assert events[-1].data == "[DONE]"


def test_heartbeats_while_the_provider_is_idle(stack: Stack) -> None:
    _response, body = raw_stream(stack, request_body({"tokens": 3, "rate": 2.5}))
    text = body.decode()
    middle = text[text.index("tok0"):text.index("[DONE]")]
    assert ": ping\n" in middle
    assert "\n\n\n" not in text


def _arrivals(stack: Stack, script: dict[str, Any]) -> list[tuple[float, bytes]]:
    """Each read of a raw stream with the time it arrived, until the last chunk."""
    body = orjson.dumps(request_body(script))
    reads: list[tuple[float, bytes]] = []
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        sock.settimeout(5)
        sock.sendall(b"POST /v1/stream HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(body), body))
        while not reads or not reads[-1][1].endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            if not data:
                break
            reads.append((time.monotonic(), data))
    return reads


def test_heartbeats_keep_every_silence_under_the_interval(stack: Stack) -> None:
    """Interval 0.2 s: a 1 s wait for the first token, then tokens 0.45 s apart. No
    silence passes 0.2 s (plus the timer wheel's ticks), and pings come one per
    interval, not one per half-interval check."""
    reads = _arrivals(stack, {"tokens": 4, "rate": 1 / 0.45, "ttfb_ms": 1000})
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(reads)]
    assert max(gaps) < 0.2 + 0.15, gaps  # two checks, each up to a tick late; a busy CI
    pings = [at for at, data in reads
             if data.endswith(b": ping\n\r\n") and b"retry: " not in data]
    assert len(pings) >= 4  # the wait for the first token
    assert min(later - earlier for earlier, later in itertools.pairwise(pings)) > 0.15
    body = b"".join(data for _, data in reads)
    assert body.count(b'data: {"content"') == 4


def test_default_reply_without_a_script(stack: Stack) -> None:
    events = sse_events(stack, request_body(text="Hello!"))
    text = "".join(orjson.loads(e.data)["content"] for e in events if e.event == "message"
                   and e.data != "[DONE]")
    assert len(text) > 5
    assert events[-1].data == "[DONE]"


@pytest.mark.parametrize(("script", "error_type"), [
    ({"tokens": 10, "drop_after": 3}, "upstream"),
    ({"tokens": 10, "error_after": 3}, None),
    ({"tokens": 10, "malformed_after": 3}, "provider_error"),
    ({"tokens": 10, "stall_after": 3}, "upstream_timeout"),
])
def test_provider_failure_mid_stream_is_an_error_event_then_done(
        stack: Stack, script: dict[str, Any], error_type: str | None) -> None:
    events = sse_events(stack, request_body(script))
    names = [e.event for e in events]
    assert names[:4] == ["metadata", "message", "message", "message"]
    assert names[-2:] == ["error", "message"]
    assert events[-1].data == "[DONE]"
    error = orjson.loads(events[-2].data)
    assert set(error) >= {"type", "message", "retryable"}
    if error_type:
        assert error["type"].startswith(error_type)
    ids = [int(e.id) for e in events]
    assert ids == list(range(1, len(events) + 1))


def test_upstream_error_before_the_stream_is_a_json_error(stack: Stack) -> None:
    response = httpx.post(stack.url + "/v1/stream", json=request_body(
        {"fail": [400], "key": "bad-request"}), timeout=10)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()["error"]) == {"type", "message"}


def test_retry_budget_exhausted_gives_429_with_retry_after(stack: Stack) -> None:
    response = httpx.post(stack.url + "/v1/stream", json=request_body(
        {"fail": [429, 429, 429, 429], "key": "always-429"}), timeout=10)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


def test_retry_then_success(stack: Stack) -> None:
    events = sse_events(stack, request_body({"tokens": 2, "fail": [503, 429],
                                             "key": "flaky"}))
    assert [e.event for e in events] == ["metadata", "message", "message", "usage", "message"]


def test_drop_before_the_first_token_is_retried(stack: Stack) -> None:
    # nothing reached the client yet, so a new attempt cannot duplicate text
    events = sse_events(stack, request_body({"tokens": 2, "drop_after": 0}))
    assert events[-2].event == "error"  # every attempt drops: the budget runs out
    assert orjson.loads(events[-2].data)["retryable"] is True


def test_client_disconnect_closes_the_upstream_quickly(stack: Stack) -> None:
    stack.reset_fake()
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        body = orjson.dumps(request_body({"tokens": 1000, "rate": 50}))
        sock.sendall(b"POST /v1/stream HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
        assert b"tok1" in _read_until(sock, b"tok1")
        stack.wait_for(lambda s: s["active"] == 1)
    stats, waited = stack.wait_for(lambda s: s["cancelled"] == 1)
    assert stats["cancelled"] == 1 and stats["active"] == 0
    assert waited < 0.1


def test_client_disconnect_while_waiting_for_the_first_token(stack: Stack) -> None:
    stack.reset_fake()
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        body = orjson.dumps(request_body({"tokens": 5, "ttfb_ms": 5000}))
        sock.sendall(b"POST /v1/stream HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(body), body))
        stack.wait_for(lambda s: s["requests"] == 1)
        time.sleep(0.05)
    stats, waited = stack.wait_for(lambda s: s["cancelled"] == 1 or (s["active"] == 0
                                   and s["connections"] >= 1 and _closed(s)))
    assert waited < 0.1, stats


def _closed(stats: dict[str, int]) -> bool:
    return stats.get("open_connections", 0) == 0


def _read_until(sock: socket.socket, marker: bytes, limit: float = 5.0) -> bytes:
    sock.settimeout(limit)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_slow_reader_pauses_the_provider(stack: Stack) -> None:
    """A client that stops reading: the provider is paused, memory stays bounded."""
    stack.reset_fake()
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        body = orjson.dumps(request_body({"tokens": 400_000, "rate": 0}))
        sock.sendall(b"POST /v1/stream HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(body), body))
        # The buffers between the provider and the client fill, then the provider must
        # stop, far short of the 400,000 tokens: sampled until two readings agree (a
        # busy machine takes longer to fill them).
        sent: list[int] = []
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            sent.append(stack.stats()["tokens_sent"])
            if len(sent) >= 2 and sent[-1] == sent[-2]:
                break
        print("tokens sent while the client did not read:", sent)
        assert len(sent) >= 2 and sent[-1] == sent[-2], \
            "the provider must be paused while the client does not read"
        assert sent[-1] < 200_000
        buffered = stack.run_sync(lambda: [
            r._output._conn._transport.get_write_buffer_size()
            for r in stack.server.gateway.relays])
        assert buffered and max(buffered) < 2 * 1024 * 1024
        # now read everything: the stream resumes and completes
        sock.settimeout(30)
        received = 0
        tail = b""
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
            tail = (tail + chunk)[-64:]
            if b"[DONE]" in tail:
                break
        assert b"[DONE]" in tail
    assert stack.stats()["tokens_sent"] == 400_000


@pytest.mark.parametrize(("body", "status", "fragment"), [
    (b"{not json", 400, "not valid JSON"),
    (b"[]", 400, "JSON object"),
    (b'{"model": "m"}', 400, "'messages' is required"),
    (b'{"model": "m", "messages": []}', 400, "must not be empty"),
    (b"\xff\xfe\x00", 400, "not valid JSON"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "provider": "nope"}',
     400, "unknown provider"),
])
def test_bad_request_bodies(stack: Stack, body: bytes, status: int, fragment: str) -> None:
    response = httpx.post(stack.url + "/v1/stream", content=body, timeout=5)
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]


def test_routes_and_methods(stack: Stack) -> None:
    assert httpx.get(stack.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(stack.url + "/readyz").status_code == 200
    missing = httpx.get(stack.url + "/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    wrong = httpx.get(stack.url + "/v1/stream")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    metrics = httpx.get(stack.url + "/metrics").text
    assert "sseserver_streams_active" in metrics
    page = httpx.get(stack.url + "/")
    assert (page.status_code == 200 and b"EventSource" in page.content) or b"/v1/stream" in \
        page.content


def test_head_answers_what_get_would_without_the_body(stack: Stack) -> None:
    """Health checks by HEAD (some load balancers send them) get GET's head."""
    with httpx.Client(base_url=stack.url) as client:
        for path in ("/healthz", "/readyz", "/metrics", "/"):
            got, head = client.get(path), client.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b"" and head.headers["content-type"] == \
                got.headers["content-type"]
            assert int(head.headers["content-length"]) > 0
        assert client.head("/v1/stream").status_code == 405  # a POST-only route
        assert client.get("/healthz").json() == {"status": "ok"}  # the connection lives on


def test_no_accept_header_needed(stack: Stack) -> None:
    with httpx.Client(timeout=10) as client, client.stream(
            "POST", stack.url + "/v1/stream", json=request_body({"tokens": 1}),
            headers={"accept": "application/json"}) as response:
        assert response.status_code == 200
        assert b"[DONE]" in b"".join(response.iter_raw())


def test_other_streams_survive_a_broken_one(stack: Stack) -> None:
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        sock.sendall(b"POST /v1/stream HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n\x00\x01")
        events = sse_events(stack, request_body({"tokens": 2}))
        assert events[-1].data == "[DONE]"


def test_anthropic_provider_end_to_end(stack: Stack) -> None:
    events = sse_events(stack, request_body(
        {"tokens": 2, "thinking": 2, "tool_call": {"name": "lookup", "arguments": '{"q": 1}'}},
        provider="anthropic", model="claude-test"))
    names = [e.event for e in events]
    assert names == ["metadata", "reasoning", "reasoning", "message", "message", "tool_call",
                     "tool_call", "tool_call", "tool_call", "usage", "message"]
    assert orjson.loads(events[0].data)["provider"] == "anthropic"
    calls = [orjson.loads(e.data) for e in events if e.event == "tool_call"]
    assert calls[0]["name"] == "lookup" and calls[0]["id"].startswith("toolu_")
    assert "".join(c["arguments"] for c in calls) == '{"q": 1}'
    assert events[-1].data == "[DONE]"


def test_openai_tool_call_end_to_end(stack: Stack) -> None:
    events = sse_events(stack, request_body(
        {"tokens": 1, "tool_call": {"name": "f", "arguments": '{"city": "Paris"}'}}))
    calls = [orjson.loads(e.data) for e in events if e.event == "tool_call"]
    assert calls[0]["name"] == "f" and calls[0]["index"] == 0
    assert "".join(c["arguments"] for c in calls) == '{"city": "Paris"}'


def test_sequential_streams_reuse_upstream_connections(stack: Stack) -> None:
    stack.reset_fake()
    for _ in range(5):
        assert sse_events(stack, request_body({"tokens": 2}))[-1].data == "[DONE]"
    stats = stack.stats()
    assert stats["requests"] == 5
    # the stats requests themselves open connections too; the streams used one
    assert stats["connections"] <= 2, stats
    pool = stack.server.gateway.pool  # type: ignore[union-attr]
    assert pool.reused >= 4, repr(pool)


def test_a_stream_waiting_on_its_provider_holds_no_task(stack: Stack) -> None:
    """Waiting for the head and relaying the body are callbacks: an open stream keeps
    no task (and no coroutine frames) however long its provider takes."""
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        body = orjson.dumps(request_body({"tokens": 2, "ttfb_ms": 3000}))
        sock.sendall(b"POST /v1/stream HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(body), body))
        _read_until(sock, b": ping")  # the head and a heartbeat: the stream is open
        assert stack.server is not None
        gateway = stack.server.gateway
        tasks = stack.run_sync(lambda: [relay._task for relay in gateway.relays])
        assert tasks == [None] * len(tasks) and tasks


def test_an_attempt_on_an_idle_pooled_connection_needs_no_task(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stack.server is not None
    pool = stack.server.gateway.pool
    sse_events(stack, request_body({"tokens": 1}))
    deadline = time.monotonic() + 2
    while not stack.run_sync(lambda: sum(len(o.idle) for o in pool._origins.values())):
        assert time.monotonic() < deadline, "the first stream's connection was not pooled"
        time.sleep(0.01)
    spawned: list[object] = []
    spawn = Relay._spawn

    def recording_spawn(relay: Relay, step: Any) -> None:
        spawned.append(step)
        spawn(relay, step)

    monkeypatch.setattr(Relay, "_spawn", recording_spawn)
    events = sse_events(stack, request_body({"tokens": 2}))
    assert events[-1].data == "[DONE]"
    assert spawned == []


def test_a_bug_while_starting_the_body_ends_that_stream_only(stack: Stack) -> None:
    assert stack.server is not None
    provider = stack.server.gateway.providers["openai"]

    def broken_adapter() -> None:
        raise RuntimeError("adapter bug")

    stack.run_sync(lambda: setattr(provider, "new_adapter", broken_adapter))
    try:
        events = sse_events(stack, request_body({"tokens": 3}))
    finally:
        stack.run_sync(lambda: delattr(provider, "new_adapter"))
    assert [e.event for e in events] == ["metadata", "error", "message"]
    error = orjson.loads(events[1].data)
    assert error["message"] == "internal error: RuntimeError" and not error["retryable"]
    assert events[-1].data == "[DONE]"
    healthy = sse_events(stack, request_body({"tokens": 3}))
    assert healthy[-1].data == "[DONE]" and len(healthy) == 6  # metadata, 3, usage, end


def test_each_retry_is_a_new_attempt_after_its_backoff() -> None:
    """Each attempt is its own short task: a failing target is retried with backoff up
    to max_retries, every attempt counted."""
    settings = {"upstream.backoff_initial": 0.01, "upstream.backoff_max": 0.02,
                "upstream.max_retries": 2}
    with Stack(settings) as stack:
        events = sse_events(stack, request_body({"tokens": 2, "fail": [503, 503]}))
        assert [e.event for e in events] == ["metadata", "message", "message", "usage",
                                             "message"]
        assert stack.stats()["requests"] == 3  # two failures, then the success
