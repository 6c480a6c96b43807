"""The status each compatible API gives a failure the gateway answers (pure)."""

from __future__ import annotations

import pytest

from sseserver.compat.errors import compat_status, reshape


@pytest.mark.parametrize(("status", "upstream", "openai", "anthropic"), [
    (502, 529, 503, 529), (502, 503, 503, 529),  # overloaded: each API's own word
    (529, 529, 503, 529),  # an in-stream overloaded_error, answered whole
    (502, 401, 502, 502), (502, 403, 502, 502),  # our key refused: not the caller's
    (502, 500, 502, 502), (502, None, 502, 502), (504, None, 504, 504),
    (400, 400, 400, 400), (429, 429, 429, 429),
    (503, None, 503, 503),  # the gateway's own: draining, at capacity
])
def test_compat_status(status: int, upstream: int | None, openai: int, anthropic: int
                       ) -> None:
    assert compat_status("openai", status, upstream) == openai
    assert compat_status("anthropic", status, upstream) == anthropic


@pytest.mark.parametrize(("status", "openai_type", "anthropic_type"), [
    (400, "invalid_request_error", "invalid_request_error"),
    (401, "authentication_error", "authentication_error"),
    (403, "permission_error", "permission_error"),
    (404, "not_found_error", "not_found_error"),
    (413, "invalid_request_error", "request_too_large"),
    (422, "invalid_request_error", "invalid_request_error"),
    (429, "rate_limit_error", "rate_limit_error"),
    (502, "server_error", "api_error"), (504, "server_error", "timeout_error"),
    (529, "server_error", "overloaded_error"),
])
def test_each_status_has_each_apis_type(status: int, openai_type: str,
                                        anthropic_type: str) -> None:
    payload = {"error": {"type": "upstream_status_error", "message": "m"}}
    assert reshape("openai", status, payload)["error"]["type"] == openai_type
    assert reshape("anthropic", status, payload) == {
        "type": "error", "error": {"type": anthropic_type, "message": "m"}}
