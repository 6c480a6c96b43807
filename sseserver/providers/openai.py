"""OpenAI Chat Completions (reference/openai-chat-stream.md).

Many servers speak this wire format (Ollama's /v1, vLLM, Groq, OpenRouter), so the
adapter reads defensively: every delta field optional, unknown keys ignored.
"""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.compat.upstream import openai_body
from sseserver.config import ProviderSettings
from sseserver.errors import RequestError
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
from sseserver.providers.shapes import (
    loads_after_error,
    malformed,
    message_text,
    optional_count,
    optional_list,
    optional_object,
    optional_text,
    wire_token,
)
from sseserver.schema import GenerationRequest

_loads = orjson.loads
# openai-python's message for a mid-stream error that names none (reference 6.2)
_DEFAULT_ERROR_MESSAGE = "An error occurred during streaming"
# Error types a new attempt may cure (section 6).
_RETRYABLE_ERROR_TYPES = frozenset({"server_error", "service_unavailable_error",
                                    "rate_limit_error", "overloaded_error", "timeout"})


class OpenAIProvider(SettingsProvider):
    # (settings, URL, headers) of the last request built: the same for every request
    # of these settings, and the same objects each time (their hashes, for the pool's
    # and the request encoder's lookups, are computed once).
    _endpoint: tuple[ProviderSettings, str, tuple[tuple[str, str], ...]] | None = None

    def build_request(self, request: GenerationRequest, model: str) -> UpstreamRequest:
        body = openai_body(request.native, model) if request.native is not None else \
            self._stream_body(request, model)
        _, url, headers = self._endpoint_for(self.settings)
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def _endpoint_for(self, settings: ProviderSettings
                      ) -> tuple[ProviderSettings, str, tuple[tuple[str, str], ...]]:
        endpoint = self._endpoint
        if endpoint is None or endpoint[0] is not settings:
            headers = [("content-type", "application/json"), ("accept", "text/event-stream")]
            if settings.api_key:
                headers.append(("authorization", f"Bearer {settings.api_key}"))
            endpoint = self._endpoint = (settings, f"{settings.base_url}/chat/completions",
                                         tuple(headers))
        return endpoint

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
    """Maps chat.completion.chunk objects to normalized events.

    Every field is read by its documented type (:mod:`shapes`): a chunk with a field of
    another type is a :class:`ProviderError`, never an exception of another kind, and
    the events it gives have the types :mod:`sseserver.events` documents.
    """

    __slots__ = ("_tool_arguments", "_usage", "finished")

    def __init__(self) -> None:
        self.finished = False
        self._usage: Usage | None = None
        # tool-call index -> whether any argument text came; None until a tool call does
        self._tool_arguments: dict[int, bool] | None = None

    def usage_so_far(self) -> Usage | None:
        return self._usage  # OpenAI reports usage only in its last chunk

    def feed(self, event: str, data: str) -> list[NormalizedEvent]:
        result = self.feed_message(data)  # every event of this wire format is unnamed
        return [TextDelta(result)] if type(result) is str else result

    def feed_message(self, data: str) -> str | list[NormalizedEvent]:
        """:meth:`feed` for an unnamed event, except that a plain text delta (the
        per-token chunk) comes back as its bare content: no event, no list.

        The shortcut decides nothing of its own: whatever it accepts, the full reading
        (:meth:`_chunk_events`) maps to that same one text delta."""
        if data == "[DONE]":
            self.finished = True
            return self._complete_tool_calls()
        try:
            chunk = _loads(data)
        except orjson.JSONDecodeError:
            chunk = loads_after_error(data)
        if type(chunk) is dict and chunk.get("usage") is None and "error" not in chunk:
            choices = chunk.get("choices")
            if type(choices) is list and choices:
                choice = choices[0]
                if type(choice) is dict and type(delta := choice.get("delta")) is dict \
                        and len(delta) == 1 and type(content := delta.get("content")) is str \
                        and content and choice.get("finish_reason") is None \
                        and (index := choice.get("index", 0)) == 0 and type(index) is int:
                    return content
        return self._chunk_events(chunk)

    def _chunk_events(self, chunk: Any) -> list[NormalizedEvent]:
        """The events of one decoded chunk, every field checked."""
        if type(chunk) is not dict:
            raise malformed("a chunk", "a JSON object")
        error = chunk.get("error")
        if error:  # what openai-python raises on: any truthy error (reference 6.2)
            return [_error_event(error)]
        events: list[NormalizedEvent] = []
        choices = optional_list(chunk.get("choices"), "choices")
        choice = optional_object(choices[0], "choices[0]") if choices else None
        # Only the first choice is relayed: the gateway asks for n=1.
        if choice is not None and _choice_index(choice) == 0:
            self._choice_events(choice, events)
        usage = optional_object(chunk.get("usage"), "usage")
        if usage is not None:
            self._usage = Usage(
                optional_count(usage.get("prompt_tokens"), "usage.prompt_tokens") or 0,
                optional_count(usage.get("completion_tokens"), "usage.completion_tokens") or 0)
            events.append(self._usage)
        return events

    def _choice_events(self, choice: dict[str, Any], events: list[NormalizedEvent]) -> None:
        delta = optional_object(choice.get("delta"), "choices[0].delta")
        if delta:
            _content_events(delta.get("content"), events)
            reasoning = optional_text(delta.get("reasoning_content"), "delta.reasoning_content") \
                or optional_text(delta.get("reasoning"), "delta.reasoning")
            if reasoning:
                events.append(ReasoningDelta(reasoning))
            refusal = optional_text(delta.get("refusal"), "delta.refusal")
            if refusal:  # a refusal is text the user should read
                events.append(TextDelta(refusal))
            for call in optional_list(delta.get("tool_calls"), "delta.tool_calls") or ():
                self._tool_call_events(call, events)
        reason = optional_text(choice.get("finish_reason"), "choices[0].finish_reason")
        if reason:
            events.extend(self._complete_tool_calls())
            events.append(Finish(wire_token(reason, "other")))

    def _tool_call_events(self, call: Any, events: list[NormalizedEvent]) -> None:
        if type(call) is not dict:
            raise malformed("a tool call", "an object")
        index = optional_count(call.get("index"), "tool_calls[].index") or 0
        function = optional_object(call.get("function"), "tool_calls[].function") or {}
        call_id = optional_text(call.get("id"), "tool_calls[].id")
        name = optional_text(function.get("name"), "tool_calls[].function.name")
        arguments = optional_text(function.get("arguments"), "tool_calls[].function.arguments")
        seen = self._tool_arguments
        if seen is None:
            seen = self._tool_arguments = {}
        seen[index] = seen.get(index, False) or bool(arguments)
        if call_id or name or arguments:
            events.append(ToolCallDelta(index, call_id or None, name or None, arguments or ""))

    def _complete_tool_calls(self) -> list[NormalizedEvent]:
        """A tool call that got no argument text yet gets "{}" (what OpenAI itself
        sends for a function without parameters): clients JSON.parse the arguments."""
        seen = self._tool_arguments
        if not seen or all(seen.values()):
            return []
        empty = [index for index, has_arguments in seen.items() if not has_arguments]
        for index in empty:
            seen[index] = True
        return [ToolCallDelta(index, None, None, "{}") for index in empty]


