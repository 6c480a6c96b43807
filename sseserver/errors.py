"""The one exception tree of sseserver.

Every exception the package raises derives from :class:`SSEServerError`. Errors from
h11, OSError, ssl and the like are translated into these at the module that met them.
"""

from __future__ import annotations

from typing import Any


class SSEServerError(Exception):
    """Root of every sseserver exception."""


class ConfigError(SSEServerError):
    """A configuration value is unknown, missing or invalid."""


class ProtocolError(SSEServerError):
    """An HTTP or SSE protocol violation.

    ``status_hint`` is the HTTP status a server should answer with when the error is
    the peer's fault. ``offset`` is where the fault lies, counted from the first byte
    given to the call that raised (negative: among bytes an earlier call gave), or None
    when no single byte is at fault; a caller that knows where that call's bytes sit in
    the message turns it into the message's offset. Messages never quote the peer's
    bytes: they may carry a secret, and they reach logs and clients. ``read_before``
    is what the call read whole before the fault (a parser's events, a decoder's body
    pieces), for the caller to pass on first: nothing good is lost to a later fault.
    """

    def __init__(self, message: str, status_hint: int = 400, offset: int | None = None
                 ) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.offset = offset
        self.read_before: list[Any] = []


class LocalProtocolError(ProtocolError):
    """We were about to violate the protocol (a bug, or bad data we were given)."""


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol."""


class RequestError(SSEServerError):
    """A client request is well-formed HTTP but not acceptable (bad JSON, bad schema).

    ``error_type`` is the machine-readable type sent in the JSON error body.
    """

    def __init__(
        self, message: str, status: int = 400, error_type: str = "invalid_request_error",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.headers = headers or []


class StreamFailure(SSEServerError):
    """What ends a stream with an error: an error event once the stream began, an error
    response before it. ``error_type`` is the identifier a client reads; ``retryable``
    whether asking again (before the stream is committed) may help; ``status`` the
    upstream HTTP status when one was received; ``retry_after`` the seconds the
    provider (or the server) asked to wait."""

    retryable: bool = False
    error_type: str = "error"
    status: int | None = None
    retry_after: float | None = None


class UpstreamError(StreamFailure):
    """Talking to a provider failed.

    ``error_type``, when given, is the provider's own identifier for the failure (its
    error event's type, or a refusal's); otherwise the class says it.
    """

    retryable: bool = True
    error_type: str = "upstream_error"

    def __init__(self, message: str, *, status: int | None = None, retryable: bool | None = None,
                 retry_after: float | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        if error_type is not None:
            self.error_type = error_type


class UpstreamConnectError(UpstreamError):
    """The provider could not be reached (DNS, refused, TLS handshake)."""

    error_type = "upstream_connect_error"


class UpstreamTimeout(UpstreamError):
    """The provider did not answer or went silent past a configured timeout."""

    error_type = "upstream_timeout"


class UpstreamClosed(UpstreamError):
    """The provider closed the connection before its stream ended."""

    error_type = "upstream_closed"


class UpstreamStatusError(UpstreamError):
    """The provider answered with a non-2xx status before streaming."""

    error_type = "upstream_status_error"


class ProviderError(UpstreamError):
    """The provider's stream carried an error, or a chunk we could not understand."""

    error_type = "provider_error"


class UpstreamEventTooLarge(ProviderError):
    """A provider's event (or line) passed its bound: the same bytes would again."""

    error_type = "upstream_event_too_large"
    retryable = False


class UpstreamNoEvents(ProviderError):
    """A provider sent more than its bound of bytes that carry no event."""

    error_type = "upstream_no_events"
    retryable = False


class EventTooLarge(RemoteProtocolError):
    """An event-stream event (or line) grew past its bound before it ended."""


class NoEvents(RemoteProtocolError):
    """An event stream sent more bytes than its bound without completing an event."""


class StreamError(SSEServerError):
    """A stream cannot be served."""


class StreamNotFound(StreamError):
    """No stream with that id exists (never did, or its retention expired)."""


class StreamStopped(StreamFailure):
    """The gateway itself ended the stream (not the provider): none is worth a retry
    on another target, and each has its own type."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StreamCancelled(StreamStopped):
    """Stopped on request (the stop button, or no reader left for too long)."""

    error_type = "cancelled"


class StreamTooLarge(StreamStopped):
    """The stream reached its memory bound and was ended rather than grown
    (DESIGN.md §5)."""

    error_type = "stream_too_large"


class ShuttingDown(StreamStopped):
    """The server is draining and ran out of time: asking again (elsewhere) will do."""

    error_type = "shutdown"
    retryable = True


class HTTPError(SSEServerError):
    """A request the server refuses before a handler sees it: ``status`` to answer
    with, ``close`` whether the connection must close after it."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


# The one table of the ``type`` of a JSON error body the server answers with itself,
# by status: the refusals before a handler, and a handler's own.
STATUS_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error", 401: "authentication_error", 403: "forbidden",
    404: "not_found_error", 405: "method_not_allowed", 408: "request_timeout",
    413: "request_too_large", 429: "rate_limit_error", 431: "headers_too_large",
    503: "unavailable", 505: "http_version_not_supported",
}


def status_error_type(status: int) -> str:
    """The ``type`` of the JSON error body of a response with ``status``."""
    return STATUS_ERROR_TYPES.get(status, "server_error" if status >= 500 else "request_error")
