"""What a failure amounts to, decided without I/O.

The relay meets failures; these pure functions say what each one is: the error that
ends a body which could not be relayed, and the status (and headers) a client gets for
a failure known before its response head. Tests drive them without a loop.
"""

from __future__ import annotations

from sseserver.errors import (
    EventTooLarge,
    NoEvents,
    ProviderError,
    ShuttingDown,
    SSEServerError,
    StreamFailure,
    UpstreamError,
    UpstreamEventTooLarge,
    UpstreamNoEvents,
    UpstreamTimeout,
)

# The seconds a client is asked to wait when a drain ends its stream before the head:
# what /readyz and a refused request say while draining.
DRAIN_RETRY_AFTER = 5
# Statuses a client gets as the provider gave them: its request was at fault.
_CLIENT_FAULTS = frozenset({400, 404, 413, 422})


def body_fault(exc: Exception) -> UpstreamError:
    """The error that ends a body which could not be relayed: the same bytes would
    fail again, so none is retryable (a provider's own error event says for itself).
    The message of an exception that is no :class:`SSEServerError` is not used: it
    may quote the provider's data (``int("sk-...")``)."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, EventTooLarge):
        return UpstreamEventTooLarge(str(exc))
    if isinstance(exc, NoEvents):
        return UpstreamNoEvents(str(exc))
    if isinstance(exc, SSEServerError):  # the parser's other refusals
        return ProviderError(str(exc), retryable=False)
    return ProviderError(f"provider sent an event that cannot be read "
                         f"({type(exc).__name__})", retryable=False)


def collected_headers(status: int) -> list[tuple[str, str]]:
    """The headers of a whole answer's failure status, decided once the stream had
    begun (so by the error event, not by :func:`client_status`): a drain's 503 says
    when to come back, as it does before the stream begins (README, draining)."""
    if status == 503:
        return [("retry-after", str(DRAIN_RETRY_AFTER))]
    return []


def client_status(error: StreamFailure) -> tuple[int, list[tuple[str, str]]]:
    """The status a client gets for a failure known before the response head."""
    headers: list[tuple[str, str]] = []
    if isinstance(error, UpstreamTimeout):
        return 504, headers
    if isinstance(error, ShuttingDown):  # README, draining: 503 with Retry-After
        headers.append(("retry-after", str(DRAIN_RETRY_AFTER)))
        return 503, headers
    status = error.status
    if status == 429 and error.retryable:  # an empty quota is no reason to come back
        retry_after = error.retry_after if error.retry_after is not None else 1.0
        headers.append(("retry-after", str(max(1, round(retry_after)))))
        return 429, headers
    if status in _CLIENT_FAULTS:
        return status, headers
    return 502, headers
