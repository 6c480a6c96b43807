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
