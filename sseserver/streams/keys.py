"""The Redis layout of shared streams, and the RESP encoding of the writes that carry
frames (sans-IO: bytes in, bytes out).

One hash tag per stream (``{ID}``), so that a Redis Cluster keeps all of a stream's
keys on one shard:

- ``sse:{ID}:e``: a Redis Stream, one entry per frame; the frame with SSE id ``n``
  is the entry ``n-0`` (``Last-Event-ID`` is an entry id, no scan), its bytes in the
  field ``f``; after the last frame, one entry with the field ``end``;
- ``sse:{ID}:m``: a hash of what a reader elsewhere needs (content type, preamble,
  headers, heartbeat, the owner, the frames that end a stream whose owner is lost)
  and, once the stream is over, ``last``: the id of its last frame;
- ``sse:{ID}:r``: set by readers elsewhere while they follow, so that the owner does
  not cancel the stream as unread;
- ``sse:node:NODE``: a process's lease, renewed while it runs;
- ``sse:cancel:NODE``: the channel a ``DELETE`` on any process sends the owner;
- ``sse:wake:NODE``: a Redis Stream a process adds to when the set of streams it
  follows changes, so that its one blocked XREAD (which reads this key too) returns;
- ``sse:chat:{CHAT}``: the stream of a useChat chat's latest turn, so that its resume
  finds it from any process.
"""

from __future__ import annotations


def events_key(stream_id: str) -> str:
    return f"sse:{{{stream_id}}}:e"


def meta_key(stream_id: str) -> str:
    return f"sse:{{{stream_id}}}:m"


def reading_key(stream_id: str) -> str:
    return f"sse:{{{stream_id}}}:r"


def lease_key(node: str) -> str:
    return f"sse:node:{node}"


def cancel_channel(node: str) -> str:
    return f"sse:cancel:{node}"


def wake_key(node: str) -> str:
    return f"sse:wake:{node}"


def chat_key(chat_id: str) -> str:
    return f"sse:chat:{{{chat_id}}}"


def entry_number(entry_id: bytes) -> int:
    """The SSE id of a stream entry id (``b"12-0"`` is 12)."""
    return int(entry_id.partition(b"-")[0])


def encode_command(*args: bytes | str | int | float) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def xadd_prefix(stream_id: str) -> bytes:
    """The bytes every frame's XADD to this stream starts with (encoded once)."""
    key = events_key(stream_id).encode()
    return b"*5\r\n$4\r\nXADD\r\n$%d\r\n%b\r\n" % (len(key), key)


def encode_xadd(prefix: bytes, event_id: int, frame: bytes) -> bytes:
    """``XADD <key> <event_id>-0 f <frame>``: the one write per frame."""
    entry = b"%d-0" % event_id
    return b"%b$%d\r\n%b\r\n$1\r\nf\r\n$%d\r\n%b\r\n" % (
        prefix, len(entry), entry, len(frame), frame)
