"""Normalized events as an Anthropic Messages stream (reference/anthropic-messages-stream.md).

Every event has an ``event:`` line naming it and a ``data:`` line whose ``type`` is
the same name (the anthropic SDK selects events by the ``event:`` line). Content
blocks are opened and closed as the kind of content changes: text, thinking, and one
``tool_use`` block per tool call, its arguments as ``input_json_delta``. The stop
reason and the usage travel in ``message_delta``, then ``message_stop`` ends the
stream; a failure after the commit point is an ``event: error`` instead, which the SDK
raises as ``anthropic.APIStatusError``. The heartbeat is the API's own ``ping`` event.
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

_dumps = orjson.dumps
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
# stop_reason for the stop reasons of the normalized vocabulary (OpenAI's names);
# Anthropic's own pass as they are.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal",
                "end_turn": "end_turn", "max_tokens": "max_tokens",
                "stop_sequence": "stop_sequence", "tool_use": "tool_use",
                "pause_turn": "pause_turn", "refusal": "refusal",
                "model_context_window_exceeded": "model_context_window_exceeded"}
# error.type for the statuses a failure may carry (reference §5).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 503: "overloaded_error", 504: "timeout_error",
               529: "overloaded_error"}
# The kind of an open thinking block whose signature came: its block stays open (the
# next block closes it), but more thinking opens a new one.
SIGNED = "signed_thinking"
KNOWN_ERROR_TYPES = frozenset({*ERROR_TYPES.values(), "api_error", "billing_error"})


def stop_reason(reason: str | None, saw_tool_call: bool, stop_sequence: str | None = None
                ) -> str:
    if stop_sequence is not None:
        return "stop_sequence"
    if reason is None:
        return "tool_use" if saw_tool_call else "end_turn"
    return STOP_REASONS.get(reason, "end_turn")


def message_id(stream_id: str) -> str:
    return f"msg_{stream_id}"


def error_type(kind: str, status: int | None) -> str:
    """Anthropic's error type for a failure: its own when it is one, else by status."""
    if kind in KNOWN_ERROR_TYPES:
        return kind
    if kind == "upstream_timeout":
        return "timeout_error"
    return ERROR_TYPES.get(status or 0, "api_error")


def _event(name: bytes, payload: bytes) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (name, payload)


class AnthropicMessagesFormatter:
    """Content blocks numbered from 0 in the order they open."""

    content_type = "text/event-stream"
    heartbeat = PING
    preamble = b""  # its clients read no retry field: they reconnect by their own rules
    __slots__ = ("_block", "_finish", "_kind", "_stop_sequence", "_text_prefix", "_tools",
                 "_usage", "failed")

    def __init__(self) -> None:
        self._block = -1  # the open block's index; -1 before the first
        self._kind: str | None = None  # the open block's kind: text, thinking, tool_use
        self._tools: dict[int, int] = {}  # tool-call index -> its block index
        self._text_prefix = b""
        self._finish: str | None = None
        self._stop_sequence: str | None = None
        self._usage: Usage | None = None
        self.failed = False

    def __repr__(self) -> str:
        return f"<AnthropicMessagesFormatter block={self._block} kind={self._kind}>"

    def start(self, metadata: dict[str, Any]) -> bytes:
        message = {"id": message_id(metadata["stream_id"]), "type": "message",
                   "role": "assistant", "content": [], "model": metadata["model"],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0}}
        return _event(b"message_start", _dumps({"type": "message_start", "message": message}))

    def text(self, content: str) -> bytes:
        if self._kind == "text":  # the per-token case: one format around a prefix
            return b"%b%b}}\n\n" % (self._text_prefix, _dumps(content))
        opened = self._open({"type": "text", "text": ""})
        self._text_prefix = b'event: content_block_delta\ndata: {"type":"content_block_delta",' \
            b'"index":%d,"delta":{"type":"text_delta","text":' % self._block
        return opened + b"%b%b}}\n\n" % (self._text_prefix, _dumps(content))

    def text_template(self) -> tuple[bytes, bool] | None:
        if self._kind == "text":  # the block's index: digits
            return self._text_prefix + b"%b}}\n\n", False
        return None

    def event(self, event: NormalizedEvent) -> bytes:
        if type(event) is TextDelta:
            return self.text(event.content)
        if isinstance(event, ReasoningDelta):
            return self._thinking() + self._delta(self._block, {
                "type": "thinking_delta", "thinking": event.content})
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event)
        if isinstance(event, ReasoningSignature):
            frames = self._thinking() + self._delta(self._block, {
                "type": "signature_delta", "signature": event.signature})
            self._kind = SIGNED  # signed, it is whole: more thinking is another block
            return frames
        if isinstance(event, RedactedReasoning):
            return self._open({"type": "redacted_thinking", "data": event.data})
        if isinstance(event, Finish):
            self._finish = event.reason
            self._stop_sequence = event.stop_sequence
        elif isinstance(event, Usage):
            self._usage = event
        elif isinstance(event, ErrorEvent):
            self.failed = True
            return _event(b"error", _dumps({"type": "error", "error": {
                "type": error_type(event.type, event.status), "message": event.message}}))
        return b""

    def _thinking(self) -> bytes:
        """Open a thinking block unless one is open (b"" then)."""
        if self._kind == "thinking":
            return b""
        return self._open({"type": "thinking", "thinking": "", "signature": ""})

    def _tool_call(self, event: ToolCallDelta) -> bytes:
        frames = b""
        block = self._tools.get(event.index)
        if block is None:  # a new call: its own block
            frames = self._open({"type": "tool_use", "id": event.id or
                                 f"toolu_{event.index}", "name": event.name or "",
                                 "input": {}}, kind="tool_use")
            block = self._tools[event.index] = self._block
        if event.arguments:
            frames += self._delta(block, {"type": "input_json_delta",
                                          "partial_json": event.arguments})
        return frames

    def _open(self, block: dict[str, Any], kind: str | None = None) -> bytes:
        closed = self._close()
        self._block += 1
        self._kind = kind or block["type"]
        return closed + _event(b"content_block_start", _dumps(
            {"type": "content_block_start", "index": self._block, "content_block": block}))

    def _close(self) -> bytes:
        if self._kind is None:
            return b""
        self._kind = None
        return _event(b"content_block_stop",
                      b'{"type":"content_block_stop","index":%d}' % self._block)

    @staticmethod
    def _delta(index: int, delta: dict[str, Any]) -> bytes:
        return _event(b"content_block_delta", _dumps(
            {"type": "content_block_delta", "index": index, "delta": delta}))

    def end(self) -> bytes:
        if self.failed:
            return b""  # the error event was the stream's last word
        usage = self._usage
        delta = {"type": "message_delta", "delta": {
            "stop_reason": stop_reason(self._finish, bool(self._tools), self._stop_sequence),
            "stop_sequence": self._stop_sequence}, "usage": {
            "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0}}
        return self._close() + _event(b"message_delta", _dumps(delta)) + \
            _event(b"message_stop", b'{"type":"message_stop"}')
