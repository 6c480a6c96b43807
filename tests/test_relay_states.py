"""RelayState hashes by identity; its lookups find what lookups by value find."""

from __future__ import annotations

from sseserver.relay import TRANSITIONS, RelayState


def test_every_state_is_found_as_by_its_value() -> None:
    by_value = {state.value: moves for state, moves in TRANSITIONS.items()}
    for state in RelayState:
        assert TRANSITIONS[RelayState(state.value)] is TRANSITIONS[state]
        assert {m.value for m in TRANSITIONS[state]} == {m.value for m in by_value[state.value]}
        assert hash(state) == hash(RelayState[state.name])
    assert RelayState.ENDED in TRANSITIONS[RelayState.STARTING]
    assert RelayState.COMMITTED not in TRANSITIONS[RelayState.STARTING]
    assert len(set(RelayState)) == 4
