"""The per-event transform: one provider chunk in, one client frame out."""

from __future__ import annotations

from typing import Any

from sseserver.events import TextDelta
from sseserver.formats.sse import SSEFormatter


def test_frame_one_text_delta(benchmark: Any) -> None:
    benchmark.group = "format"
    formatter = SSEFormatter()
    event = TextDelta("Hello")
    frame = benchmark(formatter.event, event)
    benchmark.extra_info["frame"] = frame.decode()
    assert frame.endswith(b'\ndata: {"content":"Hello"}\n\n')
