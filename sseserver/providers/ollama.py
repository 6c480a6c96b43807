"""Ollama's native chat API, ``POST /api/chat`` (reference/gemini-and-ollama-stream.md,
Part 2).

The stream is newline-delimited JSON, not SSE: the provider's body reader is an
:class:`NDJSONReader`, and its 200 is labelled as NDJSON (or JSON); each line
comes to :meth:`OllamaAdapter.feed_message` as an unnamed event's data would.
``message.content`` is text, ``message.thinking`` reasoning, each entry of
``message.tool_calls`` one whole tool call (its arguments an object), and the last
line, ``done: true``, carries ``done_reason`` and the eval counts (usage). A line with
an ``error`` is an error, before the head (the status's body) or after it.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from sseserver.compat.upstream import openai_body
from sseserver.core.ndjson import NDJSONReader
from sseserver.errors import RequestError, UpstreamError
from sseserver.events import (
    ErrorEvent,
    Finish,
    NormalizedEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sseserver.providers.base import UpstreamRequest
from sseserver.providers.errors import NDJSON_MEDIA_TYPES, status_error
from sseserver.providers.openai import OpenAIProvider
from sseserver.providers.shapes import (
    json_text,
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
# Chat Completions fields with an Ollama model option of their own (its "options").
_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop",
            "max_tokens": "num_predict", "max_completion_tokens": "num_predict",
            "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty"}
# Fields mapped below, and those that carry nothing Ollama's body needs (it always
# reports its counts, and runs tool calls as they come).
_OTHER_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "tools",
                           "tool_choice", "parallel_tool_calls", "n", "user", "metadata",
                           "response_format", "reasoning_effort"})


class OllamaProvider(OpenAIProvider):
    """The Chat Completions body of :class:`OpenAIProvider`, sent as Ollama's."""

    media_types = NDJSON_MEDIA_TYPES

    def new_body_reader(self, max_event_bytes: int, max_bytes_without_event: int
                        ) -> NDJSONReader:
        return NDJSONReader(max_event_bytes, max_bytes_without_event)

    def build_request(self, request: GenerationRequest, model: str) -> UpstreamRequest:
        chat = openai_body(request.native, model) if request.native is not None else \
            self._stream_body(request, model)
        headers = [("content-type", "application/json"), ("accept", "application/x-ndjson")]
        if self.settings.api_key:  # Ollama's cloud; a local server needs none
            headers.append(("authorization", f"Bearer {self.settings.api_key}"))
        return UpstreamRequest("POST", f"{self.settings.base_url}/api/chat", tuple(headers),
                               orjson.dumps(ollama_body(chat)))

    def new_adapter(self) -> OllamaAdapter:  # type: ignore[override]
        return OllamaAdapter()

    def map_error(self, status: int, headers: dict[str, str], body: bytes,
                  now: float | None = None) -> UpstreamError:
        """Ollama's error body is ``{"error": "text"}``: its text is the message."""
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if type(parsed) is dict and type(parsed.get("error")) is str:
            body = orjson.dumps({"error": {"message": parsed["error"]}})
        return status_error(self.settings.name, status, headers, body, self.settings.api_key,
                            now)


def ollama_body(chat: dict[str, Any]) -> dict[str, Any]:
    """Ollama's ``/api/chat`` body for the Chat Completions body ``chat``. Raises
    :class:`RequestError` for a field with no Ollama equivalent."""
    unmapped = sorted(set(chat) - _OTHER_FIELDS - set(_OPTIONS))
    if unmapped:
        raise RequestError(f"'{unmapped[0]}' has no equivalent in Ollama's chat API")
    if chat.get("n", 1) != 1:
        raise RequestError("'n' other than 1 has no equivalent in Ollama's chat API")
    if chat.get("tool_choice", "auto") != "auto":  # Ollama lets the model choose, only
        raise RequestError("'tool_choice' other than \"auto\" has no equivalent in "
                           "Ollama's chat API")
    body: dict[str, Any] = {"model": chat.get("model"), "stream": True,
                            "messages": [_message(m) for m in chat.get("messages") or ()]}
    options = {_OPTIONS[key]: value for key, value in chat.items()
               if key in _OPTIONS and value is not None}
    if options:
        body["options"] = options
    if chat.get("tools"):
        body["tools"] = chat["tools"]  # the same {type: function, function} shape
    if chat.get("reasoning_effort") is not None:
        body["think"] = True
    response_format = chat.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_object":
        body["format"] = "json"
    elif isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema")
        body["format"] = schema.get("schema") if isinstance(schema, dict) else "json"
    return body


