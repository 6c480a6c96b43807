"""OpenAI Chat Completions (reference/openai-chat-stream.md).

Many servers speak this wire format (Ollama's /v1, vLLM, Groq, OpenRouter), so the
adapter reads defensively: every delta field optional, unknown keys ignored.
"""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.compat.upstream import openai_body
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

_loads = orjson.loads
# Error types a new attempt may cure (section 6).
_RETRYABLE_ERROR_TYPES = frozenset({"server_error", "service_unavailable_error",
                                    "rate_limit_error", "overloaded_error", "timeout"})


class OpenAIProvider(SettingsProvider):
    def build_request(self, request: GenerationRequest, model: str) -> UpstreamRequest:
        body = openai_body(request.native, model) if request.native is not None else \
            self._stream_body(request, model)
        headers = [("content-type", "application/json"), ("accept", "text/event-stream")]
        if self.settings.api_key:
            headers.append(("authorization", f"Bearer {self.settings.api_key}"))
        return UpstreamRequest("POST", f"{self.settings.base_url}/chat/completions",
                               tuple(headers), orjson.dumps(body))

    def _stream_body(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        body: dict[str, Any] = {
            "model": model, "messages": messages, "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.max_tokens is not None:
            body["max_completion_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tools:
            body["tools"] = [openai_tool(tool) for tool in request.tools]
        return body

    def new_adapter(self) -> OpenAIAdapter:
        return OpenAIAdapter()



def openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """Accept OpenAI-shaped tools as they are, and the flat {name, parameters} shape."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        return tool
    if isinstance(tool.get("name"), str):
        function = {"name": tool["name"]}
        if "description" in tool:
            function["description"] = tool["description"]
        schema = tool.get("parameters", tool.get("input_schema"))
        if schema is not None:
            function["parameters"] = schema
        return {"type": "function", "function": function}
    raise RequestError("each tool needs a 'name' (or OpenAI's {type: function, function})")


class OpenAIAdapter:
    """Maps chat.completion.chunk objects to normalized events."""

    __slots__ = ("_usage", "finished")

    def __init__(self) -> None:
        self.finished = False
        self._usage: Usage | None = None

    def usage_so_far(self) -> Usage | None:
        return self._usage  # OpenAI reports usage only in its last chunk

    def feed(self, event: str, data: str) -> list[NormalizedEvent]:
        result = self.feed_message(data)  # every event of this wire format is unnamed
        return [TextDelta(result)] if type(result) is str else result

    def feed_message(self, data: str) -> str | list[NormalizedEvent]:
        """:meth:`feed` for an unnamed event, except that a plain text delta (the
        per-token chunk) comes back as its bare content: no event, no list."""
        if data == "[DONE]":
            self.finished = True
            return []
        try:
            chunk = _loads(data)
        except orjson.JSONDecodeError:
            raise ProviderError(f"malformed chunk from provider: {data[:80]!r}",
                                retryable=False) from None
        if not isinstance(chunk, dict):
            raise ProviderError("chunk from provider is not a JSON object", retryable=False)
        error = chunk.get("error")
        if error:
            return [_error_event(error)]
        choices = chunk.get("choices")
        usage = chunk.get("usage")
        choice = choices[0] if choices and isinstance(choices, list) else None
        # Only the first choice is relayed: the gateway asks for n=1.
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            choice = None
        if choice is not None and usage is None:
            delta = choice.get("delta")
            if type(delta) is dict and len(delta) == 1 and not choice.get("finish_reason"):
                content = delta.get("content")
                if type(content) is str and content:
                    return content
        events: list[NormalizedEvent] = []
        if choice is not None:
            _choice_events(choice, events)
        if isinstance(usage, dict):
            self._usage = Usage(int(usage.get("prompt_tokens") or 0),
                                int(usage.get("completion_tokens") or 0))
            events.append(self._usage)
        return events


def _choice_events(choice: dict[str, Any], events: list[NormalizedEvent]) -> None:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        content = delta.get("content")
        if content:
            events.append(TextDelta(content))
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events.append(ReasoningDelta(reasoning))
        refusal = delta.get("refusal")
        if refusal:  # a refusal is text the user should read
            events.append(TextDelta(refusal))
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            events.extend(_tool_call(call) for call in tool_calls if isinstance(call, dict))
    reason = choice.get("finish_reason")
    if reason:
        events.append(Finish(str(reason)))


def _tool_call(call: dict[str, Any]) -> ToolCallDelta:
    function = call.get("function") or {}
    return ToolCallDelta(index=int(call.get("index", 0)), id=call.get("id"),
                         name=function.get("name"),
                         arguments=function.get("arguments") or "")


def _error_event(error: Any) -> ErrorEvent:
    if not isinstance(error, dict):
        return ErrorEvent("provider_error", str(error), retryable=False)
    kind = str(error.get("type") or "provider_error")
    return ErrorEvent(kind, str(error.get("message") or "An error occurred during streaming"),
                      retryable=kind in _RETRYABLE_ERROR_TYPES)
