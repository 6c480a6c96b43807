"""The readers every adapter reads provider JSON with."""

from __future__ import annotations

import pytest

from sseserver.errors import ProviderError
from sseserver.providers.shapes import (
    MAX_COUNT,
    json_text,
    loads_after_error,
    optional_count,
    wire_token,
)


def test_lone_surrogates_become_the_replacement_character_keys_too() -> None:
    assert loads_after_error('{"\\ud800k": ["\\udc00", "\\ud83d\\ude00", 1]}') == {
        "\ufffdk": ["\ufffd", "\U0001f600", 1]}


@pytest.mark.parametrize("data", [
    '{"a": "\\ud800", oops}',  # broken besides the surrogate
    '["\\ud800", NaN]',  # what orjson refuses, the fallback refuses too
    '["\\ud800", Infinity]',
    '"\\\\ud800" x',  # an escaped backslash, then text: no surrogate at all
    "[" * 100_000 + '"\\ud800"' + "]" * 100_000,  # past any recursion limit
    '["\\ud800", ' + "9" * 5000 + "]",  # past Python's digit limit for int()
    "{not json",
])
def test_what_stays_unreadable_is_a_provider_error_in_fixed_words(data: str) -> None:
    with pytest.raises(ProviderError, match=r"^provider sent an event that is not valid JSON$"):
        loads_after_error(data)


def test_counts_are_non_negative_integers_a_client_reads_exactly() -> None:
    assert optional_count(None, "n") is None
    assert optional_count(MAX_COUNT, "n") == MAX_COUNT
    for bad in (-1, MAX_COUNT + 1, True, 1.0, "1", [1]):
        with pytest.raises(ProviderError, match=r"^provider event: n is not a non-negative"):
            optional_count(bad, "n")


def test_json_text_refuses_what_orjson_cannot_write() -> None:
    assert json_text({"a": [1, "é"]}, "input") == '{"a":[1,"é"]}'
    deep: dict[str, object] = {}
    node = deep
    for _ in range(300):
        node["a"] = node = {}
    for value in ({"a": 10**30}, deep):
        with pytest.raises(ProviderError, match=r"^provider event: input is not JSON"):
            json_text(value, "input")


@pytest.mark.parametrize(("value", "token"), [
    ("overloaded_error", "overloaded_error"),
    ("invalid request\r\nx-evil: 1", "invalid_request_x-evil:_1"),
    ("a" * 500, "a" * 64),
    ("\x00\x1b[31m", "31m"),
    ("\u202e\u0000", "default"),
    ("", "default"),
    ({"type": "x"}, "default"),
    (["server_error"], "default"),
    (7, "default"),
])
def test_wire_tokens(value: object, token: str) -> None:
    assert wire_token(value, "default") == token