def _message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise RequestError("each message must be an object")
    content = message.get("content")
    converted: dict[str, Any] = {"role": message.get("role"), "content": ""}
    if isinstance(content, str):
        converted["content"] = content
    elif isinstance(content, list):
        converted["content"], images = _parts(content)
        if images:
            converted["images"] = images
    calls = message.get("tool_calls")
    if calls:
        converted["tool_calls"] = [_tool_call(call) for call in calls]
    return converted


def _parts(parts: list[Any]) -> tuple[str, list[str]]:
    """Text parts joined; images as Ollama takes them (base64, no data: prefix)."""
    text, images = [], []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text.append(str(part.get("text", "")))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url.startswith("data:"):
                raise RequestError("Ollama takes images as data: URLs only")
            images.append(url.partition(",")[2])
        else:
            raise RequestError(f"a {kind!r} content part has no equivalent in Ollama")
    return "".join(text), images


def _tool_call(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise RequestError("each tool call needs a function")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise RequestError("a tool call's arguments must be JSON") from None
    return {"function": {"name": function.get("name"), "arguments": parsed}}


class OllamaAdapter:
    """Maps Ollama's chat stream lines to normalized events.

    Every field is read by its documented type (:mod:`shapes`): a line with a field of
    another type is a :class:`ProviderError`, never an exception of another kind.
    """

    __slots__ = ("_calls", "_usage", "finished")

    def __init__(self) -> None:
        self.finished = False
        self._usage: Usage | None = None
        self._calls = 0

    def usage_so_far(self) -> Usage | None:
        return self._usage  # reported only by the last line

    def feed(self, event: str, data: str) -> list[NormalizedEvent]:
        result = self.feed_message(data)  # every line of this framing is unnamed
        return [TextDelta(result)] if type(result) is str else result

    def feed_message(self, data: str) -> str | list[NormalizedEvent]:
        """One line; a plain text delta (the per-token line) comes back as its bare
        content. The shortcut decides nothing of its own: whatever it accepts, the full
        reading maps to that same one text delta."""
        try:
            line = _loads(data)
        except orjson.JSONDecodeError:
            line = loads_after_error(data)
        if type(line) is dict and line.get("done") is False and "error" not in line:
            message = line.get("message")
            if type(message) is dict and len(message) == 2 and \
                    type(content := message.get("content")) is str and content and \
                    message.get("role") == "assistant":
                return content
        return self._line_events(line)

    def _line_events(self, line: Any) -> list[NormalizedEvent]:
        if type(line) is not dict:
            raise malformed("a line", "a JSON object")
        if "error" in line:  # after the 200 an error comes as a line of its own
            error = line.get("error")
            if type(error) is dict:  # a proxy's OpenAI-shaped error, labelled JSON
                error = error.get("message")
            return [ErrorEvent("server_error", message_text(
                error, "Ollama reported an error"), retryable=True)]
        events: list[NormalizedEvent] = []
        message = optional_object(line.get("message"), "message") or {}
        thinking = optional_text(message.get("thinking"), "message.thinking")
        if thinking:
            events.append(ReasoningDelta(thinking))
        content = optional_text(message.get("content"), "message.content")
        if content:
            events.append(TextDelta(content))
        for call in optional_list(message.get("tool_calls"), "message.tool_calls") or ():
            events.append(self._tool_call(call))
        done = line.get("done")
        if done is True:
            events.extend(self._done(line))
        elif done is not None and done is not False:
            raise malformed("done", "a boolean")
        return events

    def _tool_call(self, call: Any) -> ToolCallDelta:
        """A whole call: Ollama sends each call once, its arguments an object."""
        if type(call) is not dict:
            raise malformed("a tool call", "an object")
        function = optional_object(call.get("function"), "tool_calls[].function") or {}
        name = optional_text(function.get("name"), "tool_calls[].function.name")
        arguments = function.get("arguments")
        if type(arguments) is dict:
            text = json_text(arguments, "tool_calls[].function.arguments") if arguments \
                else "{}"
        else:
            text = optional_text(arguments, "tool_calls[].function.arguments") or "{}"
        # Ollama gives a call no id on older servers; clients need one to answer it.
        call_id = optional_text(call.get("id"), "tool_calls[].id") or \
            f"call_{secrets.token_hex(8)}"
        index = self._calls
        self._calls += 1
        return ToolCallDelta(index, call_id, name or None, text)

    def _done(self, line: dict[str, Any]) -> list[NormalizedEvent]:
        self.finished = True
        self._usage = Usage(
            optional_count(line.get("prompt_eval_count"), "prompt_eval_count") or 0,
            optional_count(line.get("eval_count"), "eval_count") or 0)
        reason = optional_text(line.get("done_reason"), "done_reason")
        if self._calls:
            finish = "tool_calls"
        elif reason in (None, "", "stop", "load", "unload"):
            finish = "stop"
        else:
            finish = wire_token(reason, "other")  # "length" passes as it is
        return [Finish(finish), self._usage]
