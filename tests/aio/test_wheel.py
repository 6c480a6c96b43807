"""The coarse timer wheel on a real event loop: never early, soon after, cancellable."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

import pytest

from sseserver.aio.wheel import RESOLUTION, TimerWheel, wheel_for

# A shared machine may run a callback late; it must never run one early.
SLACK = 0.25


def run(test: Callable[[asyncio.AbstractEventLoop], Awaitable[None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(test(asyncio.get_running_loop()), 10)

    asyncio.run(main())


def test_callbacks_run_in_tick_order_never_early() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        wheel = TimerWheel(loop)
        fired: list[tuple[float, float]] = []
        start = loop.time()
        for delay in (0.15, 0.0, 0.05, 0.3, 0.05, 0.01):
            wheel.call_later(delay, lambda d=delay: fired.append((d, loop.time() - start)))
        await asyncio.sleep(0.3 + SLACK + RESOLUTION)
        assert len(fired) == 6
        # in time order, but for deadlines that share a tick (their order is free)
        for (earlier, _), (later, _) in itertools.pairwise(fired):
            assert earlier <= later + RESOLUTION, fired
        for delay, at in fired:
            assert delay <= at < delay + SLACK, (delay, at)
        assert len(wheel) == 0 and repr(wheel) == "<TimerWheel pending=0 buckets=0>"

    run(test)


def test_cancelled_deadlines_never_run_and_leave_nothing_behind() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        wheel = TimerWheel(loop)
        fired: list[int] = []
        deadlines = [wheel.call_later(0.05 * (i % 3), lambda i=i: fired.append(i))
                     for i in range(300)]
        for deadline in deadlines[::2]:
            deadline.cancel()
            deadline.cancel()  # twice is harmless
        assert deadlines[0].cancelled() and "cancelled" in repr(deadlines[0])
        assert len(wheel) == 150
        await asyncio.sleep(0.1 + SLACK)
        assert sorted(fired) == list(range(1, 300, 2))
        assert len(wheel) == 0 and not wheel._buckets and not wheel._ticks

    run(test)


def test_cancelling_everything_stops_the_loop_timer_for_good() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        wheel = TimerWheel(loop)
        wheel.call_later(0.05, lambda: pytest.fail("cancelled")).cancel()
        await asyncio.sleep(0.05 + SLACK)
        assert wheel._armed is None and not wheel._ticks

    run(test)


def test_a_callback_may_schedule_more_and_a_failing_one_spares_the_rest() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        wheel = TimerWheel(loop)
        errors: list[object] = []
        loop.set_exception_handler(lambda loop, context: errors.append(context["exception"]))
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
        await asyncio.sleep(0.07 + SLACK)
        assert sorted(fired) == ["first", "later", "now", "sibling"]
        assert fired.index("later") > fired.index("now")
        assert [type(e) for e in errors] == [RuntimeError]

    run(test)


def test_an_earlier_deadline_rearms_the_loop_timer() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        wheel = TimerWheel(loop)
        fired: list[float] = []
        start = loop.time()
        wheel.call_later(5.0, lambda: fired.append(5.0))
        wheel.call_later(0.05, lambda: fired.append(loop.time() - start))
        await asyncio.sleep(0.05 + SLACK)
        assert len(fired) == 1 and fired[0] < 0.05 + SLACK
        assert len(wheel) == 1

    run(test)


def test_a_callback_scheduling_far_ahead_does_not_delay_a_nearer_deadline() -> None:
    """A callback that schedules past a deadline already waiting must leave the loop
    timer armed for the waiting one (a heartbeat once slept until an idle timeout)."""
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        wheel = TimerWheel(loop)
        fired: list[float] = []
        start = loop.time()
        wheel.call_later(0.3, lambda: fired.append(loop.time() - start))
        wheel.call_later(0.02, lambda: wheel.call_later(3.0, lambda: None))
        await asyncio.sleep(0.3 + SLACK)
        assert len(fired) == 1 and 0.3 <= fired[0] < 0.3 + SLACK, fired

    run(test)


def test_one_wheel_per_loop() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        assert wheel_for(loop) is wheel_for(loop)

    run(test)
    first: list[TimerWheel] = []

    async def other(loop: asyncio.AbstractEventLoop) -> None:
        first.append(wheel_for(loop))

    run(other)
    run(other)
    assert first[0] is not first[1]
