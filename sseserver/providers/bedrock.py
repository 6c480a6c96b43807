"""AWS Bedrock ConverseStream: SigV4-signed requests, an ``application/vnd.amazon.eventstream``
body (core/eventstream.py), Converse events.

Events (each a message whose ``:event-type`` header names it): messageStart,
contentBlockStart (a toolUse block's id and name), contentBlockDelta (text,
reasoningContent, toolUse input fragments), contentBlockStop, messageStop (stopReason),
metadata (usage). metadata comes after messageStop and is the stream's regular end.
An exception message (``:message-type`` exception) is an error typed by its
``:exception-type``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from sseserver.core.eventstream import EventStreamDecoder
from sseserver.core.sigv4 import AwsCredentials, signed_headers
from sseserver.core.sse import ServerSentEvent
from sseserver.errors import RequestError, UpstreamStatusError
from sseserver.events import (
    ErrorEvent,
    Finish,
    NormalizedEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sseserver.providers.base import BodyReader, SettingsProvider, UpstreamRequest
from sseserver.providers.errors import (
    is_retryable,
    not_a_stream_error,
    retry_after,
    safe_message,
)
from sseserver.providers.native import content_text, flat_tool, request_fields
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
MEDIA_TYPE = "application/vnd.amazon.eventstream"
SERVICE = "bedrock"  # the signing name of bedrock-runtime
# Bedrock's stop reasons in the normalized vocabulary (OpenAI's finish reasons).
_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls",
                 "max_tokens": "length", "model_context_window_exceeded": "length",
                 "content_filtered": "content_filter",
                 "guardrail_intervened": "content_filter"}
# ConverseStream's exceptions (API reference, "Errors"), in and out of the stream: the
# HTTP status each amounts to, and which a new attempt may cure.
EXCEPTION_STATUSES = {
    "throttlingexception": 429, "servicequotaexceededexception": 429,
    "modelnotreadyexception": 429, "serviceunavailableexception": 503,
    "internalserverexception": 500, "modelstreamerrorexception": 424,
    "modeltimeoutexception": 408, "modelerrorexception": 424,
    "validationexception": 400, "accessdeniedexception": 403,
    "resourcenotfoundexception": 404, "unrecognizedclientexception": 403,
    "expiredtokenexception": 403,
}
RETRYABLE_EXCEPTIONS = frozenset({
    "throttlingexception", "modelnotreadyexception", "serviceunavailableexception",
    "internalserverexception", "modelstreamerrorexception", "modeltimeoutexception"})


class BedrockProvider(SettingsProvider):
    media_types = (MEDIA_TYPE,)

    def __init__(self, settings: Any, clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings)
        self._clock = clock  # the signing time: a test pins it

    def build_request(self, request: GenerationRequest, model: str) -> UpstreamRequest:
        settings = self.settings
        if not model:
            raise RequestError("a Bedrock model id is needed")
        url = f"{settings.base_url}/model/{quote(model, safe='')}/converse-stream"
        body = orjson.dumps(converse_body(request))
        headers = [("content-type", "application/json"), ("accept", MEDIA_TYPE)]
        credentials = AwsCredentials(settings.access_key_id or "", settings.api_key or "",
                                     settings.session_token)
        when = datetime.fromtimestamp(self._clock(), UTC)
        headers += signed_headers("POST", url, headers, body, credentials,
                                  settings.region or "", SERVICE, when)
        return UpstreamRequest("POST", url, tuple(headers), body)

    def new_body_reader(self, max_event_bytes: int, max_bytes_without_event: int
                        ) -> EventStreamReader:
        return EventStreamReader(max_event_bytes)  # every message is an event

    def new_adapter(self) -> BedrockAdapter:
        return BedrockAdapter()

    def map_error(self, status: int, headers: dict[str, str], body: bytes,
                  now: float | None = None) -> UpstreamStatusError:
        """``{"message"}`` with the exception named in ``x-amzn-errortype``; a 2xx
        that is no event stream as every provider's (its body is not shown)."""
        if 200 <= status < 300:
            return not_a_stream_error(self.settings.name, status, headers, body,
                                      self.settings.api_key, now)
        kind = headers.get("x-amzn-errortype", "").partition(":")[0].lower() or None
        message = _body_message(body) or f"HTTP {status}"
        retryable = kind in RETRYABLE_EXCEPTIONS if kind in EXCEPTION_STATUSES else \
            is_retryable(status, headers)
        return UpstreamStatusError(
            f"{self.settings.name} answered {status}: "
            f"{safe_message(message, self.settings.api_key)}",
            status=status, retryable=retryable, retry_after=retry_after(headers, now))


