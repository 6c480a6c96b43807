"""Reading provider JSON by its documented shape.

A provider event is JSON from a server we do not control: any field may hold any JSON
value. Adapters read every field they use through these readers, which return the value
when it has the documented type, ``None`` when it is absent or null (the wire
references treat the two alike), and otherwise raise :class:`ProviderError`, not
retryable (a new attempt would get the same bytes), worded as the rule that broke.
No message here quotes the upstream bytes: they may carry anything, the key included.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from sseserver.errors import ProviderError

# Counts and indexes reach clients as JSON numbers, and a JavaScript client reads those
# exactly only up to 2**53 - 1 (Number.MAX_SAFE_INTEGER); orjson cannot even write
# integers past 64 bits. Larger is no real count or index.
MAX_COUNT = 2**53 - 1
# An error type or finish reason is a machine-readable token clients switch on
# ("server_error", "overloaded_error", "tool_calls"); the longest in the references is
# 26 characters, so 64 leaves room for new ones and none for a page of text.
MAX_TOKEN_CHARS = 64
_NOT_TOKEN_CHARS = re.compile(r"[^A-Za-z0-9_.:-]+")
# A UTF-16 surrogate written as a JSON escape (\uD800-\uDFFF); orjson refuses a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


def malformed(where: str, expected: str) -> ProviderError:
    return ProviderError(f"provider event: {where} is not {expected}", retryable=False)


def loads_after_error(data: str) -> Any:
    """The JSON value of ``data`` that orjson refused: lone surrogates (``"\\ud800"``)
    become U+FFFD, as invalid UTF-8 already does (the SSE parser decodes with
    replacement); anything else orjson refuses is a :class:`ProviderError`. Only for
    the error path: the stdlib parser it falls back on is several times slower."""
    if _SURROGATE_ESCAPE.search(data) is not None:
        try:
            value = json.loads(data, parse_constant=_refuse_constant)
            return _without_surrogates(value)
        except (ValueError, RecursionError):
            pass
    raise ProviderError("provider sent an event that is not valid JSON", retryable=False)


def _refuse_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")  # orjson refuses them too


def _without_surrogates(value: Any) -> Any:
    if type(value) is str:
        return _SURROGATE.sub(REPLACEMENT_CHARACTER, value)
    if type(value) is list:
        return [_without_surrogates(item) for item in value]
    if type(value) is dict:
        return {_without_surrogates(key): _without_surrogates(item)
                for key, item in value.items()}
    return value


def optional_object(value: Any, where: str) -> dict[str, Any] | None:
    if value is None or type(value) is dict:
        return value
    raise malformed(where, "an object")


def optional_list(value: Any, where: str) -> list[Any] | None:
    if value is None or type(value) is list:
        return value
    raise malformed(where, "a list")


def optional_text(value: Any, where: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise malformed(where, "a string")


def optional_count(value: Any, where: str) -> int | None:
    """A non-negative integer (a token count, an index); ``true`` is no count."""
    if value is None or (type(value) is int and 0 <= value <= MAX_COUNT):
        return value
    raise malformed(where, "a non-negative integer")


def json_text(value: dict[str, Any], where: str) -> str:
    """``value`` written back as JSON text (a tool input sent whole)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # nested past orjson's depth, or a >64-bit integer
        raise malformed(where, "JSON the gateway can relay") from None


def wire_token(value: Any, default: str) -> str:
    """A provider's machine-readable token (error type, finish reason) fit to relay and
    log: a string, at most :data:`MAX_TOKEN_CHARS` of letters, digits and ``_.:-``.
    Anything else in it becomes ``_``; a value that is no string, or nothing but such
    characters, is ``default``."""
    if type(value) is not str:
        return default
    token = _NOT_TOKEN_CHARS.sub("_", value[:MAX_TOKEN_CHARS]).strip("_")
    return token or default


def message_text(value: Any, default: str) -> str:
    """A provider's error message: a non-empty string, else ``default``. (The relay
    redacts and shortens it before anyone sees it.)"""
    return value if type(value) is str and value else default
