"""More providers that misbehave on purpose, byte by byte: a stream that is some other
document, a compressed stream, an event just past its bound in many reads, good bytes
before a fault in the same read, a reused connection's deadlines. Both wire formats.
The loop's exception handler fails the test if anything escapes to it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e import test_secrets as secrets_sweep
from tests.e2e.raw_upstream import OPENAI, WIRES, RawUpstream, Step, Wire, chunk, head, whole
from tests.e2e.stack import Stack, request_body
from tests.e2e.test_hostile_upstream import SETTINGS, assert_ended_with, post, providers_toml
from tests.e2e.test_hostile_upstream import _payload as payload_of
from tests.e2e.test_secrets import KEY, OTHER_KEY, leaks

log_lines = secrets_sweep.log_lines  # every log line, at DEBUG


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream([]) as raw:
        yield raw


@pytest.fixture(scope="module")
def escaped() -> list[dict[str, Any]]:
    return []


@pytest.fixture(scope="module")
def stack(upstream: RawUpstream, escaped: list[dict[str, Any]]) -> Iterator[Stack]:
    with Stack(SETTINGS, toml=providers_toml(upstream.url)) as s:
        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            escaped.append(context)

        s.loop.call_soon_threadsafe(s.loop.set_exception_handler, handler)
        yield s


@pytest.fixture(autouse=True)
def nothing_escapes(escaped: list[dict[str, Any]]) -> Iterator[None]:
    yield
    assert escaped == []


QUOTA = orjson.dumps({"error": {"message": "You exceeded your current quota",
                                "type": "insufficient_quota", "code": "insufficient_quota"}})
RATE_LIMITED = orjson.dumps({"error": {"message": "Rate limit reached",
                                       "type": "rate_limit_error"}})
HTML = b"\r\n  <html><body><h1>Quota exceeded</h1></body></html>"


# -- a 200 labelled an event stream whose body is another document ---------------------


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
@pytest.mark.parametrize(("reply", "requests", "says"), [
    ([whole("200 OK", "text/event-stream", QUOTA)], 1, "exceeded your current quota"),
    ([head(), chunk(b"\n" + QUOTA[:20]), 0.05, chunk(QUOTA[20:]), chunk(b""), ], 1,
     "exceeded your current quota"),
    ([head(), chunk(b"\r\n"), 0.02, *[chunk(bytes([byte])) for byte in QUOTA], chunk(b"")],
     1, "exceeded your current quota"),
    ([whole("200 OK", "text/event-stream", HTML)], 1, "JSON or HTML body"),
    # the provider's kind decides, as for a 200 labelled JSON: a rate limit is retried
    ([whole("200 OK", "text/event-stream; charset=utf-8", RATE_LIMITED)], 2,
     "Rate limit reached"),
], ids=["json", "json-in-pieces", "json-trickled", "html", "rate-limit"])
def test_an_event_stream_that_is_json_or_html_is_the_providers_error(
        stack: Stack, upstream: RawUpstream, wire: Wire, reply: list[Step], requests: int,
        says: str) -> None:
    upstream.answer(reply)
    answer = post(stack, wire)
    assert says in answer.error["message"], answer.error
    assert "before it was complete" not in answer.error["message"]
    assert answer.error["retryable"] is (requests > 1)
    assert answer.events[-1]["data"] == "[DONE]"
    assert upstream.requests == requests


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_a_compressed_event_stream_is_refused_without_a_retry(
        stack: Stack, upstream: RawUpstream, wire: Wire) -> None:
    """Never asked for, but RFC 9110 lets a server compress a response to a request
    that names no encoding: unreadable here, and the same would come again."""
    upstream.answer([whole("200 OK", "text/event-stream", b"\x1f\x8b\x08\x00" + bytes(30),
                           "Content-Encoding: gzip")])
    answer = post(stack, wire)
    assert answer.status == 502, answer.body
    assert "compressed" in answer.error["message"]
    assert upstream.requests == 1


# -- a key echoed encoded --------------------------------------------------------------


def _percent(text: str) -> str:
    return "".join(f"%{byte:02X}" for byte in text.encode())


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_a_percent_encoded_key_reaches_no_client_and_no_log(
        wire: Wire, log_lines: list[str]) -> None:
    """A proxy quoting the request URL or a form field echoes the key percent-encoded:
    in an error body (and its param and code), and in a mid-stream error event."""
    encoded = _percent(KEY)
    body = orjson.dumps({"error": {"message": f"bad key {encoded}", "type": "t",
                                   "param": encoded, "code": KEY}})
    replies: list[list[Step]] = [
        [whole("400 Bad Request", "application/json", body)],
        [whole("401 Unauthorized", "text/plain", f"key={encoded}".encode(),
               f"WWW-Authenticate: Bearer {KEY}")],
        [head("200 OK", "text/event-stream", f"X-Echo: {encoded}"), wire.start,
         wire.token("a"), wire.error("invalid_api_key", f"Incorrect API key {encoded}")],
    ]
    told: list[bytes] = []
    with RawUpstream([]) as raw, \
            Stack(SETTINGS, toml=providers_toml(raw.url, KEY, OTHER_KEY)) as stack:
        for reply in replies:
            raw.answer(reply)
            answer = post(stack, wire)
            assert answer.status != 200 or answer.error
            told.append(f"{answer.headers}".encode() + answer.body)
    shown = b"".join(told).decode("latin-1") + "\n".join(log_lines)
    assert encoded[6:40] not in shown and leaks(shown) == []
    assert any("attempt 1" in line for line in log_lines)  # the logs were captured


# -- an event just under and just past its bound, in many reads ------------------------

MAX_EVENT = int(SETTINGS["upstream.max_event_bytes"])


def _text_event(wire: Wire, data_bytes: int) -> bytes:
    """The payload of one text event whose data is ``data_bytes`` long."""
    bare = wire.token("")
    payload = bare[bare.find(b"\r\n") + 2:-2]
    data = len(payload) - payload.find(b"data: ") - len(b"data: \n\n")
    padded = wire.token("z" * (data_bytes - data))
    return padded[padded.find(b"\r\n") + 2:-2]


def _in_reads(payload: bytes, size: int, pause: float) -> list[Step]:
    steps: list[Step] = []
    for at in range(0, len(payload), size):
        steps += [chunk(payload[at:at + size]), pause]
    return steps


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
@pytest.mark.parametrize("read_size", [4096, 60_000])
def test_an_event_just_past_its_bound_in_many_reads_is_refused(
        stack: Stack, upstream: RawUpstream, wire: Wire, read_size: int) -> None:
    """On one data line, its end in the read that completes it: the bound is the
    event's, not only the unfinished part's at the end of a read."""
    over = _text_event(wire, MAX_EVENT + 64)
    upstream.answer([head(), wire.start, wire.token("a"), 0.02,
                     *_in_reads(over, read_size, 0.002), wire.done])
    answer = post(stack, wire)
    assert_ended_with(answer, "upstream_event_too_large", retryable=False)
    assert answer.texts == ["a"]


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_an_event_just_under_its_bound_in_many_reads_is_relayed(
        stack: Stack, upstream: RawUpstream, wire: Wire) -> None:
    under = _text_event(wire, MAX_EVENT - 64)
    upstream.answer([head(), wire.start, *_in_reads(under, 4096, 0.002), wire.done])
    answer = post(stack, wire)
    assert answer.status == 200 and answer.events[-1]["data"] == "[DONE]"
    assert len(answer.texts) == 1 and set(answer.texts[0]) == {"z"}
    assert len(answer.texts[0]) > MAX_EVENT - 200


def test_a_multi_line_event_past_its_bound_ended_in_one_read_is_refused(
        stack: Stack, upstream: RawUpstream) -> None:
    """Many data lines, the last ones and the blank line in the read that ends it."""
    lines = b"data: " + b"y" * 1000 + b"\n"
    count = MAX_EVENT // len(lines) + 2
    reads: list[Step] = [chunk(lines * (count - 40)), 0.05, chunk(lines * 40 + b"\n")]
    upstream.answer([head(), OPENAI.start, OPENAI.token("a"), *reads, OPENAI.done])
    answer = post(stack, OPENAI)
    assert_ended_with(answer, "upstream_event_too_large", retryable=False)
    assert answer.texts == ["a"]


# -- what came before a fault in the same read is relayed -----------------------------

SMALL_BOUND = 16 * 1024


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_chunks_before_a_malformed_chunk_in_the_same_read_are_relayed(
        stack: Stack, upstream: RawUpstream, wire: Wire) -> None:
    """One write: the start, a token, then a chunk-size line that is no number. The
    token is the client's; the framing fault ends the stream after it."""
    upstream.answer([head(), wire.start + wire.token("a") + wire.token("b") + b"zz\r\n"])
    answer = post(stack, wire)
    assert answer.texts == ["a", "b"]
    assert answer.error["type"] == "upstream_closed"
    assert "malformed" in answer.error["message"]
    assert upstream.requests == 1


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_events_before_a_comment_flood_in_the_same_read_are_relayed(wire: Wire) -> None:
    """One chunk, one read: two tokens, then more comment bytes than the bound allows
    (a bound below a read's size, so that one read passes it): the tokens reach the
    client before the end."""
    tokens = b"".join(_payload(wire.token(text)) for text in ("a", "b"))
    flood = (b": " + b"c" * 998 + b"\n") * (SMALL_BOUND // 1000 + 8)
    settings = {**SETTINGS, "upstream.max_bytes_without_event": SMALL_BOUND}
    with RawUpstream([head(), wire.start, 0.02, chunk(tokens + flood), 1.0]) as raw, \
            Stack(settings, toml=providers_toml(raw.url)) as small:
        answer = post(small, wire)
    assert_ended_with(answer, "upstream_no_events", retryable=False)
    assert answer.texts == ["a", "b"]


def _payload(one_chunk: bytes) -> bytes:
    return one_chunk[one_chunk.find(b"\r\n") + 2:-2]


# -- a reused connection's deadlines count from its own request ------------------------


def test_the_total_timeout_of_a_reused_connection_counts_from_its_request() -> None:
    """A connection pooled after one stream serves the next: the next stream's total
    limit counts from its own request, not from when the connection went idle."""
    with Stack({"upstream.total_timeout": 1.0, "upstream.idle_timeout": 0.5,
                "upstream.pool_idle_timeout": 30.0}) as fake:
        first = httpx.post(fake.url + "/v1/stream", json=request_body({"tokens": 2}))
        assert first.status_code == 200 and "tok1" in first.text
        time.sleep(0.7)  # pooled meanwhile
        second = httpx.post(fake.url + "/v1/stream", timeout=10,
                            json=request_body({"tokens": 6, "rate": 10}))  # 0.6 s
        assert "event: error" not in second.text, second.text
        assert "tok5" in second.text
        assert fake.stats()["connections"] == 1 + 1  # one reused, and this request


# -- a body whose framing ended, its last event without the blank line -----------------


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_a_last_event_without_its_blank_line_ends_the_stream_well(
        stack: Stack, upstream: RawUpstream, wire: Wire) -> None:
    """The body ends (its last chunk came) right after the last event's data line, the
    blank line missing, as the Anthropic SDK's own fixtures do: the event counts."""
    body = payload_of(wire.done)  # the finish and the end event, then the last chunk
    assert body.endswith(b"}\n\n") or body.endswith(b"[DONE]\n\n")
    upstream.answer([head(), wire.start, wire.token("a"), chunk(body[:-1]), b"0\r\n\r\n"])
    answer = post(stack, wire)
    assert answer.texts == ["a"] and answer.events[-1]["data"] == "[DONE]"
    assert not [e for e in answer.events if e.get("event") == "error"], answer.events
    assert upstream.requests == 1


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_a_partial_last_line_is_still_a_stream_that_ended_early(
        stack: Stack, upstream: RawUpstream, wire: Wire) -> None:
    body = payload_of(wire.done)
    upstream.answer([head(), wire.start, wire.token("a"), chunk(body[:-4]), b"0\r\n\r\n"])
    answer = post(stack, wire)
    assert answer.texts == ["a"]
    assert "before it was complete" in answer.error["message"]


# -- a drain ends a whole answer already collecting with 503 and Retry-After ----------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_drain_answers_a_whole_answer_with_tokens_collected_503(path: str) -> None:
    reply: list[Step] = [head(), OPENAI.start, OPENAI.token("a"), 5.0]
    body = {"model": "rawopenai/m", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]}
    with RawUpstream(reply) as slow, \
            Stack({"upstream.first_byte_timeout": 30.0}, toml=providers_toml(slow.url)) as s:
        answers: list[httpx.Response] = []
        client = threading.Thread(target=lambda: answers.append(
            httpx.post(s.url + path, json=body, timeout=10)))
        client.start()
        deadline = time.monotonic() + 5
        while not s.server.gateway.relays or \
                next(iter(s.server.gateway.relays)).events == 0:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert s.server is not None
        s.call(s.server.drain(0.2))
        client.join(10)
        assert answers[0].status_code == 503, answers[0].text
        assert answers[0].headers["retry-after"] == "5"


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_the_providers_end_before_a_flood_in_the_same_read_completes_the_stream(
        wire: Wire) -> None:
    """The end event, then (in the same read) more comment bytes than the bound: the
    provider had finished, so the stream completes."""
    ending = payload_of(wire.token("a") + wire.done)
    flood = (b": " + b"c" * 998 + b"\n") * (SMALL_BOUND // 1000 + 8)
    settings = {**SETTINGS, "upstream.max_bytes_without_event": SMALL_BOUND}
    with RawUpstream([head(), wire.start, 0.02, chunk(ending + flood), 1.0]) as raw, \
            Stack(settings, toml=providers_toml(raw.url)) as small:
        answer = post(small, wire)
    assert answer.texts == ["a"] and answer.events[-1]["data"] == "[DONE]"
    assert not [e for e in answer.events if e.get("event") == "error"], answer.events
