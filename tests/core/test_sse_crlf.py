"""The CRLF shortcut gives exactly what the general parser gives, for any read."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sseserver.core.sse import SSEParser
from sseserver.core.sse_crlf import CRLFEventParser


def through_shortcut(reads: list[bytes]) -> list[str]:
    parser, data = CRLFEventParser(), []
    for read in reads:
        line = parser.feed_data_line(read)
        if line is not None:
            data.append(line)
        else:
            data.extend(event.data for event in parser.feed(read))
    return data


def through_general_path(reads: list[bytes]) -> list[str]:
    parser = SSEParser()
    return [event.data for read in reads for event in parser.feed(read)]


def test_a_crlf_event_takes_the_shortcut() -> None:
    parser = CRLFEventParser()
    assert parser.feed_data_line(b'data: {"a":"\xc3\xa9"}\r\n\r\n') == '{"a":"é"}'
    assert parser.feed_data_line(b"data: \xff\r\n\r\n") == "\ufffd"
    assert parser.feed_data_line(b"data: x\n\n") == "x"  # the base class's own shortcut


def test_reads_the_shortcut_must_leave_to_the_general_path() -> None:
    parser = CRLFEventParser()
    for read in (b"data: a\rb\r\n\r\n", b"data: a\r\n\r\ndata: b\r\n\r\n", b"data: a\r\n",
                 b"data:a\r\n\r\n", b"event: x\r\ndata: a\r\n\r\n", b"data: a\r\n\n"):
        assert parser.feed_data_line(read) is None, read
    parser.feed(b"data: pending")
    assert parser.feed_data_line(b"data: b\r\n\r\n") is None  # not at an event boundary


_pieces = st.sampled_from([b"data: x\r\n\r\n", b'data: {"k": 1}\r\n\r\n', b"data: a\r",
                           b"\n\r\n", b": comment\r\n\r\n", b"data: \xc3", b"\xa9\r\n\r\n",
                           b"data: y\n\n", b"\r\n", b"id: 3\r\n", b"data: z\r\n\r\n"])


@given(st.lists(_pieces, max_size=12))
def test_same_events_as_the_general_path(reads: list[bytes]) -> None:
    assert through_shortcut(reads) == through_general_path(reads)
