"""OpenAI Responses API (reference/openai-responses-stream.md).

Every event carries its ``type`` in its JSON as in its ``event:`` line; like
openai-python, the adapter goes by the JSON. Text (and refusal text) deltas are text,
reasoning summary and reasoning text deltas are reasoning, and each ``function_call``
output item is one tool call, its index the order the item came in, whatever its
``output_index``. The stream ends with ``response.completed`` (usage, and the finish),
``response.incomplete`` (``max_output_tokens`` is a ``length`` finish; any other reason,
``content_filter`` first, cut the reply and is an error) or ``response.failed`` / an
``error`` event (an error).
"""

from __future__ import annotations

from typing import Any

import orjson

from sseserver.compat.upstream import openai_body
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
from sseserver.providers.errors import KIND_STATUSES
from sseserver.providers.openai import OpenAIProvider
from sseserver.providers.responses_request import responses_body
from sseserver.providers.shapes import (
    loads_after_error,
    malformed,
    message_text,
    optional_count,
    optional_object,
    optional_text,
    wire_token,
)
from sseserver.schema import GenerationRequest

_loads = orjson.loads
_TEXT_DELTA = "response.output_text.delta"
# openai-python's message for an error that names none
_DEFAULT_ERROR_MESSAGE = "An error occurred during streaming"
# Error codes a new attempt may cure (reference §3, Error; openai-chat-stream.md §6).
_RETRYABLE_CODES = frozenset({"server_error", "rate_limit_exceeded", "rate_limit_error",
                              "server_is_overloaded", "service_unavailable_error",
                              "timeout"})
# Summary parts are paragraphs of their own (each opens with its bold title): joined
# bare they would run together, so a part after the first starts on a new paragraph.
SUMMARY_SEPARATOR = "\n\n"


class OpenAIResponsesProvider(OpenAIProvider):
    """The Chat Completions body of :class:`OpenAIProvider`, sent as a Responses body."""

    def build_request(self, request: GenerationRequest, model: str) -> UpstreamRequest:
        chat = openai_body(request.native, model) if request.native is not None else \
            self._stream_body(request, model)
        headers = [("content-type", "application/json"), ("accept", "text/event-stream")]
        if self.settings.api_key:
            headers.append(("authorization", f"Bearer {self.settings.api_key}"))
        return UpstreamRequest("POST", f"{self.settings.base_url}/responses",
                               tuple(headers), orjson.dumps(responses_body(chat)))

    def new_adapter(self) -> ResponsesAdapter:  # type: ignore[override]
        return ResponsesAdapter()


