"""Providers that misbehave on purpose, written byte by byte in the tests: every
deadline holds, every event is bounded, no frame already produced is lost, and a 200
that is no event stream is told apart. Both wire formats wherever the fault is in the
body."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.raw_upstream import (
    ANTHROPIC,
    LAST_CHUNK,
    OPENAI,
    WIRES,
    Flood,
    RawUpstream,
    Step,
    Wire,
    chunk,
    head,
    whole,
)
from tests.e2e.stack import Stack

SETTINGS = {
    "upstream.first_byte_timeout": 0.5, "upstream.idle_timeout": 0.5,
    "upstream.total_timeout": 20.0, "upstream.max_retries": 1,
    "upstream.backoff_initial": 0.01, "upstream.backoff_max": 0.02,
    "upstream.max_event_bytes": 256 * 1024, "upstream.max_bytes_without_event": 256 * 1024,
}


def providers_toml(url: str, openai_key: str = "sk-raw-openai-key",
                   anthropic_key: str = "sk-raw-anthropic-key") -> str:
    return f"""
[providers.rawopenai]
kind = "openai"
base_url = "{url}/v1"
api_key = "{openai_key}"

[providers.rawanthropic]
kind = "anthropic"
base_url = "{url}"
api_key = "{anthropic_key}"
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream([]) as raw:
        yield raw


@pytest.fixture(scope="module")
def stack(upstream: RawUpstream) -> Iterator[Stack]:
    with Stack(SETTINGS, toml=providers_toml(upstream.url)) as s:
        yield s


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def error(self) -> dict[str, Any]:
        """The error a client was told: the JSON error, or the error event."""
        if self.status != 200:
            return dict(orjson.loads(self.body)["error"])
        errors = [e for e in self.events if e.get("event") == "error"]
        assert errors, self.events
        return dict(orjson.loads(errors[-1]["data"]))

    @property
    def texts(self) -> list[str]:
        return [orjson.loads(e["data"])["content"] for e in self.events
                if "event" not in e and e["data"] != "[DONE]"]


