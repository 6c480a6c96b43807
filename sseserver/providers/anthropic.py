"""Anthropic Messages (reference/anthropic-messages-stream.md)."""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.compat.upstream import anthropic_body
from sseserver.errors import ProviderError, RequestError
from sseserver.events import (
    ErrorEvent,
    Finish,
    NormalizedEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sseserver.providers.base import SettingsProvider, UpstreamRequest
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
    """Maps Messages stream events to normalized events; usage is cumulative."""

    __slots__ = ("_blocks", "_input_tokens", "_output_tokens", "_tools", "finished")

    def __init__(self) -> None:
        self.finished = False
        self._input_tokens = 0
        self._output_tokens = 0
        self._blocks: dict[int, str] = {}  # content block index -> block type
        self._tools: dict[int, int] = {}  # content block index -> tool-call ordinal

    def feed_message(self, data: str) -> str | list[NormalizedEvent]:
        return self.feed("message", data)  # every event of this wire format is named

    def feed(self, event: str, data: str) -> list[NormalizedEvent]:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProviderError(f"malformed event from provider: {data[:80]!r}",
                                retryable=False) from None
        if not isinstance(payload, dict):
            raise ProviderError("event from provider is not a JSON object", retryable=False)
        kind = event if event != "message" else str(payload.get("type", ""))
        if kind == "content_block_delta":
            return self._delta(payload)
        handler = _HANDLERS.get(kind)
        return handler(self, payload) if handler else []

    def _delta(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if text else []
        if kind == "thinking_delta":
            thinking = delta.get("thinking")
            return [ReasoningDelta(thinking)] if thinking else []
        if kind == "input_json_delta":
            fragment = delta.get("partial_json")
            ordinal = self._tools.get(int(payload.get("index", 0)))
            if fragment and ordinal is not None:
                return [ToolCallDelta(ordinal, None, None, fragment)]
        return []

    def _message_start(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        usage = (payload.get("message") or {}).get("usage") or {}
        self._input_tokens = int(usage.get("input_tokens") or 0)
        self._output_tokens = int(usage.get("output_tokens") or 0)
        return []

    def _block_start(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        index = int(payload.get("index", 0))
        block = payload.get("content_block") or {}
        self._blocks[index] = str(block.get("type"))
        if block.get("type") != "tool_use":
            return []
        ordinal = len(self._tools)
        self._tools[index] = ordinal
        return [ToolCallDelta(ordinal, block.get("id"), block.get("name"), "")]

    def _message_delta(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        usage = payload.get("usage") or {}
        if usage.get("output_tokens") is not None:
            self._output_tokens = int(usage["output_tokens"])
        if usage.get("input_tokens") is not None:
            self._input_tokens = int(usage["input_tokens"])
        reason = (payload.get("delta") or {}).get("stop_reason")
        return [Finish(_STOP_REASONS.get(reason, reason))] if reason else []

    def _message_stop(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        self.finished = True
        return [Usage(self._input_tokens, self._output_tokens)]

    def _error(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        error = payload.get("error") or {}
        kind = str(error.get("type") or "api_error")
        return [ErrorEvent(kind, str(error.get("message") or kind),
                           retryable=kind in _RETRYABLE_ERROR_TYPES,
                           status=_ERROR_STATUS.get(kind))]

    def usage_so_far(self) -> Usage | None:
        return Usage(self._input_tokens, self._output_tokens)


_HANDLERS = {
    "message_start": AnthropicAdapter._message_start,
    "content_block_start": AnthropicAdapter._block_start,
    "message_delta": AnthropicAdapter._message_delta,
    "message_stop": AnthropicAdapter._message_stop,
    "error": AnthropicAdapter._error,
}
