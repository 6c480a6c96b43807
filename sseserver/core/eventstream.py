"""The ``application/vnd.amazon.eventstream`` binary framing, decoded sans-IO.

Each message (AWS "event stream encoding", the framing of Bedrock's ConverseStream):

    total length (u32) | headers length (u32) | prelude CRC32 (u32, of the 8 bytes before)
    headers | payload | message CRC32 (u32, of everything before it)

all big-endian. A header is a name (u8 length, UTF-8) and a typed value. The decoder is
fed reads cut anywhere and returns whole messages; a message whose CRC fails, whose
lengths cannot be, or whose length passes the bound is refused before its payload is
buffered.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from sseserver.errors import EventTooLarge, RemoteProtocolError

PRELUDE_BYTES = 12  # total length, headers length, prelude CRC
CRC_BYTES = 4
MIN_MESSAGE_BYTES = PRELUDE_BYTES + CRC_BYTES  # no headers, no payload
# The encoding's own limits (AWS event stream specification, as in botocore's
# eventstream parser): 16 MiB a message, 128 KiB of headers. The decoder's bound is
# the caller's, capped by these.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_HEADERS_BYTES = 128 * 1024

_U32_PAIR = struct.Struct(">II")
_U32 = struct.Struct(">I")
_PRELUDE = struct.Struct(">III")
# header value type -> fixed size; the two variable types (6 bytes, 7 string) carry a
# u16 length. Type 0 and 1 are the booleans true and false, with no value bytes.
_FIXED_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_BYTES, _STRING = 6, 7

HeaderValue = bool | int | bytes | str
# A stream repeats a handful of header blocks (one per event type), byte for byte: each
# is parsed once and its mapping shared (read-only by contract: a mapping proxy would
# cost every look-up on the per-token path). Bounded, so a stream of ever new
# headers costs parsing, never memory.
MAX_HEADER_BLOCKS_KEPT = 256
_HEADERS_SEEN: dict[bytes, Mapping[str, HeaderValue]] = {}


@dataclass(slots=True)
class EventStreamMessage:
    headers: Mapping[str, HeaderValue]  # read-only: shared by equal header blocks
    payload: bytes


class EventStreamDecoder:
    """``feed(bytes) -> list[EventStreamMessage]``: the messages completed by a read."""

    __slots__ = ("_buffer", "_max_message")

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._max_message = min(max_message_bytes, MAX_MESSAGE_BYTES)

    def __repr__(self) -> str:
        return f"<EventStreamDecoder buffered={len(self._buffer)}>"

    @property
    def pending(self) -> int:
        """Bytes of a message not yet whole (a body that ends with some was cut)."""
        return len(self._buffer)

    def feed_whole(self, data: bytes) -> EventStreamMessage | None:
        """If ``data`` is exactly one whole message with nothing pending before it (a
        provider's commonest read), that message; otherwise None, and nothing taken."""
        if self._buffer or len(data) < MIN_MESSAGE_BYTES:
            return None
        total, headers_length, prelude_crc = _PRELUDE.unpack_from(data)
        if total != len(data) or total > self._max_message or \
                headers_length > total - MIN_MESSAGE_BYTES or \
                headers_length > MAX_HEADERS_BYTES or zlib.crc32(data[:8]) != prelude_crc:
            return None  # feed() reads it, and says what is wrong
        return _message(data, headers_length)

    def feed(self, data: bytes) -> list[EventStreamMessage]:
        buffer = self._buffer
        # a read that starts a message is read in place (the common case: one whole
        # message a read); only the part of a message it leaves unfinished is kept
        source: bytes | bytearray = data
        if buffer:
            buffer += data
            source = buffer
        messages: list[EventStreamMessage] = []
        start, size = 0, len(source)
        while size - start >= PRELUDE_BYTES:
            total = self._message_length(source, start)
            if size - start < total:
                break
            (headers_length,) = _U32.unpack_from(source, start + 4)
            messages.append(_message(bytes(source[start:start + total]), headers_length))
            start += total
        if source is buffer:
            del buffer[:start]
        elif start < size:
            buffer += memoryview(data)[start:]
        return messages

    def _message_length(self, buffer: bytes | bytearray, start: int) -> int:
        total, headers_length = _U32_PAIR.unpack_from(buffer, start)
        (prelude_crc,) = _U32.unpack_from(buffer, start + 8)
        if zlib.crc32(buffer[start:start + 8]) != prelude_crc:
            raise RemoteProtocolError("event stream: a message prelude failed its CRC")
        if total < MIN_MESSAGE_BYTES or headers_length > total - MIN_MESSAGE_BYTES or \
                headers_length > MAX_HEADERS_BYTES:
            raise RemoteProtocolError("event stream: a message prelude gives impossible "
                                      "lengths")
        if total > self._max_message:
            raise EventTooLarge(f"event stream: a message is larger than "
                                f"{self._max_message} bytes")
        return int(total)


def _message(frame: bytes, headers_length: int) -> EventStreamMessage:
    (crc,) = _U32.unpack_from(frame, len(frame) - CRC_BYTES)
    if zlib.crc32(memoryview(frame)[:-CRC_BYTES]) != crc:
        raise RemoteProtocolError("event stream: a message failed its CRC")
    headers_end = PRELUDE_BYTES + headers_length
    raw = frame[PRELUDE_BYTES:headers_end]
    headers = _HEADERS_SEEN.get(raw)
    if headers is None:
        headers = _headers(memoryview(raw))
        if len(_HEADERS_SEEN) < MAX_HEADER_BLOCKS_KEPT:
            _HEADERS_SEEN[raw] = headers
    return EventStreamMessage(headers, frame[headers_end:-CRC_BYTES])


def _headers(data: memoryview) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    at, end = 0, len(data)
    try:
        while at < end:
            name_end = at + 1 + data[at]
            name = bytes(data[at + 1:name_end]).decode()
            kind = data[name_end]
            at = name_end + 1
            headers[name], at = _value(data, kind, at)
            if at > end:
                raise IndexError
    except (IndexError, UnicodeDecodeError, struct.error):
        raise RemoteProtocolError("event stream: a message has malformed headers") from None
    return headers


def _value(data: memoryview, kind: int, at: int) -> tuple[HeaderValue, int]:
    if kind in (_BYTES, _STRING):
        (length,) = struct.unpack_from(">H", data, at)
        raw = bytes(data[at + 2:at + 2 + length])
        if len(raw) != length:
            raise IndexError
        return (raw.decode() if kind == _STRING else raw), at + 2 + length
    size = _FIXED_SIZES.get(kind)
    if size is None:
        raise RemoteProtocolError(f"event stream: unknown header value type {kind}")
    if size == 0:
        return kind == 0, at
    raw = bytes(data[at:at + size])
    if len(raw) != size:
        raise IndexError
    # byte, short, integer, long, timestamp (ms): signed; a UUID: its 16 bytes
    return (raw if size == 16 else int.from_bytes(raw, "big", signed=True)), at + size


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One message with string headers (what the fake provider and tests send)."""
    encoded = b"".join(_string_header(name.encode(), value.encode())
                       for name, value in headers.items())
    total = MIN_MESSAGE_BYTES + len(encoded) + len(payload)
    prelude = _U32_PAIR.pack(total, len(encoded))
    prelude += _U32.pack(zlib.crc32(prelude))
    body = prelude + encoded + payload
    return body + _U32.pack(zlib.crc32(body))


def _string_header(name: bytes, value: bytes) -> bytes:
    return bytes([len(name)]) + name + bytes([_STRING]) + struct.pack(">H", len(value)) + value
