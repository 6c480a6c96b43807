"""The table of request heads already checked: a head found there is the head built
anew, a refused head is refused every time, and the table stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.core import http_client
from sseserver.core.http_client import encode_request
from sseserver.core.http_response import encode_response_head
from sseserver.errors import LocalProtocolError

_NAMES = st.sampled_from(["authorization", "content-type", "accept", "x-api-key"])
_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=20)
_HEADERS = st.lists(st.tuples(_NAMES, _VALUES), max_size=4)


@settings(max_examples=60, deadline=None)
@given(headers=_HEADERS, bodies=st.lists(st.binary(max_size=40), min_size=2, max_size=4))
def test_a_request_head_found_in_the_table_is_the_head_built_anew(
        headers: list[tuple[str, str]], bodies: list[bytes]) -> None:
    for body in bodies:
        sent = encode_request("POST", "/v1/chat/completions", "api.example", headers, body)
        built = http_client._checked_head("POST", "/v1/chat/completions", "api.example",
                                          headers)
        assert sent == b"%bcontent-length: %d\r\n\r\n%b" % (built, len(body), body)


def test_a_refused_head_is_refused_every_time_and_never_kept() -> None:
    bad = [("x-trace", "a\r\nx-injected: 1")]
    for _ in range(3):
        with pytest.raises(LocalProtocolError):
            encode_request("POST", "/v1/x", "api.example", bad, b"")
        with pytest.raises(LocalProtocolError):
            encode_response_head(200, bad)
    assert not any(key[-1] == bad[0] for key in http_client._checked_heads)


def test_the_tables_stay_bounded() -> None:
    for n in range(3 * http_client._MAX_CACHED_HEADS):
        encode_request("POST", "/v1/x", "api.example", [("x-n", str(n))], b"{}")
    assert len(http_client._checked_heads) <= http_client._MAX_CACHED_HEADS
    # and a head sent after the table was emptied is still the right one
    assert encode_request("POST", "/v1/x", "api.example", [("x-n", "0")], b"{}") == (
        b"POST /v1/x HTTP/1.1\r\nhost: api.example\r\nx-n: 0\r\n"
        b"content-length: 2\r\n\r\n{}")


def test_fields_given_as_lists_are_sent_as_tuples_are() -> None:
    # a stream's headers read back from a JSON store come as [name, value] lists
    as_tuples = [("content-type", "text/event-stream"), ("x-vercel-ai-ui-message-stream", "v1")]
    as_lists = [list(field) for field in as_tuples]
    assert encode_response_head(200, as_lists) == encode_response_head(200, as_tuples)  # type: ignore[arg-type]
    assert encode_request("POST", "/v1/x", "api.example", as_lists, b"{}") == \
        encode_request("POST", "/v1/x", "api.example", as_tuples, b"{}")  # type: ignore[arg-type]
