"""Request encoding and response-head parsing by hand, against h11: same bytes, same
verdicts."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseserver.core.http_client import (
    MAX_HEAD_SIZE,
    ResponseHead,
    ResponseHeadParser,
    encode_request,
    first_final_head,
)
from sseserver.errors import LocalProtocolError, RemoteProtocolError

Headers = list[tuple[str, str]]
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
RESERVED = ("host", "content-length", "transfer-encoding")


# -- requests ------------------------------------------------------------------------

def h11_request(method: str, target: str, host: str, headers: Headers,
                body: bytes) -> bytes | str:
    """The bytes h11 sends for the request, or 'error' when it refuses it."""
    client = h11.Connection(h11.CLIENT)
    try:
        request = h11.Request(method=method, target=target, headers=[
            ("host", host), *headers, ("content-length", str(len(body)))])
        return b"".join(client.send(event) or b"" for event in (
            request, h11.Data(data=body), h11.EndOfMessage()))
    except (h11.LocalProtocolError, UnicodeEncodeError):
        return "error"


def ours_request(method: str, target: str, host: str, headers: Headers,
                 body: bytes) -> bytes | str:
    try:
        return encode_request(method, target, host, headers, body)
    except LocalProtocolError:
        return "error"


def read_by_h11_server(data: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    body = b""
    while not isinstance(event := server.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data)
        body += event.data
    return request.method, request.target, list(request.headers), body


tokens = st.text(TOKEN_CHARS, min_size=1, max_size=16)
names = tokens.filter(lambda name: name.lower() not in RESERVED)
# What h11 sends in a value: ASCII without NUL, CR, LF, VT, FF; inner spaces and tabs.
VALUE_CHARS = "".join(chr(c) for c in range(0x80) if chr(c) not in "\x00\t\n\x0b\x0c\r ")


@st.composite
def request_values(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.text(VALUE_CHARS, min_size=1, max_size=8), max_size=4))
    gaps = st.sampled_from([" ", "\t", "  ", " \t"])
    return "".join(word if not i else draw(gaps) + word for i, word in enumerate(words))


targets = st.text("".join(chr(c) for c in range(0x21, 0x7f)), min_size=1, max_size=30)


@settings(max_examples=250, deadline=None)
@given(method=tokens, target=targets, host=request_values(),
       headers=st.lists(st.tuples(names, request_values()), max_size=8),
       body=st.binary(max_size=64))
def test_a_valid_request_is_byte_for_byte_what_h11_sends(
        method: str, target: str, host: str, headers: Headers, body: bytes) -> None:
    ours = encode_request(method, target, host, headers, body)
    assert ours == h11_request(method, target, host, headers, body)
    assert read_by_h11_server(ours) == (
        method.encode(), target.encode(),
        [(b"host", host.encode()),
         *[(name.lower().encode(), value.encode()) for name, value in headers],
         (b"content-length", str(len(body)).encode())],
        body)


@settings(max_examples=150, deadline=None)
@given(heads=st.lists(st.tuples(tokens, targets, request_values()), min_size=1, max_size=3),
       fields=st.lists(st.lists(st.tuples(names, request_values()), max_size=4).map(tuple),
                       min_size=1, max_size=3),
       order=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.booleans()),
                      min_size=1, max_size=12))
def test_requests_with_the_same_headers_object_are_each_what_h11_sends(
        heads: list[tuple[str, str, str]], fields: list[Headers],
        order: list[tuple[int, int, bool]]) -> None:
    """A request with the very headers tuple of the one before takes that one's head
    (no table key built): whatever the requests in between, each is what h11 sends
    for it, and what the general path (the same fields in a list) makes."""
    for head_at, fields_at, as_list in order:
        method, target, host = heads[head_at % len(heads)]
        headers = fields[fields_at % len(fields)]
        sent = list(headers) if as_list else headers
        ours = encode_request(method, target, host, sent, b"{}")
        assert ours == h11_request(method, target, host, list(headers), b"{}")
        assert ours == encode_request(method, target, host, list(headers), b"{}")


def test_a_tuple_with_a_field_as_a_list_is_built_each_time() -> None:
    fields = (("x-a", "1"), ["x-b", "2"])
    for value in ("2", "3"):
        fields[1][1] = value  # type: ignore[index]
        assert encode_request("POST", "/", "h", fields, b"").endswith(  # type: ignore[arg-type]
            f"x-b: {value}\r\ncontent-length: 0\r\n\r\n".encode())


# Legal characters with the ones h11 refuses somewhere mixed in.
MIXED = "aZ09-/.:; \t\r\n\x00\x0b\x0c\x01\x7f(é\u2603"
mixed = st.text(MIXED, max_size=8)


@settings(max_examples=300, deadline=None)
@given(method=st.one_of(tokens, mixed), target=st.one_of(targets, mixed),
       host=st.one_of(request_values(), mixed),
       headers=st.lists(st.tuples(st.one_of(names, mixed.filter(
           lambda name: name.lower() not in RESERVED)), st.one_of(request_values(), mixed)),
           max_size=3))
def test_a_request_is_refused_exactly_when_h11_refuses_it(
        method: str, target: str, host: str, headers: Headers) -> None:
    ours = ours_request(method, target, host, headers, b"{}")
    assert ours == h11_request(method, target, host, headers, b"{}")


def test_request_bytes() -> None:
    assert encode_request("POST", "/v1/chat?x=1", "api.example:8443",
                          [("Content-Type", "application/json"), ("x-a", "")], b"{}") == (
        b"POST /v1/chat?x=1 HTTP/1.1\r\nhost: api.example:8443\r\n"
        b"Content-Type: application/json\r\nx-a: \r\ncontent-length: 2\r\n\r\n{}")


@pytest.mark.parametrize("name", ["host", "Host", "CONTENT-LENGTH", "Transfer-Encoding"])
def test_headers_we_write_ourselves_are_refused_from_the_caller(name: str) -> None:
    with pytest.raises(LocalProtocolError, match="written by encode_request"):
        encode_request("GET", "/", "h", [(name, "1")], b"")


@pytest.mark.parametrize(("method", "target", "host", "headers"), [
    ("", "/", "h", []),  # empty method
    ("GET /", "/", "h", []),  # a space in the method
    ("GET", "/a b", "h", []),  # whitespace in the target
    ("GET", "/\x7f", "h", []),  # a control in the target
    ("GET", "", "h", []),  # empty target
    ("GET", "/", "h\r\nx-injected: 1", []),  # CR LF in the host
    ("GET", "/", "h", [("x-a", "1\r\nx-injected: 1")]),  # ...in a value
    ("GET", "/", "h", [("x-a", "1\n")]),  # a bare LF
    ("GET", "/", "h", [("x-a", "a\x00b")]),  # NUL
    ("GET", "/", "h", [("x-a", " padded")]),  # whitespace h11 will not send
    ("GET", "/", "h", [("x-a", "padded\t")]),
    ("GET", "/", "h", [("x a", "1")]),  # a name that is not a token
    ("GET", "/", "h", [("x-a: b", "1")]),  # a colon inside a name
    ("GET", "/", "h", [("", "1")]),
    ("GET", "/", "h", [("x-a", "caf\xe9")]),  # beyond ASCII
])
def test_a_request_h11_refuses_is_refused(method: str, target: str, host: str,
                                          headers: Headers) -> None:
    assert h11_request(method, target, host, headers, b"") == "error"
    with pytest.raises(LocalProtocolError):
        encode_request(method, target, host, headers, b"")


def test_a_refused_name_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(LocalProtocolError):
            encode_request("GET", "/", "h", [("x:a", "1")], b"")


# -- responses -----------------------------------------------------------------------

Verdict = tuple[int, str, str, Headers, bytes] | str
REQUEST = h11.Request(method="POST", target="/", headers=[("host", "t"), ("content-length", "2")])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    # never an empty read: h11 takes b"" for the end of the connection
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)
            if b > a]


def h11_response(data: bytes, cuts: list[int]) -> Verdict:
    """What an h11 client that sent a request makes of ``data``: the final head and
    the bytes after it, 'incomplete', or 'error'."""
    client = h11.Connection(h11.CLIENT)
    for event in (REQUEST, h11.Data(data=b"{}"), h11.EndOfMessage()):
        client.send(event)
    head = None
    try:
        for piece in split(data, cuts):
            client.receive_data(piece)
            while head is None:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.Response):
                    head = event
    except h11.RemoteProtocolError:
        return "error"
    if head is None:
        return "incomplete"
    fields = [(name.decode("latin-1").lower(), value.decode("latin-1"))
              for name, value in head.headers.raw_items()]
    return (head.status_code, head.http_version.decode(), head.reason.decode("latin-1"),
            fields, client.trailing_data[0])


def ours_response(data: bytes, cuts: list[int]) -> Verdict:
    parser = ResponseHeadParser()
    head = None
    try:
        for piece in split(data, cuts):
            head = parser.feed(piece)
    except RemoteProtocolError:
        return "error"
    if head is None:
        return "incomplete"
    assert head.headers == dict(head.fields)
    return head.status, head.http_version, head.reason, head.fields, parser.rest


# Field text as h11 reads it: all of Latin-1 but NUL, LF, VT, FF, CR and the
# whitespace that OWS would strip at either end.
TEXT_CHARS = "".join(chr(c) for c in range(0x100) if chr(c) not in "\x00\n\x0b\x0c\r \t")
words = st.text(TEXT_CHARS, min_size=1, max_size=6)
ows = st.sampled_from(["", " ", "\t", "  ", " \t "])
line_ends = st.sampled_from(["\r\n", "\n"])


@st.composite
def field_lines(draw: st.DrawFn) -> str:
    """One field line, its value maybe folded over continuation lines."""
    name = draw(st.one_of(names, st.sampled_from(
        ["Content-Length", "Transfer-Encoding", "Connection", "content-type"])))
    if name.lower() == "content-length":
        length = str(draw(st.integers(0, 10**6)))
        value = draw(st.sampled_from([length, f"{length}, {length}", f"{length},{length}"]))
    elif name.lower() == "transfer-encoding":
        value = draw(st.sampled_from(["chunked", "Chunked", "CHUNKED"]))
    else:
        value = draw(st.lists(words, max_size=4).map(" ".join))
    parts = value.split(" ")
    text = f"{name}:{draw(ows)}{parts[0]}"
    for part in parts[1:]:
        if draw(st.booleans()):  # obs-fold: the line breaks here and goes on indented
            text += draw(ows) + draw(line_ends) + draw(st.sampled_from([" ", "\t", "  \t"]))
        else:
            text += draw(st.sampled_from([" ", "\t", " \t"]))
        text += part
    return text + draw(ows) + draw(line_ends)


@st.composite
def response_heads(draw: st.DrawFn, status: st.SearchStrategy[int]) -> str:
    version = draw(st.sampled_from(["1.1", "1.1", "1.0", "2.0", "0.9"]))
    line = f"HTTP/{version} {draw(status):03d}"
    reason = draw(st.one_of(st.none(), st.text(TEXT_CHARS + " \t", max_size=12)))
    if reason is not None:
        line += " " + reason
    fields = draw(st.lists(field_lines(), max_size=6))
    # h11 refuses a second Transfer-Encoding, and Content-Lengths that disagree
    framing = [f for f in fields if f.lower().startswith(("transfer-encoding:", "content-length:"))]
    if len(framing) > 1:
        fields = [f for f in fields if f not in framing]
    return line + draw(line_ends) + "".join(fields) + draw(line_ends)


interim_status = st.sampled_from([100, 102, 103, 150, 199])
final_status = st.integers(200, 999)


@settings(max_examples=300, deadline=None)
@given(interim=st.lists(response_heads(interim_status), max_size=2),
       final=response_heads(final_status), body=st.binary(max_size=40),
       cuts=st.lists(st.integers(0, 600), max_size=6))
def test_valid_heads_parse_as_h11_parses_them(interim: list[str], final: str, body: bytes,
                                              cuts: list[int]) -> None:
    data = "".join([*interim, final]).encode("latin-1") + body
    ours = ours_response(data, cuts)
    assert ours == h11_response(data, cuts)
    assert isinstance(ours, tuple) and ours[4] == body


MUTATIONS = [b"\n", b"\r", b" ", b"\t", b"\x00", b":", b"\x0b", b"\x0c", b"\x01", b"\xff",
             b",", b"1", b"H", b"\r\n", b"\n\n", b"\r\n ", b"\n\t", b"", b"x y"]


@settings(max_examples=300, deadline=None)
@given(interim=st.lists(response_heads(interim_status), max_size=1),
       final=response_heads(final_status),
       mutations=st.lists(st.tuples(st.integers(0, 300), st.sampled_from(MUTATIONS),
                                    st.integers(0, 2)), min_size=1, max_size=3),
       cuts=st.lists(st.integers(0, 300), max_size=4))
def test_mutated_heads_get_the_same_verdict(interim: list[str], final: str,
                                            mutations: list[tuple[int, bytes, int]],
                                            cuts: list[int]) -> None:
    data = "".join([*interim, final]).encode("latin-1") + b"body"
    for position, insert, remove in mutations:
        at = min(position, len(data))
        data = data[:at] + insert + data[at + remove:]
    assert ours_response(data, cuts) == h11_response(data, cuts), data


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=60), cuts=st.lists(st.integers(0, 60), max_size=3))
def test_random_bytes_get_the_same_verdict(data: bytes, cuts: list[int]) -> None:
    for candidate in (data, b"HTTP/1.1 200 OK\r\n" + data):
        assert ours_response(candidate, cuts) == h11_response(candidate, cuts), candidate


HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n")


def test_a_head_whole_byte_by_byte_and_with_the_body_behind_it() -> None:
    expected = (200, "1.1", "OK", [("content-type", "text/event-stream"),
                                   ("transfer-encoding", "chunked"), ("x-a", "1"),
                                   ("x-a", "2")], b"5\r\nhello")
    data = HEAD + b"5\r\nhello"
    assert ours_response(data, []) == h11_response(data, []) == expected
    assert ours_response(data, list(range(len(data)))) == expected
    head = ResponseHeadParser().feed(data)
    assert head is not None
    # a repeated field keeps its last value, as the upstream client has always read it
    assert head.headers == {"content-type": "text/event-stream",
                            "transfer-encoding": "chunked", "x-a": "2"}


def test_incomplete_then_complete() -> None:
    parser = ResponseHeadParser()
    assert parser.feed(HEAD[:30]) is None and parser.buffered == 30
    assert "buffered=30" in repr(parser)
    assert parser.feed(HEAD[30:-1]) is None
    head = parser.feed(HEAD[-1:] + b"x")
    assert head is not None and head.status == 200 and parser.rest == b"x"
    assert parser.feed(b"yz") is head and parser.rest == b"xyz"
    assert repr(parser) == "<ResponseHeadParser done interim=0>"


def test_interim_responses_are_skipped() -> None:
    data = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            + HEAD + b"rest")
    parser = ResponseHeadParser()
    assert parser.feed(data[:25]) is None and parser.buffered == 0
    head = parser.feed(data[25:])
    assert head is not None and head.status == 200 and parser.interim == 2
    assert parser.rest == b"rest"
    assert ours_response(data, [25, 30]) == h11_response(data, [25, 30])


def test_head_fields_and_defaults() -> None:
    data = b"HTTP/1.0 404\nA:  x  y \n  folded\nb:\n\n"
    head = ResponseHeadParser().feed(data)
    # the fold becomes one space, after the space that ended the line
    assert head == ResponseHead(404, {"a": "x  y  folded", "b": ""}, "1.0", "",
                                [("a", "x  y  folded"), ("b", "")])
    assert ours_response(data, []) == h11_response(data, [])
    assert ResponseHead(200, {}).http_version == "1.1"


ACCEPTED, REFUSED = "accepted", "refused"


@pytest.mark.parametrize(("data", "verdict"), [
    (b"HTTP/1.1 200 OK\n\n", ACCEPTED),  # bare LF line endings
    (b"HTTP/1.1 200 OK\r\n\n", ACCEPTED),  # mixed endings
    (b"HTTP/1.1 200\r\n\r\n", ACCEPTED),  # no reason phrase
    (b"HTTP/1.1 200 \r\n\r\n", ACCEPTED),  # an empty one
    (b"HTTP/1.1 200 A\tB \xe9\x01\r\n\r\n", ACCEPTED),  # tab, obs-text, controls h11 allows
    (b"HTTP/9.9 999 X\r\n\r\n", ACCEPTED),  # any version and three-digit status
    (b"HTTP/1.1 200 OK\r\nA: b\r\n  c\r\n\td\r\n\r\n", ACCEPTED),  # obs-fold
    (b"HTTP/1.1 200 OK\r\nA: \x01\x7f\xff\r\n\r\n", ACCEPTED),
    (b"HTTP/1.1 200 OK\r\nA:\r\n\r\n", ACCEPTED),  # an empty value
    (b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\ncontent-length: 7\r\n\r\n", ACCEPTED),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\nContent-Length: 3\r\n\r\n", ACCEPTED),
    (b"HTTP/1.1 200 OK\r\n  A: b\r\n\r\n", REFUSED),  # continuation before any field
    (b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n", REFUSED),  # whitespace before the colon
    (b"HTTP/1.1 200 OK\r\nA b: c\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\n: b\r\n\r\n", REFUSED),  # no name
    (b"HTTP/1.1 200 OK\r\nA\r\n\r\n", REFUSED),  # no colon
    (b"HTTP/1.1 200 OK\r\nA: b\x00\r\n\r\n", REFUSED),  # NUL
    (b"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", REFUSED),  # a lone CR
    (b"HTTP/1.1 200 OK\r\nA: b\x0bc\r\n\r\n", REFUSED),  # VT
    (b"HTTP/1.1 200 OK\r\nA: b\r\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\n\xe9: b\r\n\r\n", REFUSED),  # a name beyond ASCII
    (b"HTTP/1.1 200OK\r\n\r\n", REFUSED),
    (b"HTTP/1.1 20 OK\r\n\r\n", REFUSED),
    (b"HTTP/1.1 2000 OK\r\n\r\n", REFUSED),
    (b"HTTP/1.1  200 OK\r\n\r\n", REFUSED),
    (b"HTTP/1.1 099 Low\r\n\r\n", REFUSED),  # below 100
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", REFUSED),  # we never ask to switch
    (b"http/1.1 200 OK\r\n\r\n", REFUSED),
    (b"HTTP/11 200 OK\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 O\x00K\r\n\r\n", REFUSED),
    (b"\r\nHTTP/1.1 200 OK\r\n\r\n", REFUSED),  # an empty line first
    (b"\x16\x03\x01\x02\x00", REFUSED),  # TLS: refused before a line is complete
    (b"SSH-2.0-OpenSSH\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1" + b"0" * 20 + b"\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", REFUSED),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     REFUSED),
    (b"HTTP/1.1 100 Continue\r\nContent-Length: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", REFUSED),
])
def test_each_rule_as_h11_has_it(data: bytes, verdict: str) -> None:
    for cuts in ([], list(range(len(data)))):
        theirs, ours = h11_response(data, cuts), ours_response(data, cuts)
        assert ours == theirs
        assert (REFUSED if ours == "error" else ACCEPTED) == verdict


def test_the_size_limit_is_h11s_strictest_whatever_the_reads() -> None:
    def head_of(size: int) -> bytes:
        start, end = b"HTTP/1.1 200 OK\r\nX: ", b"\r\n\r\n"
        return start + b"a" * (size - len(start) - len(end)) + end

    longest, too_long = head_of(MAX_HEAD_SIZE + 1), head_of(MAX_HEAD_SIZE + 2)
    # h11 measures a head only while it is incomplete: one read short of the end is
    # the worst case it sees
    assert h11_response(longest, [len(longest) - 1]) != "error"
    assert h11_response(too_long, [len(too_long) - 1]) == "error"
    assert h11_response(too_long, []) != "error"  # in one read h11 lets it pass
    for cuts in ([], [len(longest) - 1], [100, 9000]):
        assert ours_response(longest, cuts) != "error"
        assert ours_response(too_long, cuts) == "error"


def test_an_endless_head_is_refused_before_it_ends() -> None:
    parser = ResponseHeadParser(max_size=1000)
    assert parser.feed(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 150) is None
    with pytest.raises(RemoteProtocolError, match="longer than 1000 bytes"):
        parser.feed(b"X: y\r\n" * 20)


SECRET = "sk-proj-CANARY0123456789abcdefXYZ"
# A refused head, the rule its message names, and the offset of the byte at fault.
REFUSED_HEADS = [
    (f"HTTP/1.1 2x0 {SECRET}\r\n\r\n", "status code is not three digits", 9),
    (f"HTTX/1.1 200 {SECRET}\r\n\r\n", "does not start with HTTP/", 0),
    (f"HTTP/1 200 {SECRET}\r\n\r\n", "HTTP version", 5),
    (f"HTTP/1.1 200 {SECRET}\x00\r\n\r\n", "control character in the reason", 13 + len(SECRET)),
    (f"HTTP/1.1 200 OK\r\nC: d\r\n{SECRET} : b\r\n\r\n", "header line 2: the name", 23),
    (f"HTTP/1.1 200 OK\r\nX-Key {SECRET}\r\n\r\n", "header line 1: no colon", 17),
    (f"HTTP/1.1 200 OK\r\nX: {SECRET}\x00\r\n\r\n", "header line 1: a forbidden", 17),
    (f"HTTP/1.1 100 Go\r\n\r\nHTTP/1.1 200 OK\r\n{SECRET}\r\n\r\n", "header line 1", 36),
    ("HTTP/1.1 200 OK\r\n b\r\n\r\n", "continuation", 17),
    (f"HTTP/1.1 200 OK\r\nContent-Length: 1, {SECRET}\r\n\r\n", "Content-Length", None),
    (f"HTTP/1.1 200 OK\r\nTransfer-Encoding: {SECRET}\r\n\r\n", "Transfer-Encoding", None),
    (f"\x16\x03{SECRET}\r\n\r\n", "not an HTTP message", 0),
    (f"HTTP/1.1 200 OK\r\n{'X: ' + SECRET + chr(13) + chr(10)}" * 500, "head longer than",
     16384),
]


@pytest.mark.parametrize(("head", "rule", "offset"), REFUSED_HEADS)
def test_errors_name_the_rule_and_the_offset_never_the_bytes(head: str, rule: str,
                                                             offset: int | None) -> None:
    """The head may carry a key (a proxy echoing the request): its message reaches
    logs and clients, so it says which rule broke and where, and quotes nothing."""
    data = head.encode("latin-1")
    for cut in (len(data), 1, 5, 20):  # in one read, and split at several points
        parser = ResponseHeadParser()
        fed = 0
        with pytest.raises(RemoteProtocolError) as caught:
            for at in range(0, len(data), cut):
                fed = at
                parser.feed(data[at:at + cut])
        message = str(caught.value)
        assert rule in message and "sk-" not in message and "CANARY" not in message
        absolute = None if caught.value.offset is None else fed + caught.value.offset
        assert absolute == offset, cut


# Every message a refused head can get: the rules, in fixed words (h11's own messages
# quote the head, so none of them may pass through).
FIXED_MESSAGES = (
    "malformed status line: ", "malformed header line ", "a continuation line before",
    "a status code below 100", "101 Switching Protocols without an Upgrade request",
    "conflicting Content-Length", "invalid Content-Length", "multiple Transfer-Encoding",
    "unsupported Transfer-Encoding", "not an HTTP message", "head longer than",
    "malformed response head",
)


@settings(max_examples=300, deadline=None)
@given(final=response_heads(final_status),
       at=st.integers(0, 300), secret_at=st.integers(0, 300),
       insert=st.sampled_from(MUTATIONS), cuts=st.lists(st.integers(0, 300), max_size=3))
def test_a_refusal_is_in_fixed_words_wherever_the_secret_sits(
        final: str, at: int, secret_at: int, insert: bytes, cuts: list[int]) -> None:
    data = final.encode("latin-1")
    secret_at = min(secret_at, len(data))
    data = data[:secret_at] + SECRET.encode() + data[secret_at:]
    at = min(at, len(data))
    data = data[:at] + insert + data[at:]
    parser = ResponseHeadParser()
    try:
        for piece in split(data, cuts):
            parser.feed(piece)
    except RemoteProtocolError as exc:
        message = str(exc)
        assert message.startswith(FIXED_MESSAGES), message
        assert "CANARY" not in message and "sk-" not in message


def test_a_head_h11_alone_refuses_gets_the_general_words() -> None:
    """h11 reads the head; where it refuses by a rule the grammar here does not spell
    out, the message is the general one, without an offset."""
    from sseserver.core import http_client

    refused = http_client._refusal(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n")
    assert str(refused) == "malformed response head" and refused.offset is None


def test_h11_reads_the_head(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser's verdicts are h11's: a head is given to an h11 client connection."""
    readers: list[h11.Connection] = []

    class Recording(h11.Connection):
        def __init__(self, role: type[h11.CLIENT]) -> None:
            super().__init__(role)
            readers.append(self)

    monkeypatch.setattr(h11, "Connection", Recording)
    assert ResponseHeadParser().feed(HEAD) is not None
    assert len(readers) == 1 and readers[0].their_state is h11.SEND_BODY


