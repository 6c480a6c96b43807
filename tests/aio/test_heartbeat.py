"""A stream's heartbeats on a virtual clock: one after each silent interval, none while
events flow, none once stopped. No test sleeps."""

from __future__ import annotations

from sseserver.aio.heartbeat import Heartbeat
from sseserver.aio.wheel import RESOLUTION, TimerWheel
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
    heartbeat = Heartbeat(TimerWheel(clock), 10.0, stream)
    heartbeat.start()
    clock.advance(35.0)
    assert [round(at) for at in stream.beats] == [10, 20, 30]


def test_events_put_the_beat_off_and_no_silence_outlasts_the_interval(
        clock: VirtualClock) -> None:
    stream = Stream(clock)
    heartbeat = Heartbeat(TimerWheel(clock), 10.0, stream)
    heartbeat.start()
    for _ in range(8):  # an event every 4 s for 32 s
        clock.advance(4.0)
        stream.events += 1
    assert stream.beats == []
    clock.advance(20.0)  # then silence: the first beat within an interval of the last event
    assert stream.beats and 32.0 < stream.beats[0] <= 32.0 + 10.0 + RESOLUTION


def test_a_stopped_heartbeat_and_a_zero_interval_never_beat(clock: VirtualClock) -> None:
    stream = Stream(clock)
    wheel = TimerWheel(clock)
    stopped = Heartbeat(wheel, 10.0, stream)
    stopped.start()
    clock.advance(12.0)
    stopped.stop()
    Heartbeat(wheel, 0.0, stream).start()
    clock.advance(60.0)
    assert len(stream.beats) == 1 and len(wheel) == 0


def test_a_stopped_heartbeat_lets_go_of_its_stream(clock: VirtualClock) -> None:
    """The stream holds its heartbeat and the heartbeat its stream: once stopped, no
    such cycle is left for the collector, and the stream is freed when let go."""
    import gc

    stream = Stream(clock)
    heartbeat = Heartbeat(TimerWheel(clock), 10.0, stream)
    heartbeat.start()
    assert any(obj is stream for obj in gc.get_referents(heartbeat))
    heartbeat.stop()
    assert not any(obj is stream for obj in gc.get_referents(heartbeat))
    heartbeat.start()  # stopped for good
    clock.advance(60.0)
    assert stream.beats == []
