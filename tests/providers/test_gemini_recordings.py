"""Real recorded Gemini streams: the adapter agrees with google-genai.

Every recording of format ``gemini`` in ``../shared/recordings`` that is an event
stream goes through the real SSE parser and :class:`GeminiAdapter`, read in pieces cut
at random points, and through google-genai's own stream reader (``HttpResponse``
segments over an httpx response of the same pieces) and its response types. The two
must agree on text, reasoning (``thought`` parts), function calls (name, args, id when
the provider gave one), usage (prompt; candidates + thoughts) and the finish: STOP and
MAX_TOKENS end the stream, any other finish reason or a blocked prompt is an error.
Skipped when the recordings are absent. The one non-stream body (a 400's JSON error)
is read by the provider's error mapping.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sseserver.config import ProviderSettings
from sseserver.events import (
    ErrorEvent,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sseserver.providers.gemini import GeminiAdapter, GeminiProvider

genai = pytest.importorskip("google.genai")
httpx = pytest.importorskip("httpx")
from google.genai import models, types  # noqa: E402
from google.genai._api_client import HttpResponse  # noqa: E402

RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "recordings"
SPLITS = 3
pytestmark = pytest.mark.skipif(not RECORDINGS.is_dir(),
                                reason=f"no recordings at {RECORDINGS}")


def recordings(streams: bool = True) -> list[str]:
    if not RECORDINGS.is_dir():
        return []
    found = []
    for meta in sorted(RECORDINGS.glob("*.json")):
        info = json.loads(meta.read_text())
        if info.get("format") == "gemini":
            body = (RECORDINGS / info["body_file"]).read_bytes()
            if body.startswith(b"data:") == streams:
                found.append(info["body_file"])
    return found


def cut(body: bytes, rng: random.Random) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 12))))
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


def relay_events(pieces: list[bytes], adapter: GeminiAdapter) -> Iterator[Any]:
    """The provider's parser and the adapter as the relay drives them (Relay.on_body):
    the data-line shortcuts first, then the general path."""
    parser = GeminiProvider(ProviderSettings("g", "gemini", "https://g")).new_body_reader(
        1 << 20, 1 << 20)
    for piece in pieces:
        if (line := parser.feed_data_line(piece)) is not None:
            lines = [line]
        elif (lines := parser.feed_data_lines(piece)) is None:
            for sse in parser.feed(piece):
                yield from adapter.feed(sse.event, sse.data)
            continue
        for line in lines:
            result = adapter.feed_message(line)
            yield from [TextDelta(result)] if type(result) is str else result


def by_event(body: bytes) -> list[bytes]:
    """One read per event, as the live API writes them: the data-line way's case."""
    return [part + b"\r\n\r\n" for part in body.split(b"\r\n\r\n") if part]


def gateway_reading(pieces: list[bytes]) -> dict[str, Any]:
    adapter = GeminiAdapter()
    got: dict[str, Any] = {"text": "", "reasoning": "", "calls": [], "usage": None,
                           "end": None}
    for event in relay_events(pieces, adapter):
        if type(event) is TextDelta:
            got["text"] += event.content
        elif type(event) is ReasoningDelta:
            got["reasoning"] += event.content
        elif type(event) is ToolCallDelta:
            got["calls"].append((event.name, json.loads(event.arguments), event.id))
        elif type(event) is Usage:
            got["usage"] = (event.input_tokens, event.output_tokens)
        elif type(event) is Finish:
            got["end"] = event.reason
        elif type(event) is ErrorEvent:
            got["end"] = "error"
    if got["usage"] is None and (usage := adapter.usage_so_far()) is not None:
        got["usage"] = (usage.input_tokens, usage.output_tokens)
    return got


class _Pieces(httpx.SyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces


def sdk_reading(pieces: list[bytes]) -> dict[str, Any]:
    """google-genai's reading: its SSE line reader, its response types."""
    response = HttpResponse({}, response_stream=httpx.Response(200, stream=_Pieces(pieces)))
    got: dict[str, Any] = {"text": "", "reasoning": "", "calls": [], "usage": None,
                           "end": None}
    for segment in response.segments():
        chunk = types.GenerateContentResponse._from_response(
            response=models._GenerateContentResponse_from_mldev(segment), kwargs={})
        if chunk.usage_metadata is not None:
            meta = chunk.usage_metadata
            got["usage"] = (meta.prompt_token_count or 0,
                            (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0))
        if chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason:
            got["end"] = "error"
        if not chunk.candidates:
            continue
        candidate = chunk.candidates[0]
        for part in (candidate.content.parts if candidate.content else None) or []:
            if part.text:
                got["reasoning" if part.thought else "text"] += part.text
            if part.function_call is not None:
                got["calls"].append((part.function_call.name, part.function_call.args or {},
                                     part.function_call.id))
        if candidate.finish_reason is not None:
            got["end"] = {"STOP": "stop", "MAX_TOKENS": "length"}.get(
                candidate.finish_reason.value, "error")
    if got["calls"] and got["end"] == "stop":
        got["end"] = "tool_calls"
    return got


@pytest.mark.parametrize("name", recordings())
def test_gemini_recording_agrees_with_google_genai(name: str) -> None:
    body = (RECORDINGS / name).read_bytes()
    rng = random.Random(name)
    for pieces in [[body], by_event(body), *(cut(body, rng) for _ in range(SPLITS))]:
        gateway, sdk = gateway_reading(pieces), sdk_reading(pieces)
        # an id the provider did not give is the gateway's own: compare those as present
        gateway["calls"] = [(n, a, i if sdk_id else bool(i))
                            for (n, a, i), (_, _, sdk_id) in zip(gateway["calls"],
                                                                 sdk["calls"], strict=False)]
        sdk["calls"] = [(n, a, i or True) for n, a, i in sdk["calls"]]
        assert gateway == sdk, name
        assert gateway["end"] is not None, name


@pytest.mark.parametrize("name", recordings(streams=False))
def test_gemini_error_body_recording_is_mapped(name: str) -> None:
    body = (RECORDINGS / name).read_bytes()
    provider = GeminiProvider(ProviderSettings("gem", "gemini", "https://g.example"))
    error = provider.map_error(400, {"content-type": "text/event-stream"}, body)
    assert error.status == 400 and not error.retryable
    assert "API key not valid" in str(error)
