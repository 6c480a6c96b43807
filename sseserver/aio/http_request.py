"""A client's request as the server hands it to the application, and where its
connection is in the request/response cycle."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sseserver.aio.http_server import HTTPConnection


class Phase(enum.Enum):
    """Where the connection is in its request/response cycle."""

    IDLE = "idle"  # between requests (keep-alive)
    READING = "reading"  # head or body of a request is arriving
    RESPONDING = "responding"  # the handler owns the connection
    CLOSED = "closed"


@dataclass(slots=True)
class HTTPRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    http_version: str
    body: bytes = b""
    peer: str = ""
    extra: dict[str, object] = field(default_factory=dict)


Handler = Callable[[HTTPRequest, "HTTPConnection"], None]
# Asked about a request (body not read) whose client awaits "100 Continue": True to
# let the body come; False once it has answered the request with its final status.
Admission = Callable[[HTTPRequest, "HTTPConnection"], bool]

