"""The hand-written body decoders against h11: same bytes, same verdicts."""

from __future__ import annotations

import re
from collections.abc import Callable

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.core import chunked
from sseserver.core.chunked import ChunkedDecoder, LengthDecoder, UntilCloseDecoder
from sseserver.errors import RemoteProtocolError

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def with_h11(body: bytes, reads: list[int]) -> tuple[bytes, bool] | str:
    """What h11 makes of a chunked body: (payload, complete), or 'error'."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(HEAD)
    assert isinstance(conn.next_event(), h11.Response)
    payload, complete = b"", False
    try:
        for piece in split(body, reads):
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.Data):
                    payload += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    complete = True
                    break
            if complete:
                break
    except h11.RemoteProtocolError:
        return "error"
    return payload, complete


def with_ours(body: bytes, reads: list[int]) -> tuple[bytes, bool] | str:
    decoder = ChunkedDecoder()
    payload = b""
    try:
        for piece in split(body, reads):
            payload += b"".join(decoder.feed(piece))
            if decoder.done:
                break
    except RemoteProtocolError:
        return "error"
    return payload, decoder.done


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    # never an empty read: h11 takes b"" for the end of the connection
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)
            if b > a]


def encode(chunks: list[bytes], extension: bytes = b"", trailers: bytes = b"",
           upper: bool = False) -> bytes:
    out = b""
    for chunk in chunks:
        size = b"%X" % len(chunk) if upper else b"%x" % len(chunk)
        out += size + extension + b"\r\n" + chunk + b"\r\n"
    return out + b"0" + extension + b"\r\n" + trailers + b"\r\n"


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=8),
       reads=st.lists(st.integers(0, 3000), max_size=6),
       extension=st.sampled_from([b"", b";a=b", b";x", b";q=\"v\""]),
       trailers=st.sampled_from([b"", b"X-Trailer: 1\r\n", b"A: b\r\nC:d\r\n"]),
       upper=st.booleans())
def test_valid_bodies_decode_as_h11_decodes_them(chunks: list[bytes], reads: list[int],
                                                 extension: bytes, trailers: bytes,
                                                 upper: bool) -> None:
    body = encode(chunks, extension, trailers, upper)
    ours = with_ours(body, reads)
    assert ours == with_h11(body, reads)
    assert ours == (b"".join(chunks), True)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=60), reads=st.lists(st.integers(0, 60), max_size=4))
def test_random_bytes_get_the_same_verdict(body: bytes, reads: list[int]) -> None:
    theirs, ours = with_h11(body, reads), with_ours(body, reads)
    if theirs == "error" or ours == "error":
        assert theirs == ours, (body, theirs, ours)
    else:
        assert ours[0] == theirs[0] and ours[1] == theirs[1]  # type: ignore[index]


@pytest.mark.parametrize("body", [
    b"zz\r\n", b"5\r\nhelloXX0\r\n\r\n", b"-1\r\n", b"1 ;x\r\na\r\n0\r\n\r\n",
    b"0\r\nbad trailer\r\n\r\n", b"1" * 21 + b"\r\n", b"\r\n",
])
def test_malformed_bodies_are_refused_like_h11_refuses_them(body: bytes) -> None:
    assert with_h11(body, []) == "error"
    assert with_ours(body, []) == "error"


@pytest.mark.parametrize("size", [b"0x5", b"0X5", b"+5", b"0_5", b" 5", b"-5", b"5\x00"])
def test_size_fields_int_would_take_are_refused_in_a_whole_chunk_read(size: bytes) -> None:
    """int(field, 16) takes a sign, a 0x prefix, underscores and spaces; the grammar
    takes none of them, whether the read is one whole chunk or not, the first time a
    field is seen or after a good one."""
    body = size + b"\r\nhello\r\n"
    for reads in ([], [len(body)], [2]):
        assert with_h11(body, reads) == "error"
        assert with_ours(body, reads) == "error"
    decoder = ChunkedDecoder()
    assert decoder.feed(b"5\r\nhello\r\n") == [b"hello"]
    with pytest.raises(RemoteProtocolError):
        decoder.feed(body)


def test_the_memo_of_size_fields_stays_bounded() -> None:
    decoder = ChunkedDecoder()
    for size in range(1, chunked._MAX_KNOWN_SIZES + 1000, 7):
        for field in (b"%x" % size, b"%X" % size, b"%04x" % size):
            assert decoder.feed(field + b"\r\n" + b"a" * size + b"\r\n") == [b"a" * size]
    assert len(chunked._KNOWN_SIZES) <= chunked._MAX_KNOWN_SIZES
    assert all(size == int(field, 16) for field, size in chunked._KNOWN_SIZES.items())


def test_bare_cr_in_an_extension_is_accepted_as_h11_does() -> None:
    body = b"1;a\rb\r\nx\r\n0\r\n\r\n"
    assert with_ours(body, []) == with_h11(body, []) == (b"x", True)


def test_bytes_after_the_body_are_kept() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"2\r\nhi\r\n0\r\n\r\nHTTP/1.1 200") == [b"hi"]
    assert decoder.done and decoder.trailing == b"HTTP/1.1 200"


def test_a_huge_size_line_is_refused() -> None:
    decoder = ChunkedDecoder()
    with pytest.raises(RemoteProtocolError, match="too long") as caught:
        decoder.feed(b"1" * 20_000)
    assert caught.value.status_hint == 431  # h11's hint for an over-long incomplete event
    small = ChunkedDecoder(max_line=100)
    assert small.feed(b"1;" + b"x" * 98) == []
    with pytest.raises(RemoteProtocolError, match="too long"):
        small.feed(b"x")


def h11_trailer_status(trailers: bytes) -> int | None:
    """The status h11 hints for a chunked body ending in these trailers (None: fine)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(HEAD + b"0\r\n" + trailers + b"\r\n")
    try:
        while not isinstance(conn.next_event(), h11.EndOfMessage):
            pass
    except h11.RemoteProtocolError as exc:
        return exc.error_status_hint
    return None


