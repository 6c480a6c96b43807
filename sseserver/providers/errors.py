"""Provider error responses: retry classification, Retry-After, safe messages."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import orjson

from sseserver.errors import UpstreamStatusError

# Statuses worth another attempt: timeouts, conflicts, rate limits, server trouble
# (529 is Anthropic's "overloaded"). 400/401/403/404/422 would fail the same way again.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# An error message is shown to clients; a provider's page-long HTML error is not.
MAX_MESSAGE_CHARS = 200


def is_retryable(status: int, headers: dict[str, str]) -> bool:
    override = headers.get("x-should-retry", "").strip().lower()
    if override in ("true", "false"):
        return override == "true"
    return status in RETRYABLE_STATUSES or status >= 500


def retry_after(headers: dict[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` then ``retry-after``; None if absent/bad."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    seconds = headers.get("retry-after")
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except ValueError:
        return _from_http_date(seconds, now)
    return value if value >= 0 else None


def _from_http_date(text: str, now: float | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if now is None or when is None:
        return None
    return max(0.0, when.timestamp() - now)


def body_message(body: bytes) -> str:
    """The message of a provider's error body: ``error.message`` of the JSON that both
    OpenAI and Anthropic send, or the body itself when it is something else."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        message = parsed["error"].get("message")
        if message:
            return str(message)
    return body.decode("utf-8", "replace")


def safe_message(message: str, secret: str | None) -> str:
    """Shorten a provider message and make sure it never carries our API key."""
    if secret:
        message = message.replace(secret, "[redacted]")
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS - 1] + "…"
    return message


def status_error(provider: str, status: int, headers: dict[str, str], body: bytes,
                 secret: str | None) -> UpstreamStatusError:
    """The error for a provider's non-2xx answer, safe to show a client."""
    text = safe_message(body_message(body), secret) or f"HTTP {status}"
    return UpstreamStatusError(
        f"{provider} answered {status}: {text}", status=status,
        retryable=is_retryable(status, headers), retry_after=retry_after(headers))
