"""Real recorded provider streams: the adapters agree with the official SDKs.

Every recording of format ``openai`` (OpenAI, Azure and OpenAI-compatible servers) or
``anthropic`` in ``../shared/recordings`` goes through the real SSE parser and the
adapter, read in pieces cut at random points, and through the official SDK (openai /
anthropic, their own stream accumulation) reading the same bytes from a loopback
server. The two must agree on text, reasoning, tool calls (id, name, arguments),
usage, finish reason and error. Skipped when the recordings are absent.

Where the gateway knowingly differs from the SDK, the comparison says so:
- openai-python's accumulation drops ``delta.content`` given as a list of parts
  (Mistral's reasoning models) and has no reasoning field of its own: both are read
  here from the SDK's chunk objects (reference/openai-chat-stream.md; the part shapes
  of oc_mistral_content_parts).
- a tool call whose arguments stayed empty is "{}" for the gateway (clients JSON.parse
  them), "" for openai-python.
- a refusal is text for the gateway.
- usage is the last usage the stream reported: openai-python's snapshot takes each
  chunk's, so a trailing chunk with "usage": null (oa_text_moderation) erases it there.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sseserver.core.sse import SSEParser
from sseserver.errors import ProviderError
from sseserver.events import (
    ErrorEvent,
    Finish,
    NormalizedEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sseserver.providers.anthropic import AnthropicAdapter
from sseserver.providers.openai import OpenAIAdapter

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
from jiter import from_json  # noqa: E402  (anthropic's own JSON parser)
from openai.lib.streaming.chat import ChatCompletionStreamState  # noqa: E402

RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "recordings"
FORMATS = ("openai", "anthropic")
SPLITS = 3  # random ways to cut each body into reads
# Anthropic's stop reasons in the gateway's vocabulary (OpenAI's finish reasons).
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                "tool_use": "tool_calls"}


def recordings() -> list[tuple[str, str]]:
    if not RECORDINGS.is_dir():
        return []
    found = []
    for meta in sorted(RECORDINGS.glob("*.json")):
        info = json.loads(meta.read_text())
        if info.get("format") in FORMATS:
            found.append((info["body_file"], info["format"]))
    return found


pytestmark = [
    pytest.mark.skipif(not RECORDINGS.is_dir(), reason=f"no recordings at {RECORDINGS}"),
    # openai-python's models warn when they carry content that is a list of parts
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
]


@dataclass
class Outcome:
    """What a client of either side ends up with."""

    text: str = ""
    reasoning: str = ""
    tools: dict[int, tuple[str | None, str | None, Any]] = field(default_factory=dict)
    usage: tuple[int, int] | None = None
    finish: str | None = None
    error: tuple[str, str] | None = None


# -- the gateway's side ---------------------------------------------------------------

def random_reads(body: bytes, rng: random.Random) -> Iterator[bytes]:
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 400))))
    start = 0
    for cut in [*cuts, len(body)]:
        yield body[start:cut]
        start = cut


def gateway(body: bytes, wire_format: str, rng: random.Random) -> Outcome:
    adapter = OpenAIAdapter() if wire_format == "openai" else AnthropicAdapter()
    events: list[NormalizedEvent] = []
    try:
        _relayed(adapter, random_reads(body, rng), events)
        error = None
    except ProviderError as exc:
        error = ("provider_error", str(exc))
    outcome = _assembled(events)
    outcome.error = outcome.error or error
    if outcome.usage is None and outcome.error is None:
        usage = adapter.usage_so_far()  # what the relay reports for a stream cut short
        outcome.usage = (usage.input_tokens, usage.output_tokens) if usage else None
    return outcome


def _relayed(adapter: OpenAIAdapter | AnthropicAdapter, reads: Iterator[bytes],
             events: list[NormalizedEvent]) -> None:
    """As the relay reads: until the provider's end or its first error event."""
    parser = SSEParser()
    for read in reads:
        for sse in parser.feed(read):
            events.extend(_adapted(adapter, sse.event, sse.data))
            if adapter.finished or any(type(e) is ErrorEvent for e in events):
                return


def _adapted(adapter: OpenAIAdapter | AnthropicAdapter, event: str, data: str
             ) -> list[NormalizedEvent]:
    if event != "message":
        return adapter.feed(event, data)
    result = adapter.feed_message(data)  # the per-token path the relay takes
    return [TextDelta(result)] if type(result) is str else result


