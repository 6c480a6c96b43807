"""What an output format offers: normalized events in, the bytes of one frame out."""

from __future__ import annotations

from typing import Any, Protocol

from sseserver.events import NormalizedEvent


class Formatter(Protocol):
    content_type: str
    heartbeat: bytes  # written whenever the stream is idle; must be invisible to clients
    # What every response body of this format starts with, fresh or resumed, before any
    # frame (SSE: the ``retry:`` field line); b"" for none. Not an event, no id.
    preamble: bytes

    def start(self, metadata: dict[str, Any]) -> bytes:
        """The first frame, sent when the stream commits (DESIGN.md §4)."""
        ...

    def event(self, event: NormalizedEvent) -> bytes:
        """The frame for one event; b"" for events this format does not show."""
        ...

    def text(self, content: str) -> bytes:
        """The frame of a text delta: ``event(TextDelta(content))`` without the event
        (the pump's per-token shortcut; its tests prove the two give the same)."""
        ...

    def end(self) -> bytes:
        """The last frame; always sent, after an error too."""
        ...