def _body_message(body: bytes) -> str | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace") or None
    if isinstance(parsed, dict):
        message = parsed.get("message", parsed.get("Message"))
        return message if isinstance(message, str) and message else None
    return None


def converse_body(request: GenerationRequest) -> dict[str, Any]:
    fields = request_fields(request, "Bedrock")
    system = list(fields.system)
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role in ("system", "developer"):
            system.append(content_text(message.content))
        elif message.role in ("user", "assistant"):
            messages.append({"role": message.role,
                             "content": [{"text": content_text(message.content)}]})
        else:
            raise RequestError(f"role {message.role!r} is not supported by Bedrock "
                               "providers yet")
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = [{"text": text} for text in system]
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxTokens"] = request.max_tokens
    if fields.temperature is not None:
        config["temperature"] = fields.temperature
    if config:
        body["inferenceConfig"] = config
    if fields.tools:
        body["toolConfig"] = {"tools": [{"toolSpec": _tool_spec(t)} for t in fields.tools]}
    return body


def _tool_spec(tool: dict[str, Any]) -> dict[str, Any]:
    name, description, schema = flat_tool(tool)
    spec: dict[str, Any] = {"name": name}
    if description is not None:
        spec["description"] = description
    spec["inputSchema"] = {"json": schema or {"type": "object", "properties": {}}}
    return spec


class EventStreamReader(BodyReader):
    """The body as (event name, data) pairs: an event's name is its ``:event-type``;
    an exception is ``exception:<:exception-type>``, an error message
    ``error:<:error-code>`` with ``{"message"}``; the data is the JSON payload.

    The per-token read, one whole contentBlockDelta message, goes the relay's data-line
    way: :meth:`feed_data_line` gives its payload alone, which the adapter's
    ``feed_message`` reads as a contentBlockDelta."""

    __slots__ = ("_decoder",)

    def __init__(self, max_event_bytes: int) -> None:
        self._decoder = EventStreamDecoder(max_event_bytes)

    def feed_data_line(self, chunk: bytes) -> str | None:
        message = self._decoder.feed_whole(chunk)
        if message is None:
            return None
        headers = message.headers
        if headers.get(":event-type") != "contentBlockDelta" or \
                headers.get(":message-type") != "event":
            # not taken: feed() reads the same bytes again, for the few such a stream has
            return None
        return message.payload.decode("utf-8", "replace")

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        return [_event(message.headers, message.payload)
                for message in self._decoder.feed(chunk)]


def _event(headers: dict[str, Any], payload: bytes) -> ServerSentEvent:
    kind = headers.get(":message-type")
    data = payload.decode("utf-8", "replace")
    if kind == "exception":
        return ServerSentEvent(f"exception:{headers.get(':exception-type')}", data)
    if kind == "error":
        message = headers.get(":error-message")
        return ServerSentEvent(f"error:{headers.get(':error-code')}", orjson.dumps(
            {"message": message if isinstance(message, str) else ""}).decode())
    return ServerSentEvent(str(headers.get(":event-type")), data)


