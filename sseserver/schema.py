"""The normalized generation request (DESIGN.md §3), parsed and validated from JSON.

Validation is strict: unknown fields are refused rather than passed on blindly, so a
typo never silently changes what a provider is asked to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sseserver.errors import RequestError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
FORMATS = frozenset({"sse", "ai-sdk"})
DISCONNECT_POLICIES = frozenset({"cancel", "detach"})
# Generous, but bounded: a request is held in memory for the whole stream.
MAX_MESSAGES = 10_000
MAX_MODEL_NAME = 256

_KNOWN_FIELDS = frozenset({
    "model", "messages", "provider", "system", "max_tokens", "temperature", "tools",
    "resumable", "format", "on_disconnect",
})
# The fields most requests have, and all that many have.
_COMMON_FIELDS = frozenset({"model", "messages"})


# Messages and generation requests are values: never changed once made (a changed one
# is a new one, dataclasses.replace), hashed by their fields. Not frozen all the same:
# a frozen dataclass sets each field through object.__setattr__, ~1.4k instructions a
# field in CPython 3.11 (a request's eleven: 17k; 2.8k as a plain slots dataclass).
@dataclass(slots=True, unsafe_hash=True)
class Message:
    role: str
    content: Any  # a string, or a provider-neutral list of content parts


@dataclass(frozen=True, slots=True)
class NativeRequest:
    """A request as a compatible endpoint received it, in its own wire format
    (``"openai"`` for Chat Completions, ``"anthropic"`` for Messages): a provider of
    that format gets it unchanged but for the model and streaming; a provider of the
    other format gets it translated, or refuses what has no equivalent."""

    format: str
    body: dict[str, Any]


@dataclass(slots=True, unsafe_hash=True)  # a value: see Message
class GenerationRequest:
    model: str
    messages: tuple[Message, ...]
    provider: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    tools: tuple[dict[str, Any], ...] = ()  # a value, not a factory's call a request
    resumable: bool = False
    format: str = "sse"
    on_disconnect: str | None = None
    native: NativeRequest | None = None  # set by the compatible endpoints only

    @property
    def last_user_text(self) -> str:
        """The text of the last user message ('' when there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return _text_of(message.content)
        return ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def parse_generation_request(body: bytes) -> GenerationRequest:
    """Parse a request body into a :class:`GenerationRequest`.

    Raises :class:`RequestError` (400) saying exactly what is wrong.
    """
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise RequestError(f"body must be a JSON object, not {_json_type(raw)}")
    if not _KNOWN_FIELDS.issuperset(raw):
        unknown = sorted(set(raw) - _KNOWN_FIELDS)
        raise RequestError(f"unknown field(s): {', '.join(unknown)}")
    if _COMMON_FIELDS.issuperset(raw):  # the rest at their defaults: no look at them
        return GenerationRequest(_model(raw.get("model")), _messages(raw.get("messages")))
    return GenerationRequest(
        model=_model(raw.get("model")),
        messages=_messages(raw.get("messages")),
        provider=_optional_str(raw, "provider"),
        system=_optional_str(raw, "system"),
        max_tokens=_max_tokens(raw.get("max_tokens")),
        temperature=_temperature(raw.get("temperature")),
        tools=_tools(raw.get("tools")),
        resumable=_optional_bool(raw, "resumable"),
        format=_choice(raw, "format", FORMATS, "sse"),
        on_disconnect=_choice(raw, "on_disconnect", DISCONNECT_POLICIES, None),
    )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _model(value: Any) -> str:
    if value is None:
        raise RequestError("'model' is required")
    if not isinstance(value, str) or not value.strip():
        raise RequestError("'model' must be a non-empty string")
    if len(value) > MAX_MODEL_NAME:
        raise RequestError(f"'model' is longer than {MAX_MODEL_NAME} characters")
    return value


def _messages(value: Any) -> tuple[Message, ...]:
    if value is None:
        raise RequestError("'messages' is required")
    if not isinstance(value, list):
        raise RequestError(f"'messages' must be an array, not {_json_type(value)}")
    if not value:
        raise RequestError("'messages' must not be empty")
    if len(value) > MAX_MESSAGES:
        raise RequestError(f"'messages' has more than {MAX_MESSAGES} entries")
    messages = _valid_messages(value)
    if len(messages) == len(value):
        return messages
    return messages_one_by_one(value)  # says which message is at fault


def _valid_messages(value: list[Any]) -> tuple[Message, ...]:
    """The messages that are objects with a role and a content as JSON gives them (a
    str or a list, not a subclass), read without a call a message (most requests'
    messages are all such); fewer than given when any is not, or none."""
    try:
        return tuple([Message(item["role"], item["content"]) for item in value
                      if item["role"] in ROLES and type(item["content"]) in _CONTENT_TYPES])
    except (TypeError, KeyError):  # not an object, a field missing, a role unhashable
        return ()


def messages_one_by_one(value: list[Any]) -> tuple[Message, ...]:
    """The messages, each checked on its own (raises the first one's error)."""
    return tuple([_message(i, item) for i, item in enumerate(value)])


def _message(index: int, item: Any) -> Message:
    if not isinstance(item, dict):
        raise RequestError(f"messages[{index}] must be an object, not {_json_type(item)}")
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLES:  # (a list or object: unhashable)
        raise RequestError(f"messages[{index}].role must be one of "
                           f"{', '.join(sorted(ROLES))}")
    content = item.get("content")
    if not isinstance(content, _CONTENT_TYPES):
        raise RequestError(f"messages[{index}].content must be a string or an array of "
                           "parts")
    return Message(role, content)


_CONTENT_TYPES = (str, list)


def _optional_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"'{key}' must be a string, not {_json_type(value)}")
    return value


def _optional_bool(raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise RequestError(f"'{key}' must be true or false")
    return value


def _choice(raw: dict[str, Any], key: str, allowed: frozenset[str], default: str | None
            ) -> Any:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or value not in allowed:  # (unhashable: a TypeError)
        raise RequestError(f"'{key}' must be one of {', '.join(sorted(allowed))}")
    return value


def _max_tokens(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError("'max_tokens' must be a positive integer")
    return value


# a tuple made once: ``int | float`` in the call builds a types.UnionType each time
_NUMBER_TYPES = (int, float)


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES) or not 0 <= value <= 2:
        raise RequestError("'temperature' must be a number from 0 to 2")
    return float(value)


def _tools(value: Any) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise RequestError("'tools' must be an array of objects")
    return tuple(value)