def post(stack: Stack, wire: Wire, timeout: float = 15.0) -> Answer:
    body = {"model": "m", "provider": "raw" + wire.kind,
            "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    response = httpx.post(stack.url + "/v1/stream", json=body, timeout=timeout)
    answer = Answer(response.status_code, response.headers, response.content,
                    time.monotonic() - started)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        answer.events = parse_events(response.text)
    return answer


def parse_events(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name in ("id", "event", "data"):
                fields[name] = value
        if "data" in fields:
            events.append(fields)
    return events


def assert_ids_continuous(answer: Answer) -> None:
    assert [int(e["id"]) for e in answer.events] == list(range(1, len(answer.events) + 1))


def assert_ended_with(answer: Answer, error_type: str, retryable: bool) -> None:
    assert answer.status == 200, answer.body
    assert answer.events[-1]["data"] == "[DONE]"
    assert answer.error["type"] == error_type, answer.error
    assert answer.error["retryable"] is retryable
    assert_ids_continuous(answer)


# -- 4. the response head has one deadline --------------------------------------------


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_a_trickled_head_meets_the_first_byte_timeout(stack: Stack, upstream: RawUpstream,
                                                      wire: Wire) -> None:
    """A byte every 50 ms would take 3 s to finish the head: each attempt still ends at
    the first-byte limit (0.5 s), counted from the request."""
    trickle: list[Step] = []
    for byte in head("200 OK", "text/event-stream", "X-Pad: " + "p" * 40):
        trickle += [bytes([byte]), 0.05]
    upstream.answer(trickle)
    answer = post(stack, wire)
    assert answer.status == 504 and answer.error["type"] == "upstream_timeout"
    assert "first byte" in answer.error["message"]
    assert 0.9 < answer.seconds < 2.5  # two attempts of 0.5 s
    assert upstream.requests == 2


# -- 3. only events are progress; bytes without one are bounded -------------------------


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_comments_alone_do_not_keep_a_stream_alive(stack: Stack, upstream: RawUpstream,
                                                   wire: Wire) -> None:
    comments: list[Step] = [chunk(b": keep-alive\n\n"), 0.1] * 40  # 4 s of comments
    upstream.answer([head(), wire.start, wire.token("a"), *comments, wire.done])
    answer = post(stack, wire)
    assert_ended_with(answer, "upstream_timeout", retryable=True)
    assert "next event" in answer.error["message"] and answer.texts == ["a"]
    assert answer.seconds < 2.0  # the idle limit (0.5 s) and a margin, not the 4 s


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_events_without_text_keep_a_thinking_stream_alive(stack: Stack,
                                                          upstream: RawUpstream,
                                                          wire: Wire) -> None:
    """A model thinking for 1.5 s (three idle limits) behind empty events (OpenRouter's
    empty deltas, Anthropic's pings), after comments for less than one limit."""
    keep_alive: list[Step] = [chunk(b": OPENROUTER PROCESSING\n\n"), 0.1] * 3
    empty: list[Step] = [wire.empty(), 0.15] * 10
    upstream.answer([head(), *keep_alive, wire.start, *empty, wire.token("late"), wire.done])
    answer = post(stack, wire)
    assert answer.status == 200 and answer.texts == ["late"]
    assert answer.events[-1]["data"] == "[DONE]"
    assert not [e for e in answer.events if e.get("event") == "error"]


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_a_flood_of_comments_ends_the_stream_at_once(stack: Stack, upstream: RawUpstream,
                                                     wire: Wire) -> None:
    """1 MB comment lines as fast as they go: the stream ends past 256 KiB without an
    event, not when the flood stops (5 s, gigabytes later)."""
    flood = Flood(chunk(b": " + b"x" * 1_000_000 + b"\n"), seconds=5)
    upstream.answer([head(), wire.start, wire.token("a"), flood])
    answer = post(stack, wire)
    assert_ended_with(answer, "upstream_no_events", retryable=False)
    assert answer.texts == ["a"] and answer.seconds < 2.0
    time.sleep(0.2)
    assert upstream.seconds_flooded < 2.0 and upstream.bytes_written < 100_000_000


# -- 2. one event is bounded ------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_an_event_that_never_ends_is_refused_past_its_bound(stack: Stack,
                                                            upstream: RawUpstream,
                                                            wire: Wire) -> None:
    flood = Flood(chunk(b"data: " + b"y" * 60_000 + b"\n"), seconds=5)
    upstream.answer([head(), wire.start, wire.token("a"), flood])
    answer = post(stack, wire)
    assert_ended_with(answer, "upstream_event_too_large", retryable=False)
    assert answer.texts == ["a"] and answer.seconds < 2.0
    time.sleep(0.2)
    assert upstream.seconds_flooded < 2.0


# -- 5. a malformed event: what came before it is sent, nothing reaches the loop ---------


@pytest.fixture
def loop_errors() -> Iterator[list[str]]:
    """What the event loop logs about exceptions that escaped to it."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect(logging.ERROR)
    logging.getLogger("asyncio").addHandler(handler)
    yield records
    logging.getLogger("asyncio").removeHandler(handler)


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
@pytest.mark.parametrize("own_read", [False, True], ids=["same-read", "own-read"])
def test_a_malformed_event_ends_the_stream_after_what_came_before(
        stack: Stack, upstream: RawUpstream, wire: Wire, own_read: bool,
        loop_errors: list[str]) -> None:
    good = wire.start + wire.token("a") + wire.token("b")
    if own_read:
        reply: list[Step] = [head(), good, 0.1, wire.bad_index(), 0.1, wire.done]
    else:  # one chunk, one read: the good events and the bad one
        payload = b"".join(_payload(c) for c in (good, wire.bad_index()))
        reply = [head(), chunk(payload), 0.1, wire.done]
    upstream.answer(reply)
    answer = post(stack, wire)
    assert answer.events[0]["event"] == "metadata"
    assert answer.texts == ["a", "b"]
    assert_ended_with(answer, "provider_error", retryable=False)
    assert upstream.requests == 1
    assert loop_errors == []


def _payload(chunks: bytes) -> bytes:
    """The payload of consecutive whole chunks."""
    out = b""
    while chunks and chunks != LAST_CHUNK:
        size_line, _, rest = chunks.partition(b"\r\n")
        size = int(size_line, 16)
        out, chunks = out + rest[:size], rest[size + 2:]
    return out


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
def test_the_last_chunk_late_after_the_end_event_is_waited_for(
        stack: Stack, upstream: RawUpstream, wire: Wire, loop_errors: list[str]) -> None:
    """The provider said its last word; the end of the HTTP body follows a little later
    (the connection is kept to be reused): the stream completes cleanly."""
    last_word = wire.done[:-len(LAST_CHUNK)]
    upstream.answer([head(), wire.start, wire.token("a"), last_word, 0.2, LAST_CHUNK])
    answer = post(stack, wire)
    assert answer.texts == ["a"] and answer.events[-1]["data"] == "[DONE]"
    assert not [e for e in answer.events if e.get("event") == "error"]
    assert loop_errors == []


# -- 9. a 200 that is no event stream ---------------------------------------------------

QUOTA = orjson.dumps({"error": {
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}})
OVERLOADED = orjson.dumps({"type": "error", "error": {
    "type": "overloaded_error", "message": "Overloaded"}})
RATE_LIMITED = orjson.dumps({"error": {"message": "Rate limit reached, try again",
                                       "type": "requests", "code": "rate_limit_exceeded"}})
HTML = b"<html><body><h1>Quota exceeded</h1><p>Upgrade your plan</p></body></html>"


@pytest.mark.parametrize(("wire", "reply", "status", "requests", "says"), [
    (OPENAI, whole("200 OK", "application/json", QUOTA), 502, 1, "exceeded your current"),
    (ANTHROPIC, whole("200 OK", "Application/JSON; charset=utf-8", QUOTA), 502, 1,
     "exceeded your current"),
    (OPENAI, whole("200 OK", "text/html", HTML), 502, 1, "text/html instead of an event"),
    (ANTHROPIC, whole("200 OK", "text/html; charset=utf-8", HTML), 502, 1, "text/html"),
    # the provider's kind decides the retry: an overload is worth another attempt
    (ANTHROPIC, whole("200 OK", "application/json", OVERLOADED), 502, 2, "Overloaded"),
    (OPENAI, whole("200 OK", "application/json", RATE_LIMITED, "Retry-After: 0"), 429, 2,
     "Rate limit reached"),
    # a non-2xx quota error is not retried either, nor sent as a 429 to come back on
    (OPENAI, whole("429 Too Many Requests", "application/json", QUOTA), 502, 1,
     "exceeded your current"),
], ids=["openai-json-quota", "anthropic-json-quota", "openai-html", "anthropic-html",
        "json-overloaded", "json-rate-limit", "429-quota"])
def test_a_200_that_is_no_event_stream_is_the_providers_error(
        stack: Stack, upstream: RawUpstream, wire: Wire, reply: bytes, status: int,
        requests: int, says: str) -> None:
    upstream.answer([reply])
    answer = post(stack, wire)
    assert answer.status == status, answer.body
    assert says in answer.error["message"]
    assert "ended the stream before it was complete" not in answer.error["message"]
    assert upstream.requests == requests
    if status == 429:
        assert answer.headers["retry-after"]
    else:
        assert "retry-after" not in answer.headers


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.kind)
@pytest.mark.parametrize("content_type", [None, "Text/Event-Stream; charset=UTF-8"],
                         ids=["missing", "parameters-and-case"])
def test_an_event_stream_is_recognised_leniently(stack: Stack, upstream: RawUpstream,
                                                 wire: Wire, content_type: str | None) -> None:
    upstream.answer([head("200 OK", content_type), wire.start, wire.token("ok"), wire.done])
    answer = post(stack, wire)
    assert answer.status == 200 and answer.texts == ["ok"]


# -- 10. a drain answers streams still waiting with 503 and Retry-After ------------------


def test_a_drain_answers_a_stream_waiting_for_its_first_token_503() -> None:
    with RawUpstream([5.0]) as silent, \
            Stack({"upstream.first_byte_timeout": 30.0},
                  toml=providers_toml(silent.url)) as stack:
        answers: list[Answer] = []
        client = threading.Thread(target=lambda: answers.append(post(stack, OPENAI)))
        client.start()
        deadline = time.monotonic() + 5
        while silent.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stack.server is not None
        stack.call(stack.server.drain(0.2))
        client.join(10)
        answer = answers[0]
        assert answer.status == 503, answer.body
        assert answer.headers["retry-after"] == "5"
        assert answer.error["type"] == "shutdown"