@pytest.mark.parametrize(("trailers", "status"), [
    (b"Content-Length: x\r\n", 400),
    (b"Content-Length: 1\r\ncontent-length: 2\r\n", 400),
    (b"Content-Length: 1, 2\r\n", 400),
    (b"Transfer-Encoding: gzip\r\n", 501),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501),
    (b"Content-Length: 1, 1\r\nTransfer-Encoding: Chunked\r\n", None),
])
def test_trailers_follow_the_header_rules_as_in_h11(trailers: bytes, status: int | None
                                                    ) -> None:
    assert h11_trailer_status(trailers) == status
    decoder = ChunkedDecoder()
    if status is None:
        assert decoder.feed(b"0\r\n" + trailers + b"\r\n") == [] and decoder.done
        return
    with pytest.raises(RemoteProtocolError) as caught:
        decoder.feed(b"0\r\n" + trailers + b"\r\n")
    assert caught.value.status_hint == status


def test_length_and_until_close_decoders() -> None:
    length = LengthDecoder(5)
    assert length.feed(b"hel") == [b"hel"] and not length.done
    assert length.feed(b"lo!!") == [b"lo"] and length.done and length.trailing == b"!!"
    assert LengthDecoder(0).done
    until_close = UntilCloseDecoder()
    assert until_close.feed(b"abc") == [b"abc"] and not until_close.done


@settings(max_examples=400, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=4),
       position=st.integers(0, 400), byte=st.binary(min_size=1, max_size=2),
       replace=st.booleans(), reads=st.lists(st.integers(0, 400), max_size=3))
def test_mutated_bodies_get_the_same_verdict(chunks: list[bytes], position: int, byte: bytes,
                                             replace: bool, reads: list[int]) -> None:
    body = encode(chunks)
    at = min(position, len(body))
    body = body[:at] + byte + body[at + (len(byte) if replace else 0):]
    theirs, ours = with_h11(body, reads), with_ours(body, reads)
    if theirs == "error" or ours == "error":
        assert theirs == ours, (body, theirs, ours)
    else:
        assert ours == theirs


def test_trailers_are_judged_when_their_section_is_complete() -> None:
    """h11 waits for the blank line before it looks at trailers: so do we."""
    incomplete = b"0\r\n\x00\r\n"
    assert with_ours(incomplete, []) == with_h11(incomplete, []) == (b"", False)
    complete = incomplete + b"\r\n"
    assert with_ours(complete, []) == with_h11(complete, []) == "error"


@pytest.mark.parametrize(("body", "expected"), [
    (b"1\r\n\x00\r\n0\r\n\x00\n\r\n", "error"),  # a bare LF ends a trailer line
    (b"1\r\n\x00\r\n0\r\n\n\r\n", (b"\x00", True)),  # a bare LF blank line ends it all
    (b"0\r\nA: b\r\n c\r\n\r\n", (b"", True)),  # obs-fold continuation is unfolded
    (b"0\r\n c\r\n\r\n", "error"),  # ...but cannot come first
    (b"0\r\nA: \x00\r\n\r\n", "error"),  # no NUL in a value
])
def test_trailer_edge_cases_match_h11(body: bytes, expected: object) -> None:
    assert with_h11(body, []) == expected
    assert with_ours(body, []) == expected


