"""What a request h11 refused broke, in words of our own, sans-IO.

h11's messages quote the bytes at fault ("illegal header line: b'Authorization: ...'"),
and a request line or a header may carry a credential (?token=, a key). So no h11
message is passed on: each one h11 0.16 raises on the server side is mapped here to a
message that names the rule and, for a head, the line (by its number; a request line
without its query). A message h11 adds later gets the generic one.
"""

from __future__ import annotations

import re

from sseserver.core.http_fields import TOKEN, field_lines_fault

# RFC 9112 §3: method SP request-target SP HTTP-version, as h11 reads it.
_REQUEST_LINE = re.compile(rf"{TOKEN} [\x21-\x7e]+ HTTP/[0-9]\.[0-9]\r?")
_BLANK_LINE = re.compile(r"\n\r?\n")
_UNSUPPORTED_CODING = "unsupported Transfer-Encoding: only chunked is read"

# h11's messages that say which framing or Host rule a head broke (none of them quote
# the client's bytes, but they are matched whole all the same).
_HEAD_RULES = {
    "Missing mandatory Host: header": "an HTTP/1.1 request without a Host header",
    "Found multiple Host: headers": "more than one Host header",
    "conflicting Content-Length headers": "conflicting Content-Length headers",
    "bad Content-Length": "invalid Content-Length: not a number of at most 20 digits",
    "multiple Transfer-Encoding headers": "multiple Transfer-Encoding headers",
    "Only Transfer-Encoding: chunked is supported": _UNSUPPORTED_CODING,
    "continuation line at start of headers": "a continuation line before the first header",
    "peer unexpectedly closed connection": "the client closed the connection mid-head",
}
# The same for a chunked body; h11 reads its trailer section as header lines.
_BODY_RULES = {
    "illegal chunk header": "malformed chunk size line: not hex digits with "
                            "optional extensions",
    "malformed chunk footer": "chunk data not followed by CRLF",
    "illegal header line": "malformed trailer line",
    "continuation line at start of headers": "trailer section starts with a continuation",
    "peer closed connection without sending complete message body":
        "the client closed the connection mid-body",
    "peer unexpectedly closed connection": "the client closed the connection mid-body",
    "conflicting Content-Length headers": "conflicting Content-Length headers in trailers",
    "bad Content-Length": "invalid Content-Length in trailers",
    "multiple Transfer-Encoding headers": "multiple Transfer-Encoding headers",
    "Only Transfer-Encoding: chunked is supported": _UNSUPPORTED_CODING,
}
_HEAD_TOO_LARGE = 431


def explain_head_error(h11_message: str, status: int, head: bytes, max_head_size: int
                       ) -> str:
    """Our message for a head h11 refused with ``h11_message``; ``head`` is what h11
    was given of it (only read here, never quoted but for a request line's path)."""
    if status == _HEAD_TOO_LARGE:
        return f"head longer than {max_head_size} bytes"
    rule = _HEAD_RULES.get(h11_message)
    if rule is not None:
        return rule
    if head[:1] < b"\x21":  # h11 refuses a first byte no request line begins with
        return "not an HTTP message: it starts with a control character or a space"
    text = head.decode("latin-1")
    blank = _BLANK_LINE.search(text)
    request_line, _, lines = text[:blank.end() if blank else len(text)].partition("\n")
    if _REQUEST_LINE.fullmatch(request_line) is None:
        # quoted without its query, which may carry a credential (?token=)
        shown, query_mark, _ = request_line.partition("?")
        hidden = " (query not shown)" if query_mark else ""
        return f"malformed request line {shown.removesuffix(chr(13))[:80]!r}{hidden}"
    if h11_message.startswith("illegal header line") and blank is not None:
        return field_lines_fault(lines)[0]
    return "malformed request head"


def explain_body_error(h11_message: str, status: int) -> str:
    """Our message for a body h11 refused with ``h11_message``."""
    if status == _HEAD_TOO_LARGE:
        return "chunk size or trailer line too long"
    for prefix, rule in _BODY_RULES.items():
        if h11_message.startswith(prefix):
            return rule
    return "malformed request body"
