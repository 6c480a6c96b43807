"""Provider error responses: retry classification, Retry-After, safe messages, and a
200 that is no event stream."""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import UTC
from email.utils import parsedate_to_datetime

import orjson

from sseserver.errors import UpstreamStatusError

# Statuses worth another attempt: timeouts, conflicts, rate limits, server trouble
# (529 is Anthropic's "overloaded"). 400/401/403/404/422 would fail the same way again.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# An error message is shown to clients; a provider's page-long HTML error is not.
MAX_MESSAGE_CHARS = 200
# What a provider's error `type` or `code` amounts to, whatever status it came with: a
# proxy may wrap an error in a 200, and the status decides the retry and what the
# client is told. OpenAI's and Anthropic's documented types and codes
# (reference/openai-chat-stream.md §6, reference/anthropic-messages-stream.md).
KIND_STATUSES: dict[str, int] = {
    "invalid_request_error": 400, "context_length_exceeded": 400, "invalid_prompt": 400,
    "authentication_error": 401, "invalid_api_key": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404, "model_not_found": 404,
    "request_too_large": 413,
    "rate_limit_error": 429, "rate_limit_exceeded": 429, "insufficient_quota": 429,
    "api_error": 500, "server_error": 500,
    "service_unavailable_error": 503, "server_is_overloaded": 503,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# Kinds no new attempt cures, whatever their status says: OpenAI sends an exhausted
# quota as a 429, and the account stays empty until someone pays.
NEVER_RETRYABLE_KINDS = frozenset({"insufficient_quota", "billing_error",
                                   "billing_hard_limit_reached"})
# RFC 9110 §8.3.1: media types are case-insensitive, parameters follow a ";".
EVENT_STREAM = "text/event-stream"
# Ollama labels its NDJSON stream application/x-ndjson, its cloud application/json
# (the ol_cloud_thinking recording).
NDJSON_MEDIA_TYPES = frozenset({"application/x-ndjson", "application/json"})


def is_retryable(status: int, headers: dict[str, str], kind: str | None = None) -> bool:
    """Whether another attempt may help: the provider's ``x-should-retry`` first, then
    the error's kind (its JSON ``type`` or ``code``), then the status."""
    override = headers.get("x-should-retry", "").strip().lower()
    if override in ("true", "false"):
        return override == "true"
    if kind in NEVER_RETRYABLE_KINDS:
        return False
    return status in RETRYABLE_STATUSES or status >= 500


def is_event_stream(headers: dict[str, str],
                    media_types: Collection[str] = (EVENT_STREAM,)) -> bool:
    """Whether a 200's body is the stream asked for (``media_types``: those its
    provider's body reader reads, server-sent events unless it names others). A
    missing (or empty)
    Content-Type is taken for one: the stream parser refuses a body that is not, and
    the proxies and gateways that answer quota and error pages in place of a stream
    all label them (application/json, text/html), so refusing the unlabelled would only
    break minimal servers that stream well."""
    value = headers.get("content-type", "")
    given = _media_types.get(value)
    if given is None:
        given = _media_type(value)
    # a stream carries no Content-Encoding: _is_encoded's call only for one that does
    return (not given or given in media_types) and \
        ("content-encoding" not in headers or not _is_encoded(headers))


# Content-Type values already read, to their media type: a provider labels every
# stream alike, and reading one costs three string methods a stream.
_media_types: dict[str, str] = {}
# Far more than the labels of any configuration's providers; a fuller table is emptied
# (its values are read again as they come) rather than let grow with what a hostile
# upstream may send.
_MAX_MEDIA_TYPES = 64


def _media_type(value: str) -> str:
    """A Content-Type's media type, lower-case, without its parameters."""
    given = value.partition(";")[0].strip().lower()
    if len(_media_types) >= _MAX_MEDIA_TYPES:
        _media_types.clear()
    _media_types[value] = given
    return given


def _is_encoded(headers: dict[str, str]) -> bool:
    """A body compressed (gzip, br) though no encoding was asked for: RFC 9110 §12.5.3
    lets a server pick one then, and an event stream that is one is unreadable here."""
    return headers.get("content-encoding", "").strip().lower() not in ("", "identity")


def retry_after(headers: dict[str, str], now: float | None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI's, in milliseconds) then
    ``retry-after`` (RFC 9110 §10.2.3: seconds, or an HTTP date); None if absent or
    unreadable. ``now`` is the wall-clock time (Unix seconds) the response came, which
    a date is counted from; None when unknown, and a date is then ignored. A date
    already past means at once (0)."""
    millis = _non_negative(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative(value)
    if seconds is not None:
        return seconds
    return _from_http_date(value, now)


def _non_negative(text: str | None) -> float | None:
    """A finite number of zero or more: the providers send fractions ("1.5") where
    the RFC has digits, and ``nan``, ``inf`` or a negative number wait for nothing."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value < math.inf else None


def _from_http_date(text: str, now: float | None) -> float | None:
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" (RFC 5322 §3.3: UTC, zone unknown)
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def body_message(body: bytes) -> str:
    """The message of a provider's error body: ``error.message`` of the JSON that both
    OpenAI and Anthropic send, or the body itself when it is something else."""
    error = _error_object(body)
    message = error.get("message") if error is not None else None
    if message:
        return str(message)
    return body.decode("utf-8", "replace")


def error_kind(body: bytes) -> str | None:
    """The error's kind, when the body is a provider's JSON error: its ``code`` if that
    is a kind we know (OpenAI puts the precise one there), else its ``type``."""
    error = _error_object(body)
    if error is None:
        return None
    code, kind = error.get("code"), error.get("type")
    if isinstance(code, str) and code in KIND_STATUSES:
        return code
    return kind if isinstance(kind, str) and kind else None


def _error_object(body: bytes) -> dict[str, object] | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return parsed["error"]
    return None


def safe_message(message: str, secret: str | None) -> str:
    """Shorten a provider message and make sure it never carries our API key."""
    if secret:
        message = message.replace(secret, "[redacted]")
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS - 1] + "…"
    return message


def status_error(provider: str, status: int, headers: dict[str, str], body: bytes,
                 secret: str | None, now: float | None = None) -> UpstreamStatusError:
    """The error for a provider's non-2xx answer, safe to show a client; or for a 2xx
    answer that is not the event stream asked for (see :func:`not_a_stream_error`).
    ``now``: the wall-clock time of the answer, which a Retry-After date counts from."""
    if 200 <= status < 300:
        return not_a_stream_error(provider, status, headers, body, secret, now)
    text = safe_message(body_message(body), secret) or f"HTTP {status}"
    return UpstreamStatusError(
        f"{provider} answered {status}: {text}", status=status,
        retryable=is_retryable(status, headers, error_kind(body)),
        retry_after=retry_after(headers, now))


def not_a_stream_error(provider: str, status: int, headers: dict[str, str], body: bytes,
                       secret: str | None, now: float | None = None) -> UpstreamStatusError:
    """A 2xx whose body is no event stream: a quota or error page a proxy answered
    with a 200, or a server that ignored ``stream``. A JSON error's kind gives the
    status it amounts to (and so the retry, and what the client is told); anything
    else is the provider's failure, not worth another attempt, and its body is not
    shown (a page of HTML, or a whole completion, is no error message)."""
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if _is_encoded(headers):
        what = "a compressed body (Content-Encoding)"
    elif not media_type or media_type == EVENT_STREAM:  # labelled a stream, and none
        what = "a JSON or HTML body"
    else:
        what = media_type
    described = f"{provider} answered {status} with {what} instead of an event stream"
    kind = error_kind(body)
    if kind is None:
        return UpstreamStatusError(described, retryable=False)
    amounts_to = KIND_STATUSES.get(kind)
    text = safe_message(body_message(body), secret)
    return UpstreamStatusError(
        f"{described}: {text}", status=amounts_to,
        retryable=amounts_to is not None and is_retryable(amounts_to, headers, kind),
        retry_after=retry_after(headers, now))
