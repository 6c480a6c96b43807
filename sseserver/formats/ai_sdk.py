"""Normalized events as the AI SDK UI message stream (reference/ai-sdk-ui-stream.md),
what ``useChat`` reads through ``DefaultChatTransport``.

Every part is one ``data: <json>`` line and a blank line, ``[DONE]`` last, a ``: ping``
comment line as the heartbeat. Only the keys the reference lists are sent: AI SDK
5.0.x validates parts as strict objects and errors the chat on any other key (so no
``finishReason`` on ``finish``). Text and reasoning are ``*-start``/``-delta``/``-end``
runs with ids of our own; a tool call is ``tool-input-start``, its argument fragments as
``tool-input-delta``, and ``tool-input-available`` with the parsed input once the step
ends. A failure after the commit point is an ``error`` part, which ``useChat`` raises.
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
# The response headers the AI SDK's own servers send (UI_MESSAGE_STREAM_HEADERS);
# content type and cache control come with every stream already.
UI_MESSAGE_STREAM_HEADERS = [("x-vercel-ai-ui-message-stream", "v1")]


def _part(payload: dict[str, Any]) -> bytes:
    return b"data: %b\n\n" % _dumps(payload)


class _Tool:
    __slots__ = ("arguments", "id", "name")

    def __init__(self, call_id: str, name: str) -> None:
        self.id = call_id
        self.name = name
        self.arguments: list[str] = []


class AISDKFormatter:
    """Parts of one assistant message in one step."""

    content_type = "text/event-stream"
    heartbeat = HEARTBEAT
    preamble = b""  # its clients read no retry field: they reconnect by their own rules
    __slots__ = ("_open", "_runs", "_text_prefix", "_tools", "failed")

    def __init__(self) -> None:
        self._open: tuple[str, str] | None = None  # the open run: (kind, id)
        self._runs = 0  # runs opened so far: each gets the id "<kind>-<n>"
        self._text_prefix = b""
        self._tools: dict[int, _Tool] = {}
        self.failed = False

    def __repr__(self) -> str:
        return f"<AISDKFormatter open={self._open} tools={len(self._tools)}>"

    def start(self, metadata: dict[str, Any]) -> bytes:
        return _part({"type": "start", "messageId": f"msg_{metadata['stream_id']}"}) + \
            _part({"type": "start-step"})

    def text(self, content: str) -> bytes:
        if self._open is not None and self._open[0] == "text":  # the per-token case
            return b"%b%b}\n\n" % (self._text_prefix, _dumps(content))
        opened = self._start_run("text")
        self._text_prefix = b'data: {"type":"text-delta","id":"text-%d","delta":' % self._runs
        return b"%b%b%b}\n\n" % (opened, self._text_prefix, _dumps(content))

    def text_template(self) -> tuple[bytes, bool] | None:
        if self._open is not None and self._open[0] == "text":  # a run's id: digits
            return self._text_prefix + b"%b}\n\n", False
        return None

    def event(self, event: NormalizedEvent) -> bytes:
        if type(event) is TextDelta:
            return self.text(event.content)
        if isinstance(event, ReasoningDelta):
            opened = b"" if self._open and self._open[0] == "reasoning" else \
                self._start_run("reasoning")
            return opened + _part({"type": "reasoning-delta", "id": f"reasoning-{self._runs}",
                                   "delta": event.content})
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event)
        if isinstance(event, ErrorEvent):
            self.failed = True
            return self._end_run() + _part({"type": "error", "errorText": event.message})
        if isinstance(event, Finish | Usage | ReasoningSignature | RedactedReasoning):
            return b""  # the UI message stream has no place for them
        raise TypeError(f"not a normalized event: {event!r}")

    def _start_run(self, kind: str) -> bytes:
        ended = self._end_run()
        self._runs += 1
        self._open = (kind, f"{kind}-{self._runs}")
        return ended + _part({"type": f"{kind}-start", "id": self._open[1]})

    def _end_run(self) -> bytes:
        if self._open is None:
            return b""
        kind, run_id = self._open
        self._open = None
        return _part({"type": f"{kind}-end", "id": run_id})

    def _tool_call(self, event: ToolCallDelta) -> bytes:
        frames = b""
        tool = self._tools.get(event.index)
        if tool is None:
            frames = self._end_run()
            tool = self._tools[event.index] = _Tool(
                event.id or f"call_{event.index}", event.name or "")
            frames += _part({"type": "tool-input-start", "toolCallId": tool.id,
                             "toolName": tool.name})
        if event.arguments:
            tool.arguments.append(event.arguments)
            frames += _part({"type": "tool-input-delta", "toolCallId": tool.id,
                             "inputTextDelta": event.arguments})
        return frames

    def end(self) -> bytes:
        if self.failed:
            return DONE
        frames = [self._end_run()]
        frames.extend(_part({"type": "tool-input-available", "toolCallId": tool.id,
                             "toolName": tool.name, "input": _parsed(tool.arguments)})
                      for tool in self._tools.values())
        frames += [_part({"type": "finish-step"}), _part({"type": "finish"}), DONE]
        return b"".join(frames)


def _parsed(arguments: list[str]) -> Any:
    text = "".join(arguments)
    try:
        return orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return text  # what the model sent; the app sees it was not JSON
