"""The pump: body bytes in, client frames out, with no loop and no socket.

The property test cuts every recorded provider body (tests/providers/fixtures/, and
../shared/recordings when present) into reads at random points and at event
boundaries (where the shortcuts take them), and asserts that the fused fast path
gives the same frames and the same ending as the general path alone.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sseserver.pump
from sseserver.config import ProviderSettings
from sseserver.errors import ProviderError, UpstreamError
from sseserver.formats.ai_sdk import AISDKFormatter
from sseserver.formats.anthropic_messages import AnthropicMessagesFormatter
from sseserver.formats.base import Formatter
from sseserver.formats.openai_chat import OpenAIChatFormatter
from sseserver.formats.sse import SSEFormatter
from sseserver.providers.base import Provider
from sseserver.providers.registry import make_provider
from sseserver.pump import NotAStream, Pump, ReferencePump

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "providers" / "fixtures"
RECORDINGS = ROOT.parent / "shared" / "recordings"
KINDS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini",
         "bedrock-eventstream": "bedrock", "ollama": "ollama",
         "openai-responses": "openai-responses"}
BOUND = 1 << 20


def bodies() -> list[tuple[str, str, bytes]]:
    found = [(path.name, path.name.split("_")[0], path.read_bytes())
             for path in sorted(FIXTURES.glob("*.sse"))]
    if RECORDINGS.is_dir():
        for meta in sorted(RECORDINGS.glob("*.json")):
            info = json.loads(meta.read_text())
            if info.get("format") in KINDS:
                found.append((info["body_file"], KINDS[info["format"]],
                              (RECORDINGS / info["body_file"]).read_bytes()))
    return found


BODIES = bodies()


def event_ends(kind: str, body: bytes) -> list[int]:
    """Where each event of ``body`` ends: the cuts a per-token read makes."""
    if kind == "bedrock":
        ends, at = [], 0
        while at + 4 <= len(body):
            at += struct.unpack(">I", body[at:at + 4])[0]
            ends.append(at)
        return ends
    separator = b"\n" if kind == "ollama" else b"\r\n\r\n" if b"\r\n\r\n" in body else b"\n\n"
    ends, at = [], body.find(separator)
    while at >= 0:
        ends.append(at + len(separator))
        at = body.find(separator, at + len(separator))
    return ends


@dataclass
class Recorder:
    """An output that keeps what was written, and how."""

    writes: list[bytes] = field(default_factory=list)

    def write(self, frames: list[bytes]) -> None:
        for frame in frames:
            one_event(frame)
        self.writes.append(b"".join(frames))

    def write_frame(self, frame: bytes) -> None:
        one_event(frame)
        self.writes.append(frame)


def one_event(frame: bytes) -> None:
    """A frame carries one event id at most (the output protocol: a stream log keeps
    each frame as the event of its id, to resume after it)."""
    assert frame.startswith(b"id: ") + frame.count(b"\nid: ") <= 1, frame


@dataclass
class Run:
    """The pump's output and its driver: what it was told."""

    output: Recorder = field(default_factory=Recorder)
    commits: int = 0
    settled: list[object] = field(default_factory=list)
    unreadable: list[Exception] = field(default_factory=list)

    def on_commit(self) -> dict[str, Any]:
        self.commits += 1
        return {"stream_id": "S1", "provider": "p", "model": "m"}

    def on_settled(self, result: object) -> None:
        self.settled.append(result)

    def on_unreadable(self, exc: Exception) -> None:
        self.unreadable.append(exc)

    def pump(self, cls: type[Pump] = Pump, formatter: Formatter | None = None) -> Pump:
        return cls(formatter or SSEFormatter(), self.output, self)

    def ending(self) -> object:
        assert len(self.settled) == 1, self.settled  # heard once, and only once
        result = self.settled[0]
        if isinstance(result, UpstreamError):
            return type(result).__name__, result.error_type, str(result), result.retryable
        if isinstance(result, NotAStream):
            return "not a stream"
        return result


def pump_through(cls: type[Pump], provider: Provider, formatter: Formatter,
                 reads: list[bytes]) -> tuple[Run, Pump]:
    run = Run()
    pump = run.pump(cls, formatter)
    pump.begin(provider.new_body_reader(BOUND, BOUND), provider.new_adapter())
    for read in reads:
        if run.settled:
            break  # the driver stops feeding a settled body
        pump.on_body(read)
    pump.on_body_end()
    return run, pump


def cut(body: bytes, cuts: set[int]) -> list[bytes]:
    points = [0, *sorted(c for c in cuts if 0 < c < len(body)), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(points) if b > a]


# Tool calls of the providers that give none an id get a random one (providers/shapes.py)
_RANDOM_ID = re.compile(rb"call_[0-9a-f]{16,24}")


