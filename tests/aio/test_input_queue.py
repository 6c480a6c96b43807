"""The input queue's answer to a read: taken now up to a bound, or left for a turn."""

from __future__ import annotations

import asyncio

from sseserver.aio.input_queue import EVENTS_PER_LOOP_TURN, UNBOUNDED, InputQueue


class Waiting:
    def __init__(self, attained: int) -> None:
        self.attained = attained

    def take_turn(self, bound: int) -> int:
        return 0


def test_a_read_is_taken_up_to_the_first_waiting_connections_events() -> None:
    loop = asyncio.new_event_loop()
    try:
        queue = InputQueue(loop)
        assert queue.read_bound(5) == UNBOUNDED  # nobody waits
        queue.add(Waiting(3))
        assert queue.read_bound(3) == 3 == queue.bound()
        assert queue.read_bound(4) == -1  # it has had more than the one waiting
        queue.spend(EVENTS_PER_LOOP_TURN)
        assert queue.read_bound(0) == -1  # this turn's budget is spent
    finally:
        loop.close()


class CountingLoop:
    """A loop as the queue uses it: the callbacks it asked for, run by hand."""

    def __init__(self) -> None:
        self.callbacks: list[object] = []

    def call_soon(self, callback: object) -> None:
        self.callbacks.append(callback)

    def turn(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()  # type: ignore[operator]


def test_reads_within_the_budget_ask_the_loop_for_nothing() -> None:
    """Each read taken at once scheduled a turn to give the budget back (a call_soon
    and a turn, ~5k instructions a request); now only the read that spends it does."""
    loop = CountingLoop()
    queue = InputQueue(loop)  # type: ignore[arg-type]
    for _ in range(EVENTS_PER_LOOP_TURN - 1):
        assert queue.read_bound(0) == UNBOUNDED
        queue.spend(1)
        assert loop.callbacks == []
        loop.turn()
    assert queue.read_bound(0) == UNBOUNDED  # one event left, over all those turns
    queue.spend(1)
    assert queue.read_bound(0) == -1 and len(loop.callbacks) == 1
    loop.turn()  # the turn after the one that spent it gives it back
    assert queue.read_bound(0) == UNBOUNDED and loop.callbacks == []


def test_reads_never_take_more_than_the_budget_in_one_turn() -> None:
    """Whatever the turns before spent, a turn's reads as they arrive stop at the
    budget, and a waiting connection is served at the next turn."""
    loop = CountingLoop()
    queue = InputQueue(loop)  # type: ignore[arg-type]
    served: list[int] = []

    class Waiter(Waiting):
        def take_turn(self, bound: int) -> int:
            served.append(self.attained)
            return 1

    for spent_before in range(EVENTS_PER_LOOP_TURN + 1):
        queue.spend(spent_before)
        loop.turn()
        taken = 0
        while queue.read_bound(0) >= 0:
            queue.spend(1)
            taken += 1
        assert taken <= EVENTS_PER_LOOP_TURN
        queue.add(Waiter(taken))
        loop.turn()
        assert served[-1] == taken and len(queue) == 0
        assert queue.read_bound(0) == UNBOUNDED
