"""The parser against every vector of reference/sse-spec.md §5: whole, byte by byte,
at every split point, and with trailing data; plus the encoder and a round trip."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sseserver.core.sse import ServerSentEvent, SSEParser, encode_comment, encode_event
from sseserver.errors import LocalProtocolError, RemoteProtocolError

Expected = list[tuple[str, str, str]]

# (vector number, reads, expected (type, data, lastEventId), expected retry or None)
VECTORS: list[tuple[int, list[bytes], Expected, int | None]] = [
    (1, [b"data: hello\n\n"], [("message", "hello", "")], None),
    (2, [b"data: YHOO\ndata: +2\ndata: 10\n\n"], [("message", "YHOO\n+2\n10", "")], None),
    (3, [b"data: a\r\n\r\n"], [("message", "a", "")], None),
    (4, [b"data: a\r\rdata: b\r\r"], [("message", "a", ""), ("message", "b", "")], None),
    (5, [b"data: a\r\ndata: b\rdata: c\n\n"], [("message", "a\nb\nc", "")], None),
    (6, [b"data: x\r\r\n\n"], [("message", "x", "")], None),
    (7, [b"data: a\r", b"\ndata: b\n\n"], [("message", "a\nb", "")], None),
    (8, [b"data:test\n\ndata: test\n\n"], [("message", "test", "")] * 2, None),
    (9, [b"data:  two spaces\n\n"], [("message", " two spaces", "")], None),
    (10, [b"data:\ttab\n\n"], [("message", "\ttab", "")], None),
    (11, [b"data: a: b:c\n\n"], [("message", "a: b:c", "")], None),
    (12, [b"data\n\n"], [("message", "", "")], None),
    (13, [b"data\ndata\n\n"], [("message", "\n", "")], None),
    (14, [b"data: a\ndata:\n\n"], [("message", "a\n", "")], None),
    (15, [b": just a comment\n\n"], [], None),
    (16, [b"data:1\r:\x00\n:\r\ndata:2\n:" + b"x" * 2048 + b"\rdata:3\n:data:fail\r:"
          + b"y" * 2048 + b"\ndata:4\n\n"], [("message", "1\n2\n3\n4", "")], None),
    (17, [b"event: add\ndata: 73857293\n\n"], [("add", "73857293", "")], None),
    (18, [b"event: foo\n\ndata: x\n\n"], [("message", "x", "")], None),
    (19, [b"event: foo\ndata\n\n"], [("foo", "", "")], None),
    (20, [b"event: \ndata: data\n\n"], [("message", "data", "")], None),
    (21, [b"event: add \ndata: x\n\n"], [("add ", "x", "")], None),
    (22, [b"Data: x\n\nDATA: y\n\n"], [], None),
    (23, [b"data : x\n\n"], [], None),
    (24, [b"foo: bar\ndata: x\n\n"], [("message", "x", "")], None),
    (25, [b"data: a\n \n\n"], [("message", "a", "")], None),
    (26, [b"\n\n\ndata: a\n\n"], [("message", "a", "")], None),
    (27, [b"id: 1\ndata: a\n\ndata: b\n\n"], [("message", "a", "1"), ("message", "b", "1")],
     None),
    (28, [b"id: 1\ndata: a\n\nid\ndata: b\n\n"], [("message", "a", "1"), ("message", "b", "")],
     None),
    (28, [b"id: 1\ndata: a\n\nid:\ndata: b\n\n"], [("message", "a", "1"), ("message", "b", "")],
     None),
    (29, [b"id: 1\ndata: a\n\nid: x\x00y\ndata: b\n\n"],
     [("message", "a", "1"), ("message", "b", "1")], None),
    (30, [b"id: 7\n\ndata: a\n\n"], [("message", "a", "7")], None),
    (31, [b"retry:1000\ndata:test1\n\nid:test\ndata:test2"], [("message", "test1", "")], 1000),
    (32, [b"data: a\n"], [], None),
    (33, [b"data: a"], [], None),
    (34, [b"retry: 5000\n\n"], [], 5000),
    (35, [b"retry: 03000\ndata: x\n\n"], [("message", "x", "")], 3000),
    (36, [b"retry: 1000x\n"], [], None),
    (36, [b"retry: -1\n"], [], None),
    (36, [b"retry: 1.5\n"], [], None),
    (36, [b"retry:  5\n"], [], None),
    (36, [b"retry: +5\n"], [], None),
    (37, [b"\xef\xbb\xbfdata: a\n\n"], [("message", "a", "")], None),
    (38, [b"\xef", b"\xbb\xbfdata:1\n\ndata:2\n\n"], [("message", "1", ""), ("message", "2", "")],
     None),
    (39, [b"\xef\xbb\xbf\xef\xbb\xbfdata: 1\n\ndata: 2\n\n"], [("message", "2", "")], None),
    (40, [b"\xff\xfedata:1\n\ndata:2\n\n"], [("message", "2", "")], None),
    (41, [b"data: \xe2\x82", b"\xac\n\n"], [("message", "€", "")], None),
    (42, [b"data: \xff\n\n"], [("message", "\ufffd", "")], None),
    (43, [b"data:\x00\n\n"], [("message", "\x00", "")], None),
    (44, [bytes([b]) for b in b"data: a\n\n"], [("message", "a", "")], None),
]


def parse(reads: list[bytes]) -> tuple[Expected, SSEParser]:
    parser = SSEParser()
    events = [e for read in reads for e in parser.feed(read)]
    parser.close()
    return [(e.event, e.data, e.id) for e in events], parser


IDS = [f"v{n}-{i}" for i, (n, *_rest) in enumerate(VECTORS)]


@pytest.mark.parametrize(("number", "reads", "expected", "retry"), VECTORS, ids=IDS)
def test_vector(number: int, reads: list[bytes], expected: Expected, retry: int | None) -> None:
    events, parser = parse(reads)
    assert events == expected
    assert parser.retry == retry
    if number == 31:
        assert parser.last_event_id == ""


@pytest.mark.parametrize(("number", "reads", "expected", "retry"), VECTORS, ids=IDS)
def test_vector_byte_by_byte_and_at_every_split(number: int, reads: list[bytes],
                                                expected: Expected, retry: int | None) -> None:
    whole = b"".join(reads)
    assert parse([whole[i:i + 1] for i in range(len(whole))])[0] == expected
    for cut in range(len(whole) + 1):
        assert parse([whole[:cut], whole[cut:]])[0] == expected, cut


@pytest.mark.parametrize(("number", "reads", "expected", "retry"), VECTORS, ids=IDS)
def test_vector_with_trailing_data(number: int, reads: list[bytes], expected: Expected,
                                   retry: int | None) -> None:
    whole = b"".join(reads)
    if not whole.endswith((b"\n\n", b"\r\r", b"\r\n\r\n", b"\n", b"\r")):
        return  # an unterminated vector would swallow the trailing event's first line
    events, _ = parse([whole, b"\ndata: trailing\n\n"])
    assert events[:len(expected)] == expected
    assert events[-1][1] == "trailing"


def test_long_line_in_small_reads() -> None:
    payload = b"x" * 3_000_000
    parser = SSEParser(max_line_bytes=4_000_000, max_event_bytes=4_000_000)
    wire = b"data: " + payload + b"\n\n"
    events = [e for i in range(0, len(wire), 4096) for e in parser.feed(wire[i:i + 4096])]
    assert [len(e.data) for e in events] == [3_000_000]


def test_line_over_the_limit_is_refused() -> None:
    parser = SSEParser(max_line_bytes=1000)
    parser.feed(b"data: " + b"x" * 900)
    with pytest.raises(RemoteProtocolError, match="longer than 1000"):
        parser.feed(b"y" * 200)
    parser = SSEParser(max_line_bytes=10)
    parser.feed(b"data: 12")
    with pytest.raises(RemoteProtocolError):
        parser.feed(b"345678901234")


def test_json_escapes_survive() -> None:
    events, _ = parse([b'data: {"a":"line\\r\\nbreak\\n"}\n\n'])
    assert events == [("message", '{"a":"line\\r\\nbreak\\n"}', "")]


def test_retry_and_id_travel_with_events() -> None:
    parser = SSEParser()
    [event] = parser.feed(b"retry: 3000\nid: 1\nevent: metadata\ndata: {}\n\n")
    assert event == ServerSentEvent("metadata", "{}", "1", 3000)
    assert "last_event_id='1'" in repr(parser)


# -- encoder ---------------------------------------------------------------------------


def test_encoder_exact_bytes() -> None:
    assert encode_event("hi") == b"data: hi\n\n"
    assert encode_event('{"a":1}', event="usage", id=5, retry=3000) == \
        b'retry: 3000\nid: 5\nevent: usage\ndata: {"a":1}\n\n'
    assert encode_event("a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert encode_event(b"raw\nbytes") == b"data: raw\ndata: bytes\n\n"
    assert encode_event(" lead") == b"data:  lead\n\n"
    assert encode_event(comment="hello", id="7") == b": hello\nid: 7\n\n"
    assert encode_comment("ping") == b": ping\n"
    assert encode_comment() == b":\n"


@pytest.mark.parametrize("kwargs", [
    {"data": "x", "id": "a\nb"}, {"data": "x", "id": "a\rb"}, {"data": "x", "id": "a\x00"},
    {"data": "x", "event": "a\nb"}, {"data": "x", "event": ""}, {"data": "x", "retry": -1},
    {"comment": "a\nb"},
])
def test_encoder_refuses_field_injection(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        encode_event(**kwargs)  # type: ignore[arg-type]


def test_encoder_refuses_an_empty_block() -> None:
    with pytest.raises(ValueError):
        encode_event()
    with pytest.raises(LocalProtocolError):
        encode_comment("a\rb")


# -- round trip ------------------------------------------------------------------------

_names = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
                 min_size=1, max_size=10)
_data = st.text(st.characters(blacklist_characters="\r", blacklist_categories=("Cs",)),
                max_size=40)
_event = st.tuples(_data, st.none() | _names, st.none() | _names)


@settings(max_examples=200, deadline=None)
@given(st.lists(_event, min_size=1, max_size=8), st.lists(st.integers(0, 400), max_size=6))
def test_round_trip_at_random_split_points(
        events: list[tuple[str, str | None, str | None]], cuts: list[int]) -> None:
    wire = b"".join(encode_event(data, event=name, id=ident) for data, name, ident in events)
    points = sorted({min(c, len(wire)) for c in cuts})
    reads = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    parser = SSEParser()
    parsed = [e for read in reads for e in parser.feed(read)]
    expected = []
    last_id = ""
    for data, name, ident in events:
        if ident is not None:
            last_id = ident
        expected.append((name or "message", data, last_id))
    assert [(e.event, e.data, e.id) for e in parsed] == expected


# -- whole-event reads (the parser's shortcut) against byte-by-byte parsing -----------

_field_line = st.sampled_from([b"data", b"event", b"id", b"retry", b"", b"dat", b"data "]).flatmap(
    lambda name: st.tuples(st.just(name), st.sampled_from([b":", b": ", b":  ", b""]),
                           st.sampled_from([b"", b"x", b" y", b"{\"a\":1}", b"\xff\xfe",
                                            b"123", b"message", b"caf\xc3\xa9",
                                            # a character cut short, at a line's end
                                            b"caf\xc3", b"\xe2\x82"])))
# a read is usually a whole block, sometimes lines of a block still open
_block = st.tuples(st.lists(_field_line, min_size=0, max_size=3), st.booleans()).map(
    lambda read: b"".join(name + colon + value + b"\n" for name, colon, value in read[0])
    + (b"\n" if read[1] else b""))


@settings(max_examples=300, deadline=None)
@given(st.lists(_block, min_size=1, max_size=6), st.booleans())
def test_whole_event_reads_parse_as_byte_by_byte(blocks: list[bytes], bom: bool) -> None:
    """Each block in its own read takes the shortcut where its shape allows; the result
    must be exactly what the general path gives for the same bytes."""
    first = (b"\xef\xbb\xbf" if bom else b"")
    whole, single = SSEParser(), SSEParser()
    # no empty first read: a stream's very first read may take the shortcut as well
    by_block = [e for block in [first, *blocks] if block for e in whole.feed(block)]
    stream = first + b"".join(blocks)
    by_byte = [e for i in range(len(stream)) for e in single.feed(stream[i:i + 1])]
    assert by_block == by_byte
    assert (whole.last_event_id, whole.retry) == (single.last_event_id, single.retry)


def assert_shortcut_parses_as_byte_by_byte(
        reads: list[bytes], bom: bool, take: Callable[[SSEParser, bytes], list[str] | None]
) -> None:
    """Each read goes to ``take`` (a shortcut giving the data of the events it takes,
    or None) and, when it declines, to feed(); the events must be those that parsing
    the same bytes one at a time gives."""
    first = b"\xef\xbb\xbf" if bom else b""
    parser, single = SSEParser(), SSEParser()
    by_read: list[ServerSentEvent] = []
    for read in [first, *reads] if first else reads:
        lines = take(parser, read)
        if lines is None:
            by_read.extend(parser.feed(read))
        else:
            by_read.extend(ServerSentEvent("message", line, parser.last_event_id, parser.retry)
                           for line in lines)
    stream = first + b"".join(reads)
    by_byte = [e for i in range(len(stream)) for e in single.feed(stream[i:i + 1])]
    assert by_read == by_byte
    assert (parser.last_event_id, parser.retry) == (single.last_event_id, single.retry)


def _one_data_line(parser: SSEParser, read: bytes) -> list[str] | None:
    data = parser.feed_data_line(read)
    return None if data is None else [data]


@settings(max_examples=300, deadline=None)
@given(st.lists(_block, min_size=1, max_size=6), st.booleans())
# the reads the shortcut must leave alone: after an open event, with or without data
@example([b"data: open\n", b"data: x\n\n"], False)
@example([b"event: e\n", b"data: x\n\n"], False)
@example([b"data: x\n\n", b"data: x\r", b"\n\n"], True)
def test_data_line_reads_parse_as_byte_by_byte(blocks: list[bytes], bom: bool) -> None:
    """feed_data_line takes only a whole one-line 'data: ' event and leaves anything
    else to feed()."""
    assert_shortcut_parses_as_byte_by_byte(blocks, bom, _one_data_line)


@settings(max_examples=300, deadline=None)
@given(st.lists(_block, min_size=1, max_size=8), st.lists(st.integers(1, 4), max_size=8),
       st.booleans())
@example([b"data: a\n\n", b"data: b\n\n", b"data: [DONE]\n\n"], [3], False)
@example([b"data: a\n\n", b"data: b\n"], [2], False)
@example([b"data: a\n\n", b"\n", b"data: b\n\n"], [3], False)
@example([b"data: a\n\n", b"data:b\n\n"], [2], False)
# invalid UTF-8, a character cut short at the end of an event's data
@example([b"data: caf\xc3\n\n", b"data: \xff\xfe\n\n", b"data: \xe2\x82\n\n"], [3], False)
def test_reads_of_several_data_line_events_parse_as_byte_by_byte(
        blocks: list[bytes], groups: list[int], bom: bool) -> None:
    """Reads of several blocks each: feed_data_lines takes those made only of whole
    one-line 'data: ' events and leaves the rest to feed()."""
    reads, position = [], 0
    for size in [*groups, len(blocks)]:
        if position < len(blocks):
            reads.append(b"".join(blocks[position:position + size]))
            position += size
    assert_shortcut_parses_as_byte_by_byte(reads, bom, SSEParser.feed_data_lines)


def test_a_bom_is_stripped_only_before_the_first_read_the_shortcuts_took() -> None:
    """Once a read was taken, a BOM is part of a field name: no data field."""
    parser = SSEParser()
    assert parser.feed_data_line(b"data: a\n\n") == "a"
    assert parser.feed(b"\xef\xbb\xbfdata: b\n\n") == []
    for first in (b"data: a\n\n", b"event: e\ndata: a\n\n"):
        parser = SSEParser()
        assert [e.data for e in parser.feed(first)] == ["a"]
        assert parser.feed(b"\xef\xbb\xbfdata: b\n\n") == []
    parser = SSEParser()
    assert [e.data for e in parser.feed(b"\xef\xbb\xbfdata: a\n\n")] == ["a"]
    assert parser.feed_data_line(b"data: b\n\n") == "b"


def test_data_line_takes_only_the_simplest_read() -> None:
    parser = SSEParser()
    assert parser.feed_data_line(b"data: first\n\n") == "first"  # "data:": no BOM here
    assert parser.feed_data_line(b'data: {"a":1}\n\n') == '{"a":1}'
    for other in (b"data:x\n\n", b"data: a\ndata: b\n\n", b"data: a\r\n\r\n", b"data: a\n",
                  b"event: e\ndata: a\n\n", b": comment\n\n"):
        assert parser.feed_data_line(other) is None, other
    parser.feed(b"id: 9\n")  # a line with no event: the general path counts until one
    assert parser.feed_data_line(b"data: next\n\n") is None
    assert [(e.data, e.id) for e in parser.feed(b"data: next\n\n")] == [("next", "9")]
    assert parser.feed_data_line(b"data: after\n\n") == "after"
    assert parser.last_event_id == "9"
    parser.feed(b"data: open\n")  # an open event: the next read belongs to it
    assert parser.feed_data_line(b"data: late\n\n") is None