def _choice_index(choice: dict[str, Any]) -> int:
    return optional_count(choice.get("index"), "choices[0].index") or 0


def _content_events(content: Any, events: list[NormalizedEvent]) -> None:
    """``delta.content``: a string, or (Mistral's reasoning models) a list of parts."""
    if type(content) is str:
        if content:
            events.append(TextDelta(content))
    elif type(content) is list:
        for part in content:
            _part_events(part, events)
    elif content is not None:
        # Relayed, it would break the contract that a text delta is a string; dropped,
        # the client would get a clean end and never know text was lost.
        raise malformed("delta.content", "a string or a list of parts")


def _part_events(part: Any, events: list[NormalizedEvent]) -> None:
    """One content part: ``{"type": "text", "text"}`` is text; ``{"type": "thinking",
    "thinking"}`` is reasoning, its ``thinking`` a string or a list of text parts.
    Other part types (references, images) carry no text to relay."""
    if type(part) is not dict:
        raise malformed("a content part", "an object")
    kind = part.get("type")
    if kind == "text":
        text = optional_text(part.get("text"), "a text part's text")
        if text:
            events.append(TextDelta(text))
    elif kind == "thinking":
        thinking = part.get("thinking")
        if type(thinking) is list:
            thinking = "".join(_part_text(inner) for inner in thinking)
        elif thinking is not None and type(thinking) is not str:
            raise malformed("a thinking part's thinking", "a string or a list of parts")
        if thinking:
            events.append(ReasoningDelta(thinking))


def _part_text(part: Any) -> str:
    if type(part) is not dict:
        raise malformed("a part inside a thinking part", "an object")
    if part.get("type") != "text":
        return ""
    return optional_text(part.get("text"), "a text part's text") or ""


def _error_event(error: Any) -> ErrorEvent:
    """A mid-stream error: the provider's message (the relay redacts it) and type, made
    a token; the defaults are openai-python's."""
    if type(error) is not dict:
        return ErrorEvent("provider_error", message_text(error, _DEFAULT_ERROR_MESSAGE),
                          retryable=False)
    kind = wire_token(error.get("type"), "provider_error")
    return ErrorEvent(kind, message_text(error.get("message"), _DEFAULT_ERROR_MESSAGE),
                      retryable=kind in _RETRYABLE_ERROR_TYPES)
