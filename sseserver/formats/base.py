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

    def text_template(self) -> tuple[bytes, bool] | None:
        """A bytes format for the frame :meth:`text` makes now, from the text's JSON
        string as orjson writes it: ``template % json``, or, numbered, ``template %
        (last_id + 1, json)`` with that number stored back as ``last_id`` (all that
        :meth:`text` changes). It holds until any other method is called (the pump's
        text lane). None when :meth:`text` is no such format now."""
        ...

    def end(self) -> bytes:
        """The last frame; always sent, after an error too."""
        ...
