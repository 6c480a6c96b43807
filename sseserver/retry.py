"""What a stream does after an attempt ends, decided without I/O (DESIGN.md §4).

An attempt on one target of the route (a fallback chain of provider/model pairs) ends
well or with a failure; :func:`decide` turns that outcome, the attempt's number on its
target, where the stream stands and the policy into the next step: wait and try the
same target again (:class:`RetryAfter`), move on to the next target
(:class:`NextTarget`), end with an error (:class:`Fail`), or end well (:class:`Done`).
The rules are a table (:data:`RULES`), expanded at import into every case it covers;
the relay performs the step, and tests drive this module with no event loop.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from typing import Protocol

from sseserver.errors import StreamFailure
from sseserver.failures import client_status


class RetryPolicy(Protocol):
    """The part of the relay's policy the decision reads."""

    @property
    def max_retries(self) -> int: ...  # retries on one target, after its first attempt

    @property
    def backoff_initial(self) -> float: ...

    @property
    def backoff_max(self) -> float: ...

    @property
    def max_retry_after(self) -> float: ...  # a longer Retry-After is not waited for


class Outcome(enum.Enum):
    """How an attempt ended, as far as the decision cares."""

    FINISHED = "finished"  # the provider ended its stream normally
    RETRYABLE = "retryable"  # failed; the same request may succeed later
    RETRY_AFTER = "retry_after"  # failed, and the provider said when to come back
    RETRY_AFTER_TOO_LONG = "retry_after_too_long"  # ... later than we wait for
    FINAL = "final"  # failed; the same request to the same target would fail again


class Step(enum.Enum):
    RETRY = "retry"
    NEXT_TARGET = "next_target"
    FAIL = "fail"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Position:
    """Where the stream stands when an attempt ends."""

    committed: bool  # the client saw content: too late to try anything else
    last_target: bool  # no target of the route is left after this one


@dataclass(frozen=True, slots=True)
class RetryAfter:
    delay: float  # seconds before the next attempt on the same target


@dataclass(frozen=True, slots=True)
class NextTarget:
    pass


@dataclass(frozen=True, slots=True)
class Fail:
    """End the stream with the failure: before the response head, with ``status`` and
    ``headers``; after it, with an error event."""

    status: int
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Done:
    pass


Decision = RetryAfter | NextTarget | Fail | Done
DONE = Done()
NEXT_TARGET = NextTarget()

# (outcome, committed, a retry left on this target, last target) -> step. None matches
# either value; the first row that matches decides. Read top down, they say: a
# finished stream is done; a committed one can only fail (DESIGN.md §4: the client saw
# text); a failure worth repeating is retried while retries last; any other failure
# moves on along the route, and fails at its end.
RULES: tuple[tuple[Outcome | None, bool | None, bool | None, bool | None, Step], ...] = (
    (Outcome.FINISHED, None, None, None, Step.DONE),
    (None, True, None, None, Step.FAIL),
    (Outcome.RETRYABLE, False, True, None, Step.RETRY),
    (Outcome.RETRY_AFTER, False, True, None, Step.RETRY),
    (None, False, None, False, Step.NEXT_TARGET),
    (None, False, None, True, Step.FAIL),
)


def _expand() -> dict[tuple[Outcome, bool, bool, bool], Step]:
    table: dict[tuple[Outcome, bool, bool, bool], Step] = {}
    for case in itertools.product(Outcome, (False, True), (False, True), (False, True)):
        for *pattern, step in RULES:
            if all(want is None or want == have for want, have in zip(pattern, case,
                                                                      strict=True)):
                table[case] = step
                break
    return table


# Every case, looked up once per attempt; import fails if the rules leave one out.
TRANSITIONS = _expand()
assert len(TRANSITIONS) == len(Outcome) * 8, "the retry rules leave a case undecided"


def outcome_of(failure: StreamFailure | None, policy: RetryPolicy) -> Outcome:
    """The outcome of an attempt that ended with ``failure`` (None: it finished)."""
    if failure is None:
        return Outcome.FINISHED
    if not failure.retryable:
        return Outcome.FINAL
    if failure.retry_after is None:
        return Outcome.RETRYABLE
    if failure.retry_after > policy.max_retry_after:
        return Outcome.RETRY_AFTER_TOO_LONG
    return Outcome.RETRY_AFTER


def decide(failure: StreamFailure | None, attempt: int, position: Position,
           policy: RetryPolicy, jitter: float = 1.0) -> Decision:
    """The step after attempt number ``attempt`` (from 1) on the current target ended
    with ``failure`` (None: the provider finished). ``jitter``, in [0, 1), picks the
    backoff within its upper half (spreading retry storms); the caller draws it."""
    outcome = outcome_of(failure, policy)
    step = TRANSITIONS[outcome, position.committed, attempt <= policy.max_retries,
                       position.last_target]
    if step is Step.DONE:
        return DONE
    if step is Step.NEXT_TARGET:
        return NEXT_TARGET
    assert failure is not None  # only FINISHED is without one, and it is DONE
    if step is Step.RETRY:
        return RetryAfter(backoff(attempt, failure, policy, jitter))
    status, headers = client_status(failure)
    return Fail(status, tuple(headers))


def backoff(attempt: int, failure: StreamFailure, policy: RetryPolicy, jitter: float) -> float:
    """Seconds before retry number ``attempt``: what the provider asked for, or an
    exponential backoff from ``backoff_initial`` up to ``backoff_max``."""
    if failure.retry_after is not None:
        return max(0.0, failure.retry_after)
    ceiling = min(policy.backoff_max, policy.backoff_initial * 2 ** (attempt - 1))
    return ceiling / 2 + ceiling / 2 * jitter