def same_ids(frames: bytes) -> bytes:
    return _RANDOM_ID.sub(b"call_*", frames)


FORMATTERS: dict[str, Callable[[], Formatter]] = {
    "sse": SSEFormatter,
    "chat": lambda: OpenAIChatFormatter(1700000000, include_usage=True),
    "anthropic": AnthropicMessagesFormatter,
    "ai-sdk": AISDKFormatter,
}


@st.composite
def reads_of(draw: st.DrawFn, case: tuple[str, str, bytes]) -> list[bytes]:
    _, kind, body = case
    ends = event_ends(kind, body)
    at_events = draw(st.sets(st.sampled_from(ends), max_size=len(ends))) if ends else set()
    anywhere = draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=12))
    return cut(body, at_events | anywhere)


@pytest.mark.parametrize("case", BODIES, ids=[name for name, _, _ in BODIES])
@pytest.mark.parametrize("format_name", sorted(FORMATTERS))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_path_gives_the_general_paths_frames(
        case: tuple[str, str, bytes], format_name: str, data: st.DataObject) -> None:
    provider = make_provider(ProviderSettings("p", case[1], "http://x"))
    reads = data.draw(reads_of(case))
    fast, fast_pump = pump_through(Pump, provider, FORMATTERS[format_name](), reads)
    general, general_pump = pump_through(ReferencePump, provider, FORMATTERS[format_name](),
                                         reads)
    assert same_ids(b"".join(fast.output.writes)) == same_ids(b"".join(general.output.writes))
    assert fast.ending() == general.ending()
    assert (fast.commits, fast_pump.events, fast_pump.usage) == \
        (general.commits, general_pump.events, general_pump.usage)
    # never more than one write a read (and one at the end of the body)
    assert len(fast.output.writes) <= len(reads) + 1


@pytest.mark.parametrize("case", BODIES[:4], ids=[name for name, _, _ in BODIES[:4]])
def test_event_by_event_reads_take_the_fast_path_and_agree(
        case: tuple[str, str, bytes]) -> None:
    provider = make_provider(ProviderSettings("p", case[1], "http://x"))
    reads = cut(case[2], set(event_ends(case[1], case[2])))
    fast, _ = pump_through(Pump, provider, SSEFormatter(), reads)
    general, _ = pump_through(ReferencePump, provider, SSEFormatter(), reads)
    assert fast.output.writes == general.output.writes
    assert fast.ending() == general.ending()


OPENAI = make_provider(ProviderSettings("p", "openai", "http://x"))


def token(text: str) -> bytes:
    return b'data: {"choices":[{"index":0,"delta":{"content":"%b"}}]}\n\n' % text.encode()


DONE = b"data: [DONE]\n\n"


def test_a_burst_is_one_write_of_one_frame_per_event() -> None:
    run, pump = pump_through(Pump, OPENAI, SSEFormatter(), [token("a"), b"".join(
        token(c) for c in "bcdefghijk")])
    assert len(run.output.writes) == 2
    assert run.output.writes[1].count(b"data: {\"content\"") == 10
    assert pump.events == 1 + 11  # the metadata frame and eleven tokens


def test_events_before_the_first_content_are_held_then_follow_the_metadata() -> None:
    usage_first = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":0}}\n\n'
    run, _ = pump_through(Pump, OPENAI, SSEFormatter(), [usage_first, token("hi"), DONE])
    assert run.commits == 1
    first = run.output.writes[0]
    assert first.index(b"event: metadata") < first.index(b"event: usage") < \
        first.index(b'"content":"hi"')
    assert run.ending() is None


def test_a_provider_error_event_ends_the_body_after_the_frames_before_it() -> None:
    error = b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'
    run, _ = pump_through(Pump, OPENAI, SSEFormatter(), [token("a") + error + token("b")])
    assert b'"content":"a"' in b"".join(run.output.writes)
    assert b'"content":"b"' not in b"".join(run.output.writes)
    kind, error_type, message, _ = run.ending()  # type: ignore[misc]
    assert (kind, error_type, message) == ("ProviderError", "server_error", "overloaded")


def test_a_json_document_behind_an_event_stream_label_is_not_a_stream() -> None:
    run, _ = pump_through(Pump, OPENAI, SSEFormatter(), [b'{"error": "quota"}'])
    assert run.ending() == "not a stream"
    assert run.output.writes == []


class Brittle:
    """An adapter that fails on anything, as a bug would."""

    finished = False

    def feed_message(self, data: str) -> str:
        raise KeyError(data)

    def feed(self, event: str, data: str) -> list[object]:
        raise KeyError(data)

    def usage_so_far(self) -> None:
        return None


