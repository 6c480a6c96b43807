"""More providers that misbehave on purpose, byte by byte: a stream that is some other
document, a compressed stream, an event just past its bound in many reads, good bytes
before a fault in the same read, a reused connection's deadlines. Both wire formats.
The loop's exception handler fails the test if anything escapes to it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.e2e.raw_upstream import WIRES, RawUpstream, Step, Wire, chunk, head, whole
from tests.e2e.stack import Stack
from tests.e2e.test_hostile_upstream import SETTINGS, assert_ended_with, post, providers_toml


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
    ([whole("200 OK", "text/event-stream", HTML)], 1, "JSON or HTML body"),
    # the provider's kind decides, as for a 200 labelled JSON: a rate limit is retried
    ([whole("200 OK", "text/event-stream; charset=utf-8", RATE_LIMITED)], 2,
     "Rate limit reached"),
], ids=["json", "json-in-pieces", "html", "rate-limit"])
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
