"""Coarse timers for many streams, on one loop timer per event loop.

Every open stream keeps deadlines for its whole life: its next heartbeat, its
upstream's timeouts, its connection's keep-alive. A uvloop timer costs ~550 bytes,
two of them a tenth of an idle stream. Here a deadline is a small slotted object in
the bucket of its tick; one loop timer is armed for the earliest bucket, and a
callback runs after its time (never before) and at most one tick late.

    wheel = wheel_for(loop)
    deadline = wheel.call_later(15.0, on_heartbeat)
    deadline.cancel()

A wheel uses three things of its loop (:class:`Clock`): its time, one timer, and its
exception handler; a test hands it a virtual clock instead, and never sleeps.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import weakref
from collections.abc import Callable
from typing import Any, Protocol

# Late by at most this much: nothing here needs finer timing (heartbeats are seconds
# apart, timeouts tens of seconds), and ticks this short keep tests' short timers exact
# enough.
RESOLUTION = 0.02


class Handle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What a wheel uses of an event loop (an ``asyncio.AbstractEventLoop`` is one)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle: ...

    def call_exception_handler(self, context: dict[str, Any]) -> None: ...


class Deadline:
    """One scheduled callback; :meth:`cancel` forgets it at once (no slot lingers)."""

    __slots__ = ("_callback", "_tick", "_wheel")

    def __init__(self, wheel: TimerWheel, tick: int, callback: Callable[[], None]) -> None:
        self._wheel = wheel
        self._tick = tick
        self._callback: Callable[[], None] | None = callback

    def __repr__(self) -> str:
        state = "cancelled" if self._callback is None else f"at {self.when():.3f}"
        return f"<Deadline {state}>"

    def when(self) -> float:
        return self._tick * self._wheel.resolution

    def cancelled(self) -> bool:
        return self._callback is None

    def redirect(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` at this deadline instead of its own; False (and nothing
        changed) once it ran or was cancelled."""
        if self._callback is None:
            return False
        self._callback = callback
        return True

    def cancel(self) -> None:
        if self._callback is not None:
            self._callback = None
            # the wheel's bucket, forgotten here (a call less: every stream cancels two)
            buckets = self._wheel._buckets
            bucket = buckets.get(self._tick)
            if bucket is not None:
                bucket.discard(self)
                if not bucket:
                    del buckets[self._tick]  # its heap entry is skipped later


class TimerWheel:
    __slots__ = ("_armed", "_armed_tick", "_buckets", "_loop", "_ticks", "clock",
                 "resolution")

    def __init__(self, loop: Clock, resolution: float = RESOLUTION) -> None:
        self._loop = self.clock = loop
        self.resolution = resolution
        self._buckets: dict[int, set[Deadline]] = {}
        self._ticks: list[int] = []  # a heap of the ticks that have a bucket
        self._armed: Handle | None = None
        self._armed_tick = 0

    def __repr__(self) -> str:
        return f"<TimerWheel pending={len(self)} buckets={len(self._buckets)}>"

    def __len__(self) -> int:
        return sum(map(len, self._buckets.values()))

    def call_later(self, delay: float, callback: Callable[[], None]) -> Deadline:
        # ceil: a deadline's tick is never before its time
        return self.call_at_tick(math.ceil(
            (self._loop.time() + (delay if delay > 0.0 else 0.0)) / self.resolution),
            callback)

    def call_at_tick(self, tick: int, callback: Callable[[], None]) -> Deadline:
        """:meth:`call_later` for a tick its caller worked out (``ceil(time /
        resolution)``): deadlines of callers that agree on it share the tick exactly."""
        deadline = Deadline(self, tick, callback)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = set()
            heapq.heappush(self._ticks, tick)
        bucket.add(deadline)
        if self._armed is None or tick < self._armed_tick:
            self._arm(tick)
        return deadline

    def _arm(self, tick: int) -> None:
        if self._armed is not None:
            self._armed.cancel()
        self._armed_tick = tick
        self._armed = self._loop.call_at(tick * self.resolution, self._run)

    def call_guarded(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` as the wheel calls its own: an exception goes to the loop's
        exception handler, not to the caller (one broken callback of a batch must not
        lose the others)."""
        try:
            callback()
        except Exception as exc:
            self._loop.call_exception_handler({
                "message": f"exception in timer callback {callback!r}", "exception": exc})

    def _run(self) -> None:
        # While callbacks run, _armed still holds this handle and its tick (now), so
        # what they schedule never arms the timer: it is armed once, at the end, for
        # the earliest tick of all (a callback's tick may lie past one already waiting).
        # A tick is due once its time (the time its timer was armed for) has come:
        # compared as that time, not as now's tick (floor(tick * r / r) is tick - 1 for
        # some ticks, and a timer due at that very time would find nothing due and be
        # armed again for it, over and over, while the clock stands still).
        now, resolution = self._loop.time(), self.resolution
        ticks = self._ticks
        while ticks and ticks[0] * resolution <= now:
            bucket = self._buckets.pop(heapq.heappop(ticks), None)
            for deadline in bucket or ():
                callback, deadline._callback = deadline._callback, None
                if callback is not None:
                    self.call_guarded(callback)
        self._armed = None
        while ticks and ticks[0] not in self._buckets:  # emptied by cancellations
            heapq.heappop(ticks)
        if ticks:
            self._arm(ticks[0])


_wheels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TimerWheel] = \
    weakref.WeakKeyDictionary()


# The last loop asked about and its wheel: a process runs one loop, and every stream
# asks (a weak-keyed lookup builds a weak reference each time).
_last: tuple[weakref.ref[asyncio.AbstractEventLoop], TimerWheel] | None = None


def wheel_for(loop: asyncio.AbstractEventLoop) -> TimerWheel:
    """The loop's wheel, made on first use."""
    global _last
    last = _last
    if last is not None and last[0]() is loop:
        return last[1]
    wheel = _wheels.get(loop)
    if wheel is None:
        wheel = _wheels[loop] = TimerWheel(loop)
    _last = (weakref.ref(loop), wheel)
    return wheel