@settings(max_examples=500, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=20), max_size=3),
       trailers=st.sampled_from([b"", b"A: b\r\n", b"A: b\r\n c\r\n", b"X:\r\n"]),
       mutations=st.lists(st.tuples(
           st.integers(0, 200),
           st.sampled_from([b"\n", b"\r", b" ", b"\t", b"\x00", b":", b";", b"0", b"\r\n"]),
           st.booleans()), max_size=3),
       reads=st.lists(st.integers(0, 200), max_size=3))
def test_framing_mutations_get_the_same_verdict(
        chunks: list[bytes], trailers: bytes, mutations: list[tuple[int, bytes, bool]],
        reads: list[int]) -> None:
    body = encode(chunks, trailers=trailers)
    for position, byte, replace in mutations:
        at = min(position, len(body))
        body = body[:at] + byte + body[at + (len(byte) if replace else 0):]
    theirs, ours = with_h11(body, reads), with_ours(body, reads)
    assert ours == theirs, body


def chunk_boundaries(body: bytes) -> list[int]:
    """The offsets where each framed chunk ends: reads that are one whole chunk each."""
    cuts, position = [], 0
    while True:
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            return cuts
        size_text = body[position:line_end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return cuts
        position = line_end + 2 + size + 2
        cuts.append(position)


@settings(max_examples=400, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=5),
       position=st.integers(0, 400), byte=st.binary(min_size=1, max_size=1),
       upper=st.booleans(), mutate=st.booleans())
def test_one_chunk_per_read_matches_h11(chunks: list[bytes], position: int, byte: bytes,
                                        upper: bool, mutate: bool) -> None:
    """A provider flushes each event as its own chunk, so a read is usually one whole
    chunk: the decoder's shortcut for that case must agree with h11, malformed or not."""
    body = encode(chunks, upper=upper)
    if mutate:
        position %= len(body)
        body = body[:position] + byte + body[position + 1:]
    reads = chunk_boundaries(body)
    assert with_ours(body, reads) == with_h11(body, reads)


SECRET = b"sk-proj-CANARY0123456789abcdefXYZ"


@pytest.mark.parametrize(("body", "rule", "offset"), [
    (b"5\r\nhello\r\n" + SECRET + b"\r\n", "malformed chunk size line", 10),
    (b"5\r\nhello" + SECRET, "not followed by CRLF", 8),
    (b"5\r\nhello\r\n0\r\n" + SECRET + b"\r\n\r\n", "malformed trailer line", 13),
    (b"5\r\nhello\r\n0\r\nContent-Length: " + SECRET + b"\r\n\r\n", "Content-Length", 13),
])
def test_errors_name_the_rule_and_where_the_element_at_fault_begins(
        body: bytes, rule: str, offset: int) -> None:
    """Never the bytes (they may carry a key): the offset counts from the first byte
    of the read that failed, negative when the element began in an earlier read."""
    for cut in (len(body), 1, 4, 9):
        decoder = ChunkedDecoder()
        with pytest.raises(RemoteProtocolError) as caught:
            for at in range(0, len(body), cut):
                fed = at
                decoder.feed(body[at:at + cut])
        assert rule in str(caught.value) and b"CANARY" not in str(caught.value).encode()
        assert caught.value.offset is not None and fed + caught.value.offset == offset, cut


# -- the one interface: feed's shortcut for a whole chunk equals the general path -----

size_fields = st.sampled_from(["{:x}", "{:X}", "0{:x}", "{:x};ext=1", "{:x} ", "{:x}\t"])


