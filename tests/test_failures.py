"""What each failure amounts to: decided without a loop."""

from __future__ import annotations

import pytest

from sseserver.errors import (
    EventTooLarge,
    NoEvents,
    ProviderError,
    RemoteProtocolError,
    ShuttingDown,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from sseserver.failures import DRAIN_RETRY_AFTER, body_fault, client_status


@pytest.mark.parametrize(("exc", "error_type"), [
    (EventTooLarge("event-stream event longer than 10 bytes"), "upstream_event_too_large"),
    (NoEvents("more than 10 bytes without an event"), "upstream_no_events"),
    (RemoteProtocolError("anything else the parser refuses"), "provider_error"),
    (ValueError("invalid literal for int() with base 10: 'sk-secret-0123456789'"),
     "provider_error"),
    (TypeError("'int' object is not subscriptable"), "provider_error"),
])
def test_a_body_that_cannot_be_relayed_ends_with_an_error_no_retry_cures(
        exc: Exception, error_type: str) -> None:
    error = body_fault(exc)
    assert (error.error_type, error.retryable) == (error_type, False)
    assert "sk-secret" not in str(error)  # a foreign exception's message is not used


def test_a_providers_own_error_keeps_its_word() -> None:
    own = ProviderError("Overloaded", retryable=True)
    assert body_fault(own) is own


@pytest.mark.parametrize(("error", "status", "headers"), [
    (UpstreamTimeout("no response head"), 504, []),
    (ShuttingDown("server is shutting down"), 503,
     [("retry-after", str(DRAIN_RETRY_AFTER))]),
    (UpstreamStatusError("rate limited", status=429, retry_after=2.4), 429,
     [("retry-after", "2")]),
    (UpstreamStatusError("quota", status=429, retryable=False), 502, []),
    (UpstreamStatusError("bad request", status=400, retryable=False), 400, []),
    (UpstreamStatusError("no such model", status=404, retryable=False), 404, []),
    (UpstreamStatusError("bad key", status=401, retryable=False), 502, []),
    (UpstreamError("provider closed the connection"), 502, []),
])
def test_the_status_a_client_gets_before_the_head(error: UpstreamError, status: int,
                                                  headers: list[tuple[str, str]]) -> None:
    assert client_status(error) == (status, headers)
