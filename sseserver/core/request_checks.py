"""What the server refuses in a request head before a handler sees it, sans-IO: the
limits a protocol parser leaves to the server (reference/http-hardening.md), each
with the status to answer and whether the connection must close after it."""

from __future__ import annotations

from sseserver.config import LimitsSettings as Limits
from sseserver.core.h11_server import RequestHead, fields_by_name
from sseserver.errors import HTTPError, status_error_type

# The reader measures the head as sent; the limit also holds for the head as parsed
# (a bare-LF head is shorter than the CRLF one it stands for): this is the per-line
# overhead of ": " and CRLF.
_HEADER_LINE_OVERHEAD = 4
# A field line as parsed (name, ": ", value, CRLF) is at most this many bytes longer
# than as sent (name, ":", value, a bare LF: OWS, obs-fold and repeated Content-Length
# values only shorten it), and the request line at most one (a bare LF) where the
# blank line ending the head is at least one byte not counted: a head sent in ``size``
# bytes is at most ``size + 2 * fields`` as parsed, and one well within the limit needs
# no count (the count over its fields is ~5k instructions a request).
_PARSED_GROWTH_PER_LINE = 2
# RFC 9112 §2.3 leaves other versions to the server: 505 (h11 reads any digit.digit).
_SUPPORTED_VERSIONS = ("1.1", "1.0")
# The type of a refusal's JSON error body: the one table, in errors.py.
error_type = status_error_type


def awaits_continue(headers: dict[str, str], declared: str | None) -> bool:
    """The client sent "Expect: 100-continue" (RFC 9110 §10.1.1, case-insensitive)
    and a body is to follow."""
    expect = headers.get("expect")
    return expect is not None and expect.lower() == "100-continue" and (
        "transfer-encoding" in headers or (declared is not None and int(declared) > 0))


def asks_close(connection: str) -> bool:
    """A Connection field value lists the "close" option."""
    options = connection.lower()
    if options == "close":  # what clients send: no list to split
        return True
    return "close" in options and lists_close(options)


def lists_close(options: str) -> bool:
    """The general reading of a lower-cased Connection value (RFC 9110 §7.6.1: a
    comma-separated list of options, optional whitespace around each)."""
    return "close" in (token.strip(" \t") for token in options.split(","))


def too_many_chunks(limits: Limits) -> HTTPError:
    """The refusal of a chunked body in more than ``limits.max_body_chunks`` chunks."""
    return HTTPError(413, f"request body in more than {limits.max_body_chunks} chunks",
                     close=True)


def body_too_large(limits: Limits) -> HTTPError:
    """The refusal of a body over ``limits.max_body_bytes`` (declared or as sent)."""
    return HTTPError(413, f"request body exceeds {limits.max_body_bytes} bytes", close=True)


def check_head(head: RequestHead, limits: Limits) -> dict[str, str]:
    """The head's fields as a dict (lower-case names, repeated fields joined with
    ", "), if the server takes the request.

    Raises :class:`HTTPError`: 505 for a version other than 1.0 and 1.1, 431 for more
    fields or bytes than the limits allow, 400 for a Content-Length beside a
    Transfer-Encoding.
    """
    if head.http_version not in _SUPPORTED_VERSIONS:
        raise HTTPError(505, "only HTTP/1.0 and HTTP/1.1 are supported", close=True)
    fields = head.fields
    if len(fields) > limits.max_header_count:
        raise HTTPError(431, f"more than {limits.max_header_count} header fields", close=True)
    headers = head.headers
    if headers is None:
        headers = fields_by_name(fields)
    if not 0 <= head.size <= limits.max_head_bytes - _PARSED_GROWTH_PER_LINE * len(fields):
        _check_parsed_size(head, headers, limits)
    if "content-length" in headers and "transfer-encoding" in headers:
        # RFC 9112 §6.1: a server MUST close the connection after such a request
        raise HTTPError(400, "both Content-Length and Transfer-Encoding", close=True)
    return headers


def _check_parsed_size(head: RequestHead, headers: dict[str, str], limits: Limits) -> None:
    """Raises :class:`HTTPError` (431) for a head over ``limits.max_head_bytes`` as
    parsed (``headers``: its fields by name)."""
    fields = head.fields
    if len(headers) == len(fields):  # no name repeats: the dict holds every line
        size = sum(map(len, headers)) + sum(map(len, headers.values()))
    else:
        size = sum([len(name) + len(value) for name, value in fields])
    size += len(head.method) + len(head.target) + 12 + _HEADER_LINE_OVERHEAD * len(fields)
    if size > limits.max_head_bytes:
        raise HTTPError(431, f"request head exceeds {limits.max_head_bytes} bytes", close=True)
