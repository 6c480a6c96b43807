"""HTTP/1.1 response heads, sans-IO: the bytes the server sends before a body.

h11 takes ~0.15 ms to validate and send a streamed response's head, a third of a
stream's setup; the head is built here with one string format and checked with one
pass instead. Header names are RFC 9110 tokens; values may not carry control
characters other than tab, so nothing a handler echoes (an Origin, a requested header
list) can split the head or inject a header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from http import HTTPStatus

from sseserver.errors import LocalProtocolError

_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# CR and LF are counted instead: each may appear only as the end of a line.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Any control character but tab in a value: CR and LF split the head, the rest no
# client may be sent (RFC 9110 §5.5).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Names already checked; a server sends a small fixed set of them.
_valid_names: set[str] = set()
_MAX_CACHED_NAMES = 256
# Field lines checked and encoded, by their (name, value) pair: the fixed lines of the
# server's responses are a few dozen; each stream's id line passes through, and the
# table starts afresh when it is full (a re-check of the fixed lines, once per this
# many streams).
_MAX_LINES = 512
_lines: dict[tuple[str, str], bytes] = {}
_status_lines: dict[int, bytes] = {}
# Heads of fixed lines around two spliced values (a stream's head: its id, the date),
# by their fixed parts: a few per output format and CORS origin; the table starts
# afresh when full, as the lines' table does.
_MAX_TEMPLATES = 256
_templates: dict[tuple[object, ...], tuple[bytes, bytes, bytes]] = {}

# RFC 9110 §15: every status the server sends carries its registered reason phrase
# (an empty one is legal, but some load tools count it as a failure,
# reference/http-hardening.md). http.HTTPStatus has the registry as Python 3.11 knows
# it; RFC 9110 renamed four of them (Python 3.13 has the new names).
REASONS: dict[int, str] = {
    **{status.value: status.phrase for status in HTTPStatus},
    413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}
# RFC 9110 §15: a client takes an unregistered status as the x00 of its class; its
# phrase names the class, as §15.1-§15.6 title them.
_CLOSE = ("connection", "close")
_CLASS_REASONS = {1: "Informational", 2: "Successful", 3: "Redirection",
                  4: "Client Error", 5: "Server Error"}


def reason_phrase(status: int) -> str:
    """The reason phrase of ``status``: its registered one, else its class's name."""
    reason = REASONS.get(status)
    if reason is None:
        reason = _CLASS_REASONS.get(status // 100, "Unregistered")
    return reason


def encode_response_head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
    """``HTTP/1.1 status reason``, the header lines and the blank line, as bytes.

    Raises :class:`LocalProtocolError` for a status outside 100-999, a name that is
    not a token, or a value with a control character (CR, LF and NUL included) or a
    character beyond Latin-1.

    A field line is checked and encoded once and then found by its (name, value) pair:
    a stream's head repeats all its lines but its id (the date changes once a second),
    and the checks of a whole head cost ~10,000 instructions. Lines given otherwise (a
    pair as a list) are built each time.
    """
    status_line = _status_lines.get(status)
    if status_line is None:
        status_line = _status_line(status)
    parts = [status_line]
    lines = _lines
    for pair in headers:
        line = lines.get(pair) if type(pair) is tuple else None
        if line is None:
            line = _checked_line(pair, headers)
            if type(pair) is tuple:
                if len(lines) >= _MAX_LINES:  # a line of each stream's id fills it
                    lines.clear()
                lines[pair] = line
        parts.append(line)
    parts.append(b"\r\n")
    return b"".join(parts)


def encode_spliced_head(status: int, before: tuple[tuple[str, str], ...],
                        spliced: tuple[str, str], after: tuple[tuple[str, str], ...],
                        date: str, close: bool) -> bytes:
    """``encode_response_head(status, [*before, spliced, *after, ("date", date)])``, with
    ``("connection", "close")`` last if ``close``, and the same errors.

    Once such a head was encoded, its fixed lines are known good, and a head of the
    same fixed lines is their bytes with the spliced value and the date put in, when
    both are printable ASCII (nothing to check, nothing to encode but ASCII): a
    stream's head costs ~7k instructions, where finding and checking its lines cost
    ~17k."""
    key = (status, before, spliced[0], after, close)
    template = _templates.get(key)
    value = spliced[1]
    if template is not None and value.isascii() and value.isprintable() and \
            date.isascii() and date.isprintable():
        start, middle, end = template
        return b"".join((start, value.encode(), middle, date.encode(), end))
    end_lines = (_CLOSE,) if close else ()
    head = encode_response_head(status, [*before, spliced, *after, ("date", date), *end_lines])
    if len(_templates) >= _MAX_TEMPLATES:
        _templates.clear()
    _templates[key] = (
        b"".join([_status_lines[status], *_lines_of(before), f"{spliced[0]}: ".encode("latin-1")]),
        b"".join([b"\r\n", *_lines_of(after), b"date: "]),
        b"".join([b"\r\n", *_lines_of(end_lines), b"\r\n"]))
    return head


def _lines_of(pairs: tuple[tuple[str, str], ...]) -> list[bytes]:
    return [f"{name}: {value}\r\n".encode("latin-1") for name, value in pairs]


def _status_line(status: int) -> bytes:
    if not 100 <= status <= 999:
        raise LocalProtocolError(f"invalid status code {status}")
    line = f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode("latin-1")
    _status_lines[status] = line  # at most 900 of them
    return line


def _checked_line(pair: Sequence[str], headers: Sequence[tuple[str, str]]) -> bytes:
    """One field line, checked; a line that fails is reported as the whole head's
    check reports it (the first bad name before any bad value)."""
    name, value = pair
    line = f"{name}: {value}\r\n"
    if _TOKEN.fullmatch(name) is None or _BAD_VALUE.search(line, len(name) + 2, len(line) - 2):
        check_head(headers)
    try:
        return line.encode("latin-1")
    except UnicodeEncodeError:
        check_head(headers)
        raise  # not reached: check_head raised


def check_head(headers: Sequence[tuple[str, str]]) -> None:
    """Raises :class:`LocalProtocolError` for the first name that is not a token, else
    for a value with a control character, else one beyond Latin-1."""
    lines = []
    for name, value in headers:
        if name not in _valid_names:
            _check_name(name)
        lines.append(f"{name}: {value}\r\n")
    head = "".join(lines)
    line_ends = len(headers)
    if head.count("\n") != line_ends or head.count("\r") != line_ends or \
            _CONTROL.search(head) is not None:
        raise LocalProtocolError("a response header value contains a control character")
    try:
        head.encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError("a response header value is not Latin-1 text") from None


def _check_name(name: str) -> None:
    if _TOKEN.fullmatch(name) is None:
        raise LocalProtocolError(f"invalid response header name {name!r}")
    if len(_valid_names) < _MAX_CACHED_NAMES:
        _valid_names.add(name)