def h11_final_head_after_request(head: bytes) -> Verdict:
    """``head`` (one whole head) read by an h11 client after a request: its verdict."""
    client = h11.Connection(h11.CLIENT)
    client.send(REQUEST)
    client.receive_data(head)
    try:
        event = client.next_event()
    except h11.RemoteProtocolError:
        return "error"
    if not isinstance(event, h11.Response):
        return "not final"
    return (event.status_code, event.http_version.decode(), event.reason.decode("latin-1"),
            [(name.decode("latin-1").lower(), value.decode("latin-1"))
             for name, value in event.headers.raw_items()], b"")


def final_head_told_of_no_request(head: bytes) -> Verdict:
    from sseserver.core.http_client import _read_final_head

    final = _read_final_head(head)
    if final is None:
        return "not taken"
    return final.status, final.http_version, final.reason, final.fields, b""


@settings(max_examples=500, deadline=None)
@given(head=st.one_of(response_heads(st.one_of(interim_status, final_status,
                                                st.sampled_from([101, 0, 99]))),
                      st.binary(max_size=80).map(lambda data: b"HTTP/1.1 200 OK\r\n" + data)),
       mutations=st.lists(st.tuples(st.integers(0, 300), st.sampled_from(MUTATIONS),
                                    st.integers(0, 2)), max_size=2))
