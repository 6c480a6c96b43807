"""The event-stream decoder: whole messages over any split, every CRC checked, bounded,
and the same messages botocore's own parser reads from the br_* recordings."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import pytest

from sseserver.core.eventstream import (
    MAX_HEADERS_BYTES,
    EventStreamDecoder,
    EventStreamMessage,
    encode_message,
)
from sseserver.errors import EventTooLarge, RemoteProtocolError

RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "recordings"
BODIES = sorted(RECORDINGS.glob("br_*.bin")) if RECORDINGS.is_dir() else []


def decode(pieces: list[bytes], limit: int = 1 << 20) -> list[EventStreamMessage]:
    decoder = EventStreamDecoder(limit)
    messages = [m for piece in pieces for m in decoder.feed(piece)]
    assert decoder.pending == 0
    return messages


def random_pieces(body: bytes, rng: random.Random) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 40))))
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


def test_round_trip_over_every_split() -> None:
    body = encode_message({":event-type": "x", "é": "ü"}, b'{"a":1}') + \
        encode_message({}, b"") + encode_message({"k": "v"}, b"z" * 300)
    whole = decode([body])
    assert [m.payload for m in whole] == [b'{"a":1}', b"", b"z" * 300]
    assert whole[0].headers == {":event-type": "x", "é": "ü"}
    assert decode([body[i:i + 1] for i in range(len(body))]) == whole
    for cut in range(1, len(body)):
        assert decode([body[:cut], body[cut:]]) == whole


def _frame(headers: bytes, payload: bytes) -> bytes:
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def test_every_header_value_type() -> None:
    def header(name: str, kind: int, value: bytes) -> bytes:
        return bytes([len(name)]) + name.encode() + bytes([kind]) + value
    headers = b"".join((
        header("t", 0, b""), header("f", 1, b""), header("b", 2, b"\xff"),
        header("s", 3, struct.pack(">h", -2)), header("i", 4, struct.pack(">i", 7)),
        header("l", 5, struct.pack(">q", -9)), header("by", 6, b"\x00\x02\x01\x02"),
        header("st", 7, b"\x00\x02hi"), header("ts", 8, struct.pack(">q", 1700)),
        header("u", 9, bytes(range(16)))))
    (message,) = decode([_frame(headers, b"p")])
    assert message.headers == {"t": True, "f": False, "b": -1, "s": -2, "i": 7, "l": -9,
                               "by": b"\x01\x02", "st": "hi", "ts": 1700,
                               "u": bytes(range(16))}


@pytest.mark.parametrize("damage", ["prelude", "headers", "payload", "message_crc"])
def test_a_flipped_bit_fails_a_crc(damage: str) -> None:
    body = bytearray(encode_message({"k": "v"}, b"payload"))
    at = {"prelude": 1, "headers": 13, "payload": len(body) - 6,
          "message_crc": len(body) - 1}[damage]
    body[at] ^= 0x01
    with pytest.raises(RemoteProtocolError, match="CRC"):
        decode([bytes(body)])


def test_a_message_past_the_bound_is_refused_from_its_prelude() -> None:
    body = encode_message({}, b"x" * 1000)
    decoder = EventStreamDecoder(500)
    with pytest.raises(EventTooLarge):
        decoder.feed(body[:12])  # the prelude alone: nothing of the payload is held


@pytest.mark.parametrize(("total", "headers_length"), [
    (15, 0), (16, 1), (100, MAX_HEADERS_BYTES + 1)])
def test_impossible_lengths_are_refused(total: int, headers_length: int) -> None:
    prelude = struct.pack(">II", total, headers_length)
    with pytest.raises(RemoteProtocolError, match="impossible"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


@pytest.mark.parametrize("headers", [b"\x05ab", b"\x01a\x07\x00\x09hi", b"\x01a\x0e",
                                     b"\x02\xff\xfe\x00"])
def test_malformed_headers_are_refused(headers: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="header"):
        decode([_frame(headers, b"")])


@pytest.mark.skipif(not BODIES, reason=f"no br_* recordings at {RECORDINGS}")
@pytest.mark.parametrize("path", BODIES, ids=lambda p: p.name)
def test_recordings_read_as_botocore_reads_them(path: Path) -> None:
    eventstream = pytest.importorskip("botocore.eventstream")
    body = path.read_bytes()
    oracle = eventstream.EventStreamBuffer()
    oracle.add_data(body)
    expected = [(message.headers, message.payload) for message in oracle]
    rng = random.Random(path.name)
    for pieces in [[body], *(random_pieces(body, rng) for _ in range(5))]:
        assert [(m.headers, m.payload) for m in decode(pieces)] == expected
