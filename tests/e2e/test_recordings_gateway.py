"""Real recorded provider streams through the whole gateway, every endpoint.

Each OpenAI- or Anthropic-format recording in ``../shared/recordings`` is answered by
a raw-socket upstream as a chunked 200, cut into reads at random points, and asked for
through /v1/stream (the default format and ai-sdk), /v1/chat/completions and
/v1/messages (streamed and whole). A recording ends as its provider ended it: the
stream completes, or ends with the provider's own error when the recording has one,
never as a stream that ended early or with a gateway failure; nothing escapes to the
event loop and nothing is logged as an error. Skipped when the recordings are absent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.raw_upstream import LAST_CHUNK, RawUpstream, Step, chunk, head
from tests.e2e.stack import Stack
from tests.e2e.test_hostile_upstream import parse_events, providers_toml

RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "recordings"
READ_SIZES = (1, 7, 64, 500, 4096)
SETTINGS = {"upstream.max_retries": 0, "upstream.first_byte_timeout": 5.0,
            "upstream.idle_timeout": 5.0}


def _recordings() -> list[tuple[str, str, bytes, bool]]:
    found = []
    for meta_file in sorted(RECORDINGS.glob("*.json")) if RECORDINGS.is_dir() else []:
        meta = json.loads(meta_file.read_text())
        body_file = RECORDINGS / str(meta.get("body_file", ""))
        if meta.get("format") in ("openai", "anthropic") and body_file.is_file():
            covers = " ".join(meta.get("covers", [])).lower()
            has_error = "error" in covers  # what each covers is said in its JSON
            found.append((meta["name"], meta["format"], body_file.read_bytes(), has_error))
    return found


RECORDED = _recordings()
pytestmark = pytest.mark.skipif(not RECORDED, reason="no recordings in ../shared/recordings")


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream([]) as raw:
        yield raw


@pytest.fixture(scope="module")
def troubles() -> list[str]:
    return []


@pytest.fixture(scope="module")
def stack(upstream: RawUpstream, troubles: list[str]) -> Iterator[Stack]:
    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            troubles.append(f"{record.name}: {record.getMessage()}")

    handler = Collect(logging.ERROR)
    logging.getLogger().addHandler(handler)
    with Stack(SETTINGS, toml=providers_toml(upstream.url)) as s:
        def on_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            troubles.append(f"escaped to the loop: {context.get('message')}")

        s.loop.call_soon_threadsafe(s.loop.set_exception_handler, on_exception)
        yield s
    logging.getLogger().removeHandler(handler)


def in_reads(body: bytes, rng: random.Random) -> list[Step]:
    steps: list[Step] = [head()]
    at = 0
    while at < len(body):
        size = rng.choice(READ_SIZES)
        steps.append(chunk(body[at:at + size]))
        at += size
    return [*steps, LAST_CHUNK]


ENDPOINTS = {
    "stream": ("/v1/stream", {}),
    "stream-ai-sdk": ("/v1/stream", {"format": "ai-sdk"}),
    "chat-streamed": ("/v1/chat/completions", {"stream": True}),
    "chat-whole": ("/v1/chat/completions", {}),
    "messages-streamed": ("/v1/messages", {"stream": True, "max_tokens": 64}),
    "messages-whole": ("/v1/messages", {"max_tokens": 64}),
}


@pytest.mark.parametrize("recording", RECORDED, ids=lambda r: r[0])
def test_a_recording_ends_as_its_provider_ended_it_through_every_endpoint(
        stack: Stack, upstream: RawUpstream, troubles: list[str],
        recording: tuple[str, str, bytes, bool]) -> None:
    name, kind, body, has_error = recording
    rng = random.Random(name)
    request = {"model": f"raw{kind}/m", "messages": [{"role": "user", "content": "hi"}]}
    for endpoint, (path, fields) in ENDPOINTS.items():
        upstream.answer(in_reads(body, rng))
        response = httpx.post(stack.url + path, json={**request, **fields}, timeout=15)
        assert b"ended the stream before it was complete" not in response.content, endpoint
        assert b"internal error" not in response.content, endpoint
        if endpoint == "stream":
            _check_default_stream(response, has_error)
    assert troubles == []


def _check_default_stream(response: httpx.Response, has_error: bool) -> None:
    assert response.status_code == 200, response.text
    events = parse_events(response.text)
    assert events[0]["event"] == "metadata" and events[-1]["data"] == "[DONE]"
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    errors = [e for e in events if e.get("event") == "error"]
    assert len(errors) == (1 if has_error else 0), errors
