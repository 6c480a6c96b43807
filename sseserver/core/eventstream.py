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
# header value type -> fixed size; the two variable types (6 bytes, 7 string) carry a
# u16 length. Type 0 and 1 are the booleans true and false, with no value bytes.
_FIXED_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_BYTES, _STRING = 6, 7

HeaderValue = bool | int | bytes | str


@dataclass(frozen=True, slots=True)
class EventStreamMessage:
    headers: dict[str, HeaderValue]
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

    def feed(self, data: bytes) -> list[EventStreamMessage]:
        buffer = self._buffer
        buffer += data
        messages: list[EventStreamMessage] = []
        start = 0
        while len(buffer) - start >= PRELUDE_BYTES:
            total = self._message_length(buffer, start)
            if len(buffer) - start < total:
                break
            messages.append(_message(memoryview(bytes(buffer[start:start + total]))))
            start += total
        del buffer[:start]
        return messages

    def _message_length(self, buffer: bytearray, start: int) -> int:
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


def _message(frame: memoryview) -> EventStreamMessage:
    (crc,) = _U32.unpack_from(frame, len(frame) - CRC_BYTES)
    if zlib.crc32(frame[:-CRC_BYTES]) != crc:
        raise RemoteProtocolError("event stream: a message failed its CRC")
    (headers_length,) = _U32.unpack_from(frame, 4)
    headers_end = PRELUDE_BYTES + headers_length
    return EventStreamMessage(_headers(frame[PRELUDE_BYTES:headers_end]),
                              bytes(frame[headers_end:-CRC_BYTES]))


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
