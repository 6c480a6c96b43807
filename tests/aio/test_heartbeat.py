"""Streams' heartbeats on a virtual clock: one after each silent interval, none while
events flow, none once stopped; streams whose checks fall in one tick share one
deadline, and beat exactly when a heartbeat of their own would have. No test sleeps."""

from __future__ import annotations

import random

import pytest

from sseserver.aio.heartbeat import Heartbeats
from sseserver.aio.wheel import RESOLUTION, Deadline, TimerWheel
from tests.conftest import VirtualClock


class Stream:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.events = 0
        self.beats: list[float] = []

    def on_heartbeat_due(self) -> None:
        self.beats.append(self.clock.now - 1000.0)


def test_a_silent_stream_beats_once_an_interval(clock: VirtualClock) -> None:
    stream = Stream(clock)
    Heartbeats(TimerWheel(clock), 10.0).start(stream)
    clock.advance(35.0)
    assert [round(at) for at in stream.beats] == [10, 20, 30]


def test_events_put_the_beat_off_and_no_silence_outlasts_the_interval(
        clock: VirtualClock) -> None:
    stream = Stream(clock)
    Heartbeats(TimerWheel(clock), 10.0).start(stream)
    for _ in range(8):  # an event every 4 s for 32 s
        clock.advance(4.0)
        stream.events += 1
    assert stream.beats == []
    clock.advance(20.0)  # then silence: the first beat within an interval of the last event
    assert stream.beats and 32.0 < stream.beats[0] <= 32.0 + 10.0 + RESOLUTION


def test_a_stopped_heartbeat_and_a_zero_interval_never_beat(clock: VirtualClock) -> None:
    stream, other = Stream(clock), Stream(clock)
    wheel = TimerWheel(clock)
    heartbeats = Heartbeats(wheel, 10.0)
    heartbeats.start(stream)
    clock.advance(12.0)
    heartbeats.stop(stream)
    Heartbeats(wheel, 0.0).start(other)
    clock.advance(60.0)
    assert len(stream.beats) == 1 and other.beats == [] and len(wheel) == 0


def test_a_stopped_stream_is_let_go(clock: VirtualClock) -> None:
    """The stream holds the heartbeats and they hold the stream: once stopped, nothing
    of it is left in them, and it is freed when let go."""
    import gc
    import weakref

    stream = Stream(clock)
    heartbeats = Heartbeats(TimerWheel(clock), 10.0)
    heartbeats.start(stream)
    assert stream in heartbeats
    heartbeats.stop(stream)
    assert stream not in heartbeats and len(heartbeats) == 0
    gone = weakref.ref(stream)
    del stream
    gc.collect()
    assert gone() is None
    clock.advance(60.0)


def test_streams_started_in_one_tick_share_one_deadline(clock: VirtualClock) -> None:
    wheel = TimerWheel(clock)
    heartbeats = Heartbeats(wheel, 10.0)
    streams = [Stream(clock) for _ in range(50)]
    for stream in streams:
        heartbeats.start(stream)
    assert len(wheel) == 1
    for stream in streams[:49]:  # one left: its deadline stays
        heartbeats.stop(stream)
    assert len(wheel) == 1
    heartbeats.stop(streams[49])  # none left: no deadline for nobody
    assert len(wheel) == 0
    clock.advance(30.0)
    assert all(stream.beats == [] for stream in streams)


def test_a_broken_stream_does_not_keep_the_others_from_beating(clock: VirtualClock) -> None:
    class Broken(Stream):
        def on_heartbeat_due(self) -> None:
            raise RuntimeError("broken")

    heartbeats = Heartbeats(TimerWheel(clock), 10.0)
    broken, stream = Broken(clock), Stream(clock)
    heartbeats.start(broken)
    heartbeats.start(stream)
    clock.advance(25.0)
    assert [round(at) for at in stream.beats] == [10, 20]
    assert len(clock.errors) == 2  # the loop's handler heard of each


def test_a_stream_that_stops_at_its_beat_stops_for_good(clock: VirtualClock) -> None:
    heartbeats = Heartbeats(TimerWheel(clock), 10.0)

    class Ending(Stream):
        def on_heartbeat_due(self) -> None:
            super().on_heartbeat_due()
            heartbeats.stop(self)

    ending, stream = Ending(clock), Stream(clock)
    heartbeats.start(ending)
    heartbeats.start(stream)
    clock.advance(35.0)
    assert [round(at) for at in ending.beats] == [10]
    assert [round(at) for at in stream.beats] == [10, 20, 30]


class OwnDeadline:
    """A stream's heartbeat on a deadline of its own: what a round must equal."""

    def __init__(self, wheel: TimerWheel, interval: float, stream: Stream) -> None:
        self.wheel, self.interval, self.stream = wheel, interval, stream
        self.deadline: Deadline | None = None
        self.seen = self.quiet = 0
        self.stopped = False

    def start(self) -> None:
        if not self.stopped:
            self.deadline = self.wheel.call_later(self.interval / 2, self.check)

    def stop(self) -> None:
        self.stopped = True
        if self.deadline is not None:
            self.deadline.cancel()

    def check(self) -> None:
        if self.stream.events != self.seen:
            self.seen, self.quiet = self.stream.events, 1
        else:
            self.quiet += 1
        if self.quiet >= 2:
            self.quiet = 0
            self.stream.on_heartbeat_due()
        self.start()


@pytest.mark.parametrize("seed", range(12))
def test_streams_in_rounds_beat_when_their_own_deadlines_would(seed: int) -> None:
    """Streams started, written to and stopped at random times, some in the same tick:
    each beats at the times a deadline of its own gives it."""
    rng = random.Random(seed)
    interval = rng.choice([0.1, 1.0, 10.0, 15.0])
    in_rounds, alone = VirtualClock(), VirtualClock()
    heartbeats = Heartbeats(TimerWheel(in_rounds), interval)
    own_wheel = TimerWheel(alone)
    pairs: list[tuple[Stream, Stream, OwnDeadline]] = []
    for _ in range(rng.randrange(100, 300)):
        step = rng.choice([0.0, 0.0, RESOLUTION / 3, interval / 7, interval * 0.6])
        in_rounds.advance(step)
        alone.advance(step)
        action = rng.random()
        if action < 0.3 or not pairs:
            shared, own = Stream(in_rounds), Stream(alone)
            reference = OwnDeadline(own_wheel, interval, own)
            heartbeats.start(shared)
            reference.start()
            pairs.append((shared, own, reference))
        elif action < 0.85:
            shared, own, _ = rng.choice(pairs)
            shared.events += 1
            own.events += 1
        else:
            shared, own, reference = rng.choice(pairs)
            heartbeats.stop(shared)
            reference.stop()
    in_rounds.advance(interval * 3)
    alone.advance(interval * 3)
    assert any(shared.beats for shared, _, _ in pairs)
    for shared, own, _ in pairs:
        assert shared.beats == own.beats
