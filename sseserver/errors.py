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


class UpstreamError(SSEServerError):
    """Talking to a provider failed.

    ``retryable`` says whether trying again (before the stream is committed) may help;
    ``status`` is the upstream HTTP status when one was received.
    """

    retryable: bool = True
    error_type: str = "upstream_error"

    def __init__(self, message: str, *, status: int | None = None, retryable: bool | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after


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


class EventTooLarge(RemoteProtocolError):
    """An event-stream event (or line) grew past its bound before it ended."""


class NoEvents(RemoteProtocolError):
    """An event stream sent more bytes than its bound without completing an event."""


class ShuttingDown(UpstreamError):
    """The server is draining and ran out of time: asking again (elsewhere) will do."""

    error_type = "shutdown"


class StreamError(SSEServerError):
    """A stream cannot be served."""


class StreamNotFound(StreamError):
    """No stream with that id exists (never did, or its retention expired)."""
