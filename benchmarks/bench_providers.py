"""Per-token cost of each provider's body reading, from one upstream read of one text
token to its normalized event, next to OpenAI's: framing (SSE parser, or the
event-stream decoder) and adapter together, as the relay runs them.

The workloads are one text token each as the live APIs send it (the gm_* and br_*
recordings' shapes: Gemini's usageMetadata on every chunk and CRLF framing, Bedrock's
"p" padding field). Correctness of each result is asserted.
"""

from __future__ import annotations

from typing import Any

from sseserver.core.eventstream import encode_message
from sseserver.core.sse import SSEParser
from sseserver.core.sse_crlf import CRLFEventParser
from sseserver.providers.bedrock import BedrockAdapter, EventStreamReader
from sseserver.providers.gemini import GeminiAdapter
from sseserver.providers.openai import OpenAIAdapter

OPENAI_READ = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1727346172,'
    b'"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":'
    b'{"content":"Hello"},"logprobs":null,"finish_reason":null}]}\n\n')
GEMINI_READ = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"},'
    b'"index": 0}],"usageMetadata": {"promptTokenCount": 15,"totalTokenCount": 15,'
    b'"promptTokensDetails": [{"modality": "TEXT","tokenCount": 15}]},'
    b'"modelVersion": "gemini-2.5-flash","responseId": "w1peaMz6INOvnvgPgYfPiQY"}\r\n\r\n')
BEDROCK_READ = encode_message(
    {":event-type": "contentBlockDelta", ":content-type": "application/json",
     ":message-type": "event"},
    b'{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdefghijklmnopqrstuvwxyzAB"}')
GROUP = "provider read to event"


def test_openai_read_to_event(benchmark: Any) -> None:
    benchmark.group = GROUP
    parser, adapter = SSEParser(), OpenAIAdapter()

    def read() -> Any:
        line = parser.feed_data_line(OPENAI_READ)
        return adapter.feed_message(line) if line is not None else None

    assert benchmark(read) == "Hello"


def test_gemini_read_to_event(benchmark: Any) -> None:
    benchmark.group = GROUP
    parser, adapter = CRLFEventParser(), GeminiAdapter()

    def read() -> Any:
        line = parser.feed_data_line(GEMINI_READ)
        return adapter.feed_message(line) if line is not None else None

    assert benchmark(read) == "Hello"


def test_bedrock_read_to_event(benchmark: Any) -> None:
    benchmark.group = GROUP
    reader, adapter = EventStreamReader(1 << 20), BedrockAdapter()

    def read() -> Any:
        line = reader.feed_data_line(BEDROCK_READ)
        return adapter.feed_message(line) if line is not None else None

    assert benchmark(read) == "Hello"
