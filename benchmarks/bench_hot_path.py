"""Micro benchmarks of each step of the per-token hot path, one fixed workload each.

Run with timing by `make bench`; `make test` runs them once with --benchmark-disable so
they cannot rot. Correctness of each result is recorded in extra_info and asserted.
"""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.core.sse import SSEParser, encode_event
from sseserver.events import TextDelta
from sseserver.formats.sse import SSEFormatter
from sseserver.providers.anthropic import AnthropicAdapter
from sseserver.providers.openai import OpenAIAdapter

# reference/openai-chat-stream.md §8.1, one content chunk as it arrives in one read
OPENAI_CHUNK = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1727346172,'
    b'"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":'
    b'{"content":"Hello"},"logprobs":null,"finish_reason":null}]}\n\n')
OPENAI_DATA = OPENAI_CHUNK[6:-2].decode()
ANTHROPIC_CHUNK = (b'event: content_block_delta\ndata: {"type":"content_block_delta",'
                   b'"index":0,"delta":{"type":"text_delta","text":"Hello"}}\n\n')


def test_encode_event(benchmark: Any) -> None:
    benchmark.group = "sse"
    frame = benchmark(encode_event, '{"content":"Hello"}', id=42)
    benchmark.extra_info["frame"] = frame.decode()
    assert frame == b'id: 42\ndata: {"content":"Hello"}\n\n'


def test_parse_openai_chunk(benchmark: Any) -> None:
    benchmark.group = "sse"
    parser = SSEParser()
    events = benchmark(parser.feed, OPENAI_CHUNK)
    benchmark.extra_info["events"] = len(events)
    assert [e.data for e in events] == [OPENAI_DATA]


def test_parse_anthropic_event(benchmark: Any) -> None:
    benchmark.group = "sse"
    parser = SSEParser()
    events = benchmark(parser.feed, ANTHROPIC_CHUNK)
    assert [e.event for e in events] == ["content_block_delta"]


def test_openai_adapter(benchmark: Any) -> None:
    benchmark.group = "adapter"
    adapter = OpenAIAdapter()
    events = benchmark(adapter.feed, "message", OPENAI_DATA)
    benchmark.extra_info["events"] = repr(events)
    assert events == [TextDelta("Hello")]


def test_anthropic_adapter(benchmark: Any) -> None:
    benchmark.group = "adapter"
    adapter = AnthropicAdapter()
    data = ANTHROPIC_CHUNK.split(b"data: ", 1)[1].strip().decode()
    events = benchmark(adapter.feed, "content_block_delta", data)
    assert events == [TextDelta("Hello")]


def test_format_text_delta(benchmark: Any) -> None:
    benchmark.group = "format"
    formatter = SSEFormatter()
    frame = benchmark(formatter.event, TextDelta("Hello"))
    assert frame.endswith(b'\ndata: {"content":"Hello"}\n\n')


def test_transform_openai_chunk_to_frame(benchmark: Any) -> None:
    """Upstream body bytes of one token in, the client's frame bytes out."""
    benchmark.group = "transform"
    parser, adapter, formatter = SSEParser(), OpenAIAdapter(), SSEFormatter()

    def transform() -> bytes:
        frames = [formatter.event(event) for sse in parser.feed(OPENAI_CHUNK)
                  for event in adapter.feed(sse.event, sse.data)]
        return b"".join(frames)

    frame = benchmark(transform)
    payload = orjson.loads(frame.split(b"data: ", 1)[1])
    benchmark.extra_info["payload"] = payload
    assert payload == {"content": "Hello"}
