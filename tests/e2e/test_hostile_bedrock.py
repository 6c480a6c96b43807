"""A Bedrock upstream that misbehaves in its binary framing, written byte by byte: the
client keeps what came before the fault, then gets one error event and the end; a 200
that is no event stream is told apart; nothing reaches the log as a traceback."""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Iterator

import httpx
import orjson
import pytest

from sseserver.core.eventstream import encode_message
from tests.e2e.raw_upstream import LAST_CHUNK, RawUpstream, chunk, head
from tests.e2e.stack import Stack
from tests.e2e.test_hostile_upstream import Answer, assert_ended_with, parse_events

SETTINGS = {"upstream.first_byte_timeout": 0.5, "upstream.idle_timeout": 0.5,
            "upstream.max_retries": 1, "upstream.backoff_initial": 0.01,
            "upstream.backoff_max": 0.02, "upstream.max_event_bytes": 64 * 1024}
EVENTSTREAM = "application/vnd.amazon.eventstream"


def delta(text: str) -> bytes:
    return encode_message({":event-type": "contentBlockDelta", ":message-type": "event",
                           ":content-type": "application/json"},
                          orjson.dumps({"contentBlockIndex": 0, "delta": {"text": text}}))


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream([]) as raw:
        yield raw


@pytest.fixture(scope="module")
def stack(upstream: RawUpstream) -> Iterator[Stack]:
    toml = f"""
[providers.rawbedrock]
kind = "bedrock"
base_url = "{upstream.url}"
region = "us-east-1"
access_key_id = "AKIDEXAMPLE"
api_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYRAWSECRET"
"""
    with Stack(SETTINGS, toml=toml) as s:
        yield s


def post(stack: Stack) -> Answer:
    body = {"model": "amazon.nova-lite-v1:0", "provider": "rawbedrock",
            "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(stack.url + "/v1/stream", json=body, timeout=15)
    answer = Answer(response.status_code, response.headers, response.content, 0.0)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        answer.events = parse_events(response.text)
    return answer


def test_a_message_that_fails_its_crc_ends_the_stream_after_the_text(
        stack: Stack, upstream: RawUpstream, caplog: pytest.LogCaptureFixture) -> None:
    broken = bytearray(delta("lost"))
    broken[-6] ^= 0x01
    upstream.answer([head(content_type=EVENTSTREAM), chunk(delta("kept")), 0.05,
                     chunk(bytes(broken)), LAST_CHUNK])
    with caplog.at_level(logging.INFO):
        answer = post(stack)
    assert answer.texts == ["kept"]
    assert_ended_with(answer, "provider_error", retryable=False)
    assert "Traceback" not in caplog.text


def test_a_message_longer_than_the_bound_is_refused_from_its_prelude(
        stack: Stack, upstream: RawUpstream) -> None:
    prelude = struct.pack(">II", 100 * 1024 * 1024, 0)
    upstream.answer([head(content_type=EVENTSTREAM), chunk(delta("kept")), 0.05,
                     chunk(prelude + struct.pack(">I", zlib.crc32(prelude))), 5.0])
    answer = post(stack)
    assert answer.texts == ["kept"]
    assert_ended_with(answer, "upstream_event_too_large", retryable=False)


def test_a_body_cut_inside_a_message_is_an_error(stack: Stack,
                                                  upstream: RawUpstream) -> None:
    upstream.answer([head(content_type=EVENTSTREAM), chunk(delta("kept")), 0.05,
                     chunk(delta("half")[:20]), LAST_CHUNK])
    answer = post(stack)
    assert answer.texts == ["kept"]
    assert answer.events[-1]["data"] == "[DONE]"
    assert answer.error["message"] == "provider ended the stream before it was complete"


def test_a_200_of_another_media_type_is_no_stream(stack: Stack,
                                                  upstream: RawUpstream) -> None:
    upstream.answer([head(content_type="text/event-stream"), chunk(b"data: {}\n\n"),
                     LAST_CHUNK])
    answer = post(stack)
    assert answer.status == 502
    assert "instead of an event stream" in answer.error["message"]
