"""Fairness between client connections: how much of its input one reads per turn of
the event loop, and which goes next.

Fairness: a connection reads at most ``EVENTS_PER_TURN`` request events (heads,
body pieces, ends; each request it dispatches is two at least) per turn of the event
loop, and all connections together about ``EVENTS_PER_LOOP_TURN`` as their input
arrives, and as many from input left over: past either, a connection stops reading
and waits in the loop's :class:`InputQueue`, where the one that has had the fewest
events since it was last idle goes first. So no client's input holds the loop (a body of
one-byte chunks, a flood of pipelined requests) however fast it arrives, nor do many
such clients at once, and a fresh request goes ahead of their backlog.
"""

from __future__ import annotations

import asyncio
import heapq
import weakref
from typing import Protocol, cast

from sseserver.aio.wheel import TimerWheel, wheel_for

# Reader events one connection takes per turn of the event loop before the others
# run. An event is at most one head (16 KiB), one socket read of a body or one slice
# of a chunked body (h11_server.BODY_SLICE, about 1 ms on one-byte chunks), so a
# turn costs a connection ~10 ms of reading at worst whatever its client sends, and
# answers four pipelined requests at most (a GET is a head and an end).
EVENTS_PER_TURN = 8
# Reader events all connections together take per turn as their input arrives, and
# again from input left over: with each taking its eight, 50 connections flooding
# one-byte chunks made a turn, and /healthz, wait 3.4 s here (500 of them, 5 s). One
# connection's share each, so a turn costs ~20 ms at worst whatever their number; the
# loop goes on at once, so a backlog is read as fast as before, in smaller turns.
EVENTS_PER_LOOP_TURN = EVENTS_PER_TURN
UNBOUNDED = 1 << 62  # a read no waiting connection limits


class Waiter(Protocol):
    """A connection as the queue sees it."""

    attained: int  # events read since it was last idle

    def take_turn(self, bound: int) -> int: ...


class InputQueue:
    """Reads as they arrive, and the connections with input left for a later turn.

    A read is taken at once while the budget lasts (``EVENTS_PER_LOOP_TURN`` events)
    and no connection waits that has had fewer events since it was last idle; else the
    connection waits here. The budget is given back at the turn after the one that
    spent it (not after every turn with a read: a call_soon and a turn, ~4.5k
    instructions a read, where reads mostly come one a turn), so reads as they arrive
    take at most the budget in any one turn, and fewer when the turns before spent
    part of it. Each turn the waiting are served fewest events
    first, each until it has had more than the next one (least attained service: a
    new request goes ahead of a flood's backlog, pipelined or a body, and 500 requests
    arriving at once each get their head read before any gets its body), each at most
    once, ``EVENTS_PER_LOOP_TURN`` events in all.
    """

    __slots__ = ("_budget", "_later", "_loop", "_scheduled", "_sequence", "_turning",
                 "_waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # (events attained, arrival, connection): a heap, fewest events first
        self._waiting: list[tuple[int, int, Waiter]] = []
        self._later: list[Waiter] = []  # added during a turn: the next one
        self._sequence = 0
        self._budget = EVENTS_PER_LOOP_TURN  # for reads as they arrive, this turn
        self._scheduled = False
        self._turning = False

    def __repr__(self) -> str:
        return f"<InputQueue waiting={len(self)} budget={self._budget}>"

    def __len__(self) -> int:
        return len(self._waiting) + len(self._later)

    def read_bound(self, attained: int) -> int:
        """Whether a read for a connection that has had ``attained`` events since it
        was idle is taken now: if so, :meth:`bound` (what it reads up to), else -1."""
        waiting = self._waiting
        if self._budget <= 0:
            return -1
        if not waiting:
            return UNBOUNDED
        first = waiting[0][0]
        return first if attained <= first else -1

    def bound(self) -> int:
        """The events the first waiting connection has had: a read now goes on while
        its connection has had no more."""
        waiting = self._waiting
        return waiting[0][0] if waiting else UNBOUNDED

    def spend(self, events: int) -> None:
        """Count events read as input arrived against the budget."""
        budget = self._budget = self._budget - events
        if budget <= 0:  # spent: the next turn gives it back
            self._schedule()

    def add(self, conn: Waiter) -> None:
        if self._turning:
            self._later.append(conn)
        else:
            self._push(conn)
        self._schedule()

    def _push(self, conn: Waiter) -> None:
        self._sequence += 1
        heapq.heappush(self._waiting, (conn.attained, self._sequence, conn))

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        self._scheduled = False
        self._turning = True
        budget = EVENTS_PER_LOOP_TURN
        waiting = self._waiting
        try:
            while waiting and budget > 0:
                conn = heapq.heappop(waiting)[2]
                budget -= max(1, conn.take_turn(self.bound()))
        finally:
            self._turning = False
        for conn in self._later:
            self._push(conn)
        self._later.clear()
        self._budget = EVENTS_PER_LOOP_TURN
        if waiting:
            self._schedule()


_input_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, InputQueue] = \
    weakref.WeakKeyDictionary()


# The queue asked for last. It holds its loop; a test's closed loop it holds is let go
# at the next loop's first connection.
_last: list[InputQueue | None] = [None]


def input_queue(loop: asyncio.AbstractEventLoop) -> InputQueue:
    """The loop's input queue, made on first use."""
    last = _last[0]
    if last is not None and last._loop is loop:  # one loop a process: every connection
        return last
    queue = _input_queues.get(loop)  # (a weak-keyed lookup makes a weak reference)
    if queue is None:
        queue = _input_queues[loop] = InputQueue(loop)
    _last[0] = queue
    return queue


# The loop a process runs, its timer wheel and its input queue: every connection asks
# (wheel_for and input_queue are a call each, one making a weak reference).
loop_parts: list[tuple[object, TimerWheel, InputQueue]] = [
    (None, cast(TimerWheel, None), cast(InputQueue, None))]  # no loop yet


def keep_loop_parts(loop: asyncio.AbstractEventLoop) -> tuple[TimerWheel, InputQueue]:
    """The loop's wheel and input queue, kept as the loop's of ``loop_parts``."""
    wheel, inputs = wheel_for(loop), input_queue(loop)
    loop_parts[0] = (loop, wheel, inputs)
    return wheel, inputs
