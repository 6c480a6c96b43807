"""The event-stream parser's bounds: one event's data, and the bytes that carry no
event between two events. Whole, byte by byte, and against a real provider's stream
with keep-alive comments."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sseserver.core.sse import ServerSentEvent, SSEParser
from sseserver.errors import EventTooLarge, NoEvents, RemoteProtocolError

RECORDINGS = Path(__file__).resolve().parents[3] / "shared" / "recordings"


def feed_all(parser: SSEParser, data: bytes, read: int) -> list[ServerSentEvent]:
    return [event for at in range(0, len(data), read) for event in parser.feed(data[at:at + read])]


@pytest.mark.parametrize("read", [1, 7, 100, 10_000])
def test_an_event_whose_data_never_ends_is_refused_past_its_bound(read: int) -> None:
    parser = SSEParser(max_event_bytes=1000)
    data_lines = b"data: " + b"y" * 90 + b"\n"  # 97 characters of data a line
    with pytest.raises(EventTooLarge, match="longer than 1000"):
        feed_all(parser, data_lines * 20, read)


@pytest.mark.parametrize("read", [1, 100])
def test_events_up_to_the_bound_pass_and_each_starts_from_zero(read: int) -> None:
    parser = SSEParser(max_event_bytes=1000)
    event = b"data: " + b"y" * 490 + b"\ndata: " + b"z" * 490 + b"\n\n"
    events = feed_all(parser, event * 5, read)
    assert [len(e.data) for e in events] == [981] * 5


@pytest.mark.parametrize("read", [1, 13, 4096])
def test_bytes_without_an_event_are_refused_past_their_bound(read: int) -> None:
    for noise in (b": keep-alive\n", b"\n", b"unknown: field\n", b"event: x\n", b"id: 1\n"):
        parser = SSEParser(max_bytes_without_event=1000)
        with pytest.raises(NoEvents, match="more than 1000 bytes without an event"):
            feed_all(parser, noise * (2000 // len(noise)), read)


@pytest.mark.parametrize("read", [1, 50, 4096])
def test_each_event_clears_the_count_of_bytes_without_one(read: int) -> None:
    """A comment before each event, as OpenRouter sends: never refused, however long
    the stream, and the per-token shortcut takes over again after each comment."""
    parser = SSEParser(max_bytes_without_event=100)
    block = b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: tok\n\n"
    assert len(feed_all(parser, block * 500, read)) == 500
    assert parser.feed_data_line(b"data: next\n\n") == "next"


def test_the_shortcuts_leave_a_count_that_is_under_way_to_the_general_path() -> None:
    parser = SSEParser(max_bytes_without_event=100)
    parser.feed(b": " + b"c" * 60 + b"\n")
    assert parser.feed_data_line(b"data: a\n\n") is None
    assert parser.feed_data_lines(b"data: a\n\ndata: b\n\n") is None
    assert [e.data for e in parser.feed(b"data: a\n\n")] == ["a"]  # clears the count
    for _ in range(10):
        parser.feed(b": " + b"c" * 60 + b"\n")
        assert [e.data for e in parser.feed(b"data: b\n\n")] == ["b"]


def test_the_bound_errors_are_protocol_errors_and_close_resets_them() -> None:
    parser = SSEParser(max_event_bytes=10, max_bytes_without_event=10)
    parser.feed(b"data: 12345\n")
    parser.close()
    assert [e.data for e in parser.feed(b"data: 12345\n\n")] == ["12345"]
    with pytest.raises(RemoteProtocolError):
        parser.feed(b":" * 20 + b"\n")


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason="no recordings folder")
@pytest.mark.parametrize("name", ["oc_openrouter_reasoning_comments", "oc_openrouter_error_chunk"])
def test_a_real_stream_with_keep_alive_comments_stays_within_the_bounds(name: str) -> None:
    """OpenRouter's ": OPENROUTER PROCESSING" lines between events, in random reads:
    the same events as with no bound at all, under a bound of a few comments."""
    body = (RECORDINGS / f"{name}.sse").read_bytes()
    expected = [(e.event, e.data) for e in SSEParser().feed(body)]
    assert expected
    rng = random.Random(name)
    for _ in range(20):
        parser = SSEParser(max_bytes_without_event=512)
        cuts = sorted(rng.sample(range(1, len(body)), 40))
        reads = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        assert [(e.event, e.data) for r in reads for e in parser.feed(r)] == expected
