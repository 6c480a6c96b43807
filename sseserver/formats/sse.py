"""The default output format (DESIGN.md §2): one SSE event per normalized event.

Framing rule: a blank line only ever ends an event that carries data. httpx-sse and the
openai/anthropic SDK decoders emit an empty event for any blank line once an ``id:`` or
``retry:`` was seen, so the heartbeat is a bare comment line, and ``retry:`` is a field
line alone at the very start of every response (fresh or resumed): a field line ends no
event (WHATWG 9.2.6: only a blank line dispatches), so it joins the block of whatever
event comes first, and a client cut before that event has still been told the delay.

Frames are built with one bytes format each: orjson output never contains CR or LF
(JSON escapes them), and the event names are constants, so no line splitting or
validation is needed on this path.
"""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.events import (
    ErrorEvent,
    Finish,
    NormalizedEvent,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    TextDelta,
    ToolCallDelta,
    Usage,
)

HEARTBEAT = b": ping\n"
# Events this format has no event for: the stop reason, and what only serves to send
# reasoning back to the provider that signed or encrypted it (DESIGN.md §2 lists the
# events; these never change it).
_NOT_SHOWN = frozenset({Finish, ReasoningSignature, RedactedReasoning})
_dumps = orjson.dumps
# text()'s frame: {"content": ...} as orjson writes it, around the text alone (no dict
# to build); numbered (Formatter.text_template)
_TEXT_FRAME = b'id: %d\ndata: {"content":%b}\n\n'
_TEXT_TEMPLATE = (_TEXT_FRAME, True)


class SSEFormatter:
    """Numbers events from 1, strictly increasing, per stream."""

    content_type = "text/event-stream"
    heartbeat = HEARTBEAT
    __slots__ = ("last_id", "preamble", "retry_ms")

    def __init__(self, retry_ms: int = 3000, first_id: int = 0) -> None:
        self.retry_ms = retry_ms
        self.last_id = first_id
        self.preamble = b"retry: %d\n" % retry_ms

    def __repr__(self) -> str:
        return f"<SSEFormatter last_id={self.last_id}>"

    def start(self, metadata: dict[str, Any]) -> bytes:
        self.last_id += 1
        return b"id: %d\nevent: metadata\ndata: %b\n\n" % (self.last_id, _dumps(metadata))

    def text(self, content: str) -> bytes:
        # {"content": ...} as orjson writes it, around the text alone: no dict to build
        self.last_id += 1
        return _TEXT_FRAME % (self.last_id, _dumps(content))

    def text_template(self) -> tuple[bytes, bool]:
        return _TEXT_TEMPLATE

    def event(self, event: NormalizedEvent) -> bytes:
        if type(event) is TextDelta:  # the per-token case first
            return self.text(event.content)
        if type(event) in _NOT_SHOWN:
            return b""
        if type(event) is Usage and type(event.input_tokens) is int and \
                type(event.output_tokens) is int:  # every stream's, as orjson writes it
            self.last_id += 1
            return b'id: %d\nevent: usage\ndata: {"input_tokens":%d,"output_tokens":%d}\n\n' % (
                self.last_id, event.input_tokens, event.output_tokens)
        name, payload = _named(event)
        self.last_id += 1
        return b"id: %d\nevent: %b\ndata: %b\n\n" % (self.last_id, name, _dumps(payload))

    def end(self) -> bytes:
        self.last_id += 1
        return b"id: %d\ndata: [DONE]\n\n" % self.last_id


def _named(event: NormalizedEvent) -> tuple[bytes, dict[str, Any]]:
    if isinstance(event, ReasoningDelta):
        return b"reasoning", {"content": event.content}
    if isinstance(event, ToolCallDelta):
        return b"tool_call", {"index": event.index, "id": event.id, "name": event.name,
                              "arguments": event.arguments}
    if isinstance(event, Usage):
        return b"usage", {"input_tokens": event.input_tokens,
                          "output_tokens": event.output_tokens}
    if isinstance(event, ErrorEvent):
        payload: dict[str, Any] = {"type": event.type, "message": event.message,
                                   "retryable": event.retryable}
        if event.status is not None:
            payload["status"] = event.status
        return b"error", payload
    raise TypeError(f"not a normalized event: {event!r}")