@st.composite
def chunk_reads(draw: st.DrawFn) -> list[bytes]:
    """Reads as providers send them: mostly one whole chunk each, sometimes several
    or a piece of one, with the last chunk, trailers, or bytes after the body."""
    body = b""
    for payload in draw(st.lists(st.binary(min_size=0, max_size=40), max_size=8)):
        end = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"ab", b"\n\n"]))
        body += draw(size_fields).format(len(payload)).encode() + b"\r\n" + payload + end
    if draw(st.booleans()):
        body += b"0\r\n" + draw(st.sampled_from([b"", b"X-T: 1\r\n"])) + b"\r\n"
        body += draw(st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n"]))
    body += draw(st.sampled_from([b"", b"zz\r\n", b"\r\n", b"5\r\nab"]))
    whole = [m.end() for m in re.finditer(rb"(?:\r\n|ab|\n\n)(?=[0-9A-Fa-f])", body)]
    cuts = draw(st.one_of(st.just(whole), st.lists(st.integers(0, len(body)), max_size=6)))
    return split(body, cuts)


def outcome(decode: Callable[[bytes], list[bytes]], decoder: ChunkedDecoder,
            data: bytes) -> tuple[object, ...]:
    try:
        pieces = decode(data)
    except RemoteProtocolError as exc:
        return ("error", str(exc), exc.offset, exc.read_before)
    return (pieces, decoder.done, decoder.trailing)


@settings(max_examples=500, deadline=None)
@given(reads=chunk_reads())
def test_the_whole_chunk_shortcut_equals_the_general_path(reads: list[bytes]) -> None:
    assert_feed_equals_the_general_path(reads)


def assert_feed_equals_the_general_path(reads: list[bytes], *, state: bool = False) -> None:
    """feed (its shortcuts) and _decode (the general path) give the same for ``reads``;
    with ``state``, they also leave the same state after each read."""
    fast, general = ChunkedDecoder(), ChunkedDecoder()
    for data in reads:
        ours = outcome(fast.feed, fast, data)
        assert ours == outcome(general._decode, general, data), reads
        if ours[0] == "error":
            break
        if state:
            assert (fast._state, fast._buffer) == (general._state, general._buffer), reads


@pytest.fixture()
def general(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The reads that went the general way (ChunkedDecoder._decode), in order."""
    reads: list[bytes] = []
    decode = ChunkedDecoder._decode

    def counted(self: ChunkedDecoder, data: bytes) -> list[bytes]:
        reads.append(data)
        return decode(self, data)

    monkeypatch.setattr(ChunkedDecoder, "_decode", counted)
    return reads


def test_a_read_of_one_whole_chunk_takes_the_shortcut(general: list[bytes]) -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"5\r\nhello\r\n") == [b"hello"]
    assert decoder.feed(b"2\r\nhi\r\n3\r\nabc\r\n") == [b"hi", b"abc"]
    assert general == [b"2\r\nhi\r\n3\r\nabc\r\n"]  # only the read of two chunks


def test_whole_byte_by_byte_and_with_trailing_data_as_h11() -> None:
    body = b"5\r\nhello\r\n1A;x=y\r\n" + b"z" * 26 + b"\r\n0\r\nX-T: 1\r\n\r\n"
    expected = (b"hello" + b"z" * 26, True)
    for reads in ([], list(range(len(body)))):
        assert with_ours(body, reads) == with_h11(body, reads) == expected
    for reads in ([], list(range(len(body) + 5))):
        decoder = ChunkedDecoder()
        payload = b"".join(b"".join(decoder.feed(piece)) for piece in split(body + b"extra", reads))
        assert payload == expected[0] and decoder.done and decoder.trailing == b"extra"


@st.composite
def ending_reads(draw: st.DrawFn) -> list[bytes]:
    """A body's last read as providers send it, the last chunk with data and the end
    of the body together (or the end alone), and near misses of that shape."""
    payload = draw(st.binary(min_size=0, max_size=40))
    size = draw(size_fields).format(len(payload)).encode()
    chunk = size + b"\r\n" + payload + draw(st.sampled_from([b"\r\n", b"\r\n", b"ab"]))
    end = draw(st.sampled_from([b"0\r\n\r\n", b"0\r\n\r\n", b"00\r\n\r\n", b"0;x\r\n\r\n",
                                b"0\r\nX-T: 1\r\n\r\n", b"0\r\n\r\n0\r\n\r\n"]))
    before = draw(st.sampled_from([[], [b"3\r\nabc\r\n"], [b"3\r\nab"]]))
    return [*before, *draw(st.sampled_from([[chunk + end], [chunk, end], [end]]))]


@settings(max_examples=300, deadline=None)
@given(reads=ending_reads())
def test_the_end_of_body_shortcut_equals_the_general_path(reads: list[bytes]) -> None:
    assert_feed_equals_the_general_path(reads, state=True)


def test_a_last_read_takes_the_shortcut(general: list[bytes]) -> None:
    """A provider's last read, its last events and the end of the body, and the end
    alone, never go the general way."""
    decoder = ChunkedDecoder()
    assert decoder.feed(b"5\r\nhello\r\n0\r\n\r\n") == [b"hello"]
    assert decoder.done and decoder.trailing == b""
    decoder = ChunkedDecoder()
    assert decoder.feed(b"0\r\n\r\n") == [] and decoder.done
    assert decoder.feed(b"more") == [] and decoder.trailing == b"more"
    assert general == [b"more"]  # after the end: kept as trailing, by the general way