def _assembled(events: list[NormalizedEvent]) -> Outcome:
    outcome = Outcome()
    arguments: dict[int, list[str]] = {}
    for event in events:
        if type(event) is TextDelta:
            outcome.text += event.content
        elif type(event) is ReasoningDelta:
            outcome.reasoning += event.content
        elif type(event) is ToolCallDelta:
            call_id, name, _ = outcome.tools.get(event.index, (None, None, None))
            outcome.tools[event.index] = (call_id or event.id, name or event.name, None)
            arguments.setdefault(event.index, []).append(event.arguments)
        elif type(event) is Usage:
            outcome.usage = (event.input_tokens, event.output_tokens)
        elif type(event) is Finish:
            outcome.finish = event.reason
        elif type(event) is ErrorEvent:
            outcome.error = (event.type, event.message)
    for index, parts in arguments.items():
        call_id, name, _ = outcome.tools[index]
        outcome.tools[index] = (call_id, name, "".join(parts))
    return outcome


# -- the SDKs' side -------------------------------------------------------------------

class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    pieces: ClassVar[list[bytes]] = []  # the body, as the reads the SDK gets

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(sum(map(len, self.pieces))))
        self.end_headers()
        for piece in self.pieces:
            self.wfile.write(piece)
            self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def openai_sdk(base_url: str) -> Outcome:
    client = openai.OpenAI(api_key="sk-test", base_url=f"{base_url}/v1", max_retries=0)
    state = ChatCompletionStreamState()
    outcome = Outcome()
    part_text, part_thinking = [], []
    try:
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
        for chunk in stream:
            state.handle_chunk(chunk)
            _content_parts(chunk, part_text, part_thinking)
            if chunk.usage is not None:
                outcome.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
    except openai.APIError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        outcome.error = (body.get("type") or "provider_error", exc.message)
    try:
        snapshot = state.current_completion_snapshot
    except AssertionError:  # no chunk before the error
        return outcome
    choice = next((c for c in snapshot.choices if c.index == 0), None)
    if choice is None:
        return outcome
    message = choice.message
    extra = message.model_extra or {}
    assert not (extra.get("reasoning_content") and extra.get("reasoning"))
    assert not (message.content and message.refusal)
    outcome.text = (message.content or "") + (message.refusal or "") + "".join(part_text)
    outcome.reasoning = (extra.get("reasoning_content") or extra.get("reasoning") or "") + \
        "".join(part_thinking)
    outcome.tools = {index: (call.id, call.function.name, call.function.arguments or "{}")
                     for index, call in enumerate(message.tool_calls or [])}
    outcome.finish = choice.finish_reason
    return outcome


def _content_parts(chunk: Any, text: list[str], thinking: list[str]) -> None:
    """delta.content as a list of parts, which the SDK's accumulation leaves out."""
    for choice in chunk.choices:
        content = choice.delta.content if choice.index == 0 else None
        for part in content if isinstance(content, list) else ():
            if part.get("type") == "text":
                text.append(part["text"])
            elif part.get("type") == "thinking":
                inner = part["thinking"]
                thinking.append(inner if isinstance(inner, str) else "".join(
                    p.get("text", "") for p in inner if p.get("type") == "text"))


def anthropic_sdk(base_url: str) -> Outcome:
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=base_url, max_retries=0)
    outcome = Outcome()
    snapshot = None
    with client.messages.stream(model="m", max_tokens=16,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        try:
            for _ in stream:
                pass
        except anthropic.APIStatusError as exc:
            error = exc.body["error"]
            outcome.error = (error["type"], error["message"])
        try:
            snapshot = stream.current_message_snapshot
        except (AssertionError, RuntimeError):  # the error came before message_start
            return outcome
    blocks = snapshot.content
    outcome.text = "".join(b.text for b in blocks if b.type == "text")
    outcome.reasoning = "".join(b.thinking for b in blocks if b.type == "thinking")
    tools = [b for b in blocks if b.type == "tool_use"]
    outcome.tools = {i: (b.id, b.name, b.input) for i, b in enumerate(tools)}
    reason = snapshot.stop_reason
    outcome.finish = STOP_REASONS.get(reason, reason) if reason else None
    if outcome.error is None:
        outcome.usage = (snapshot.usage.input_tokens, snapshot.usage.output_tokens)
    return outcome


# -- the comparison -------------------------------------------------------------------

@pytest.mark.parametrize(("body_file", "wire_format"), recordings())
def test_the_gateway_reads_a_recording_as_the_official_sdk_does(
        upstream: str, body_file: str, wire_format: str) -> None:
    body = (RECORDINGS / body_file).read_bytes()
    rng = random.Random(body_file)
    _Upstream.pieces = list(random_reads(body, rng))
    expected = openai_sdk(upstream) if wire_format == "openai" else anthropic_sdk(upstream)
    for split in range(SPLITS):
        got = gateway(body, wire_format, random.Random(f"{body_file}/{split}"))
        if wire_format == "anthropic":  # the input as the SDK parses it (partial JSON too)
            got.tools = {i: (call_id, name, from_json(args.encode(), partial_mode=True))
                         for i, (call_id, name, args) in got.tools.items()}
        if expected.error is not None:
            got.usage = expected.usage = None  # the SDK raises before it reads usage
        assert got == expected, f"{body_file}, split {split}"
