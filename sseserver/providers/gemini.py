"""Google Gemini ``streamGenerateContent?alt=sse`` (reference/gemini-and-ollama-stream.md).

Each event is one whole ``GenerateContentResponse``; there is no end marker, so the
stream's regular end is the chunk that carries a ``finishReason``. Function calls arrive
whole, each one tool-call event. A reply the provider cut (``SAFETY``, ``RECITATION``,
...) and a blocked prompt are errors: the client must not take a cut reply for a whole
one.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import orjson

from sseserver.core.sse import MAX_LINE_BYTES
from sseserver.core.sse_crlf import CRLFEventParser
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
from sseserver.providers.errors import RETRYABLE_STATUSES
from sseserver.providers.native import content_text, flat_tool, request_fields
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
API_VERSION_PATH = "/v1beta"  # the path the official SDK (google-genai) streams from
# The finish reasons of a reply that ended as asked; every other one (SAFETY,
# RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, MALFORMED_FUNCTION_CALL, OTHER, ...)
# cut it short, and the client is told so.
_REGULAR_FINISH = {"STOP": "stop", "MAX_TOKENS": "length",
                   "FINISH_REASON_UNSPECIFIED": "stop"}
# google-rpc status names as HTTP statuses, for a mid-stream error without a code.
_RPC_STATUSES = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400,
                 "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
                 "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500,
                 "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}
_ROLES = {"user": "user", "assistant": "model"}
# Bytes of random tool-call id: Gemini names no id for most calls, and clients key the
# tool's answer by one; 12 bytes cannot collide within a conversation.
_CALL_ID_BYTES = 12


class GeminiProvider(SettingsProvider):
    def build_request(self, request: GenerationRequest, model: str) -> UpstreamRequest:
        # the key goes in a header only: a URL ends up in proxies' and servers' logs
        headers = [("content-type", "application/json"), ("accept", "text/event-stream")]
        if self.settings.api_key:
            headers.append(("x-goog-api-key", self.settings.api_key))
        return UpstreamRequest("POST", stream_url(self.settings.base_url, model),
                               tuple(headers), orjson.dumps(gemini_body(request)))

    def new_body_reader(self, max_event_bytes: int, max_bytes_without_event: int
                        ) -> CRLFEventParser:
        """Gemini frames its events with CRLF: a parser whose per-token shortcut takes
        that framing (the base parser reads it too, line by line)."""
        return CRLFEventParser(MAX_LINE_BYTES, max_event_bytes, max_bytes_without_event,
                               refuse_documents=True)

    def new_adapter(self) -> GeminiAdapter:
        return GeminiAdapter()


def stream_url(base_url: str, model: str) -> str:
    """``{base}/v1beta/models/{model}:streamGenerateContent?alt=sse``; a base that
    already names its API version (``.../v1beta``, ``.../v1``) is kept as it is."""
    model = model.removeprefix("models/")
    if not model:
        raise RequestError("a Gemini model name is needed")
    base = base_url if base_url.endswith(("/v1beta", "/v1")) else base_url + API_VERSION_PATH
    return f"{base}/models/{quote(model, safe='-._~')}:streamGenerateContent?alt=sse"


def gemini_body(request: GenerationRequest) -> dict[str, Any]:
    """The request body: roles user/model, system text as ``systemInstruction``."""
    fields = request_fields(request, "Gemini")
    system = list(fields.system)
    contents: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role in ("system", "developer"):
            system.append(content_text(message.content))
        elif message.role in _ROLES:
            contents.append({"role": _ROLES[message.role],
                             "parts": [{"text": content_text(message.content)}]})
        else:
            raise RequestError(f"role {message.role!r} is not supported by Gemini "
                               "providers yet")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if fields.temperature is not None:
        config["temperature"] = fields.temperature
    if config:
        body["generationConfig"] = config
    if fields.tools:
        body["tools"] = [{"functionDeclarations": [gemini_function(t) for t in fields.tools]}]
    return body


def gemini_function(tool: dict[str, Any]) -> dict[str, Any]:
    """A function declaration from OpenAI's {type: function, function} or a flat tool."""
    name, description, schema = flat_tool(tool)
    declaration: dict[str, Any] = {"name": name}
    if description is not None:
        declaration["description"] = description
    if schema is not None:
        declaration["parameters"] = schema
    return declaration


