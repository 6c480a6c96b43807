"""The pool's disposal decision and its idle index, without a loop: a plain number is
the clock, and connection stand-ins count what each operation touches."""

from __future__ import annotations

import itertools

import pytest

from sseserver.core.pooling import Disposal, IdleSet, disposal

# -- disposal: every combination of the four facts -------------------------------------


def expected_disposal(ended: bool, in_body: bool, keep_alive: bool, complete: bool
                      ) -> Disposal:
    """The rules in words: reuse only what keep-alive allows; a response read to its
    end is reused whatever the caller thought of it; a body still under way is drained
    only when the caller read all it wanted; everything else is closed."""
    if keep_alive and ended:
        return Disposal.REUSE
    if keep_alive and in_body and complete:
        return Disposal.DRAIN
    return Disposal.DISCARD


@pytest.mark.parametrize(("ended", "in_body", "keep_alive", "complete"),
                         list(itertools.product([False, True], repeat=4)))
def test_disposal_of_every_combination(ended: bool, in_body: bool, keep_alive: bool,
                                       complete: bool) -> None:
    got = disposal(ended=ended, in_body=in_body, keep_alive=keep_alive, complete=complete)
    assert got is expected_disposal(ended, in_body, keep_alive, complete)


def test_a_stream_given_up_midway_is_closed_so_the_provider_stops() -> None:
    assert disposal(ended=False, in_body=True, keep_alive=True,
                    complete=False) is Disposal.DISCARD
    # before the head, nothing can be drained: the response has not begun
    assert disposal(ended=False, in_body=False, keep_alive=True,
                    complete=True) is Disposal.DISCARD


# -- the idle index ----------------------------------------------------------------------


class Conn:
    """A connection stand-in that counts every hash and comparison made of it: the
    work an index does, whatever the machine's speed."""

    touched = 0

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __hash__(self) -> int:
        Conn.touched += 1
        return id(self) >> 4

    def __eq__(self, other: object) -> bool:
        Conn.touched += 1
        return self is other


def touches(operation: object) -> int:
    before = Conn.touched
    assert callable(operation)
    operation()
    return Conn.touched - before


def test_expiry_is_exact_on_a_virtual_clock() -> None:
    idle: IdleSet[Conn] = IdleSet(timeout=30.0)
    a, b, c = Conn("a"), Conn("b"), Conn("c")
    idle.add(a, "x", now=0.0)
    idle.add(b, "y", now=10.0)
    idle.add(c, "x", now=10.5)
    assert idle.next_deadline() == 30.0
    assert idle.expire(29.999) == [] and len(idle) == 3
    assert idle.expire(30.0) == [a]  # at its deadline, not a sweep period later
    assert idle.next_deadline() == 40.0
    assert idle.expire(40.4) == [b] and idle.next_deadline() == 40.5
    assert idle.expire(1000.0) == [c]
    assert idle.next_deadline() is None and len(idle) == 0 and repr(idle) == \
        "<IdleSet idle=0 origins=0>"


def test_take_gives_the_most_recent_of_its_origin() -> None:
    idle: IdleSet[Conn] = IdleSet(timeout=30.0)
    a, b, c = Conn("a"), Conn("b"), Conn("c")
    for now, (conn, origin) in enumerate([(a, "x"), (b, "y"), (c, "x")]):
        idle.add(conn, origin, now=float(now))
    assert (idle.count("x"), idle.count("y"), idle.count("z")) == (2, 1, 0)
    assert idle.take("x") is c and idle.take("x") is a and idle.take("x") is None
    assert idle.take("z") is None
    assert idle.remove(b) and not idle.remove(b)  # closed while idle, forgotten once
    assert len(idle) == 0 and list(idle) == [] and b not in idle


def test_a_taken_connection_never_expires() -> None:
    idle: IdleSet[Conn] = IdleSet(timeout=5.0)
    a, b = Conn("a"), Conn("b")
    idle.add(a, "x", now=0.0)
    idle.add(b, "x", now=1.0)
    assert idle.take("x") is b
    assert idle.expire(100.0) == [a]
    idle.add(b, "x", now=100.0)  # back after its request: a fresh deadline
    assert idle.expire(104.9) == [] and idle.expire(105.0) == [b]


IDLE = 10_000
# Hashes and comparisons one operation may make, whatever the number idle: a dict
# lookup or two per index; a scan of the idle list would make thousands.
PER_OPERATION = 12


def test_ten_thousand_idle_cost_each_operation_a_constant() -> None:
    idle: IdleSet[Conn] = IdleSet(timeout=30.0)
    conns = [Conn(f"c{i}") for i in range(IDLE)]
    origins = ["https://a", "https://b", "https://c"]
    adding = [touches(lambda i=i, conn=conn: idle.add(conn, origins[i % 3], now=i * 0.001))
              for i, conn in enumerate(conns)]
    assert max(adding) <= PER_OPERATION
    # the first ten expire, one at a time: each expiry touches only what it removes
    expired: list[Conn] = []
    for i in range(10):
        assert touches(lambda i=i: expired.extend(idle.expire(30.0 + i * 0.001))) \
            <= PER_OPERATION
    assert expired == conns[:10]
    assert touches(lambda: idle.take("https://b")) <= PER_OPERATION
    assert touches(lambda: idle.remove(conns[5000])) <= PER_OPERATION
    assert touches(idle.next_deadline) <= PER_OPERATION
    left = len(idle)
    assert left == IDLE - 12
    # all of them at once: linear, a constant per connection
    assert touches(lambda: idle.expire(1000.0)) <= PER_OPERATION * left
    assert len(idle) == 0