def test_a_head_read_before_any_request_is_read_as_after_one(
        head: str | bytes, mutations: list[tuple[int, bytes, int]]) -> None:
    """The first head goes to an h11 told of no request (it costs a fifth less): what
    it takes as a final head, h11 after a request takes alike, and every final head
    h11 after a request takes, it takes too. Anything else (interim, refused) is read
    again after a request, which decides."""
    data = head.encode("latin-1") if isinstance(head, str) else head
    for position, insert, remove in mutations:
        at = min(position, len(data))
        data = data[:at] + insert + data[at + remove:]
    data = data.split(b"\r\n\r\n")[0].split(b"\n\n")[0] + b"\r\n\r\n"  # one whole head
    ours, reference = final_head_told_of_no_request(data), h11_final_head_after_request(data)
    if isinstance(reference, tuple):
        assert ours == reference, data
    else:
        assert ours == "not taken", data



def first_read_verdicts(data: bytes) -> tuple[Verdict | None, Verdict, int]:
    """first_final_head's reading of ``data`` (None: not taken), a parser's reading of
    it fed in one read, and the interim heads the parser skipped. A refusal is its
    message and offset."""
    try:
        first = first_final_head(data)
    except RemoteProtocolError as exc:
        ours: Verdict | None = f"error: {exc} at {exc.offset}"
    else:
        ours = None if first is None else (
            first[0].status, first[0].http_version, first[0].reason, first[0].fields,
            first[1])
    parser = ResponseHeadParser()
    try:
        head = parser.feed(data)
    except RemoteProtocolError as exc:
        return ours, f"error: {exc} at {exc.offset}", parser.interim
    parsed: Verdict = "incomplete" if head is None else (
        head.status, head.http_version, head.reason, head.fields, parser.rest)
    return ours, parsed, parser.interim


