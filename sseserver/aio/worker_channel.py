"""Unix socket channels between the processes of one server: the parent and each
worker (to introduce workers to each other), and each pair of workers (to hand a client
connection to another worker, and to ask each other for counters).

A channel is a ``SOCK_SEQPACKET`` socket pair, so a message is one packet and needs no
framing of ours: a JSON head, a NUL byte, then the payload's bytes. A packet may carry
one descriptor (SCM_RIGHTS): the sender's copy may be closed once it is sent, the
receiver's is a new descriptor of the same open socket.

:class:`Channel` reads and writes one end on the event loop: messages to
``on_message`` as they arrive, what cannot be sent at once queued in order, and
``on_closed`` once when the other end is gone (its process died) or a send fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

logger = logging.getLogger("sseserver.workers")

# The largest message: a handed-over request's head (limits.max_head_bytes, 16 KiB by
# default), what its client sent after it (up to limits.max_pipelined_bytes, 64 KiB,
# and one read past it) and a small body. A Unix packet must fit the socket's send
# buffer (net.core.wmem_default, 208 KiB on Linux), which this leaves room in.
MAX_MESSAGE_BYTES = 160 * 1024
# Packets read per readiness callback, so a chatty peer cannot hold the loop.
_READS_PER_TURN = 16
_SEPARATOR = b"\0"


@dataclass(frozen=True, slots=True)
class Message:
    head: dict[str, Any]
    payload: bytes = b""
    fd: int | None = None  # a descriptor that came with it: the receiver's to close


@dataclass(frozen=True, slots=True)
class WorkerPlace:
    """What a worker process is told at its start: which of the server's workers it
    is, and its channel to the parent, which introduces it to the others."""

    slot: int  # 0..workers-1
    incarnation: int  # how many workers held this slot before
    workers: int  # how many the server runs
    control: socket.socket


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """Both ends of a new channel."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def encode(head: dict[str, Any], payload: bytes = b"") -> bytes:
    return orjson.dumps(head) + _SEPARATOR + payload


def decode(packet: bytes) -> tuple[dict[str, Any], bytes] | None:
    """A packet's head and payload; None for a packet that is not a message."""
    head, separator, payload = packet.partition(_SEPARATOR)
    if not separator:
        return None
    try:
        value = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None
    return (value, payload) if isinstance(value, dict) else None


def send_blocking(sock: socket.socket, head: dict[str, Any], fd: int | None = None) -> bool:
    """Send one message from a process with no event loop (the parent); False if the
    other end is gone or does not read in time (the socket's timeout)."""
    try:
        if fd is None:
            sock.send(encode(head))
        else:
            socket.send_fds(sock, [encode(head)], [fd])
    except OSError:
        return False
    return True


def receive(sock: socket.socket) -> Message | None:
    """One message from a readable socket; None for a malformed packet
    (whose descriptors are closed). Raises BlockingIOError when nothing waits, EOFError
    at the end."""
    packet, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE_BYTES, 1)
    if not packet and not fds:
        raise EOFError
    decoded = decode(packet) if not flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) else None
    if decoded is None or len(fds) > 1:
        for fd in fds:
            os.close(fd)
        return None
    return Message(decoded[0], decoded[1], fds[0] if fds else None)


class Channel:
    """One end of a channel, driven by the loop. See the module docstring."""

    __slots__ = ("_loop", "_on_closed", "_on_message", "_outbox", "_sock", "_writing",
                 "closed", "name")

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop,
                 on_message: Callable[[Message], None], on_closed: Callable[[], None],
                 name: str = "") -> None:
        self._sock = sock
        self._loop = loop
        self._on_message = on_message
        self._on_closed = on_closed
        self._outbox: deque[tuple[bytes, int | None]] = deque()
        self._writing = False
        self.closed = False
        self.name = name
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._readable)

    def __repr__(self) -> str:
        return f"<Channel {self.name} queued={len(self._outbox)} closed={self.closed}>"

    def send(self, head: dict[str, Any], payload: bytes = b"", fd: int | None = None
             ) -> bool:
        """Queue a message; ``fd`` is closed here once sent (or the channel closes).
        False, and ``fd`` closed, for a message too large or a closed channel."""
        packet = encode(head, payload)
        if self.closed or len(packet) > MAX_MESSAGE_BYTES:
            if fd is not None:
                os.close(fd)
            return False
        self._outbox.append((packet, fd))
        if not self._writing:
            self._flush()
        return True

    def other_end_gone(self) -> bool:
        """Whether the other end has closed (its process died), even before the loop
        has read the end: asked before a descriptor goes out that would be lost."""
        if self.closed:
            return True
        try:
            gone = not self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            gone = True
        if gone:
            self.close()
        return gone

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ValueError, OSError):  # the loop may be closed already
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_writer(self._sock.fileno())
        while self._outbox:
            _, fd = self._outbox.popleft()
            if fd is not None:
                os.close(fd)
        self._sock.close()
        self._on_closed()

    def _readable(self) -> None:
        for _ in range(_READS_PER_TURN):
            try:
                message = receive(self._sock)
            except (BlockingIOError, InterruptedError):
                return
            except (EOFError, OSError):
                self.close()
                return
            if message is not None:
                self._on_message(message)
            if self.closed:
                return

    def _flush(self) -> None:
        outbox = self._outbox
        while outbox:
            packet, fd = outbox[0]
            try:
                if fd is None:
                    self._sock.send(packet)
                else:
                    socket.send_fds(self._sock, [packet], [fd])
            except (BlockingIOError, InterruptedError):
                if not self._writing:
                    self._writing = True
                    self._loop.add_writer(self._sock.fileno(), self._flush)
                return
            except OSError as exc:
                logger.warning("worker channel %s failed: %s", self.name, exc.strerror)
                self.close()
                return
            outbox.popleft()
            if fd is not None:
                os.close(fd)
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._sock.fileno())
