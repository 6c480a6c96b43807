"""The connection pool's decisions and its idle index, sans-IO (aio/pool.py does the I/O).

:func:`disposal` says what becomes of a connection whose caller is done with it: used
again, drained first, or closed. :class:`IdleSet` holds the idle connections of every
origin in the order they went idle, so that taking the most recent one of an origin,
forgetting any one, and expiring the oldest all cost O(1) (no scan, whatever the
count), and the next expiry is always known: the pool arms one timer for it, so an
idle connection lives exactly its idle timeout, never twice as long.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

# What a drained connection may still bring before it is given up (closed): the end of
# a body whose stream said its last word is a few bytes (the last chunk, a trailer, at
# most a final usage event a provider sends after its end marker); more means the
# provider is still generating, and reading it would pay for bytes nobody wants.
MAX_DRAIN_BYTES = 64 * 1024
# How long a drain waits for the end of the body: long enough for the last chunk to
# follow the stream's end marker, short enough not to hold a slot of the origin.
DRAIN_GRACE = 1.0


class Disposal(enum.Enum):
    REUSE = "reuse"  # the response ended and keep-alive allows another request
    DRAIN = "drain"  # read the rest of the body (bounded), then reuse
    DISCARD = "discard"  # close: the provider sees the connection go


def disposal(*, ended: bool, in_body: bool, keep_alive: bool, complete: bool) -> Disposal:
    """What to do with a connection its caller is done with.

    ``ended``: its response was read to the end of the HTTP body. ``in_body``: the body
    is under way (the head was read, the end not yet). ``keep_alive``: the response
    allows another request (HTTP/1.1, no ``Connection: close``, a delimited body,
    nothing sent after it). ``complete``: the caller read all it wanted (the stream's
    last event); False means it gave up midway (a client gone, a cancel, an error),
    and the provider must see the connection go to stop generating.
    """
    if not keep_alive:
        return Disposal.DISCARD
    if ended:
        return Disposal.REUSE
    if in_body and complete:
        return Disposal.DRAIN
    return Disposal.DISCARD


Conn = TypeVar("Conn", bound=Hashable)


class IdleSet(Generic[Conn]):
    """Idle connections by origin, each with the deadline it expires at.

    Times are the caller's clock (``now`` arguments), never read here. Connections
    must be added in the order they go idle (a clock that never goes back), so the
    oldest is first in one ordered index and expiry never searches.
    """

    __slots__ = ("_by_origin", "_deadlines", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        # every idle connection, oldest first, to (deadline, origin)
        self._deadlines: OrderedDict[Conn, tuple[float, str]] = OrderedDict()
        # per origin, in the order they went idle (a dict pops its last entry in O(1))
        self._by_origin: dict[str, dict[Conn, None]] = {}

    def __repr__(self) -> str:
        return f"<IdleSet idle={len(self)} origins={len(self._by_origin)}>"

    def __len__(self) -> int:
        return len(self._deadlines)

    def __iter__(self) -> Iterator[Conn]:
        return iter(self._deadlines)

    def __contains__(self, conn: object) -> bool:
        return conn in self._deadlines

    def count(self, origin: str) -> int:
        return len(self._by_origin.get(origin, ()))

    def add(self, conn: Conn, origin: str, now: float) -> None:
        """``conn`` of ``origin`` went idle at ``now``."""
        self._deadlines[conn] = (now + self.timeout, origin)
        conns = self._by_origin.get(origin)
        if conns is None:  # (not setdefault: it would make a dict each time)
            conns = self._by_origin[origin] = {}
        conns[conn] = None

    def take(self, origin: str) -> Conn | None:
        """The most recently idle connection of ``origin`` (the one likeliest still
        open at the other end), removed; None when it has none."""
        conns = self._by_origin.get(origin)
        if not conns:
            return None
        conn, _ = conns.popitem()
        if not conns:
            del self._by_origin[origin]
        del self._deadlines[conn]
        return conn

    def remove(self, conn: Conn) -> bool:
        """Forget ``conn`` (it closed while idle); False if it was not idle."""
        entry = self._deadlines.pop(conn, None)
        if entry is None:
            return False
        self._forget(conn, entry[1])
        return True

    def next_deadline(self) -> float | None:
        """When the oldest idle connection expires; None when none is idle."""
        for conn in self._deadlines:  # the first entry, in O(1)
            return self._deadlines[conn][0]
        return None

    def expire(self, now: float) -> list[Conn]:
        """Remove and return the connections whose deadline is ``now`` or past."""
        expired: list[Conn] = []
        deadlines = self._deadlines
        while deadlines:
            conn, (deadline, origin) = next(iter(deadlines.items()))
            if deadline > now:
                break
            deadlines.popitem(last=False)
            self._forget(conn, origin)
            expired.append(conn)
        return expired

    def clear(self) -> list[Conn]:
        """Remove and return every idle connection."""
        conns = list(self._deadlines)
        self._deadlines.clear()
        self._by_origin.clear()
        return conns

    def _forget(self, conn: Conn, origin: str) -> None:
        conns = self._by_origin[origin]
        del conns[conn]
        if not conns:
            del self._by_origin[origin]