class ResponsesAdapter:
    """Maps Responses stream events to normalized events.

    Every field is read by its documented type (:mod:`shapes`): an event with a field of
    another type is a :class:`ProviderError`, never an exception of another kind.
    """

    __slots__ = ("_calls", "_reasoned", "_separate", "_unstreamed", "_usage", "finished")

    def __init__(self) -> None:
        self.finished = False
        self._usage: Usage | None = None
        self._calls: dict[str | int, int] = {}  # function_call item -> tool-call index
        # tool-call index -> the arguments to send at the item's end if no delta came
        self._unstreamed: dict[int, str] = {}
        self._reasoned = False  # a reasoning summary text came
        self._separate = False  # a new summary part began after one with text

    def usage_so_far(self) -> Usage | None:
        return self._usage  # reported only by the terminal event

    def feed_message(self, data: str) -> str | list[NormalizedEvent]:
        if data == "[DONE]":  # not sent by OpenAI; tolerated, as the SDKs do
            self.finished = True
            return self._complete_calls()
        return self.feed("message", data)

    def feed(self, event: str, data: str) -> list[NormalizedEvent]:
        try:
            payload = _loads(data)
        except orjson.JSONDecodeError:
            payload = loads_after_error(data)
        if type(payload) is not dict:
            raise malformed("an event", "a JSON object")
        kind = payload.get("type")
        if kind == _TEXT_DELTA:  # the per-token event: its checks written out
            delta = payload.get("delta")
            if type(delta) is str:
                return [TextDelta(delta)] if delta else []
            optional_text(delta, "output_text.delta.delta")
            return []
        if type(kind) is not str:
            kind = event
        handler = _HANDLERS.get(kind)
        return handler(self, payload) if handler is not None else []

    # -- content -------------------------------------------------------------------

    def _text(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        delta = optional_text(payload.get("delta"), "a delta event's delta")
        return [TextDelta(delta)] if delta else []

    def _reasoning(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        delta = optional_text(payload.get("delta"), "a reasoning delta's delta")
        if not delta:
            return []
        if self._separate:
            self._separate = False
            delta = SUMMARY_SEPARATOR + delta
        self._reasoned = True
        return [ReasoningDelta(delta)]

    def _summary_part(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        self._separate = self._reasoned
        return []

    # -- tool calls ----------------------------------------------------------------

    def _item_added(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        item = optional_object(payload.get("item"), "output_item.added.item") or {}
        if item.get("type") != "function_call":
            return []
        index = self._call_index(_item_key(item.get("id"), payload, "item.id"))
        call_id = optional_text(item.get("call_id"), "function_call.call_id")
        name = optional_text(item.get("name"), "function_call.name")
        arguments = optional_text(item.get("arguments"), "function_call.arguments")
        if arguments:
            self._unstreamed.pop(index, None)
        return [ToolCallDelta(index, call_id or None, name or None, arguments or "")]

    def _call_index(self, key: str | int) -> int:
        index = self._calls.get(key)
        if index is None:
            index = self._calls[key] = len(self._calls)
            self._unstreamed[index] = "{}"
        return index

    def _arguments_delta(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        delta = optional_text(payload.get("delta"), "function_call_arguments.delta.delta")
        index = self._call_index(_item_key(payload.get("item_id"), payload, "item_id"))
        if not delta:
            return []
        self._unstreamed.pop(index, None)
        return [ToolCallDelta(index, None, None, delta)]

    def _arguments_done(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        """A call that streamed no argument text gets its whole arguments ("{}" when
        empty): clients JSON.parse them."""
        arguments = optional_text(payload.get("arguments"), "function_call_arguments.done")
        index = self._call_index(_item_key(payload.get("item_id"), payload, "item_id"))
        return self._complete_call(index, arguments)

    def _item_done(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        item = optional_object(payload.get("item"), "output_item.done.item") or {}
        if item.get("type") != "function_call":
            return []
        index = self._call_index(_item_key(item.get("id"), payload, "item.id"))
        return self._complete_call(
            index, optional_text(item.get("arguments"), "function_call.arguments"))

    def _complete_call(self, index: int, arguments: str | None) -> list[NormalizedEvent]:
        if self._unstreamed.pop(index, None) is None:
            return []
        return [ToolCallDelta(index, None, None, arguments or "{}")]

    def _complete_calls(self) -> list[NormalizedEvent]:
        pending, self._unstreamed = self._unstreamed, {}
        return [ToolCallDelta(index, None, None, arguments)
                for index, arguments in pending.items()]

    # -- the end -------------------------------------------------------------------

    def _completed(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        self._read_usage(payload)
        self.finished = True
        reason = "tool_calls" if self._calls else "stop"
        return [*self._complete_calls(), Finish(reason), *_listed(self._usage)]

    def _incomplete(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        response = self._read_usage(payload)
        details = optional_object(response.get("incomplete_details"),
                                  "response.incomplete_details") or {}
        reason = optional_text(details.get("reason"), "incomplete_details.reason")
        if reason == "max_output_tokens":
            self.finished = True
            return [*self._complete_calls(), Finish("length"), *_listed(self._usage)]
        # The reply was cut (the content filter, or a reason this reads as such): an
        # error, never a clean end that hides the truncation.
        kind = wire_token(reason, "incomplete")
        return [ErrorEvent(kind, f"the provider stopped the reply early ({kind})",
                           retryable=False)]

    def _failed(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        response = self._read_usage(payload)
        error = optional_object(response.get("error"), "response.error") or {}
        return [_error_event(error.get("code"), error.get("message"))]

    def _error(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        """``error``: flat (``code``, ``message``), or an ``error`` object nested in it
        as some servers and OpenAI's overload errors send (reference §3, Error)."""
        nested = payload.get("error")
        source = nested if type(nested) is dict else payload
        code = source.get("code")
        return [_error_event(code if type(code) is str else source.get("type"),
                             source.get("message"))]

    def _read_usage(self, payload: dict[str, Any]) -> dict[str, Any]:
        response = optional_object(payload.get("response"), "an event's response") or {}
        usage = optional_object(response.get("usage"), "response.usage")
        if usage is not None:
            self._usage = Usage(
                optional_count(usage.get("input_tokens"), "usage.input_tokens") or 0,
                optional_count(usage.get("output_tokens"), "usage.output_tokens") or 0)
        return response


def _item_key(item_id: Any, payload: dict[str, Any], where: str) -> str | int:
    """Which function_call item an event is about: its id, else its output index."""
    key = optional_text(item_id, where)
    if key:
        return key
    return optional_count(payload.get("output_index"), "output_index") or 0


def _listed(usage: Usage | None) -> list[NormalizedEvent]:
    return [usage] if usage is not None else []


def _error_event(code: Any, message: Any) -> ErrorEvent:
    kind = wire_token(code, "provider_error")
    return ErrorEvent(kind, message_text(message, _DEFAULT_ERROR_MESSAGE),
                      retryable=kind in _RETRYABLE_CODES, status=KIND_STATUSES.get(kind))


_HANDLERS = {
    "response.refusal.delta": ResponsesAdapter._text,
    "response.reasoning_summary_text.delta": ResponsesAdapter._reasoning,
    "response.reasoning_text.delta": ResponsesAdapter._reasoning,
    "response.reasoning_summary_part.added": ResponsesAdapter._summary_part,
    "response.output_item.added": ResponsesAdapter._item_added,
    "response.function_call_arguments.delta": ResponsesAdapter._arguments_delta,
    "response.function_call_arguments.done": ResponsesAdapter._arguments_done,
    "response.output_item.done": ResponsesAdapter._item_done,
    "response.completed": ResponsesAdapter._completed,
    "response.incomplete": ResponsesAdapter._incomplete,
    "response.failed": ResponsesAdapter._failed,
    "error": ResponsesAdapter._error,
}
