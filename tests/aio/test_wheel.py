"""The coarse timer wheel on a virtual clock: never early, at most a tick late, in
tick order, cancellable, one loop timer for any number of deadlines. No test sleeps."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sseserver.aio.wheel import RESOLUTION, TimerWheel, wheel_for
from tests.conftest import VirtualClock, run_async

# Float rounding of a tick's time; a real late is a whole tick.
EPSILON = 1e-9


def fire_log(wheel: TimerWheel, clock: VirtualClock, delays: list[float]
             ) -> list[tuple[float, float]]:
    """Schedule one callback per delay; each appends (its delay, when it ran)."""
    fired: list[tuple[float, float]] = []
    start = clock.now
    for delay in delays:
        wheel.call_later(delay, lambda d=delay: fired.append((d, clock.now - start)))
    return fired


def test_callbacks_run_in_tick_order_never_early(clock: VirtualClock) -> None:
    wheel = TimerWheel(clock)
    fired = fire_log(wheel, clock, [0.15, 0.0, 0.05, 0.3, 0.05, 0.01])
    clock.advance(0.1)
    assert sorted(d for d, _ in fired) == [0.0, 0.01, 0.05, 0.05]
    clock.advance(0.3)
    assert [d for d, _ in fired] == [0.0, 0.01, 0.05, 0.05, 0.15, 0.3]
    for delay, at in fired:
        assert delay <= at + EPSILON < delay + RESOLUTION + 2 * EPSILON, (delay, at)
    assert len(wheel) == 0 and repr(wheel) == "<TimerWheel pending=0 buckets=0>"
    assert clock.pending == 0  # nothing left armed


@given(delays=st.lists(st.floats(0, 5, allow_nan=False), max_size=40),
       steps=st.lists(st.floats(0.001, 0.7), min_size=1, max_size=30))
def test_any_deadlines_any_advances(delays: list[float], steps: list[float]) -> None:
    clock = VirtualClock()
    wheel = TimerWheel(clock)
    fired = fire_log(wheel, clock, delays)
    for step in steps:
        clock.advance(step)
        assert clock.pending <= 1  # one loop timer, whatever the number of deadlines
    clock.advance(5 + RESOLUTION)
    assert len(fired) == len(delays)
    times = [at for _, at in fired]
    assert times == sorted(times)  # in tick order (within a tick, any order)
    for delay, at in fired:
        assert delay - EPSILON <= at <= delay + RESOLUTION + EPSILON, (delay, at)
    assert len(wheel) == 0 and clock.pending == 0


def test_cancelled_deadlines_never_run_and_leave_nothing_behind(clock: VirtualClock
                                                                ) -> None:
    wheel = TimerWheel(clock)
    fired: list[int] = []
    deadlines = [wheel.call_later(0.05 * (i % 3), lambda i=i: fired.append(i))
                 for i in range(300)]
    for deadline in deadlines[::2]:
        deadline.cancel()
        deadline.cancel()  # twice is harmless
    assert deadlines[0].cancelled() and "cancelled" in repr(deadlines[0])
    assert "at " in repr(deadlines[1])
    assert len(wheel) == 150
    clock.advance(0.1 + RESOLUTION)
    assert sorted(fired) == list(range(1, 300, 2))
    assert len(wheel) == 0 and not wheel._buckets and not wheel._ticks


def test_cancelling_everything_stops_the_loop_timer_for_good(clock: VirtualClock) -> None:
    wheel = TimerWheel(clock)
    wheel.call_later(0.05, lambda: pytest.fail("cancelled")).cancel()
    clock.advance(1.0)
    assert wheel._armed is None and not wheel._ticks and clock.pending == 0


def test_a_callback_may_schedule_more_and_a_failing_one_spares_the_rest(
        clock: VirtualClock) -> None:
    wheel = TimerWheel(clock)
    fired: list[str] = []

    def first() -> None:
        fired.append("first")
        wheel.call_later(0.0, lambda: fired.append("now"))
        wheel.call_later(0.05, lambda: fired.append("later"))

    def broken() -> None:
        raise RuntimeError("boom")

    wheel.call_later(0.02, first)
    wheel.call_later(0.02, broken)
    wheel.call_later(0.02, lambda: fired.append("sibling"))
    clock.advance(0.03)
    assert sorted(fired) == ["first", "now", "sibling"]
    clock.advance(0.06)
    assert fired[-1] == "later"
    assert [type(e["exception"]) for e in clock.errors] == [RuntimeError]
    assert "broken" in clock.errors[0]["message"]


def test_an_earlier_deadline_rearms_the_loop_timer(clock: VirtualClock) -> None:
    wheel = TimerWheel(clock)
    fired: list[float] = []
    start = clock.now
    wheel.call_later(5.0, lambda: fired.append(5.0))
    wheel.call_later(0.05, lambda: fired.append(clock.now - start))
    assert clock.pending == 1  # the 5 s timer was cancelled, not kept beside
    clock.advance(0.05 + RESOLUTION)
    assert len(fired) == 1 and fired[0] < 0.05 + RESOLUTION + EPSILON
    assert len(wheel) == 1 and clock.pending == 1  # armed again, for the 5 s one
    clock.advance(5.0)
    assert fired[-1] == 5.0


def test_a_callback_scheduling_far_ahead_does_not_delay_a_nearer_deadline(
        clock: VirtualClock) -> None:
    """A callback that schedules past a deadline already waiting must leave the loop
    timer armed for the waiting one (a heartbeat once slept until an idle timeout)."""
    wheel = TimerWheel(clock)
    fired: list[float] = []
    start = clock.now
    wheel.call_later(0.3, lambda: fired.append(clock.now - start))
    wheel.call_later(0.02, lambda: wheel.call_later(3.0, lambda: None))
    clock.advance(0.3 + RESOLUTION)
    assert len(fired) == 1 and 0.3 - EPSILON <= fired[0] <= 0.3 + RESOLUTION, fired


def test_a_deadline_in_the_past_runs_at_the_next_tick(clock: VirtualClock) -> None:
    wheel = TimerWheel(clock)
    fired: list[float] = []
    wheel.call_later(-3.0, lambda: fired.append(clock.now))
    clock.advance(RESOLUTION)
    assert len(fired) == 1


def test_one_wheel_per_loop() -> None:
    async def same() -> None:
        loop = asyncio.get_running_loop()
        assert wheel_for(loop) is wheel_for(loop)
        assert wheel_for(loop)._loop is loop

    run_async(same)
    first: list[TimerWheel] = []

    async def other() -> None:
        first.append(wheel_for(asyncio.get_running_loop()))

    run_async(other)
    run_async(other)
    assert first[0] is not first[1]


def test_a_redirected_deadline_calls_its_new_callback_at_its_time(clock: VirtualClock) -> None:
    wheel = TimerWheel(clock)
    fired: list[str] = []
    deadline = wheel.call_later(0.1, lambda: fired.append("old"))
    assert deadline.redirect(lambda: fired.append("new"))
    clock.advance(0.05)
    assert fired == []  # never early
    clock.advance(0.05 + RESOLUTION)
    assert fired == ["new"] and len(wheel) == 0
    assert not deadline.redirect(lambda: fired.append("late"))  # it ran: nothing changes
    cancelled = wheel.call_later(0.1, lambda: fired.append("cancelled"))
    cancelled.cancel()
    assert not cancelled.redirect(lambda: fired.append("revived"))
    clock.advance(1.0)
    assert fired == ["new"] and len(wheel) == 0


def test_a_deadline_whose_time_divides_back_below_its_tick_runs_at_that_time() -> None:
    """floor(tick * r / r) is tick - 1 for some ticks: such a tick is due at its time
    all the same (it once found nothing due there and armed its timer again, forever
    on a clock that stands still)."""
    tick = next(t for t in range(51200, 52000)
                if int(t * RESOLUTION / RESOLUTION) < t)  # floor below the tick
    clock = VirtualClock(start=(tick - 10) * RESOLUTION)
    wheel = TimerWheel(clock)
    fired: list[float] = []
    wheel.call_at_tick(tick, lambda: fired.append(clock.now))
    clock.advance(10 * RESOLUTION)
    assert fired == [tick * RESOLUTION] and clock.pending == 0
