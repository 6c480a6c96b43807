"""Non-streaming answers: one ``chat.completion`` or one Message, assembled from the
normalized events of the same upstream stream a streaming request gets.

The assemblers are formatters (the relay drives them as it drives any other) whose
frames are never sent: each content event yields :data:`PROGRESS`, a frame that
counts as an event (so the relay's heartbeat and event accounting stay as they are)
and lets the collecting output check the answer's size. When the relay ends the
stream, :meth:`Assembler.response` gives the status and the JSON body to answer with:
the assembled object, or the API's own error when the stream failed, even after its
first token (nothing was sent yet, so the status can still say so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from sseserver.compat.errors import anthropic_error_body, compat_status, openai_error_body
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
from sseserver.formats.anthropic_messages import message_id, stop_reason
from sseserver.formats.openai_chat import completion_id, finish_reason, usage_object

PROGRESS = b"."
# The status of a failure after the stream started, by the gateway's error types; any
# other failure of the provider is a 502 (the gateway's own upstream failure status).
FAILURE_STATUS = {"upstream_timeout": 504, "shutdown": 503, "stream_too_large": 502}


@dataclass(slots=True)
class _Block:
    kind: str  # text, thinking, redacted_thinking, tool_use
    parts: list[str] = field(default_factory=list)
    id: str | None = None
    name: str | None = None
    signature: str | None = None  # a thinking block's, once it came (the block is whole)


class Assembler:
    """The events of one answer, in order; subclasses shape them per API."""

    content_type = "application/json"
    heartbeat = b""  # a JSON answer has no room for one: the client just waits
    preamble = b""

    def __init__(self, created: int) -> None:
        self.created = created
        self.stream_id = ""
        self.model = ""
        self.blocks: list[_Block] = []
        self.tools: dict[int, _Block] = {}
        self.finish: str | None = None
        self.stop_sequence: str | None = None
        self.usage: Usage | None = None
        self.error: ErrorEvent | None = None
        self.size = 0  # characters of content so far, for the output's bound

    def __repr__(self) -> str:
        return f"<{type(self).__name__} blocks={len(self.blocks)} size={self.size}>"

    def start(self, metadata: dict[str, Any]) -> bytes:
        self.stream_id = metadata["stream_id"]
        self.model = metadata["model"]
        return b""

    def text(self, content: str) -> bytes:
        self._add("text", content)
        return PROGRESS

    def event(self, event: NormalizedEvent) -> bytes:
        if isinstance(event, TextDelta):
            return self.text(event.content)
        if isinstance(event, ReasoningDelta):
            self._add("thinking", event.content)
        elif isinstance(event, ToolCallDelta):
            self._tool_call(event)
        elif isinstance(event, ReasoningSignature):
            self._sign(event.signature)
        elif isinstance(event, RedactedReasoning):
            self.blocks.append(_Block("redacted_thinking", [event.data]))
        elif isinstance(event, Finish):
            self.finish = event.reason
            self.stop_sequence = event.stop_sequence
            return b""
        elif isinstance(event, Usage):
            self.usage = event
            return b""
        elif isinstance(event, ErrorEvent):
            self.error = event
        return PROGRESS

    def end(self) -> bytes:
        return b""

    def _add(self, kind: str, content: str) -> None:
        self.size += len(content)
        last = self.blocks[-1] if self.blocks else None
        if last is None or last.kind != kind or last.signature is not None:
            self.blocks.append(_Block(kind))
        self.blocks[-1].parts.append(content)

    def _sign(self, signature: str) -> None:
        self.size += len(signature)
        last = self.blocks[-1] if self.blocks else None
        if last is None or last.kind != "thinking" or last.signature is not None:
            last = _Block("thinking")  # a signature over no thinking text
            self.blocks.append(last)
        last.signature = signature

    def _tool_call(self, event: ToolCallDelta) -> None:
        self.size += len(event.arguments)
        block = self.tools.get(event.index)
        if block is None:
            block = self.tools[event.index] = _Block("tool_use", id=event.id, name=event.name)
            self.blocks.append(block)
        block.parts.append(event.arguments)

    api = ""  # the wire format of the answer: "openai" or "anthropic"

    def failure_status(self) -> int:
        assert self.error is not None
        status = FAILURE_STATUS.get(self.error.type, self.error.status or 502)
        return compat_status(self.api, status, self.error.status) \
            if 400 <= status <= 599 else 502

    def response(self) -> tuple[int, dict[str, Any]]:
        """The status and JSON body to answer with, once the relay ended the stream."""
        raise NotImplementedError


class ChatCompletionAssembler(Assembler):
    api = "openai"

    def response(self) -> tuple[int, dict[str, Any]]:
        if self.error is not None:
            status = self.failure_status()
            return status, openai_error_body(status, self.error.message, self.error.type)
        text = "".join(p for b in self.blocks if b.kind == "text" for p in b.parts)
        reasoning = "".join(p for b in self.blocks if b.kind == "thinking" for p in b.parts)
        message: dict[str, Any] = {"role": "assistant", "content": text or None,
                                   "refusal": None}
        if reasoning:
            message["reasoning_content"] = reasoning
        calls = [self.tools[i] for i in sorted(self.tools)]
        if calls:
            message["tool_calls"] = [{
                "id": call.id or f"call_{i}", "type": "function",
                "function": {"name": call.name or "", "arguments": "".join(call.parts)}}
                for i, call in enumerate(calls)]
        return 200, {
            "id": completion_id(self.stream_id), "object": "chat.completion",
            "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason(self.finish, bool(calls))}],
            "usage": usage_object(self.usage)}


class MessageAssembler(Assembler):
    api = "anthropic"

    def response(self) -> tuple[int, dict[str, Any]]:
        if self.error is None:
            try:
                content = [_content_block(block) for block in self.blocks]
            except ValueError as exc:
                self.error = ErrorEvent("api_error", str(exc), retryable=False, status=502)
        if self.error is not None:
            status = self.failure_status()
            return status, anthropic_error_body(status, self.error.message, self.error.type)
        usage = self.usage
        return 200, {
            "id": message_id(self.stream_id), "type": "message", "role": "assistant",
            "model": self.model, "content": content,
            "stop_reason": stop_reason(self.finish, bool(self.tools), self.stop_sequence),
            "stop_sequence": self.stop_sequence,
            "usage": {"input_tokens": usage.input_tokens if usage else 0,
                      "output_tokens": usage.output_tokens if usage else 0}}


def _content_block(block: _Block) -> dict[str, Any]:
    joined = "".join(block.parts)
    if block.kind == "text":
        return {"type": "text", "text": joined}
    if block.kind == "thinking":
        return {"type": "thinking", "thinking": joined, "signature": block.signature or ""}
    if block.kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": joined}
    try:
        arguments = orjson.loads(joined or "{}")
    except orjson.JSONDecodeError:
        raise ValueError("the provider's tool call arguments are not valid JSON") from None
    return {"type": "tool_use", "id": block.id or "toolu_0", "name": block.name or "",
            "input": arguments}
