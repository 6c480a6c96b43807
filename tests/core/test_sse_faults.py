"""The parser's bounds hold for an event whatever its reads, nothing a read completed
before a fault is lost, and a provider's page is told from a stream."""

from __future__ import annotations

import pytest

from sseserver.core.chunked import ChunkedDecoder
from sseserver.core.sse import NotAnEventStream, SSEParser
from sseserver.errors import EventTooLarge, NoEvents, RemoteProtocolError

MAX = 1000


def parser() -> SSEParser:
    return SSEParser(64 * 1024, MAX, MAX)


def test_one_data_line_past_the_event_bound_is_refused_before_it_ends() -> None:
    p = parser()
    p.feed(b"data: ok\n\n")
    p.feed(b"data: " + b"x" * 900)
    with pytest.raises(EventTooLarge):
        p.feed(b"x" * 200)


@pytest.mark.parametrize(("partial", "last_read"), [
    (500, b"\n\n"), (498, b"yy\n\n"), (497, b"\ndata: zz\n\n")])
def test_an_event_past_its_bound_in_the_read_that_ends_it_is_refused(
        partial: int, last_read: bytes) -> None:
    """1001 characters of data, at most 999 of them before the read that ends it."""
    p = parser()
    p.feed(b"data: ok\n\n")
    p.feed(b"data: " + b"y" * 500 + b"\ndata: " + b"y" * partial)
    with pytest.raises(EventTooLarge):
        p.feed(last_read + b"data: next\n\n")


def test_an_event_at_its_bound_is_read() -> None:
    p = parser()
    p.feed(b"data: " + b"y" * 500 + b"\ndata: " + b"y" * 400)
    [event] = p.feed(b"y" * 99 + b"\n\n")
    assert len(event.data) == MAX


@pytest.mark.parametrize(("fault", "error"), [
    (b": " + b"c" * 1200 + b"\n", NoEvents),
    (b"data: " + b"d" * 1200, EventTooLarge),
    (b"data: " + b"d" * 700 + b"\ndata: " + b"d" * 700 + b"\n", EventTooLarge),
])
def test_events_before_a_fault_in_the_same_read_are_kept(fault: bytes, error: type) -> None:
    p = parser()
    p.feed(b": hello\n")  # off the shortcuts
    with pytest.raises(error) as raised:
        p.feed(b"data: a\n\nevent: x\ndata: b\n\n" + fault)
    assert [(e.event, e.data) for e in raised.value.read_before] == [("message", "a"),
                                                                     ("x", "b")]


def test_chunks_before_a_malformed_chunk_in_the_same_read_are_kept() -> None:
    decoder = ChunkedDecoder()
    with pytest.raises(RemoteProtocolError) as raised:
        decoder.feed(b"3\r\nabc\r\n2\r\nde\r\nzz\r\n")
    assert raised.value.read_before == [b"abc", b"de"]


@pytest.mark.parametrize("body", [b'{"error": {"message": "quota"}}', b"\r\n  <html>",
                                  b"\xef\xbb\xbf[1]", b"\n\n{"])
def test_a_document_is_refused_where_asked(body: bytes) -> None:
    with pytest.raises(NotAnEventStream):
        SSEParser(refuse_documents=True).feed(body)
    assert SSEParser().feed(body) == []  # a WHATWG parser reads any line as a field


@pytest.mark.parametrize("body", [b"data: {}\n\n", b": ping\n\n", b"event: x\ndata: 1\n\n",
                                  b"\n", b"retry: 10\n"])
def test_a_stream_is_not_refused(body: bytes) -> None:
    SSEParser(refuse_documents=True).feed(body)


@pytest.mark.parametrize(("tail", "expected"), [
    (b"event: message_stop\ndata: {}\n", [("message_stop", "{}")]),
    (b"data: [DONE]\r\n", [("message", "[DONE]")]),
    (b"data: [DONE]", []),  # a partial line: maybe cut, dropped
    (b"data: a\n\n", []),  # dispatched already
])
def test_a_framed_end_dispatches_an_event_missing_only_its_blank_line(
        tail: bytes, expected: list[tuple[str, str]]) -> None:
    p = SSEParser()
    p.feed(b": start\n")
    p.feed(tail)
    assert [(e.event, e.data) for e in p.end()] == expected
    assert p.end() == []


def test_a_document_after_blank_reads_is_refused() -> None:
    p = SSEParser(refuse_documents=True)
    assert p.feed(b"\r\n") == [] and p.feed(b" \n") == []
    with pytest.raises(NotAnEventStream):
        p.feed(b"{")


def test_a_stream_after_blank_reads_is_read() -> None:
    p = SSEParser(refuse_documents=True)
    assert p.feed(b"\n") == [] and p.feed(b"\r") == []
    assert [e.data for e in p.feed(b"\ndata: a\n\n")] == ["a"]
