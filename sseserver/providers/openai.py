"""OpenAI Chat Completions (reference/openai-chat-stream.md).

Many servers speak this wire format (Ollama's /v1, vLLM, Groq, OpenRouter), so the
adapter reads defensively: every delta field optional, unknown keys ignored.
"""

from __future__ import annotations

import re
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
    MAX_COUNT,
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
        endpoint = self._endpoint
        if endpoint is None or endpoint[0] is not self.settings:
            endpoint = self._endpoint_for(self.settings)
        return UpstreamRequest("POST", endpoint[1], endpoint[2], orjson.dumps(body))

    def _endpoint_for(self, settings: ProviderSettings
                      ) -> tuple[ProviderSettings, str, tuple[tuple[str, str], ...]]:
        headers = [("content-type", "application/json"), ("accept", "text/event-stream")]
        if settings.api_key:
            headers.append(("authorization", f"Bearer {settings.api_key}"))
        endpoint = self._endpoint = (settings, f"{settings.base_url}/chat/completions",
                                     tuple(headers))
        return endpoint

    def _stream_body(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
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

    A provider writes a stream's text chunks alike but for the text: the same id,
    model and fields around it. Once one has been read, the text chunk's shape is
    known (:func:`text_shape`, proved by a probe), and a chunk of that shape is read by
    parsing its text alone, a short JSON string instead of the whole object (a token's
    largest cost). A stream's other common chunks (its role chunk, its finish, its
    usage) are read in one pass, each field checked as the full reading checks it.
    """

    __slots__ = ("_text_shape", "_tool_arguments", "_usage", "finished")

    def __init__(self) -> None:
        self.finished = False
        self._usage: Usage | None = None
        # tool-call index -> whether any argument text came; None until a tool call does
        self._tool_arguments: dict[int, bool] | None = None
        # A text chunk is a head, the text as one JSON string, a tail: (head, tail, where
        # the text begins, where the tail begins counted from the end). None until a
        # text chunk is read whole, () once its shape is not proved or one broke it.
        self._text_shape: tuple[str, str, int, int] | tuple[()] | None = None

    def usage_so_far(self) -> Usage | None:
        return self._usage  # OpenAI reports usage only in its last chunk

    def feed(self, event: str, data: str) -> list[NormalizedEvent]:
        """The full reading, no shortcut taken: every event of this wire format is
        unnamed, so its name is not looked at."""
        if data == "[DONE]":
            return self._done()
        return self._chunk_events(_parse(data))

    def feed_message(self, data: str) -> str | list[NormalizedEvent]:
        """:meth:`feed` by its shortcuts, except that a plain text delta (the per-token
        chunk) comes back as its bare content: no event, no list.

        The shortcuts decide nothing of their own: whatever they accept, the full
        reading (:meth:`_chunk_events`) maps to that same one text delta."""
        shape = self._text_shape
        if shape:
            head, tail, text_start, tail_start = shape
            if data.startswith(head) and data.endswith(tail):
                try:  # what lies between is one JSON string, or this is no text chunk
                    content = _loads(data[text_start:tail_start])
                except orjson.JSONDecodeError:
                    content = None
                if type(content) is str and content:
                    return content
        if data == "[DONE]":
            return self._done()
        try:
            chunk = _loads(data)
        except orjson.JSONDecodeError:
            chunk = loads_after_error(data)
        reading = self._common_reading(chunk, data)
        return self._chunk_events(chunk) if reading is None else reading

    def _common_reading(self, chunk: Any, data: str) -> str | list[NormalizedEvent] | None:
        """A stream's common chunks read in one pass, as the full reading reads them: a
        plain text delta (as :func:`plain_text`: its bare text), a role chunk, a finish,
        usage alone. None for any other chunk, which only the full reading reads."""
        try:  # only a list and dicts take these subscripts: types are checked as they go
            usage = chunk.get("usage")
            if usage is None:
                choice = chunk["choices"][0]
                delta = choice["delta"]
                content = delta.get("content")  # a finish chunk's delta has none
                reason = choice.get("finish_reason")
                index = choice.get("index", 0)
            elif chunk.get("choices") == [] and "error" not in chunk:  # usage alone
                prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
                if type(prompt) is int and type(completion) is int and \
                        0 <= prompt <= MAX_COUNT and 0 <= completion <= MAX_COUNT:
                    self._usage = found = Usage(prompt, completion)
                    return [found]
                return None
            else:
                return None
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        if index != 0 or type(index) is not int or "error" in chunk:
            return None
        if reason is None:
            if type(content) is str and content and len(delta) == 1:
                if self._text_shape is None:  # the stream's first: its shape, if proved
                    # (here, not later: a burst's reader asks for it once, after the
                    # read's first text, and a shape then serves the burst's others)
                    self._learn_text_shape(data, content)
                else:  # a text chunk of another shape than the one proved: none holds
                    self._text_shape = ()
                return content
            return [] if delta in _INERT_DELTAS else None
        if type(reason) is str and (not delta or delta in _INERT_DELTAS) and \
                not self._tool_arguments:
            finish = _FINISHES.get(reason)
            return None if finish is None else [finish]
        return None

    def text_chunk_shape(self) -> tuple[str, str] | None:
        """``(head, tail)`` once this stream's text chunk has a proved shape: then the
        data ``head + J + tail``, ``J`` a JSON string of a non-empty text ``T``, is a
        text delta of ``T`` that :meth:`feed_message` reads as ``T`` and changes
        nothing here. A caller may read such data itself, with no call here, until it
        next feeds this adapter (the pump's text lane). None while there is no shape."""
        shape = self._text_shape
        return (shape[0], shape[1]) if shape else None

    def _learn_text_shape(self, data: str, content: str) -> None:
        """Take the shape of ``data``, a text chunk of ``content``, once it is proved:
        the same chunk with another text in its place reads as that other text."""
        self._text_shape = ()  # until proved
        shape = text_shape(data) if len(data) <= MAX_SHAPED_CHUNK else None
        if shape is None:
            return
        head, tail = shape
        probe = content + "."
        try:  # the text's place holds one string value of the chunk (see text_shape): a
            # probe put there is the probe chunk's only change, so it is the delta's
            # content only if that value was, and plain_text(probe chunk) is the probe
            proved = _loads(head + orjson.dumps(probe).decode() + tail
                            )["choices"][0]["delta"]["content"] == probe
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            proved = False
        if proved:
            self._text_shape = (head, tail, len(head), -len(tail))

    def _done(self) -> list[NormalizedEvent]:
        self.finished = True
        return self._complete_tool_calls() if self._tool_arguments else []

    def _chunk_events(self, chunk: Any) -> list[NormalizedEvent]:
        """The events of one decoded chunk, every field checked.

        Each field is checked inline, a reader of :mod:`shapes` called only for a
        value of an unusual type, to raise its error (a stream's role, finish and
        usage chunks are read here, each once): what each reader accepts, and the
        same error for what it refuses, in the same order."""
        if type(chunk) is not dict:
            raise malformed("a chunk", "a JSON object")
        error = chunk.get("error")
        if error:  # what openai-python raises on: any truthy error (reference 6.2)
            return [_error_event(error)]
        events: list[NormalizedEvent] = []
        choices = chunk.get("choices")
        if type(choices) is not list and choices is not None:
            raise malformed("choices", "a list")
        if choices:
            choice = choices[0]
            if type(choice) is not dict and choice is not None:
                raise malformed("choices[0]", "an object")
            # Only the first choice is relayed: the gateway asks for n=1.
            if choice is not None and _choice_index(choice) == 0:
                self._choice_events(choice, events)
        usage = chunk.get("usage")
        if usage is not None:
            self._usage = _usage(usage)
            events.append(self._usage)
        return events

    def _choice_events(self, choice: dict[str, Any], events: list[NormalizedEvent]) -> None:
        delta = choice.get("delta")
        if type(delta) is not dict and delta is not None:
            raise malformed("choices[0].delta", "an object")
        if delta and delta not in _INERT_DELTAS:
            self._delta_events(delta, events)
        reason = choice.get("finish_reason")
        if type(reason) is not str and reason is not None:
            raise malformed("choices[0].finish_reason", "a string")
        if reason:
            if self._tool_arguments:
                events.extend(self._complete_tool_calls())
            events.append(_FINISHES.get(reason) or Finish(wire_token(reason, "other")))

    def _delta_events(self, delta: dict[str, Any], events: list[NormalizedEvent]) -> None:
        content = delta.get("content")
        if type(content) is str:
            if content:
                events.append(TextDelta(content))
        elif content is not None:
            _content_events(content, events)
        reasoning = _reasoning(delta)
        if reasoning:
            events.append(ReasoningDelta(reasoning))
        refusal = delta.get("refusal")
        if type(refusal) is not str and refusal is not None:
            raise malformed("delta.refusal", "a string")
        if refusal:  # a refusal is text the user should read
            events.append(TextDelta(refusal))
        calls = delta.get("tool_calls")
        if calls is not None:
            for call in optional_list(calls, "delta.tool_calls") or ():
                self._tool_call_events(call, events)

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


# The finish reasons of the reference (§5), each its own wire token, as events made
# once: an event is a frozen value, and making one costs as much as reading the
# chunk's fields.
_FINISHES = {reason: Finish(reason) for reason in
             ("stop", "length", "tool_calls", "content_filter", "function_call")}
# A stream's first chunk names the role and has no text: these deltas, as providers
# send them (the recorded streams), give no event; a delta equal to one is known so
# by one comparison, not read field by field.
_INERT_DELTAS = ({"role": "assistant", "content": "", "refusal": None},
                 {"role": "assistant", "content": ""},
                 {"role": "assistant", "content": None, "refusal": ""},
                 {"role": "assistant", "content": None},
                 {"role": "assistant"})
# A stream holds its shape for its life: taken only from a chunk this long at most.
# Text chunks are 150-600 characters (OpenAI's about 250, Azure's with its filter
# results about 550); a longer one carries fields that change (logprobs), which no
# later chunk would fit.
MAX_SHAPED_CHUNK = 4096
# A text chunk's text is the value of its last "content" key. That key's quote after
# ``content`` is no escaped one, so the colon after it stands outside every string: in
# a document that parsed, what follows is a value (here the JSON string, if it is one).
_CONTENT_KEY = '"content"'
_KEY_LENGTH = len(_CONTENT_KEY)
_TO_STRING_VALUE = re.compile(r'\s*:\s*("[^"\\]*(?:\\.[^"\\]*)*")?', re.DOTALL)


def _parse(data: str) -> Any:
    try:
        return _loads(data)
    except orjson.JSONDecodeError:
        return loads_after_error(data)


def plain_text(chunk: Any) -> str | None:
    """The text of a chunk that is one plain text delta and nothing else: what the
    full reading maps to that one :class:`TextDelta` (and to no other event, no
    usage, no error). None for any other chunk."""
    try:  # only a list and dicts take these subscripts: types are checked as they go
        if chunk.get("usage") is not None:  # a usage chunk, before its empty choices
            return None
        choice = chunk["choices"][0]
        delta = choice["delta"]
        content = delta.get("content")  # a finish chunk's delta has none
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if type(content) is not str or not content or len(delta) != 1 or \
            choice.get("finish_reason") is not None or "error" in chunk:
        return None
    index = choice.get("index", 0)
    return content if index == 0 and type(index) is int else None


def text_shape(data: str) -> tuple[str, str] | None:
    """A text chunk's text as (what comes before it, what comes after it), the text
    being its last "content" key's value, a JSON string; None if that is no string.
    Whether that value is the chunk's text is for the caller to prove."""
    key = data.rfind(_CONTENT_KEY)
    while key >= 0 and (value := _TO_STRING_VALUE.match(data, key + _KEY_LENGTH)) is None:
        key = data.rfind(_CONTENT_KEY, 0, key + _KEY_LENGTH - 1)  # one ending in its quote
    if key < 0:
        return None
    start, end = value.span(1)  # the last key's value: a string, or no text here
    return None if start < 0 else (data[:start], data[end:])


def _choice_index(choice: dict[str, Any]) -> int:
    index = choice.get("index")
    if index is None:
        return 0
    if type(index) is int and 0 <= index <= MAX_COUNT:
        return index
    return optional_count(index, "choices[0].index") or 0  # raises, in its words


def _reasoning(delta: dict[str, Any]) -> str | None:
    """``delta.reasoning_content`` (DeepSeek, vLLM), else ``delta.reasoning`` (Ollama,
    OpenRouter, Groq)."""
    reasoning = delta.get("reasoning_content")
    if type(reasoning) is not str and reasoning is not None:
        raise malformed("delta.reasoning_content", "a string")
    if not reasoning:
        reasoning = delta.get("reasoning")
        if type(reasoning) is not str and reasoning is not None:
            raise malformed("delta.reasoning", "a string")
    return reasoning


def _usage(usage: Any) -> Usage:
    if type(usage) is not dict:
        raise malformed("usage", "an object")
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if type(prompt) is not int or not 0 <= prompt <= MAX_COUNT:
        prompt = optional_count(prompt, "usage.prompt_tokens") or 0  # None, or raises
    if type(completion) is not int or not 0 <= completion <= MAX_COUNT:
        completion = optional_count(completion, "usage.completion_tokens") or 0
    return Usage(prompt, completion)


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
