"""Checking the bodies of ``/v1/chat/completions`` and ``/v1/messages``.

Only what the gateway itself needs is checked here (the model to route, the messages,
streaming options, ``n``); every other field travels on in the native body, to be
passed through or translated by the provider that serves the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sseserver.errors import RequestError
from sseserver.schema import (
    MAX_MESSAGES,
    MAX_MODEL_NAME,
    GenerationRequest,
    Message,
    NativeRequest,
)

OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
ANTHROPIC_ROLES = frozenset({"user", "assistant"})


@dataclass(frozen=True, slots=True)
class CompatRequest:
    generation: GenerationRequest
    stream: bool
    include_usage: bool  # OpenAI's stream_options.include_usage: add the usage chunk


def parse_chat_request(body: bytes) -> CompatRequest:
    """A Chat Completions request body. Raises :class:`RequestError` (400)."""
    raw = _object(body)
    n = raw.get("n")
    if n is not None and n != 1:
        raise RequestError("'n' must be 1: the gateway streams one choice per request")
    stream = _flag(raw, "stream")
    options = raw.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestError("'stream_options' must be an object")
    include_usage = bool(options and options.get("include_usage"))
    if include_usage and not stream:
        raise RequestError("'stream_options' is only allowed with 'stream': true")
    messages = _messages(raw.get("messages"), OPENAI_ROLES)
    return CompatRequest(_generation(raw, messages, "openai", "max_completion_tokens"),
                         stream, include_usage)


def parse_messages_request(body: bytes) -> CompatRequest:
    """A Messages request body. Raises :class:`RequestError` (400)."""
    raw = _object(body)
    max_tokens = raw.get("max_tokens")
    if max_tokens is None:
        raise RequestError("'max_tokens' is required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestError("'max_tokens' must be a positive integer")
    system = raw.get("system")
    if system is not None and not isinstance(system, str | list):
        raise RequestError("'system' must be a string or an array of text blocks")
    messages = _messages(raw.get("messages"), ANTHROPIC_ROLES)
    return CompatRequest(_generation(raw, messages, "anthropic", "max_tokens"),
                         _flag(raw, "stream"), include_usage=False)


def _object(body: bytes) -> dict[str, Any]:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise RequestError("body must be a JSON object")
    model = raw.get("model")
    if model is None:
        raise RequestError("'model' is required")
    if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL_NAME:
        raise RequestError(f"'model' must be a non-empty string of at most {MAX_MODEL_NAME} "
                           "characters")
    return raw


def _flag(raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"'{key}' must be true or false")
    return value


def _messages(value: Any, roles: frozenset[str]) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise RequestError("'messages' must be a non-empty array")
    if len(value) > MAX_MESSAGES:
        raise RequestError(f"'messages' has more than {MAX_MESSAGES} entries")
    messages = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise RequestError(f"messages[{index}] must be an object")
        role = item.get("role")
        if role not in roles:
            raise RequestError(f"messages[{index}].role must be one of "
                               f"{', '.join(sorted(roles))}")
        content = item.get("content")
        if content is None and role == "assistant":
            content = ""  # an assistant turn of tool calls only
        if not isinstance(content, str | list):
            raise RequestError(f"messages[{index}].content must be a string or an array")
        messages.append(Message(role=role, content=content))
    return tuple(messages)


def _generation(raw: dict[str, Any], messages: tuple[Message, ...], wire: str,
                limit_key: str) -> GenerationRequest:
    limit = raw.get(limit_key, raw.get("max_tokens"))
    return GenerationRequest(
        model=raw["model"], messages=messages,
        max_tokens=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
        native=NativeRequest(wire, raw))


# The compatible endpoints' resume options travel as request headers, not body fields:
# the body goes on unchanged to a provider of its own wire format, which would refuse a
# field it does not know, and both SDKs add headers to any call (``extra_headers``,
# ``default_headers``). The names mirror ``/v1/stream``'s ``resumable`` and
# ``on_disconnect``.
RESUMABLE_HEADER = "x-resumable"
ON_DISCONNECT_HEADER = "x-on-disconnect"
_BOOLEANS = {"true": True, "false": False}
ON_DISCONNECT_CHOICES = frozenset({"cancel", "continue"})


@dataclass(frozen=True, slots=True)
class ResumeOptions:
    resumable: bool
    cancel_when_alone: bool  # stop generating when the last reader leaves


def parse_resume_options(headers: Mapping[str, str], stream: bool) -> ResumeOptions:
    """The ``X-Resumable`` and ``X-On-Disconnect`` request headers. Raises
    :class:`RequestError` (400) for a value they do not take, or for a resumable
    request that does not stream (a whole answer is one response, nothing to resume)."""
    resumable = _BOOLEANS.get(headers.get(RESUMABLE_HEADER, "false").strip().lower())
    if resumable is None:
        raise RequestError("the X-Resumable header must be true or false")
    on_disconnect = headers.get(ON_DISCONNECT_HEADER)
    if on_disconnect is not None:
        on_disconnect = on_disconnect.strip().lower()
        if on_disconnect not in ON_DISCONNECT_CHOICES:
            raise RequestError("the X-On-Disconnect header must be cancel or continue")
        if not resumable:
            raise RequestError("the X-On-Disconnect header needs X-Resumable: true")
    if resumable and not stream:
        raise RequestError("X-Resumable: true needs 'stream': true")
    return ResumeOptions(resumable, on_disconnect == "cancel")
