"""Response heads built by hand: what h11 parses from them, and what they refuse."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.core import http_response
from sseserver.core.http_response import check_head, encode_response_head, reason_phrase
from sseserver.errors import LocalProtocolError

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
# Visible ASCII and obs-text, with inner spaces and tabs: what a field value may hold.
VALUE_CHARS = st.characters(codec="latin-1", exclude_categories=("Cc",),
                            exclude_characters="\x7f")
names = st.text(TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda name: name not in ("content-length", "transfer-encoding", "connection"))
values = st.builds(lambda parts: " ".join(parts),
                   st.lists(st.text(VALUE_CHARS, min_size=1, max_size=12).map(str.strip)
                            .filter(bool), max_size=4))


def parsed_by_h11(head: bytes) -> h11.Response:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "t")]))
    client.send(h11.EndOfMessage())
    client.receive_data(head)
    event = client.next_event()
    assert isinstance(event, h11.Response)
    return event


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from([200, 201, 400, 404, 429, 500, 502, 503, 299, 599]),
       headers=st.lists(st.tuples(names, values), max_size=12))
def test_h11_reads_back_exactly_what_was_encoded(status: int,
                                                  headers: list[tuple[str, str]]) -> None:
    event = parsed_by_h11(encode_response_head(status, headers))
    assert event.status_code == status
    assert event.reason == reason_phrase(status).encode()
    assert [(name.decode(), value.decode("latin-1")) for name, value in event.headers] == \
        headers


def test_head_bytes() -> None:
    assert encode_response_head(200, [("content-type", "text/event-stream"), ("x-a", "1")]) \
        == b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-a: 1\r\n\r\n"
    assert encode_response_head(501, []) == b"HTTP/1.1 501 Not Implemented\r\n\r\n"


@pytest.mark.parametrize(("status", "reason"), [
    (100, "Continue"), (200, "OK"), (413, "Content Too Large"), (417, "Expectation Failed"),
    (422, "Unprocessable Content"), (431, "Request Header Fields Too Large"),
    (501, "Not Implemented"), (505, "HTTP Version Not Supported"),
    (299, "Successful"), (477, "Client Error"), (599, "Server Error")])
def test_every_status_has_its_rfc_9110_reason_phrase(status: int, reason: str) -> None:
    assert reason_phrase(status) == reason
    assert encode_response_head(status, []).startswith(f"HTTP/1.1 {status} {reason}\r\n"
                                                       .encode())


def test_no_registered_status_is_sent_without_its_phrase() -> None:
    for status in HTTPStatus:
        assert reason_phrase(status) not in ("", "Unknown"), status


@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "a\nb", "a\rb", "a\x00b", "a\x01",
                                   "\x7f", "\x1b[31m", "\u2603"])
def test_values_that_could_split_or_corrupt_the_head_are_refused(value: str) -> None:
    with pytest.raises(LocalProtocolError):
        encode_response_head(200, [("x-a", value)])


@pytest.mark.parametrize("name", ["", "a b", "a:b", "a\r\nb", "x-é", "a\tb", "(a)"])
def test_names_that_are_not_tokens_are_refused(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        encode_response_head(200, [(name, "v")])


@pytest.mark.parametrize("status", [0, 99, 1000, -200])
def test_status_out_of_range_is_refused(status: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_response_head(status, [])


def test_tab_and_obs_text_pass_as_h11_allows() -> None:
    event = parsed_by_h11(encode_response_head(200, [("x-a", "a\tb \xe9")]))
    assert event.headers[0][1] == b"a\tb \xe9"


def general_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    """The head as one pass over all of it builds it: what the table of lines must
    give (or the error it must raise)."""
    check_head(headers)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"HTTP/1.1 {status} {reason_phrase(status)}\r\n{lines}\r\n".encode("latin-1")


def outcome(make: Callable[[], bytes]) -> bytes | str:
    try:
        return make()
    except LocalProtocolError as exc:
        return str(exc)


ANY_TEXT = st.text(st.characters(max_codepoint=0x2603), max_size=8)


@settings(max_examples=300, deadline=None)
@given(heads=st.lists(st.lists(st.tuples(st.one_of(names, ANY_TEXT),
                                         st.one_of(values, ANY_TEXT)), max_size=6),
                      min_size=1, max_size=4))
def test_a_head_built_from_the_table_of_lines_is_the_head_built_in_one_pass(
        heads: list[list[tuple[str, str]]]) -> None:
    """Lines found in the table (the same pairs again, in other heads) give the bytes
    and the refusals a head checked whole gives."""
    for headers in [*heads, *heads]:
        assert outcome(lambda h=headers: encode_response_head(200, h)) == \
            outcome(lambda h=headers: general_head(200, h))


def test_the_table_of_lines_stays_bounded_and_a_refused_line_is_never_kept() -> None:
    for number in range(http_response._MAX_LINES * 2):
        encode_response_head(200, [("x-stream-id", f"id{number}")])
        assert len(http_response._lines) <= http_response._MAX_LINES
    bad = ("x-a", "a\r\nx-injected: 1")
    for _ in range(2):
        with pytest.raises(LocalProtocolError):
            encode_response_head(200, [bad])
    assert bad not in http_response._lines


def test_pairs_given_as_lists_are_built_each_time() -> None:
    assert encode_response_head(200, [["x-a", "1"], ("x-b", "2")]) == \
        b"HTTP/1.1 200 OK\r\nx-a: 1\r\nx-b: 2\r\n\r\n"  # type: ignore[list-item]


# -- a stream's head from a template of its fixed lines ---------------------------------

pairs = st.tuples(st.one_of(names, names, ANY_TEXT), st.one_of(values, values, ANY_TEXT))
spliced_values = st.one_of(st.text("0123456789abcdef", min_size=1, max_size=24), values,
                           ANY_TEXT)
DATE = "Tue, 01 Dec 2026 14:56:48 GMT"


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from([200, 200, 299, 1000]),
       before=st.lists(pairs, max_size=3).map(tuple), name=st.one_of(names, ANY_TEXT),
       streams=st.lists(st.tuples(spliced_values, st.one_of(st.just(DATE), ANY_TEXT)),
                        min_size=1, max_size=4),
       after=st.lists(pairs, max_size=3).map(tuple), close=st.booleans())
def test_a_spliced_head_is_the_head_encoded_whole(
        status: int, before: tuple[tuple[str, str], ...], name: str,
        streams: list[tuple[str, str]], after: tuple[tuple[str, str], ...],
        close: bool) -> None:
    """Heads of the same fixed lines, each stream's value and date put in (the first
    makes the template, the others take it): the bytes, or the refusal, of the head
    encoded whole."""
    http_response._templates.clear()
    for value, date in [*streams, *streams]:
        whole = [*before, (name, value), *after, ("date", date),
                 *([("connection", "close")] if close else [])]
        assert outcome(lambda v=value, d=date: http_response.encode_spliced_head(
            status, before, (name, v), after, d, close)) == \
            outcome(lambda h=whole: encode_response_head(status, h)), (value, date)


def test_the_table_of_templates_stays_bounded() -> None:
    for number in range(http_response._MAX_TEMPLATES * 2):
        http_response.encode_spliced_head(200, (("x-n", str(number)),), ("x-stream-id", "a"),
                                          (), DATE, close=False)
        assert len(http_response._templates) <= http_response._MAX_TEMPLATES