def test_a_body_cut_short_is_an_upstream_error_and_data_of_a_wrong_shape_is_reported() -> None:
    run = Run()
    pump = run.pump()
    pump.begin(OPENAI.new_body_reader(BOUND, BOUND), Brittle())
    pump.on_body(token("sk-secret-0123456789"))
    error = run.settled[0]
    assert isinstance(error, ProviderError) and error.retryable is False
    assert "sk-secret" not in str(error)  # a foreign exception's text is not used
    assert [type(exc) for exc in run.unreadable] == [KeyError]  # for the driver to log
    pump.on_body_end()
    assert len(run.settled) == 1  # heard once

    cut_short = Run()
    pump = cut_short.pump()
    pump.begin(OPENAI.new_body_reader(BOUND, BOUND), OPENAI.new_adapter())
    pump.on_body(token("a"))
    pump.on_body_end()
    assert str(cut_short.settled[0]) == "provider ended the stream before it was complete"


def test_failure_frames_commit_report_usage_then_error_then_end() -> None:
    pump = Run().pump()
    frames = pump.failure_frames("cancelled", "stop", False, None)
    text = b"".join(frames)
    assert text.index(b"event: metadata") < text.index(b"event: error") < \
        text.index(b"[DONE]")
    assert pump.committed and pump.events == 3


def test_stop_settles_a_flowing_body_once() -> None:
    run = Run()
    pump = run.pump()
    pump.stop()
    assert run.settled == []  # nothing flowing
    pump.begin(OPENAI.new_body_reader(BOUND, BOUND), OPENAI.new_adapter())
    pump.stop()
    pump.on_body_end()
    assert run.settled == [None]


def test_the_pump_needs_no_event_loop() -> None:
    tree = ast.parse(Path(sseserver.pump.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not {"asyncio", "socket", "time"} & imported
    assert not any(name.startswith("sseserver.aio") for name in imported)


# -- bursts: many events in one read, built for the shortcuts' edges -------------------

_HEAD = b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",' \
    b'"choices":[{"index":0,'
_TEXTS = st.one_of(st.text(max_size=12).map(lambda t: orjson.dumps(t)),
                   st.sampled_from([b'"caf\xc3"', b'"\xff\xfe"', b'"\\ud800"', b'"a\xe2\x82"',
                                    b'""', b'"\\u00e9\\n"']))
# What a burst may carry besides text: the role chunk, a tool call, reasoning, the
# finish, the usage, an error, a text chunk of another shape, comments, the end.
_OTHERS = st.sampled_from([
    b'data: ' + _HEAD + b'"delta":{"role":"assistant","content":""},"finish_reason":null}]}',
    b'data: ' + _HEAD + b'"delta":{"tool_calls":[{"index":0,"id":"call_1","type":'
    b'"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}',
    b'data: ' + _HEAD + b'"delta":{"reasoning_content":"hm"},"finish_reason":null}]}',
    b'data: ' + _HEAD + b'"delta":{},"finish_reason":"stop"}]}',
    b'data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
    b'data: {"error":{"message":"overloaded","type":"server_error"}}',
    b'data: {"choices":[{"delta":{"content":"x"}}],"obfuscation":"abc"}',
    b'data: ' + _HEAD + b'"delta":{"content":"a"},"finish_reason":null}]}\ndata: two lines',
    b': keep-alive',
    b'data: [DONE]',
])
_BURST_EVENT = st.one_of(
    _TEXTS.map(lambda t: b'data: ' + _HEAD + b'"delta":{"content":' + t +
               b'},"logprobs":null,"finish_reason":null}]}'),
    _OTHERS)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(_BURST_EVENT, min_size=1, max_size=40),
       sizes=st.lists(st.integers(1, 25), max_size=12), format_name=st.sampled_from(
           sorted(FORMATTERS)))
def test_bursts_of_any_size_give_the_general_paths_frames(
        events: list[bytes], sizes: list[int], format_name: str) -> None:
    """Reads of 1 to 25 whole events each, text chunks of one shape (so the adapter
    reads them by their text) among events of every other kind, invalid UTF-8 and
    lone surrogates inside: the frames are those of the general path."""
    blocks = [event + b"\n\n" for event in events]
    reads, at = [], 0
    for size in [*sizes, len(blocks)]:
        if at < len(blocks):
            reads.append(b"".join(blocks[at:at + size]))
            at += size
    fast, fast_pump = pump_through(Pump, OPENAI, FORMATTERS[format_name](), reads)
    general, general_pump = pump_through(ReferencePump, OPENAI, FORMATTERS[format_name](),
                                         reads)
    assert b"".join(fast.output.writes) == b"".join(general.output.writes)
    assert fast.ending() == general.ending()
    assert (fast.commits, fast_pump.events, fast_pump.usage) == \
        (general.commits, general_pump.events, general_pump.usage)
    assert len(fast.output.writes) <= len(reads) + 1