@settings(max_examples=500, deadline=None)
@given(interim=st.lists(response_heads(interim_status), max_size=1),
       final=response_heads(st.one_of(final_status, st.sampled_from([101, 0, 99]))),
       body=st.binary(max_size=20),
       mutations=st.lists(st.tuples(st.integers(0, 300), st.sampled_from(MUTATIONS),
                                    st.integers(0, 2)), max_size=2),
       cut=st.one_of(st.none(), st.integers(1, 300)))
def test_a_first_final_head_is_the_parsers_reading_of_the_same_read(
        interim: list[str], final: str, body: bytes,
        mutations: list[tuple[int, bytes, int]], cut: int | None) -> None:
    """What first_final_head takes from a response's first read (the upstream
    connection's way to a head without a parser) is what a parser fed that read gives:
    the same head and bytes after it, or the same refusal in the same words; and it
    leaves to the parser only what is no final head whole at the read's start (an
    interim head first, a head not ended, one h11 refuses)."""
    data = "".join([*interim, final]).encode("latin-1") + body
    for position, insert, remove in mutations:
        at = min(position, len(data))
        data = data[:at] + insert + data[at + remove:]
    data = data[:cut]  # a first read that may end anywhere, in the head too
    if not data:
        return  # a read is never empty (b"" is the end of the connection)
    ours, parsed, skipped = first_read_verdicts(data)
    if ours is not None:
        assert ours == parsed
    if isinstance(parsed, tuple):
        assert parsed[:4] == h11_response(data, [])[:4]  # type: ignore[index]
        if not skipped:  # the final head came first, whole: taken without a parser
            assert ours == parsed
    elif parsed.startswith("error") and ours is None:  # refused later, by h11: a head
        assert not isinstance(h11_response(data, []), tuple)  # no read takes


def test_field_names_are_read_from_a_bounded_table_as_they_decode() -> None:
    """A field name's text comes from a table of names already read: the same text as
    decoding it afresh, whatever its case as sent, and the table never holds more than
    its bound, however many new names a peer sends."""
    from sseserver.core import http_client

    def head(names: list[str]) -> bytes:
        return ("HTTP/1.1 200 OK\r\n" + "".join(f"{name}: v\r\n" for name in names)
                + "\r\n").encode("latin-1")

    names = ["Content-Type", "content-type", "X-Request-ID", "X-MiXeD"]
    for _ in range(2):  # read afresh, then from the table
        read = ResponseHeadParser().feed(head(names))
        assert read is not None and [name for name, _ in read.fields] == \
            ["content-type", "content-type", "x-request-id", "x-mixed"]
    limit = http_client._MAX_FIELD_NAMES
    for start in range(0, limit * 2, 50):
        many = [f"x-new-{number}" for number in range(start, start + 50)]
        read = ResponseHeadParser().feed(head(many))
        assert read is not None and [name for name, _ in read.fields] == many
        assert len(http_client._field_names) <= limit