class GeminiAdapter:
    """Maps GenerateContentResponse chunks to normalized events.

    Every field is read by its documented type (:mod:`shapes`); usage is a running
    total in each chunk that has it, and the last one counts.
    """

    __slots__ = ("_tool_calls", "_usage", "finished")

    def __init__(self) -> None:
        self.finished = False
        self._usage: Any = None  # the last usageMetadata seen, read when it is used
        self._tool_calls = 0

    def usage_so_far(self) -> Usage | None:
        if self._usage is None:
            return None
        try:
            return _usage(self._usage)
        except ProviderError:  # counts of a wrong type: no usage known
            return None

    def feed(self, event: str, data: str) -> list[NormalizedEvent]:
        result = self.feed_message(data)  # every event of this wire format is unnamed
        return [TextDelta(result)] if type(result) is str else result

    def feed_message(self, data: str) -> str | list[NormalizedEvent]:
        """:meth:`feed` for an unnamed event, a plain text chunk as its bare text (the
        full reading, :meth:`_chunk_events`, gives the same one text delta)."""
        try:
            chunk = _loads(data)
        except orjson.JSONDecodeError:
            chunk = loads_after_error(data)
        if type(chunk) is dict and "error" not in chunk and "promptFeedback" not in chunk:
            candidates = chunk.get("candidates")
            if type(candidates) is list and candidates:
                candidate = candidates[0]
                if type(candidate) is dict and candidate.get("finishReason") is None \
                        and (index := candidate.get("index", 0)) == 0 and type(index) is int \
                        and type(content := candidate.get("content")) is dict \
                        and type(parts := content.get("parts")) is list and len(parts) == 1 \
                        and type(part := parts[0]) is dict and len(part) == 1 \
                        and type(text := part.get("text")) is str and text:
                    if (usage := chunk.get("usageMetadata")) is not None:
                        self._usage = optional_object(usage, "usageMetadata")
                    return text
        return self._chunk_events(chunk)

    def _chunk_events(self, chunk: Any) -> list[NormalizedEvent]:
        if type(chunk) is not dict:
            raise malformed("a chunk", "a JSON object")
        error = chunk.get("error")
        if error:
            return [_error_event(error)]
        usage = optional_object(chunk.get("usageMetadata"), "usageMetadata")
        if usage is not None:
            _usage(usage)  # checked now, so a bad one is met where it came
            self._usage = usage
        feedback = optional_object(chunk.get("promptFeedback"), "promptFeedback") or {}
        blocked = optional_text(feedback.get("blockReason"), "promptFeedback.blockReason")
        if blocked:
            return [ErrorEvent("prompt_blocked", f"Gemini blocked the prompt: "
                               f"{wire_token(blocked, 'BLOCKED')}", retryable=False,
                               status=400)]
        events: list[NormalizedEvent] = []
        candidates = optional_list(chunk.get("candidates"), "candidates")
        candidate = optional_object(candidates[0], "candidates[0]") if candidates else None
        if candidate is not None and \
                (optional_count(candidate.get("index"), "candidates[0].index") or 0) == 0:
            self._candidate_events(candidate, events)
        return events

    def _candidate_events(self, candidate: dict[str, Any],
                          events: list[NormalizedEvent]) -> None:
        content = optional_object(candidate.get("content"), "candidates[0].content") or {}
        for part in optional_list(content.get("parts"), "content.parts") or ():
            self._part_events(part, events)
        reason = optional_text(candidate.get("finishReason"), "candidates[0].finishReason")
        if not reason:
            return
        regular = _REGULAR_FINISH.get(reason)
        if regular is None:  # the provider cut the reply
            events.append(ErrorEvent(wire_token(reason.lower(), "other"),
                                     f"Gemini stopped the reply: {wire_token(reason, 'OTHER')}",
                                     retryable=False))
            return
        self.finished = True
        events.append(Finish("tool_calls" if self._tool_calls and regular == "stop"
                             else regular))
        events.append(_usage(self._usage) if self._usage is not None else Usage(0, 0))

    def _part_events(self, part: Any, events: list[NormalizedEvent]) -> None:
        """A text part is text, or reasoning when ``thought`` is true; a functionCall
        part is one whole tool call. Other parts (thoughtSignature alone, executable
        code and its result) carry nothing to relay."""
        if type(part) is not dict:
            raise malformed("a content part", "an object")
        text = optional_text(part.get("text"), "a part's text")
        if text:
            events.append(ReasoningDelta(text) if part.get("thought") is True
                          else TextDelta(text))
        call = optional_object(part.get("functionCall"), "a part's functionCall")
        if call is not None:
            events.append(self._tool_call(call))

    def _tool_call(self, call: dict[str, Any]) -> ToolCallDelta:
        name = optional_text(call.get("name"), "functionCall.name")
        call_id = optional_text(call.get("id"), "functionCall.id") or \
            f"call_{secrets.token_hex(_CALL_ID_BYTES)}"
        args = optional_object(call.get("args"), "functionCall.args")
        index = self._tool_calls
        self._tool_calls += 1
        return ToolCallDelta(index, call_id, name or None,
                             json_text(args, "functionCall.args") if args else "{}")


def _usage(metadata: dict[str, Any]) -> Usage:
    prompt = optional_count(metadata.get("promptTokenCount"), "usageMetadata.promptTokenCount")
    output = optional_count(metadata.get("candidatesTokenCount"),
                            "usageMetadata.candidatesTokenCount")
    thoughts = optional_count(metadata.get("thoughtsTokenCount"),
                              "usageMetadata.thoughtsTokenCount")
    return Usage(prompt or 0, (output or 0) + (thoughts or 0))


def _error_event(error: Any) -> ErrorEvent:
    """A mid-stream ``{"error": {"code", "message", "status"}}``: retried as its HTTP
    status would be."""
    if type(error) is not dict:
        return ErrorEvent("provider_error", message_text(error, "Gemini stream error"),
                          retryable=False)
    kind = wire_token(error.get("status"), "provider_error")
    code = error.get("code")
    status = code if type(code) is int and 400 <= code <= 599 else _RPC_STATUSES.get(kind)
    return ErrorEvent(kind.lower(), message_text(error.get("message"), kind),
                      retryable=status is not None and (status in RETRYABLE_STATUSES
                                                        or status >= 500),
                      status=status)
