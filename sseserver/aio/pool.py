"""A keep-alive connection pool per origin.

The decisions are plain synchronous steps over small per-origin indexes (take an idle
connection, may we open one more, keep or close a returned one); only connecting and
waiting for a free slot are awaited. A connection that broke, saw ``Connection:
close``, or ended its response early is never reused.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from sseserver.aio.upstream import Target, Timeouts, UpstreamConnection, connect, parse_url
from sseserver.errors import LocalProtocolError, UpstreamConnectError


@dataclass(slots=True)
class _Origin:
    idle: list[UpstreamConnection] = field(default_factory=list)  # most recent last
    in_use: set[UpstreamConnection] = field(default_factory=set)
    connecting: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    # Waiters woken for a freed slot or connection that have not run yet: until they
    # do, request_idle must not take what they were woken for.
    woken: int = 0

    @property
    def size(self) -> int:
        return len(self.idle) + len(self.in_use) + self.connecting


class ConnectionPool:
    """``request`` gives a connection with the request sent; hand it back with
    ``release`` once its response ended (it may be reused) or ``discard``."""

    def __init__(self, timeouts: Timeouts, max_per_origin: int = 100,
                 idle_timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None
                 ) -> None:
        self.timeouts = timeouts
        self.max_per_origin = max_per_origin
        self.idle_timeout = idle_timeout
        self._ssl_context = ssl_context
        self._origins: dict[str, _Origin] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self.opened = 0
        self.reused = 0

    def __repr__(self) -> str:
        idle = sum(len(o.idle) for o in self._origins.values())
        in_use = sum(len(o.in_use) for o in self._origins.values())
        return (f"<ConnectionPool origins={len(self._origins)} idle={idle} in_use={in_use} "
                f"opened={self.opened} reused={self.reused}>")

    @property
    def ssl_context(self) -> ssl.SSLContext:
        # One context for all connections: building one loads the whole trust store.
        # The system store, or the file named by SSL_CERT_FILE (OpenSSL reads it).
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    async def request(self, url: str, method: str, headers: Sequence[tuple[str, str]],
                      body: bytes) -> UpstreamConnection:
        """A connection to ``url``'s origin with the request sent on it.

        Raises :class:`UpstreamConnectError` or :class:`UpstreamTimeout`.
        """
        conn = self.request_idle(url, method, headers, body)
        if conn is not None:
            return conn
        target = parse_url(url)
        origin = self._origins.setdefault(target.origin, _Origin())
        return self._send(origin, await self._open(origin, target), target, method, headers,
                          body)

    def request_idle(self, url: str, method: str, headers: Sequence[tuple[str, str]],
                     body: bytes) -> UpstreamConnection | None:
        """:meth:`request` on an idle connection, with nothing to await; None when there
        is none to take (or others already wait for one) and a connection must be
        opened or waited for."""
        target = parse_url(url)
        origin = self._origins.setdefault(target.origin, _Origin())
        if origin.waiters or origin.woken:
            return None  # they came first
        conn = self._take_idle(origin)
        if conn is None:
            return None
        self.reused += 1
        return self._send(origin, conn, target, method, headers, body)

    def _send(self, origin: _Origin, conn: UpstreamConnection, target: Target, method: str,
              headers: Sequence[tuple[str, str]], body: bytes) -> UpstreamConnection:
        origin.in_use.add(conn)
        try:
            conn.send_request(method, target.path, target.authority, headers, body)
        except LocalProtocolError as exc:  # e.g. a configured key with a line break
            self.discard(conn)
            raise UpstreamConnectError(f"cannot send the request to {target.authority}: "
                                       f"{exc}", retryable=False) from None
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """The response on ``conn`` is over; keep the connection if it can serve again."""
        origin = self._origins.get(conn.origin)
        if origin is None or conn not in origin.in_use:
            conn.close()
            return
        origin.in_use.discard(conn)
        if conn.recycle():
            origin.idle.append(conn)
            self._schedule_sweep()
        else:
            conn.close()
        self._wake(origin)

    def discard(self, conn: UpstreamConnection) -> None:
        """Close ``conn`` and free its slot."""
        conn.close()
        origin = self._origins.get(conn.origin)
        if origin is not None and conn in origin.in_use:
            origin.in_use.discard(conn)
            self._wake(origin)

    def close(self) -> None:
        for origin in self._origins.values():
            for conn in [*origin.idle, *origin.in_use]:
                conn.close()
            origin.idle.clear()
            origin.in_use.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    # -- decisions -----------------------------------------------------------------

    @staticmethod
    def _take_idle(origin: _Origin) -> UpstreamConnection | None:
        while origin.idle:
            conn = origin.idle.pop()
            if conn.reusable:
                return conn
            conn.close()  # the provider closed it while it was idle
        return None

    async def _open(self, origin: _Origin, target: Target) -> UpstreamConnection:
        while origin.size >= self.max_per_origin:
            waiter = asyncio.get_running_loop().create_future()
            origin.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # woken, then cancelled:
                    origin.woken -= 1  # the wake-up goes to the next in line
                    self._wake(origin)
                elif waiter in origin.waiters:
                    origin.waiters.remove(waiter)
                raise
            origin.woken -= 1
            conn = self._take_idle(origin)
            if conn is not None:
                self.reused += 1
                return conn
        origin.connecting += 1
        try:
            tls = target.scheme == "https"
            conn = await connect(target, self.timeouts, self.ssl_context if tls else None)
        finally:
            origin.connecting -= 1
            self._wake(origin)
        self.opened += 1
        return conn

    @staticmethod
    def _wake(origin: _Origin) -> None:
        while origin.waiters:
            waiter = origin.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                origin.woken += 1
                return

    def _schedule_sweep(self) -> None:
        if self._sweep is None and self.idle_timeout > 0:
            self._sweep = asyncio.get_running_loop().call_later(
                self.idle_timeout, self._close_idle)

    def _close_idle(self) -> None:
        self._sweep = None
        now = asyncio.get_running_loop().time()
        for origin in self._origins.values():
            keep = [c for c in origin.idle
                    if c.reusable and now - c.idle_since < self.idle_timeout]
            for conn in origin.idle:
                if conn not in keep:
                    conn.close()
            origin.idle = keep
            if keep:
                self._schedule_sweep()