class BedrockAdapter:
    """Maps ConverseStream events to normalized events; every field read by its type."""

    __slots__ = ("_tools", "_unstreamed", "_usage", "finished")

    def __init__(self) -> None:
        self.finished = False
        self._usage: Usage | None = None
        self._tools: dict[int, int] = {}  # content block index -> tool-call ordinal
        self._unstreamed: set[int] = set()  # tool blocks no input fragment came for

    def usage_so_far(self) -> Usage | None:
        return self._usage

    def feed_message(self, data: str) -> str | list[NormalizedEvent]:
        """:meth:`feed` for a contentBlockDelta, the one event the reader hands over
        bare (:class:`EventStreamReader`); a text delta comes back as its bare text."""
        try:
            payload = _loads(data)
        except orjson.JSONDecodeError:
            payload = loads_after_error(data)
        if type(payload) is dict and type(delta := payload.get("delta")) is dict and \
                type(text := delta.get("text")) is str and text:
            return text
        return self.feed("contentBlockDelta", data)

    def feed(self, event: str, data: str) -> list[NormalizedEvent]:
        try:
            payload = _loads(data)
        except orjson.JSONDecodeError:
            payload = loads_after_error(data)
        if type(payload) is not dict:
            raise malformed("an event", "a JSON object")
        if event == "contentBlockDelta":
            # the per-token event, its checks written out; _delta reads the rest
            delta = payload.get("delta")
            if type(delta) is dict and type(text := delta.get("text")) is str:
                return [TextDelta(text)] if text else []
            return self._delta(payload)
        handler = _HANDLERS.get(event)
        if handler is not None:
            return handler(self, payload)
        if event.startswith(("exception:", "error:")):
            return [_exception(event.partition(":")[2], payload)]
        return []

    def _delta(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        delta = optional_object(payload.get("delta"), "contentBlockDelta.delta") or {}
        optional_text(delta.get("text"), "delta.text")  # a text string took the shortcut
        reasoning = optional_object(delta.get("reasoningContent"), "delta.reasoningContent")
        if reasoning is not None:  # signature and redactedContent carry nothing to show
            thought = optional_text(reasoning.get("text"), "reasoningContent.text")
            return [ReasoningDelta(thought)] if thought else []
        tool_use = optional_object(delta.get("toolUse"), "delta.toolUse")
        if tool_use is not None:
            fragment = optional_text(tool_use.get("input"), "toolUse.input")
            index = _block_index(payload)
            ordinal = self._tools.get(index)
            if fragment and ordinal is not None:
                self._unstreamed.discard(index)
                return [ToolCallDelta(ordinal, None, None, fragment)]
        return []

    def _block_start(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        start = optional_object(payload.get("start"), "contentBlockStart.start") or {}
        tool_use = optional_object(start.get("toolUse"), "start.toolUse")
        if tool_use is None:
            return []
        index = _block_index(payload)
        ordinal = self._tools[index] = len(self._tools)
        self._unstreamed.add(index)
        return [ToolCallDelta(ordinal,
                              optional_text(tool_use.get("toolUseId"), "toolUse.toolUseId")
                              or None,
                              optional_text(tool_use.get("name"), "toolUse.name") or None, "")]

    def _block_stop(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        """A tool block that streamed no input gets "{}": clients JSON.parse it."""
        index = _block_index(payload)
        if index not in self._unstreamed:
            return []
        self._unstreamed.discard(index)
        return [ToolCallDelta(self._tools[index], None, None, "{}")]

    def _message_stop(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        reason = optional_text(payload.get("stopReason"), "messageStop.stopReason")
        if not reason:
            return []
        return [Finish(_STOP_REASONS.get(reason) or wire_token(reason, "other"))]

    def _metadata(self, payload: dict[str, Any]) -> list[NormalizedEvent]:
        usage = optional_object(payload.get("usage"), "metadata.usage") or {}
        self._usage = Usage(
            optional_count(usage.get("inputTokens"), "usage.inputTokens") or 0,
            optional_count(usage.get("outputTokens"), "usage.outputTokens") or 0)
        self.finished = True
        return [self._usage]


def _block_index(payload: dict[str, Any]) -> int:
    return optional_count(payload.get("contentBlockIndex"), "contentBlockIndex") or 0


def _exception(name: str, payload: dict[str, Any]) -> ErrorEvent:
    kind = wire_token(name, "exception")
    key = kind.lower()
    return ErrorEvent(kind, message_text(payload.get("message"), kind),
                      retryable=key in RETRYABLE_EXCEPTIONS,
                      status=EXCEPTION_STATUSES.get(key))


_HANDLERS = {
    "contentBlockStart": BedrockAdapter._block_start,
    "contentBlockStop": BedrockAdapter._block_stop,
    "messageStop": BedrockAdapter._message_stop,
    "metadata": BedrockAdapter._metadata,
}
