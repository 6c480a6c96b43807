"""A client connection passed from one worker process to another, on either side.

The giving side serialises the request it read (:func:`request_bytes`) and sends it,
with what the client sent after it and the socket's descriptor, over a worker channel
(aio/worker_channel.py). The taking side makes an :class:`AdoptedConnection` of the
descriptor, which reads those bytes first, as though they came from the socket, then
the socket itself: to the client it is one connection and one server.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sseserver.aio.admission import AdmittedConnection
from sseserver.aio.http_server import HTTPRequest, Phase

# Fields that describe the request's framing as it arrived: the body is whole now, so
# the copy is framed by a Content-Length of its own; and its client has had its 100
# Continue (or sent the body without one), so the new reader must not send another.
_FRAMING_FIELDS = frozenset({"content-length", "transfer-encoding", "expect"})


def request_bytes(request: HTTPRequest) -> bytes:
    """The request as it could have come from its client, body included."""
    target = f"{request.path}?{request.query}" if request.query else request.path
    lines = [f"{request.method} {target} HTTP/{request.http_version}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()
              if name not in _FRAMING_FIELDS]
    if request.body:
        lines.append(f"content-length: {len(request.body)}")
    # the head was read as latin-1 (core/h11_server.py): the same bytes again
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


class AdoptedConnection(AdmittedConnection):
    """A connection another worker accepted and read a request from: what it read is
    read here first, the moment the connection is made."""

    __slots__ = ("_first_input",)

    def __init__(self, first_input: bytes, *args: Any) -> None:
        super().__init__(*args)
        self._first_input = first_input

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        first_input, self._first_input = self._first_input, b""
        if first_input and self.phase is not Phase.CLOSED:  # admitted
            self.data_received(first_input)

    @property
    def handed_over_request(self) -> bool:
        """Whether the request being answered is the one another worker handed over
        (its owner was decided there; a later one on the connection is decided here)."""
        return self.requests_served <= 1
