"""Normalized events as an OpenAI Chat Completions stream (reference/openai-chat-stream.md).

Every event is one ``data: <chat.completion.chunk>`` line and a blank line; no
``event:`` or ``id:`` fields (the openai SDK decoder would turn a stray one into an
empty event and fail to parse it). The heartbeat is a bare comment line. ``[DONE]``
is always last; a failure after the commit point is a ``data: {"error": {...}}``
chunk before it, which the SDK raises as ``openai.APIError``.

A text delta is one bytes format around a prefix built at the commit: the per-token
frame costs what the default format's does.
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
from sseserver.formats.sse import HEARTBEAT

_dumps = orjson.dumps
DONE = b"data: [DONE]\n\n"
# finish_reason for the stop reasons of the normalized vocabulary (OpenAI's own pass
# as they are; Anthropic's that have no OpenAI name are mapped to the nearest one).
FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
                  "content_filter": "content_filter", "function_call": "function_call",
                  "refusal": "content_filter", "model_context_window_exceeded": "length",
                  "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "pause_turn": "stop"}


def finish_reason(reason: str | None, saw_tool_call: bool) -> str:
    if reason is None:
        return "tool_calls" if saw_tool_call else "stop"
    return FINISH_REASONS.get(reason, "stop")


def completion_id(stream_id: str) -> str:
    return f"chatcmpl-{stream_id}"


def usage_object(usage: Usage | None) -> dict[str, int]:
    prompt, completion = (usage.input_tokens, usage.output_tokens) if usage else (0, 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


class OpenAIChatFormatter:
    """One ``chat.completion.chunk`` per event; ``created`` is the commit's unix time."""

    content_type = "text/event-stream"
    heartbeat = HEARTBEAT
    preamble = b""  # its clients read no retry field: they reconnect by their own rules
    __slots__ = ("_finish", "_head", "_include_usage", "_saw_tool_call", "_tail",
                 "_text_prefix", "_text_suffix", "_usage", "created", "failed")

    def __init__(self, created: int, include_usage: bool) -> None:
        self.created = created
        self._include_usage = include_usage
        self._head = b""
        self._tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"
        self._text_prefix = b""
        self._text_suffix = b""
        self._finish: str | None = None
        self._saw_tool_call = False
        self._usage: Usage | None = None
        self.failed = False

    def __repr__(self) -> str:
        return f"<OpenAIChatFormatter finish={self._finish} failed={self.failed}>"

    def start(self, metadata: dict[str, Any]) -> bytes:
        self._head = b'data: {"id":%b,"object":"chat.completion.chunk","created":%d,' \
            b'"model":%b,"choices":[' % (_dumps(completion_id(metadata["stream_id"])),
                                         self.created, _dumps(metadata["model"]))
        self._text_prefix = self._head + b'{"index":0,"delta":{"content":'
        self._text_suffix = b'},"logprobs":null,"finish_reason":null}]' + self._tail
        return self._chunk({"role": "assistant", "content": ""})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"%b%b]%b" % (self._head, _dumps(
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}),
            self._tail)

    def text(self, content: str) -> bytes:
        return b"%b%b%b" % (self._text_prefix, _dumps(content), self._text_suffix)

    def text_template(self) -> tuple[bytes, bool] | None:
        if not self._text_prefix:  # not started
            return None
        return b"%b%%b%b" % (_literal(self._text_prefix), _literal(self._text_suffix)), False

    def event(self, event: NormalizedEvent) -> bytes:
        if type(event) is TextDelta:  # the per-token case first
            return self.text(event.content)
        if isinstance(event, ReasoningDelta):
            return self._chunk({"reasoning_content": event.content})
        if isinstance(event, ToolCallDelta):
            return self._chunk({"tool_calls": [self._tool_call(event)]})
        if isinstance(event, Finish):
            self._finish = finish_reason(event.reason, self._saw_tool_call)
            return self._chunk({}, self._finish)
        if isinstance(event, Usage):
            self._usage = event
            return b""  # sent after the finish chunk, when asked for
        if isinstance(event, ErrorEvent):
            self.failed = True
            return b"data: %b\n\n" % _dumps({"error": openai_error(event)})
        if isinstance(event, ReasoningSignature | RedactedReasoning):
            return b""  # Chat Completions takes no reasoning back
        raise TypeError(f"not a normalized event: {event!r}")

    def _tool_call(self, event: ToolCallDelta) -> dict[str, Any]:
        self._saw_tool_call = True
        if event.id is None and event.name is None:
            return {"index": event.index, "function": {"arguments": event.arguments}}
        return {"index": event.index, "id": event.id or f"call_{event.index}",
                "type": "function",
                "function": {"name": event.name or "", "arguments": event.arguments}}

    def end(self) -> bytes:
        if self.failed:
            return DONE
        frames = b""
        if self._finish is None:
            frames = self._chunk({}, finish_reason(None, self._saw_tool_call))
        if self._include_usage:
            frames += b'%b],"usage":%b}\n\n' % (self._head, _dumps(usage_object(self._usage)))
        return frames + DONE


def _literal(part: bytes) -> bytes:
    """``part`` as the literal text of a bytes format (the model's name may hold "%")."""
    return part.replace(b"%", b"%%")


def openai_error(event: ErrorEvent) -> dict[str, Any]:
    return {"message": event.message, "type": event.type, "param": None, "code": None}
