"""Real recorded Bedrock ConverseStream bodies: the adapter agrees with botocore.

Every recording of format ``bedrock-eventstream`` in ``../shared/recordings`` goes
through the gateway's reader (core/eventstream.py) and :class:`BedrockAdapter`, read in
pieces cut at random points, and through botocore's own ``EventStream`` over the
bedrock-runtime service model (the event dicts boto3 hands to code). botocore has no
stream accumulation of its own, so the one here is written from the ConverseStream
reference: text and reasoningContent.text deltas joined, a toolUse block's id and name
from contentBlockStart and its input from the toolUse deltas ("{}" when none came),
the stopReason of messageStop, the usage of metadata, and an exception message as the
error botocore raises. Skipped when the recordings are absent.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sseserver.events import (
    ErrorEvent,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sseserver.providers.bedrock import BedrockAdapter, EventStreamReader

pytest.importorskip("botocore")
from botocore.eventstream import EventStream, EventStreamError
from botocore.parsers import EventStreamJSONParser
from botocore.session import get_session

RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "recordings"
SPLITS = 5
STOP_REASONS = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length",
                "content_filtered": "content_filter"}
pytestmark = pytest.mark.skipif(not RECORDINGS.is_dir(),
                                reason=f"no recordings at {RECORDINGS}")


def recordings() -> list[str]:
    if not RECORDINGS.is_dir():
        return []
    return [json.loads(meta.read_text())["body_file"]
            for meta in sorted(RECORDINGS.glob("*.json"))
            if json.loads(meta.read_text()).get("format") == "bedrock-eventstream"]


def cut(body: bytes, rng: random.Random) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 30))))
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


def empty() -> dict[str, Any]:
    return {"text": "", "reasoning": "", "calls": {}, "usage": None, "stop": None,
            "error": None}


def relay_events(pieces: list[bytes]) -> Iterator[Any]:
    """The reader and adapter as the relay drives them (Relay.on_body): a read that is
    one whole contentBlockDelta goes the data-line way, any other read the general."""
    reader, adapter = EventStreamReader(1 << 20), BedrockAdapter()
    for piece in pieces:
        line = reader.feed_data_line(piece)
        if line is not None:
            result = adapter.feed_message(line)
            yield from [TextDelta(result)] if type(result) is str else result
            continue
        assert reader.feed_data_lines(piece) is None
        for message in reader.feed(piece):
            yield from adapter.feed(message.event, message.data)
    yield adapter.finished


def by_message(body: bytes) -> list[bytes]:
    """One read per message, as the live API writes them: the data-line way's case."""
    pieces, start = [], 0
    while start < len(body):
        total = int.from_bytes(body[start:start + 4], "big")
        pieces.append(body[start:start + total])
        start += total
    return pieces


def gateway_reading(pieces: list[bytes]) -> dict[str, Any]:
    got = empty()
    for event in relay_events(pieces):
        if type(event) is bool:
            got["finished"] = event
        elif type(event) is TextDelta:
            got["text"] += event.content
        elif type(event) is ReasoningDelta:
            got["reasoning"] += event.content
        elif type(event) is ToolCallDelta:
            call = got["calls"].setdefault(event.index, ["", "", ""])
            call[0] = event.id or call[0]
            call[1] = event.name or call[1]
            call[2] += event.arguments
        elif type(event) is Usage:
            got["usage"] = (event.input_tokens, event.output_tokens)
        elif type(event) is Finish:
            got["stop"] = event.reason
        elif type(event) is ErrorEvent:
            got["error"] = (event.type, event.message)
    return got


class _Raw:
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def stream(self) -> Iterator[bytes]:
        yield from self.pieces


def botocore_reading(pieces: list[bytes]) -> dict[str, Any]:
    model = get_session().get_service_model("bedrock-runtime")
    operation = model.operation_model("ConverseStream")
    stream = EventStream(_Raw(pieces), operation.output_shape.members["stream"],
                         EventStreamJSONParser(), operation.name)
    got, blocks = empty(), {}
    try:
        for event in stream:
            _accumulate(event, got, blocks)
    except EventStreamError as exc:
        error = exc.response["Error"]
        got["error"] = (error["Code"], error["Message"])
    got["calls"] = {ordinal: [i, n, a or "{}"] for ordinal, (i, n, a) in got["calls"].items()}
    got["finished"] = got["usage"] is not None
    return got


def _accumulate(event: dict[str, Any], got: dict[str, Any], blocks: dict[int, int]) -> None:
    if "contentBlockStart" in event:
        start = event["contentBlockStart"]
        tool = start["start"].get("toolUse")
        if tool:
            blocks[start["contentBlockIndex"]] = len(got["calls"])
            got["calls"][len(got["calls"])] = [tool["toolUseId"], tool["name"], ""]
    elif "contentBlockDelta" in event:
        body = event["contentBlockDelta"]
        delta = body["delta"]
        got["text"] += delta.get("text", "")
        got["reasoning"] += delta.get("reasoningContent", {}).get("text", "")
        if "toolUse" in delta:
            got["calls"][blocks[body["contentBlockIndex"]]][2] += delta["toolUse"]["input"]
    elif "messageStop" in event:
        got["stop"] = STOP_REASONS[event["messageStop"]["stopReason"]]
    elif "metadata" in event:
        usage = event["metadata"]["usage"]
        got["usage"] = (usage["inputTokens"], usage["outputTokens"])


@pytest.mark.parametrize("name", recordings())
def test_bedrock_recording_agrees_with_botocore(name: str) -> None:
    body = (RECORDINGS / name).read_bytes()
    rng = random.Random(name)
    for pieces in [[body], by_message(body), *(cut(body, rng) for _ in range(SPLITS))]:
        gateway, oracle = gateway_reading(pieces), botocore_reading(pieces)
        assert gateway == oracle, name
