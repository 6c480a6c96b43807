"""Error bodies in each API's own shape, so that each SDK raises its own class.

OpenAI: ``{"error": {"message", "type", "param", "code"}}``; Anthropic:
``{"type": "error", "error": {"type", "message"}}`` (reference/openai-chat-stream.md
§6, anthropic-messages-stream.md §5). The SDKs pick the exception class by the
status; the type is what a program reads next, so it is the API's own where one
fits, and the gateway's (kept in OpenAI's ``code``) says what happened here.
"""

from __future__ import annotations

from typing import Any

from sseserver.formats.anthropic_messages import ERROR_TYPES as ANTHROPIC_TYPES

OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
                409: "conflict_error", 413: "invalid_request_error",
                422: "invalid_request_error", 429: "rate_limit_error"}


def openai_error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None,
                      "code": code if code != kind else None}}


def anthropic_error_body(status: int, message: str, kind: str | None = None
                         ) -> dict[str, Any]:
    fallback = "api_error" if status >= 500 else "invalid_request_error"
    return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(status, fallback),
                                       "message": message}}


def reshape(api: str, status: int, payload: dict[str, Any]) -> dict[str, Any]:
    """The gateway's ``{"error": {"type", "message"}}`` in the shape of ``api``."""
    error = payload.get("error") or {}
    message = str(error.get("message") or f"HTTP {status}")
    kind = error.get("type")
    if api == "openai":
        return openai_error_body(status, message, kind)
    return anthropic_error_body(status, message, kind)


# A provider that answered overloaded (Anthropic's 529) or unavailable (503) until every
# retry was spent: the gateway says 502 for any provider failure, but each API has its
# own word for this one, and its SDK a class a program catches to back off: Anthropic's
# 529 overloaded_error (anthropic.OverloadedError), OpenAI's 503
# (openai.InternalServerError, as OpenAI answers when it is overloaded).
OVERLOADED_STATUSES = frozenset({503, 529})
OVERLOADED_STATUS = {"anthropic": 529, "openai": 503}


def compat_status(api: str, status: int, upstream_status: int | None) -> int:
    """The status a client of ``api`` gets for a failure the gateway answers with
    ``status``, when the provider answered ``upstream_status``. Only an overloaded
    provider changes it: a provider refusing the gateway's own key (401, 403) stays
    a 502, since the caller's credentials were never in question."""
    if upstream_status in OVERLOADED_STATUSES and status in (502, upstream_status):
        return OVERLOADED_STATUS[api]
    return status
