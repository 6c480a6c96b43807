"""Anthropic Messages (reference/anthropic-messages-stream.md)."""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.compat.upstream import anthropic_body
from sseserver.errors import RequestError
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
from sseserver.providers.base import SettingsProvider, UpstreamRequest
from sseserver.providers.shapes import (
    json_text,
    loads_after_error,
    malformed,
    message_text,
    optional_count,
    optional_object,
    optional_text,
    wire_token,
)
from sseserver.schema import GenerationRequest

API_VERSION = "2023-06-01"  # the version the official SDKs send
# The Messages API requires max_tokens; this is what a request without one gets.
DEFAULT_MAX_TOKENS = 4096
_RETRYABLE_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error",
                                    "timeout_error"})
_ERROR_STATUS = {"overloaded_error": 529, "api_error": 500, "rate_limit_error": 429,
                 "timeout_error": 504, "invalid_request_error": 400}
# Anthropic's stop reasons in the normalized vocabulary (OpenAI's finish reasons).
_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                 "tool_use": "tool_calls"}


class AnthropicProvider(SettingsProvider):
    def build_request(self, request: GenerationRequest, model: str) -> UpstreamRequest:
        body = anthropic_body(request.native, model) if request.native is not None else \
            self._stream_body(request, model)
        headers = [("content-type", "application/json"), ("accept", "text/event-stream"),
                   ("anthropic-version", API_VERSION)]
        if self.settings.api_key:
            headers.append(("x-api-key", self.settings.api_key))
        base = self.settings.base_url
        url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        return UpstreamRequest("POST", url, tuple(headers), orjson.dumps(body))

    def _stream_body(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        system = [request.system] if request.system else []
        messages: list[dict[str, Any]] = []
        for message in request.messages:
            if message.role in ("system", "developer"):
                # the Messages API has no system role inside messages
                system.append(message.content if isinstance(message.content, str)
                              else _joined_text(message.content))
            elif message.role in ("user", "assistant"):
                messages.append({"role": message.role, "content": message.content})
            else:
                raise RequestError(f"role {message.role!r} is not supported by "
                                   "Anthropic providers yet")
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": True,
                                "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS}
        if system:
            body["system"] = "\n\n".join(system)
        if request.temperature is not None:
            body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0-1
        if request.tools:
            body["tools"] = [anthropic_tool(tool) for tool in request.tools]
        return body

    def new_adapter(self) -> AnthropicAdapter:
        return AnthropicAdapter()



def _joined_text(content: Any) -> str:
    return "".join(p.get("text", "") for p in content if isinstance(p, dict)) \
        if isinstance(content, list) else str(content)


def anthropic_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        tool = tool["function"]
    if not isinstance(tool.get("name"), str):
        raise RequestError("each tool needs a 'name'")
    converted: dict[str, Any] = {"name": tool["name"]}
    if "description" in tool:
        converted["description"] = tool["description"]
    converted["input_schema"] = tool.get("input_schema") or tool.get("parameters") or {
        "type": "object", "properties": {}}
    return converted


class AnthropicAdapter:
    """Maps Messages stream events to normalized events; usage is cumulative.

    Every field is read by its documented type (:mod:`shapes`): an event with a field of
    another type is a :class:`ProviderError`, never an exception of another kind, and
    the events it gives have the types :mod:`sseserver.events` documents.
    """

    __slots__ = ("_input_tokens", "_output_tokens", "_tools", "_unstreamed", "finished")

    def __init__(self) -> None:
        self.finished = False
        self._input_tokens = 0
        self._output_tokens = 0
        self._tools: dict[int, int] = {}  # content block index -> tool-call ordinal
        # tool block index -> its whole input as JSON text, until an input_json_delta
        # brings a fragment: sent at content_block_stop if none did
        self._unstreamed: dict[int, str] = {}

    def feed_message(self, data: str) -> str | list[NormalizedEvent]:
        return self.feed("message", data)  # every event of this wire format is named

    def feed(self, event: str, data: str) -> list[NormalizedEvent]:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = loads_after_error(data)
        if type(payload) is not dict:
            raise malformed("an event", "a JSON object")
        kind = event if event != "message" else payload.get("type")
        if kind == "content_block_delta":
            return self._delta(payload)
        handler = _HANDLERS.get(kind) if type(kind) is str else None
        return handler(self, payload) if handler else []

    def _delta(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        delta = payload.get("delta")
        if type(delta) is not dict:
            optional_object(delta, "content_block_delta.delta")  # null is no delta
            return []
        kind = delta.get("type")
        if kind == "text_delta":  # the per-token event: its checks written out
            text = delta.get("text")
            if type(text) is str:
                return [TextDelta(text)] if text else []
            optional_text(text, "text_delta.text")  # null is no text
            return []
        if kind == "thinking_delta":
            thinking = optional_text(delta.get("thinking"), "thinking_delta.thinking")
            return [ReasoningDelta(thinking)] if thinking else []
        if kind == "input_json_delta":
            fragment = optional_text(delta.get("partial_json"), "input_json_delta.partial_json")
            index = _block_index(payload, "content_block_delta.index")
            ordinal = self._tools.get(index)
            if fragment and ordinal is not None:
                self._unstreamed.pop(index, None)
                return [ToolCallDelta(ordinal, None, None, fragment)]
        elif kind == "signature_delta":
            signature = optional_text(delta.get("signature"), "signature_delta.signature")
            return [ReasoningSignature(signature)] if signature else []
        return []

    def _message_start(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        message = optional_object(payload.get("message"), "message_start.message") or {}
        usage = optional_object(message.get("usage"), "message_start.message.usage") or {}
        self._input_tokens = optional_count(usage.get("input_tokens"), "usage.input_tokens") or 0
        self._output_tokens = \
            optional_count(usage.get("output_tokens"), "usage.output_tokens") or 0
        return []

    def _block_start(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        index = _block_index(payload, "content_block_start.index")
        block = optional_object(payload.get("content_block"), "content_block") or {}
        kind = block.get("type")
        if kind == "redacted_thinking":
            data = optional_text(block.get("data"), "redacted_thinking.data")
            return [RedactedReasoning(data)] if data else []
        if kind != "tool_use":
            return []
        call_id = optional_text(block.get("id"), "content_block.id")
        name = optional_text(block.get("name"), "content_block.name")
        tool_input = optional_object(block.get("input"), "content_block.input")
        ordinal = len(self._tools)
        self._tools[index] = ordinal
        # The SDKs' accumulation: the input of the start stands unless fragments come.
        self._unstreamed[index] = json_text(tool_input, "content_block.input") \
            if tool_input else "{}"
        return [ToolCallDelta(ordinal, call_id or None, name or None, "")]

    def _block_stop(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        """A tool block that streamed no input gets its whole input ("{}" when empty,
        as the official SDK gives): clients JSON.parse the arguments."""
        index = _block_index(payload, "content_block_stop.index")
        arguments = self._unstreamed.pop(index, None)
        if arguments is None:
            return []
        return [ToolCallDelta(self._tools[index], None, None, arguments)]

    def _message_delta(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        usage = optional_object(payload.get("usage"), "message_delta.usage") or {}
        output_tokens = optional_count(usage.get("output_tokens"), "usage.output_tokens")
        if output_tokens is not None:
            self._output_tokens = output_tokens
        input_tokens = optional_count(usage.get("input_tokens"), "usage.input_tokens")
        if input_tokens is not None:
            self._input_tokens = input_tokens
        delta = optional_object(payload.get("delta"), "message_delta.delta") or {}
        reason = optional_text(delta.get("stop_reason"), "message_delta.delta.stop_reason")
        if not reason:
            return []
        normalized = _STOP_REASONS.get(reason) or wire_token(reason, "other")
        if reason == "stop_sequence":  # which one: the caller may have given several
            matched = optional_text(delta.get("stop_sequence"),
                                    "message_delta.delta.stop_sequence")
            return [Finish(normalized, matched or "")]
        return [Finish(normalized)]

    def _message_stop(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        self.finished = True
        return [Usage(self._input_tokens, self._output_tokens)]

    def _error(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        """A mid-stream error: the provider's message (the relay redacts it) and type,
        made a token."""
        error = payload.get("error")
        if type(error) is not dict:
            error = {}
        kind = wire_token(error.get("type"), "api_error")
        return [ErrorEvent(kind, message_text(error.get("message"), kind),
                           retryable=kind in _RETRYABLE_ERROR_TYPES,
                           status=_ERROR_STATUS.get(kind))]

    def usage_so_far(self) -> Usage | None:
        return Usage(self._input_tokens, self._output_tokens)


def _block_index(payload: dict[str, Any], where: str) -> int:
    return optional_count(payload.get("index"), where) or 0


_HANDLERS = {
    "message_start": AnthropicAdapter._message_start,
    "content_block_start": AnthropicAdapter._block_start,
    "content_block_stop": AnthropicAdapter._block_stop,
    "message_delta": AnthropicAdapter._message_delta,
    "message_stop": AnthropicAdapter._message_stop,
    "error": AnthropicAdapter._error,
}
