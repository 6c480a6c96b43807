"""What every provider adapter offers (sans-IO: no asyncio, no sockets).

A provider (configured by :class:`sseserver.config.ProviderSettings`) turns a
:class:`GenerationRequest` into an :class:`UpstreamRequest`, makes a fresh
:class:`StreamAdapter` per stream to map its SSE events to normalized events, and maps
an error response to an :class:`UpstreamError`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from sseserver.config import ProviderSettings
from sseserver.core.sse import MAX_LINE_BYTES, ServerSentEvent, SSEParser
from sseserver.errors import UpstreamError
from sseserver.events import NormalizedEvent, Usage
from sseserver.providers.errors import EVENT_STREAM, status_error
from sseserver.schema import GenerationRequest


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str  # absolute URL: scheme://host[:port]/path
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def __repr__(self) -> str:
        # header names only: the values carry the key, and a repr ends up in logs
        names = ", ".join(name for name, _ in self.headers)
        return f"<UpstreamRequest {self.method} {self.url} headers=[{names}] " \
            f"body={len(self.body)} bytes>"


class StreamAdapter(Protocol):
    def feed(self, event: str, data: str) -> list[NormalizedEvent]:
        """Map one upstream SSE event (name, data) to zero or more normalized events.

        Raises :class:`ProviderError` for data it cannot understand.
        """
        ...

    def feed_message(self, data: str) -> str | list[NormalizedEvent]:
        """:meth:`feed` for an unnamed event; a plain text delta may come back as its
        bare content (the per-token case, with no objects to build). Called by the
        pump's fast path only (sseserver/pump.py), whose tests prove it gives what
        :meth:`feed` gives."""
        ...

    @property
    def finished(self) -> bool:
        """True once the upstream signalled the regular end of its stream."""
        ...

    def usage_so_far(self) -> Usage | None:
        """The usage the provider reported so far, for a stream that ends early."""
        ...


class EventReader(Protocol):
    """What the pump reads a body with: the SSE parser, or a provider's own reader.

    :meth:`feed` is the reading; :meth:`feed_data_line` (one whole data event) and
    :meth:`feed_data_lines` (several) are its shortcuts, which take a read or leave it
    (None) untouched. Only the pump calls them (sseserver/pump.py), and its tests
    prove that they give what :meth:`feed` gives for any cut of a recorded body."""

    def feed_data_line(self, chunk: bytes) -> str | None: ...

    def feed_data_lines(self, chunk: bytes) -> list[str] | None: ...

    def feed(self, chunk: bytes) -> list[ServerSentEvent]: ...

    def end(self) -> list[ServerSentEvent]:
        """The body's HTTP framing ended it: what a last, unterminated event holds."""
        ...


class BodyReader:
    """The base of a body reader for a framing other than SSE. A provider's
    ``new_body_reader(max_event_bytes, max_bytes_without_event)`` (the relay's bounds)
    gives the reader of one attempt's body, and its ``media_types`` the Content-Types
    a 200 with such a body may carry. ``feed(bytes)`` gives the events a read
    completed, each with ``.event`` and ``.data`` as an SSE event has, for the
    adapter's ``feed``; the SSE parser's two per-token shortcuts take nothing here
    unless a reader has a shortcut of its own."""

    __slots__ = ()

    def feed_data_line(self, chunk: bytes) -> str | None:
        return None

    def feed_data_lines(self, chunk: bytes) -> list[str] | None:
        return None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        raise NotImplementedError

    def end(self) -> list[ServerSentEvent]:
        return []  # a framing of whole messages leaves nothing half-read to take


class Provider(Protocol):
    settings: ProviderSettings
    media_types: Collection[str]  # of a 200's body: what new_body_reader reads

    def new_body_reader(self, max_event_bytes: int, max_bytes_without_event: int
                        ) -> EventReader:
        """The reader of one attempt's body, within the relay's bounds."""
        ...

    def build_request(self, request: GenerationRequest, model: str) -> UpstreamRequest: ...

    def new_adapter(self) -> StreamAdapter: ...

    def map_error(self, status: int, headers: dict[str, str], body: bytes,
                  now: float | None = None) -> UpstreamError:
        """A non-2xx answer (or a 2xx that is no stream) as an error safe to show a
        client. ``now``: the wall-clock time of the answer (a Retry-After date counts
        from it)."""
        ...


class SettingsProvider:
    """What every provider shares: its settings, a key-free repr, error mapping."""

    media_types: Collection[str] = (EVENT_STREAM,)

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    def new_body_reader(self, max_event_bytes: int, max_bytes_without_event: int
                        ) -> EventReader:
        """Server-sent events, unless a provider reads another framing."""
        return SSEParser(MAX_LINE_BYTES, max_event_bytes, max_bytes_without_event,
                         refuse_documents=True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.settings.name} {self.settings.base_url}>"

    def map_error(self, status: int, headers: dict[str, str], body: bytes,
                  now: float | None = None) -> UpstreamError:
        """A non-2xx answer as an error safe to show a client (the key redacted)."""
        return status_error(self.settings.name, status, headers, body, self.settings.api_key,
                            now)
