"""Connection admission: how many client connections, in all and per address, and what
a connection over a limit gets.

``server.max_connections`` caps streams; this caps sockets, which a client can hold
without ever making a stream (a POST head and no body is held for the body timeout).
A connection over a limit is answered at once with a prebuilt ``503`` (as nginx's
``limit_conn`` answers), a ``Retry-After`` and a JSON error, then closed: its request
is never read, so refusing costs one write. Refusals are logged, at most one line per
LOG_INTERVAL with a count of the ones held back, so a flood of them is no log flood.

Descriptors: each stream holds two (the client's socket and its upstream socket), so
the default total is half of what the open-file limit leaves after RESERVED_FDS; a
connection accepted on a descriptor within FD_HEADROOM of the limit is refused the
same way (accept is about to fail), and an accept that does fail for lack of
descriptors is logged (asyncio reports it through the loop's exception handler;
uvloop's libuv accepts and closes such connections itself, reporting nothing, which
the headroom check exists for).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
from collections.abc import Callable
from typing import Any, cast

import orjson

from sseserver.aio.http_server import HTTPConnection
from sseserver.aio.log_limit import RateLimitedLog

logger = logging.getLogger("sseserver.admission")

# Descriptors a process needs besides client and upstream sockets: stdio, the listening
# socket, the loop's epoll, eventfd and signal pipe, log files, the demo provider's
# listener, the resolver. 20 leaves 9,990 streams under a limit of 20,000.
RESERVED_FDS = 20
# A client socket on one of the last descriptors is refused: the next accepts would
# fail. Within RESERVED_FDS, so the default total is never refused by it (the process
# itself holds about a dozen).
FD_HEADROOM = 4
# One log line per this many seconds at most, for refusals and for failed accepts.
LOG_INTERVAL = 10.0
# What a refused client is told to wait: the limits are about a moment's crowd.
RETRY_AFTER = 1
_ACCEPT_ERRNOS = (errno.EMFILE, errno.ENFILE)


def default_max_connections(open_file_limit: int) -> int:
    """The total client connections that leave every stream its upstream socket."""
    return max(1, (open_file_limit - RESERVED_FDS) // 2)


def open_file_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def refusal(message: str) -> bytes:
    """A whole 503 response that closes its connection."""
    body = orjson.dumps({"error": {"type": "unavailable", "message": message}})
    return (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"retry-after: %d\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%b"
            % (RETRY_AFTER, len(body), body))


_TOTAL_REFUSAL = refusal("the server is at its connection limit; retry shortly")
_ADDRESS_REFUSAL = refusal("too many connections from your address; retry shortly")
_FD_REFUSAL = refusal("the server is out of connection slots; retry shortly")


def refusal_log(clock: Callable[[], float]) -> RateLimitedLog:
    """The admission's log: refusals and failed accepts, one line per LOG_INTERVAL."""
    return RateLimitedLog(logger, logging.WARNING, LOG_INTERVAL, clock)


class Admission:
    """Counts open client connections, in all and per address, and decides."""

    __slots__ = ("_by_address", "fd_ceiling", "log", "max_per_address", "max_total",
                 "open", "refused")

    def __init__(self, max_total: int, max_per_address: int, fd_limit: int,
                 log: RateLimitedLog) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address  # 0: no limit
        self.fd_ceiling = fd_limit - FD_HEADROOM
        self.log = log
        self.open = 0
        self.refused = 0
        self._by_address: dict[str, int] = {}

    def __repr__(self) -> str:
        return (f"<Admission open={self.open}/{self.max_total} "
                f"addresses={len(self._by_address)} refused={self.refused}>")

    def admit(self, address: str, fd: int) -> bytes | None:
        """Count the connection in and return None, or return the refusal to send."""
        if self.open >= self.max_total:
            return self._refuse(_TOTAL_REFUSAL, "connection limit (%d) reached; refusing "
                                "connections (server.max_client_connections)", self.max_total)
        count = self._by_address.get(address, 0)
        if self.max_per_address and count >= self.max_per_address:
            return self._refuse(_ADDRESS_REFUSAL, "%s holds %d connections, the per-address "
                                "limit; refusing more (server.max_connections_per_address)",
                                address, count)
        if fd >= self.fd_ceiling:
            return self._refuse(_FD_REFUSAL, "descriptor %d is within %d of the open-file "
                                "limit; refusing connections (raise ulimit -n, or lower "
                                "server.max_client_connections)", fd, FD_HEADROOM)
        self.open += 1
        self._by_address[address] = count + 1
        return None

    def release(self, address: str) -> None:
        self.open -= 1
        count = self._by_address[address] - 1
        if count:
            self._by_address[address] = count
        else:
            del self._by_address[address]

    def _refuse(self, answer: bytes, message: str, *args: object) -> bytes:
        self.refused += 1
        self.log(message, *args)
        return answer


class AdmittedConnection(HTTPConnection):
    """An :class:`HTTPConnection` that first asks :class:`Admission`."""

    __slots__ = ("_address", "_admission")

    def __init__(self, admission: Admission, *args: Any) -> None:
        HTTPConnection.__init__(self, *args)  # (super() is an object made a connection)
        self._admission = admission
        self._address: str | None = None  # set while counted in

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = self._open(transport)  # reads the peer once, for both of us
        # the host: "::1:8080" -> "::1"
        address = peer[0] if isinstance(peer, tuple) else self.peer.rpartition(":")[0]
        sock = transport.get_extra_info("socket")
        answer = self._admission.admit(address, sock.fileno() if sock is not None else -1)
        if answer is None:
            self._address = address
            return
        cast(asyncio.Transport, transport).write(answer)  # never read: it does not
        self._close()  # depend on the request

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is not None:
            self._admission.release(self._address)
            self._address = None
        HTTPConnection.connection_lost(self, exc)


def accept_error_handler(log: RateLimitedLog,
                         previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
                         | None) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """A loop exception handler that turns asyncio's report of an accept failing for
    lack of descriptors (one per retry, each with a traceback) into one rate-limited
    line, and hands everything else on."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _ACCEPT_ERRNOS and \
                "accept" in str(context.get("message", "")):
            log("cannot accept connections: %s; new clients wait in the listen "
                        "backlog (raise ulimit -n, or lower server.max_client_connections)",
                        exc.strerror)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handle
