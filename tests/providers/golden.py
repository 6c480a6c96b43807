"""Feed a recorded-shape stream through the real SSE parser and an adapter."""

from __future__ import annotations

from pathlib import Path

from sseserver.core.sse import SSEParser
from sseserver.events import NormalizedEvent
from sseserver.providers.base import StreamAdapter

FIXTURES = Path(__file__).parent / "fixtures"


def run_fixture(name: str, adapter: StreamAdapter, split: int | None = None
                ) -> list[NormalizedEvent]:
    wire = (FIXTURES / name).read_bytes()
    reads = [wire] if split is None else [wire[i:i + split] for i in range(0, len(wire), split)]
    parser = SSEParser()
    return [event for read in reads for sse in parser.feed(read)
            for event in adapter.feed(sse.event, sse.data)]
