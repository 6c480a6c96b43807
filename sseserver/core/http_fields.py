"""What every HTTP/1.1 head shares, sans-IO: where a head ends, the field-line grammar,
and the Content-Length and Transfer-Encoding rules, all as h11 0.16 reads them.

core/http_client.py frames response heads and explains h11's refusals with these,
core/h11_errors.py explains a refused request head, and core/chunked.py reads trailer
sections; the differential tests of each hold them to what h11 accepts and refuses,
and to the status h11 hints when it refuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sseserver.errors import RemoteProtocolError

# h11's max_incomplete_event_size: a head still incomplete past this many bytes is
# refused. h11 measures only incomplete heads (a longer head that arrives in one read
# passes, h11 issue #182); here the head is measured whole, up to its last byte, so the
# verdict is the strictest h11 gives, whatever the reads: a head of MAX_HEAD_SIZE + 1
# bytes passes.
MAX_HEAD_SIZE = 16 * 1024
# RFC 9110 §8.6: Content-Length is 1*DIGIT; h11 caps it at 20 digits (10**20 bytes).
MAX_CONTENT_LENGTH_DIGITS = 20
# RFC 9110 §15.6.2 and h11: a transfer coding the recipient does not implement is 501.
UNSUPPORTED_CODING_STATUS = 501
# RFC 6585 §5, the status h11 hints for a head over its size limit.
HEAD_TOO_LARGE_STATUS = 431

# RFC 9110 §5.6.2 token: a method and a field name.
TOKEN = r"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
# Field-line text as h11 reads it (RFC 9110 §5.5 plus what h11 tolerates): visible
# characters, obs-text, SP, HTAB, DEL and the C0 controls but NUL, LF, VT, FF and CR.
TEXT = r"[^\x00\n\x0b\x0c\r]*"
# Field lines, each maybe followed by obs-fold continuation lines (RFC 9112 §5.2); each
# line may end in CRLF or a bare LF (RFC 9112 §2.2 allows a recipient to take LF alone).
FIELD_LINES = rf"(?:{TOKEN}:{TEXT}\r?\n(?:[ \t]{TEXT}\r?\n)*)*"

# RFC 9112 §2.2 and h11: a head ends at the first empty line, CRLF or bare LF.
_BLANK_LINE = re.compile(rb"\n\r?\n")
# RFC 9112 §5.2: a recipient replaces each obs-fold with SP (h11 does, then strips).
_OBS_FOLD = re.compile(r"\r?\n[ \t]+")
_CONTINUATION = re.compile(r"\n[ \t]")
_FIELD_LINE = re.compile(rf"(?:{TOKEN}:|[ \t]){TEXT}")
_DIGITS = re.compile(r"[0-9]+")
_TOKEN = re.compile(TOKEN)


def find_head_end(buffer: bytes | bytearray, start: int, max_size: int) -> int:
    """Where the head at the start of ``buffer`` ends (just past its empty line), or -1
    while it has not ended; the empty line is not in ``buffer`` before ``start``.

    Raises :class:`RemoteProtocolError` for a first byte no start line begins with, and
    (status hint 431) for a head longer than ``max_size`` bytes (see MAX_HEAD_SIZE); its
    ``offset`` counts from the start of ``buffer``.
    """
    # h11 refuses at once a head whose first byte is a control or space: no start line
    # begins so (a TLS record, or an empty line, is the usual culprit).
    if buffer[0] < 0x21:
        raise RemoteProtocolError("not an HTTP message: it starts with a control character "
                                  "or a space", offset=0)
    blank = _BLANK_LINE.search(buffer, start)
    # Measured up to the head's last byte, or all of it while it has not ended.
    if (len(buffer) if blank is None else blank.end() - 1) > max_size:
        raise RemoteProtocolError(f"head longer than {max_size} bytes", HEAD_TOO_LARGE_STATUS,
                                  offset=max_size)
    return -1 if blank is None else blank.end()


def resume_search_at(buffer: bytes | bytearray) -> int:
    """Where to search again for the empty line once more bytes arrive: it may straddle
    two reads."""
    return max(len(buffer) - 2, 0)


def parse_field_lines(lines: str) -> list[tuple[str, str]]:
    """Field lines that matched FIELD_LINES (each ending in LF) to fields: continuations
    unfolded, then :func:`normalize_fields`."""
    if _CONTINUATION.search(lines) is not None:
        lines = _OBS_FOLD.sub(" ", lines)
    return normalize_fields(lines.split("\n")[:-1])  # the last piece, after the LF, is empty


def normalize_fields(lines: Iterable[str]) -> list[tuple[str, str]]:
    """Unfolded ``name:value`` lines that match the grammar to (lower-case name, value
    without OWS) pairs, with h11's rules: Content-Length and Transfer-Encoding checked,
    copies of one Content-Length kept once, Transfer-Encoding lower-cased.

    Raises :class:`RemoteProtocolError` at the first line that breaks a rule, with
    h11's status hint: 501 for a Transfer-Encoding, 400 for the rest. The message
    names the rule, never the value (a peer's bytes may carry a secret).
    """
    fields: list[tuple[str, str]] = []
    content_length: str | None = None
    chunked = False
    for line in lines:
        raw_name, _, value = line.partition(":")
        name = raw_name.lower()
        value = value.strip(" \t\r")  # OWS, and the CR of a CRLF (values hold no CR)
        if name == "content-length":
            value = _content_length(value)
            if content_length is not None:  # h11 keeps the first of equal copies
                if value != content_length:
                    raise RemoteProtocolError("conflicting Content-Length headers")
                continue
            content_length = value
        elif name == "transfer-encoding":
            value = _transfer_encoding(value, chunked)
            chunked = True
        fields.append((name, value))
    return fields


def _content_length(value: str) -> str:
    if value.isascii() and value.isdigit() and len(value) <= MAX_CONTENT_LENGTH_DIGITS:
        return value  # the usual one: plain digits
    # RFC 9110 §8.6: a list of identical lengths ("5, 5") may be taken as one.
    lengths = {length.strip(" \t") for length in value.split(",")}
    if len(lengths) != 1:
        raise RemoteProtocolError("conflicting Content-Length values in one header")
    length = lengths.pop()
    if _DIGITS.fullmatch(length) is None or len(length) > MAX_CONTENT_LENGTH_DIGITS:
        raise RemoteProtocolError("invalid Content-Length: not a number of at most "
                                  f"{MAX_CONTENT_LENGTH_DIGITS} digits")
    return length


def _transfer_encoding(value: str, seen: bool) -> str:
    # RFC 9112 §6.1: chunked is the only coding h11 (and a gateway) decodes.
    if seen:
        raise RemoteProtocolError("multiple Transfer-Encoding headers",
                                  UNSUPPORTED_CODING_STATUS)
    value = value.lower()
    if value != "chunked":
        raise RemoteProtocolError("unsupported Transfer-Encoding: only chunked is read",
                                  UNSUPPORTED_CODING_STATUS)
    return value


def field_lines_fault(lines: str) -> tuple[str, int]:
    """Which rule the field lines of a refused head break, and the offset in ``lines``
    of the line at fault. The line is named by its number, never quoted."""
    offset = 0
    for number, line in enumerate(lines.split("\n"), 1):
        content = line.removesuffix("\r")
        if content and _FIELD_LINE.fullmatch(content) is None:
            return f"malformed header line {number}: {_field_line_rule(content)}", offset
        offset += len(line) + 1
    return "a continuation line before the first header", 0


def _field_line_rule(line: str) -> str:
    name, colon, _ = line.partition(":")
    if not colon:
        return "no colon"
    if _TOKEN.fullmatch(name) is None:
        return "the name is not a token"
    return "a forbidden control character in the value"
