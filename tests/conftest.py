"""What the tests share: running a coroutine on a fresh loop within a bound, a loopback
server for a test's own handler, and a virtual clock for timers.

    def test_x() -> None:
        async def test() -> None: ...
        run_async(test)                      # a fresh loop, at most TEST_TIMEOUT

    async with loopback_server(handle) as port: ...   # asyncio.start_server on 127.0.0.1

    def test_y(clock: VirtualClock) -> None:
        wheel = TimerWheel(clock)
        clock.advance(0.5)                   # runs what falls due, in order; no sleep
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

# s a test's coroutine may run: far beyond what any takes on a loaded machine, and
# well under pytest-timeout's 60 s, so a hang fails with a traceback of its own.
TEST_TIMEOUT = 10.0


def run_async(test: Callable[[], Awaitable[T]], timeout: float = TEST_TIMEOUT) -> T:
    """Run ``test()`` on a fresh event loop (closed after), bounded by ``timeout``."""
    async def bounded() -> T:
        return await asyncio.wait_for(test(), timeout)

    return asyncio.run(bounded())


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def loopback_server(handle: Handler) -> AsyncIterator[int]:
    """A stream server on a free loopback port (yielded), closed on the way out."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


class VirtualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """An event loop's clock, timers and exception handler, with time moved by hand:
    :meth:`advance` runs the timers that fall due, in time order, each at its own
    time (a timer set by a callback for a time already due runs in the same advance,
    as a loop runs it on its next turn)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start  # like a loop's monotonic clock: not zero
        self.errors: list[dict[str, Any]] = []
        self._timers: list[tuple[float, int, VirtualTimer]] = []
        self._order = itertools.count()  # timers of one time run in the order set

    def __repr__(self) -> str:
        return f"<VirtualClock now={self.now:.3f} pending={self.pending}>"

    @property
    def pending(self) -> int:
        """Timers set and neither run nor cancelled."""
        return sum(not timer.cancelled for _, _, timer in self._timers)

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> VirtualTimer:
        timer = VirtualTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        timers = self._timers
        while timers and timers[0][0] <= end:
            when, _, timer = heapq.heappop(timers)
            if not timer.cancelled:
                self.now = max(self.now, when)
                timer.cancelled = True  # run once
                timer.callback()
        self.now = end


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@contextmanager
def blackhole_port() -> Iterator[int]:
    """A port whose accept queue is full: new connections hang in SYN, never refused."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()
