"""A keep-alive connection pool per origin.

The decisions are plain synchronous steps over small indexes (take an idle
connection, may we open one more, reuse, drain or close a returned one:
core/pooling.py); only connecting and waiting for a free slot are awaited. A
connection that broke, saw ``Connection: close``, or was given up midway is never
reused. An idle connection is closed exactly ``idle_timeout`` after it went idle: one
loop timer is armed for the oldest one's deadline.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from sseserver.aio.connect import Target, connect, parse_url
from sseserver.aio.upstream import State, Timeouts, UpstreamConnection
from sseserver.aio.wheel import Deadline, wheel_for
from sseserver.core.pooling import DRAIN_GRACE, MAX_DRAIN_BYTES, Disposal, IdleSet, disposal
from sseserver.errors import LocalProtocolError, UpstreamConnectError, UpstreamError

# Members as module names: reading one through its enum class costs ~1k instructions
# in CPython 3.11 (the metaclass's attribute lookup), a global ~0.1k.
_DONE, _BODY, _REUSE = State.DONE, State.BODY, Disposal.REUSE


@dataclass(slots=True)
class _Origin:
    name: str
    idle: IdleSet[UpstreamConnection]  # the pool's, shared by every origin
    in_use: set[UpstreamConnection] = field(default_factory=set)
    connecting: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    # Waiters woken for a freed slot or connection that have not run yet: until they
    # do, request_idle must not take what they were woken for.
    woken: int = 0

    @property
    def size(self) -> int:
        return self.idle.count(self.name) + len(self.in_use) + self.connecting


class ConnectionPool:
    """``request`` gives a connection with the request sent; hand it back with
    ``finish`` once done with it (``release`` and ``discard`` are its two plain cases).
    """

    def __init__(self, timeouts: Timeouts, max_per_origin: int = 100,
                 idle_timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None
                 ) -> None:
        self.timeouts = timeouts
        self.max_per_origin = max_per_origin
        self.idle_timeout = idle_timeout
        self._ssl_context = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._origins: dict[str, _Origin] = {}
        self._idle: IdleSet[UpstreamConnection] = IdleSet(idle_timeout)
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at = 0.0  # when _expiry fires
        self.opened = 0
        self.reused = 0
        self.drained = 0

    def __repr__(self) -> str:
        in_use = sum(len(o.in_use) for o in self._origins.values())
        return (f"<ConnectionPool origins={len(self._origins)} idle={len(self._idle)} "
                f"in_use={in_use} opened={self.opened} reused={self.reused} "
                f"drained={self.drained}>")

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the pool's connections live on: the running one at first use (and
        again once that one closed). Asked of the pool, not of asyncio, by each of its
        users: asyncio's answer costs a system call (it checks the process id)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop

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
        origin = self._origins.get(target.origin) or self._origin(target.origin)
        return self._send(origin, await self._open(origin, target), target, method, headers,
                          body)

    def request_idle(self, url: str, method: str, headers: Sequence[tuple[str, str]],
                     body: bytes) -> UpstreamConnection | None:
        """:meth:`request` on an idle connection, with nothing to await; None when there
        is none to take (or others already wait for one) and a connection must be
        opened or waited for."""
        target = parse_url(url)
        origin = self._origins.get(target.origin) or self._origin(target.origin)
        if origin.waiters or origin.woken:
            return None  # they came first
        while (conn := self._idle.take(origin.name)) is not None:  # (_take_idle's loop)
            if conn.reusable:
                self.reused += 1
                return self._send(origin, conn, target, method, headers, body)
            conn.close()  # the provider closed it while it was idle
        return None

    def _origin(self, name: str) -> _Origin:
        origin = self._origins.get(name)
        if origin is None:
            origin = self._origins[name] = _Origin(name, self._idle)
        return origin

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

    def finish(self, conn: UpstreamConnection, complete: bool) -> Disposal:
        """The caller is done with ``conn``: reuse it, drain the rest of its body
        first, or close it, as :func:`~sseserver.core.pooling.disposal` decides.
        ``complete``: the caller read all it wanted (the stream's last event); False
        when it gives up midway, which closes the connection unless the response had
        already ended. Returns what was done (the drain goes on after this returns)."""
        state = conn.state
        if state is _DONE and conn.keep_alive:  # disposal's answer for every stream ended
            self.release(conn)  # well, without its call (tests hold the two equal)
            return _REUSE
        action = disposal(ended=state is _DONE, in_body=state is _BODY,
                          keep_alive=conn.keep_alive, complete=complete)
        if action is Disposal.REUSE:
            self.release(conn)
        elif action is Disposal.DRAIN:
            _Drain(conn, self)
        else:
            self.discard(conn)
        return action

    def release(self, conn: UpstreamConnection) -> None:
        """The response on ``conn`` is over; keep the connection if it can serve again."""
        origin = self._origins.get(conn.origin)
        if origin is None or conn not in origin.in_use:
            conn.close()
            return
        origin.in_use.discard(conn)
        if conn.recycle():
            self._idle.add(conn, origin.name, conn.idle_since)
            if self._expiry is None:  # else due already, for an older connection
                self._arm_expiry()
        else:
            conn.close()
        if origin.waiters:  # (_wake without its call when nobody waits)
            self._wake(origin)

    def discard(self, conn: UpstreamConnection) -> None:
        """Close ``conn`` and free its slot."""
        conn.close()
        origin = self._origins.get(conn.origin)
        if origin is not None and conn in origin.in_use:
            origin.in_use.discard(conn)
            self._wake(origin)

    def close(self) -> None:
        for conn in self._idle.clear():
            conn.close()
        for origin in self._origins.values():
            for conn in origin.in_use:
                conn.close()
            origin.in_use.clear()
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    # -- decisions -----------------------------------------------------------------

    def _take_idle(self, origin: _Origin) -> UpstreamConnection | None:
        while (conn := self._idle.take(origin.name)) is not None:
            if conn.reusable:
                return conn
            conn.close()  # the provider closed it while it was idle
        return None

    def _forget_idle(self, conn: UpstreamConnection) -> None:
        """``conn`` broke while idle (the provider closed it): its slot is free now."""
        if self._idle.remove(conn):
            self._wake(self._origin(conn.origin))

    async def _open(self, origin: _Origin, target: Target) -> UpstreamConnection:
        while origin.size >= self.max_per_origin:
            waiter = self.loop.create_future()
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
            if origin.waiters:  # (_wake without its call when nobody waits)
                self._wake(origin)
        self.opened += 1
        # Told if it breaks while idle (its pool forgets it): set once, here, not at each
        # release (a bound method made each time); it is called once, as it breaks.
        conn.on_idle_lost = self._forget_idle
        return conn

    @staticmethod
    def _wake(origin: _Origin) -> None:
        while origin.waiters:
            waiter = origin.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                origin.woken += 1
                return

    # -- idle expiry ---------------------------------------------------------------

    def _arm_expiry(self) -> None:
        """One timer, due when the oldest idle connection expires. A connection taken
        before its deadline leaves the timer due early: it then expires nothing and is
        armed again, for the next oldest."""
        deadline = self._idle.next_deadline()
        if deadline is None or self.idle_timeout <= 0:
            return
        if self._expiry is not None:
            if self._expiry_at <= deadline:
                return  # due already, no later than needed
            self._expiry.cancel()
        self._expiry_at = deadline
        self._expiry = self.loop.call_at(deadline, self._expire_idle)

    def _expire_idle(self) -> None:
        self._expiry = None
        for conn in self._idle.expire(self.loop.time()):
            conn.close()
            self._wake(self._origin(conn.origin))
        self._arm_expiry()


class _Drain:
    """Reads the rest of a finished stream's body, within bounds, then gives the
    connection back to the pool to be reused; closes it past either bound."""

    __slots__ = ("_conn", "_pool", "_timer", "progress")

    def __init__(self, conn: UpstreamConnection, pool: ConnectionPool) -> None:
        self._conn = conn
        self._pool = pool
        self.progress = 0  # bytes: the grace timer bounds the wait, not the idle limit
        wheel = wheel_for(pool.loop)
        self._timer: Deadline | None = wheel.call_later(DRAIN_GRACE, self._give_up)
        pool.drained += 1
        conn.stream(self)
        conn.resume_reading()  # a client's backpressure paused it: nobody waits now

    def __repr__(self) -> str:
        return f"<Drain {self._conn!r} read={self.progress}>"

    def on_body(self, data: bytes) -> None:
        self.progress += len(data)
        if self.progress > MAX_DRAIN_BYTES:
            self._give_up()

    def on_body_end(self) -> None:
        if self._stop():
            self._pool.release(self._conn)

    def on_body_error(self, error: UpstreamError) -> None:
        self._give_up()

    def _give_up(self) -> None:
        if self._stop():
            self._pool.discard(self._conn)

    def _stop(self) -> bool:
        """True the first time: the drain ends once, by whichever comes first."""
        timer, self._timer = self._timer, None
        if timer is None:
            return False
        timer.cancel()
        return True
