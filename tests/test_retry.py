"""The step after an attempt, decided without a loop: every case of the table."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from sseserver.errors import (
    ProviderError,
    ShuttingDown,
    StreamCancelled,
    StreamFailure,
    UpstreamConnectError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from sseserver.retry import (
    DONE,
    NEXT_TARGET,
    RULES,
    TRANSITIONS,
    Fail,
    Outcome,
    Position,
    RetryAfter,
    Step,
    backoff,
    decide,
    outcome_of,
)


@dataclass(frozen=True)
class Policy:
    max_retries: int = 2
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0


POLICY = Policy()

# Each kind of failure an attempt meets, with and without a Retry-After
FAILURES: dict[str, StreamFailure | None] = {
    "finished": None,
    "connect": UpstreamConnectError("refused"),
    "timeout": UpstreamTimeout("no head"),
    "overloaded": UpstreamStatusError("busy", status=529),
    "rate limited, retry after 3 s": UpstreamStatusError("slow down", status=429,
                                                         retry_after=3.0),
    "rate limited, retry after 120 s": UpstreamStatusError("slow down", status=429,
                                                           retry_after=120.0),
    "bad request": UpstreamStatusError("no", status=400, retryable=False),
    "provider error event": ProviderError("broke", retryable=False, error_type="server_error"),
    "shutdown": ShuttingDown("draining", retry_after=5),
    "cancelled": StreamCancelled("stop"),
}


def expected(failure: StreamFailure | None, attempt: int, committed: bool,
             last_target: bool) -> object:
    """The rule the relay has always followed, written out plainly."""
    if failure is None:
        return DONE
    if committed:
        return Fail(*_client(failure))
    too_long = failure.retry_after is not None and failure.retry_after > 60.0
    if failure.retryable and not too_long and attempt <= 2:
        delay = failure.retry_after if failure.retry_after is not None else \
            min(8.0, 0.5 * 2 ** (attempt - 1))
        return RetryAfter(delay)
    return Fail(*_client(failure)) if last_target else NEXT_TARGET


def _client(failure: StreamFailure) -> tuple[int, tuple[tuple[str, str], ...]]:
    from sseserver.failures import client_status
    status, headers = client_status(failure)
    return status, tuple(headers)


@pytest.mark.parametrize(("name", "attempt", "committed", "last_target"), list(
    itertools.product(FAILURES, (1, 2, 3, 4), (False, True), (False, True))))
def test_every_outcome_position_and_attempt(name: str, attempt: int, committed: bool,
                                            last_target: bool) -> None:
    failure = FAILURES[name]
    decision = decide(failure, attempt, Position(committed, last_target), POLICY, jitter=1.0)
    assert decision == expected(failure, attempt, committed, last_target)


def test_the_table_covers_every_case_once() -> None:
    assert len(TRANSITIONS) == len(Outcome) * 2 * 2 * 2
    assert set(TRANSITIONS.values()) == set(Step)


def test_every_rule_decides_some_case() -> None:
    """No row is shadowed by the ones above it: each is the first match somewhere."""
    for index, (*pattern, step) in enumerate(RULES):
        matches = [case for case in TRANSITIONS if all(
            want is None or want == have for want, have in zip(pattern, case, strict=True))]
        first = [case for case in matches if not any(
            all(w is None or w == h for w, h in zip(earlier[:4], case, strict=True))
            for earlier in RULES[:index])]
        assert first, f"rule {index} decides nothing"
        assert all(TRANSITIONS[case] is step for case in first)


@pytest.mark.parametrize(("retry_after", "outcome"), [
    (None, Outcome.RETRYABLE), (0.0, Outcome.RETRY_AFTER), (60.0, Outcome.RETRY_AFTER),
    (60.5, Outcome.RETRY_AFTER_TOO_LONG)])
def test_a_retry_after_is_waited_for_up_to_the_policys_bound(
        retry_after: float | None, outcome: Outcome) -> None:
    assert outcome_of(UpstreamError("x", retry_after=retry_after), POLICY) is outcome


def test_a_committed_stream_never_retries_even_a_retryable_failure() -> None:
    decision = decide(UpstreamTimeout("silent"), 1, Position(True, False), POLICY)
    assert decision == Fail(504, ())


def test_a_retry_after_too_long_moves_on_at_once() -> None:
    failure = UpstreamStatusError("later", status=429, retry_after=3600.0)
    assert decide(failure, 1, Position(False, False), POLICY) is NEXT_TARGET
    assert decide(failure, 1, Position(False, True), POLICY) == Fail(429, (
        ("retry-after", "3600"),))


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.999])
def test_backoff_is_exponential_capped_and_jittered_in_its_upper_half(jitter: float) -> None:
    failure = UpstreamConnectError("refused")
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (9, 8.0)):
        delay = backoff(attempt, failure, POLICY, jitter)
        assert ceiling / 2 <= delay <= ceiling


def test_a_negative_retry_after_is_no_wait() -> None:
    assert backoff(1, UpstreamError("x", retry_after=-5.0), POLICY, 0.5) == 0.0


def test_the_decision_module_needs_no_event_loop() -> None:
    import ast
    from pathlib import Path

    import sseserver.retry
    tree = ast.parse(Path(sseserver.retry.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not {"asyncio", "socket", "random", "time"} & imported


@pytest.mark.parametrize("attempt", [1, 2, 3, 10])
@pytest.mark.parametrize("committed", [False, True])
@pytest.mark.parametrize("last_target", [False, True])
def test_a_finished_attempt_is_done_from_every_position(
        attempt: int, committed: bool, last_target: bool) -> None:
    # the relay completes a finished attempt without asking decide (its shortcut)
    assert decide(None, attempt, Position(committed, last_target), POLICY,
                  0.5) is DONE
    assert all(step is Step.DONE for (outcome, *_), step in TRANSITIONS.items()
               if outcome is Outcome.FINISHED)
