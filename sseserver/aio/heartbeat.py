"""Streams' heartbeats: a comment frame whenever a stream has been silent for an interval.

A check every half interval sees whether an event went out since the one before; two
quiet checks in a row mean a heartbeat is due. No silence lasts longer than the
interval, and an event costs no clock reading: the stream only counts what it sends.

The checks of every stream of a loop with the same interval are kept by one
:class:`Heartbeats`, in rounds: the streams whose next check falls in the same wheel
tick share one deadline, checked one after another when it runs, and go on together
to the round half an interval later. A stream's checks fall at the very ticks a
deadline of its own would have (its start, then each check, plus half an interval),
but a stream costs two dictionary entries, not a deadline set and cancelled (a
stream's start and end under load: most of a second's streams start in the tick of
another).

    heartbeats = heartbeats_for(loop, 15.0)
    heartbeats.start(stream)  # stream.events, stream.on_heartbeat_due()
    heartbeats.stop(stream)
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Protocol

from sseserver.aio.wheel import Deadline, TimerWheel, wheel_for


class Beating(Protocol):
    """The stream a heartbeat serves."""

    @property
    def events(self) -> int:
        """Frames sent so far: a change means the stream was not silent."""
        ...

    def on_heartbeat_due(self) -> None:
        """The stream was silent for an interval: send a heartbeat."""
        ...


# A stream's check state: the events it had at its last check, and the quiet checks
# since its last write. A new stream has had no check.
_Checked = tuple[int, int]
_FRESH: _Checked = (0, 0)


class _Round:
    """The streams checked at one tick, on one deadline."""

    __slots__ = ("deadline", "members", "owner", "tick")

    def __init__(self, owner: Heartbeats, tick: int) -> None:
        self.owner = owner
        self.tick = tick
        self.members: dict[Beating, _Checked] = {}
        self.deadline: Deadline = owner.wheel.call_at_tick(tick, self._run)

    def _run(self) -> None:
        owner = self.owner
        if owner._newest is self:  # nothing joins a round that ran
            owner._newest = None
        members, self.members = self.members, {}
        owner._check(members)


class Heartbeats:
    """The heartbeats of one loop's streams that share an interval (0: none)."""

    # Slots: one a loop and interval, touched by every stream's start and end.
    __slots__ = ("_half", "_newest", "_resolution", "_round_of", "_time", "clock",
                 "interval", "wheel")

    def __init__(self, wheel: TimerWheel, interval: float) -> None:
        self.wheel = wheel
        self.interval = interval
        self._half = interval / 2
        self.clock = wheel.clock
        self._time = self.clock.time
        self._resolution = wheel.resolution
        self._newest: _Round | None = None  # the round a stream starting now may join
        self._round_of: dict[Beating, _Round] = {}  # every stream's next check

    def __repr__(self) -> str:
        return f"<Heartbeats every {self.interval:g} s streams={len(self)}>"

    def __len__(self) -> int:
        return len(self._round_of)

    def __contains__(self, stream: object) -> bool:
        return stream in self._round_of

    def start(self, stream: Beating) -> None:
        """Check ``stream`` from now on, first half an interval from now (once: a
        stream started is checked until :meth:`stop`)."""
        if self._half <= 0.0:
            return
        # the tick TimerWheel.call_later gives this delay: never before its time
        tick = math.ceil((self._time() + self._half) / self._resolution)
        current = self._newest
        if current is None or current.tick != tick:
            current = self._newest = _Round(self, tick)
        current.members[stream] = _FRESH
        self._round_of[stream] = current

    def stop(self, stream: Beating) -> None:
        """No more checks of ``stream``, and nothing of it is held any longer."""
        current = self._round_of.pop(stream, None)
        if current is not None:
            members = current.members
            members.pop(stream, None)  # (not there if its round's check broke off)
            if not members:  # no deadline is left set for nobody
                current.deadline.cancel()
                if self._newest is current:
                    self._newest = None

    def _check(self, members: dict[Beating, _Checked]) -> None:
        """One round's checks: each stream's as its own heartbeat would have made it,
        then on to the round half an interval from now, together."""
        if not members:
            return
        tick = math.ceil((self._time() + self._half) / self._resolution)
        following = self._newest
        if following is None or following.tick != tick:
            following = self._newest = _Round(self, tick)
        joined, round_of = following.members, self._round_of
        due: list[Beating] = []
        for stream, (seen, quiet) in members.items():
            events = stream.events
            if events != seen:  # written since the last check
                seen, quiet = events, 1  # the write may be up to half an interval old
            else:
                quiet += 1
            if quiet >= 2:
                quiet = 0
                due.append(stream)
            joined[stream] = (seen, quiet)
            round_of[stream] = following
        for stream in due:  # (a stream stopped by its beat leaves its next round)
            if stream in round_of:  # not stopped by an earlier one's heartbeat
                self.wheel.call_guarded(stream.on_heartbeat_due)


_registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, Heartbeats]] = \
    weakref.WeakKeyDictionary()
# The heartbeats last asked for: a process runs one loop with one interval, and every
# stream asks (held, its loop cannot go and another come at its address).
_last: Heartbeats | None = None


def heartbeats_for(loop: asyncio.AbstractEventLoop, interval: float) -> Heartbeats:
    """The heartbeats of ``loop``'s streams of ``interval``, made on first use."""
    global _last
    last = _last
    if last is not None and last.clock is loop and last.interval == interval:
        return last
    by_interval = _registry.get(loop)
    if by_interval is None:
        by_interval = _registry[loop] = {}
    heartbeats = by_interval.get(interval)
    if heartbeats is None:
        heartbeats = by_interval[interval] = Heartbeats(wheel_for(loop), interval)
    _last = heartbeats
    return heartbeats
