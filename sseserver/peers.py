"""One worker's view of the other workers of a ``--workers N`` server.

With the memory store a resumable stream lives in the worker that started it, and the
kernel spreads connections over the workers (SO_REUSEPORT). So a request about a
stream that arrives at another worker is handed to the owner, whom the stream id
names (stream_ids.py): the connection's socket goes over the channel between the two
(aio/worker_channel.py, aio/handoff.py), and the owner answers on it as if it had
accepted it. A ``/v1/chat/{id}/stream`` names a chat, not a stream: the workers are
asked who runs its turn. With a shared store (``store.shared``) no request is handed
over: every worker serves every stream.

The parent introduces each pair of workers with a channel of their own, again when
one is started anew; a worker is *up* for the others once it says hello on it, and
*down* once its channel closes (its process died). ``/metrics`` sums the counters of
every worker that answers within ``PEER_ANSWER_TIMEOUT``, and ``/readyz`` is ready
only while every worker is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from sseserver import metrics
from sseserver.aio.handoff import AdoptedConnection, request_bytes
from sseserver.aio.http_server import HTTPConnection, HTTPRequest, Phase
from sseserver.aio.worker_channel import MAX_MESSAGE_BYTES, Channel, Message, WorkerPlace
from sseserver.compat_routes import CHAT_PREFIX, CHAT_STREAM_SUFFIX
from sseserver.gateway import STREAMS_PREFIX, Gateway
from sseserver.relay import RelayState
from sseserver.stream_ids import Owner, owner_of

logger = logging.getLogger("sseserver.workers")

# Seconds a scrape or a chat's lookup waits for the other workers. A worker's answer
# is one pass of its loop; a second is far past that and well inside Prometheus's
# default scrape timeout (10 s). A worker that has not answered by then is counted
# missing (metrics) or as not running the chat.
PEER_ANSWER_TIMEOUT = 1.0
# A handed-over request and its client's further input, with room for the message head.
MAX_HANDOVER_BYTES = MAX_MESSAGE_BYTES - 1024
# request.extra's mark on a request this worker has decided to answer itself
_DECIDED_HERE = "answered_here"


@dataclass(slots=True)
class Peer:
    owner: Owner
    channel: Channel
    up: bool = False  # it said hello: it is listening and reads its channel


class Peers:
    """See the module docstring. ``adopt`` serves a connection handed over to this
    worker: its descriptor, and the bytes read from it so far."""

    def __init__(self, place: WorkerPlace, gateway: Gateway,
                 adopt: Callable[[int, bytes], None]) -> None:
        self._place = place
        self._gateway = gateway
        self._adopt = adopt
        self._loop = asyncio.get_running_loop()
        self._peers: dict[int, Peer] = {}
        self._asks: dict[int, tuple[asyncio.Future[dict[str, Any]], int]] = {}
        self._last_ask = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.handed_out = 0
        self.handed_in = 0
        self._closing = False
        # Set when the parent process is gone (killed, say, by the OOM killer): nobody
        # supervises this worker or passes it a stop signal any more, so it drains and
        # exits rather than hold the shared port for ever.
        self.parent_gone = asyncio.Event()
        self._control = Channel(place.control, self._loop, self._on_control,
                                self._on_parent_gone, "to the parent")
        logger.info("worker %d of %d (pid %d, restarted %d times)", place.slot,
                    place.workers, os.getpid(), place.incarnation)

    def __repr__(self) -> str:
        up = sum(peer.up for peer in self._peers.values())
        return (f"<Peers worker={self._place.slot} up={up}/{self._place.workers - 1} "
                f"out={self.handed_out} in={self.handed_in} asks={len(self._asks)}>")

    @property
    def all_up(self) -> bool:
        return sum(peer.up for peer in self._peers.values()) == self._place.workers - 1

    @property
    def workers_up(self) -> int:
        return 1 + sum(peer.up for peer in self._peers.values())

    def close(self) -> None:
        self._closing = True
        for peer in list(self._peers.values()):
            peer.channel.close()
        self._control.close()
        for task in self._tasks:
            task.cancel()

    # -- requests --------------------------------------------------------------------

    def route(self, request: HTTPRequest, conn: HTTPConnection) -> bool:
        """Whether the request is taken away from this worker's routing: handed to the
        worker that owns its stream, or held while the workers are asked about its
        chat. False: this worker answers it."""
        if _DECIDED_HERE in request.extra or getattr(self._gateway.store, "shared", False):
            return False
        path = request.path
        if path.startswith(STREAMS_PREFIX):
            peer = self._owner_elsewhere(path[len(STREAMS_PREFIX):])
            return peer is not None and self._hand_over(peer, request, conn)
        if path.startswith(CHAT_PREFIX) and path.endswith(CHAT_STREAM_SUFFIX) and \
                request.method in ("GET", "HEAD") and not _handed_over(conn):
            chat_id = unquote(path[len(CHAT_PREFIX):-len(CHAT_STREAM_SUFFIX)])
            if self._running_chat(chat_id) is None and self._peers:
                self._spawn(self._chat_elsewhere(chat_id, request, conn))
                return True
        return False

    def _owner_elsewhere(self, stream_id: str) -> Peer | None:
        """The live worker other than this one that owns the stream; None when it is
        ours, names no worker, or names one that is gone: a worker started anew owns
        none of its predecessor's streams, so they are answered here as expired."""
        owner = owner_of(stream_id)
        if owner is None or owner.slot == self._place.slot:
            return None
        peer = self._peers.get(owner.slot)
        if peer is None or peer.owner != owner or peer.channel.other_end_gone():
            return None
        return peer

    def _hand_over(self, peer: Peer, request: HTTPRequest, conn: HTTPConnection) -> bool:
        first_input = request_bytes(request) + conn.unconsumed()
        if len(first_input) > MAX_HANDOVER_BYTES:
            self._gateway.error(conn, 413, "the request is too large to pass to the worker "
                                "process that holds the stream; send it without a body")
            return True
        peer.channel.send({"kind": "handoff"}, first_input, conn.detach())
        self.handed_out += 1
        return True

    async def _chat_elsewhere(self, chat_id: str, request: HTTPRequest,
                              conn: HTTPConnection) -> None:
        answers = await self._ask_all({"what": "chat", "chat": chat_id})
        if conn.phase is Phase.CLOSED:
            return
        running = [a for a in answers if isinstance(a.get("age"), int | float)]
        youngest = min(running, key=lambda a: a["age"], default=None)
        peer = self._peers.get(youngest["slot"]) if youngest is not None else None
        if peer is not None and not peer.channel.other_end_gone():
            self._hand_over(peer, request, conn)
            return
        request.extra[_DECIDED_HERE] = True  # no turn anywhere: the route's own 204
        self._gateway.handle(request, conn)

    def _running_chat(self, chat_id: str) -> float | None:
        """How long ago this worker started the chat's running turn; None if none runs."""
        starts = [r.relay.started for r in self._gateway.store.values()
                  if r.chat_id == chat_id and r.relay.state is not RelayState.ENDED]
        return self._loop.time() - max(starts) if chat_id and starts else None

    # -- metrics ---------------------------------------------------------------------

    def whole_server_metrics(self, local: str, answer: Callable[[str], None]) -> None:
        """Calls ``answer`` with every worker's metrics combined, this one's ``local``
        text among them, within PEER_ANSWER_TIMEOUT."""
        self._spawn(self._combine_metrics(local, answer))

    async def _combine_metrics(self, local: str, answer: Callable[[str], None]) -> None:
        answers = await self._ask_all({"what": "metrics"})
        texts = [local, *(a["text"] for a in answers if isinstance(a.get("text"), str))]
        missing = self._place.workers - len(texts)
        answer(metrics.combine(texts) + "\n".join(
            metrics.worker_lines(self._place.workers, missing)) + "\n")

    def metrics_lines(self) -> list[str]:
        """This worker's handoffs, labelled with it: they show how the kernel spread
        connections over the workers."""
        worker = self._place.slot
        return [
            "# HELP sseserver_worker_handoffs_total Client connections handed to the "
            "worker that holds their stream (out), or taken from another (in).",
            "# TYPE sseserver_worker_handoffs_total counter",
            f'sseserver_worker_handoffs_total{{worker="{worker}",direction="out"}} '
            f"{self.handed_out}",
            f'sseserver_worker_handoffs_total{{worker="{worker}",direction="in"}} '
            f"{self.handed_in}",
        ]

    # -- asking the others -----------------------------------------------------------

    async def _ask_all(self, question: dict[str, Any]) -> list[dict[str, Any]]:
        """The answers of the workers that are up, as many as come in time; each names
        the worker that gave it (``slot``)."""
        asks = [self._ask(slot, peer, question)
                for slot, peer in self._peers.items() if peer.up]
        if not asks:
            return []
        done, pending = await asyncio.wait(asks, timeout=PEER_ANSWER_TIMEOUT)
        for ask in pending:
            ask.cancel()
        return [ask.result() for ask in done if not ask.cancelled() and
                ask.exception() is None]

    def _ask(self, slot: int, peer: Peer, question: dict[str, Any]
             ) -> asyncio.Future[dict[str, Any]]:
        self._last_ask += 1
        ask_id = self._last_ask
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._asks[ask_id] = (future, slot)
        future.add_done_callback(lambda _: self._asks.pop(ask_id, None))
        if not peer.channel.send({"kind": "ask", "id": ask_id, **question}):
            future.cancel()
        return future

    def _answer(self, peer: Peer, head: dict[str, Any]) -> None:
        what = head.get("what")
        reply: dict[str, Any] = {"kind": "answer", "id": head.get("id")}
        if what == "metrics":
            reply["text"] = self._gateway.metrics_text()
        elif what == "chat":
            reply["age"] = self._running_chat(str(head.get("chat", "")))
        if not peer.channel.send(reply):
            logger.warning("the answer to worker %d did not fit its channel", peer.owner.slot)

    # -- channels --------------------------------------------------------------------

    def _on_control(self, message: Message) -> None:
        """The parent introduces a worker: a new channel to it."""
        head = message.head
        if head.get("kind") != "peer" or message.fd is None:
            _close_descriptor(message.fd)
            return
        owner = Owner(int(head["slot"]), int(head["incarnation"]))
        sock = socket.socket(fileno=message.fd)
        before = self._peers.pop(owner.slot, None)
        if before is not None:
            before.channel.close()
        peer = Peer(owner, Channel(sock, self._loop, lambda m: self._on_peer(peer, m),
                                   lambda: self._on_peer_gone(peer), f"to worker {owner}"))
        self._peers[owner.slot] = peer
        peer.channel.send({"kind": "hello"})

    def _on_peer(self, peer: Peer, message: Message) -> None:
        kind = message.head.get("kind")
        if kind == "handoff" and message.fd is not None:
            self.handed_in += 1
            self._adopt(message.fd, message.payload)
            return
        _close_descriptor(message.fd)
        if kind == "hello":
            peer.up = True
            logger.debug("worker %s is up", peer.owner)
        elif kind == "ask":
            self._answer(peer, message.head)
        elif kind == "answer":
            self._take_answer(peer, message.head)

    def _take_answer(self, peer: Peer, head: dict[str, Any]) -> None:
        entry = self._asks.get(head.get("id", -1))
        if entry is not None and entry[1] == peer.owner.slot and not entry[0].done():
            entry[0].set_result({**head, "slot": peer.owner.slot})

    def _on_peer_gone(self, peer: Peer) -> None:
        if self._peers.get(peer.owner.slot) is peer:
            del self._peers[peer.owner.slot]
            if not (self._closing or self._gateway.draining):  # no news in a stop
                logger.info("worker %s is gone, and its streams with it", peer.owner)
        for future, slot in list(self._asks.values()):
            if slot == peer.owner.slot:
                future.cancel()

    def _on_parent_gone(self) -> None:
        if not self._closing:
            logger.warning("the parent process is gone: this worker drains and exits")
            self.parent_gone.set()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _handed_over(conn: HTTPConnection) -> bool:
    return isinstance(conn, AdoptedConnection) and conn.handed_over_request


def _close_descriptor(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            socket.close(fd)
