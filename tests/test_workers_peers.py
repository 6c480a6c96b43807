"""One worker of a ``--workers 2`` server in this process, the test playing the parent
and the other worker over real channels: which requests are handed over and how, what
a handed-over connection gets, and /metrics and /readyz when the other worker is
silent, gone or answering."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from sseserver.aio.worker_channel import (
    MAX_MESSAGE_BYTES,
    WorkerPlace,
    channel_pair,
    decode,
    encode,
)
from sseserver.config import load_config
from sseserver.peers import PEER_ANSWER_TIMEOUT
from sseserver.server import Server

PEER_STREAM = "/v1/streams/1.0.AAAAAAAAAAAAAAAAAAAAAA"


class OtherWorker:
    """The test's end of worker 0's channel to worker 1."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(5)

    def send(self, head: dict[str, Any], payload: bytes = b"", fd: int | None = None) -> None:
        socket.send_fds(self.sock, [encode(head, payload)], [] if fd is None else [fd])

    async def receive(self) -> tuple[dict[str, Any], bytes, list[int]]:
        packet, fds, _, _ = await asyncio.to_thread(socket.recv_fds, self.sock,
                                                    MAX_MESSAGE_BYTES, 1)
        decoded = decode(packet)
        assert decoded is not None, packet
        return decoded[0], decoded[1], fds


def run(test: Callable[[Server, OtherWorker], Awaitable[None]]) -> None:
    async def main() -> None:
        parent, control = channel_pair()
        config = load_config(None, {}, {"server.port": 0, "server.demo": True,
                                        "server.workers": 2})
        async with Server(config, worker=WorkerPlace(0, 0, 2, control)) as server:
            ours, theirs = channel_pair()
            socket.send_fds(parent, [encode({"kind": "peer", "slot": 1, "incarnation": 0})],
                            [theirs.fileno()])
            theirs.close()
            other = OtherWorker(ours)
            assert (await other.receive())[0] == {"kind": "hello"}
            await test(server, other)
            ours.close()
        parent.close()

    asyncio.run(main())


async def ask(server: Server, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(raw)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()


def test_a_request_for_the_other_workers_stream_goes_there_with_its_socket() -> None:
    async def test(server: Server, other: OtherWorker) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        request = f"GET {PEER_STREAM}?lastEventId=2 HTTP/1.1\r\nHost: t\r\n" \
                  "Last-Event-ID: 3\r\n\r\n"
        writer.write(request.encode() + b"DELETE /v1/streams/x HTTP/1.1\r\n")
        head, payload, fds = await other.receive()
        assert head == {"kind": "handoff"} and len(fds) == 1
        assert payload.startswith(f"GET {PEER_STREAM}?lastEventId=2 HTTP/1.1\r\n".encode())
        assert b"last-event-id: 3\r\n" in payload
        assert payload.endswith(b"\r\n\r\nDELETE /v1/streams/x HTTP/1.1\r\n")
        with socket.socket(fileno=fds[0]) as handed:  # the client's own connection
            handed.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfrom1")
        assert await asyncio.wait_for(reader.read(), 5) == \
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfrom1"  # no reset, no 404
        writer.close()
        assert server.peers is not None and server.peers.handed_out == 1
        # not counted here: the worker that answers counts it
        assert server.gateway is not None and server.gateway.counters["requests"] == 0

    run(test)


def test_what_is_not_the_other_workers_stream_is_answered_here() -> None:
    async def test(server: Server, other: OtherWorker) -> None:
        for path in ("/v1/streams/0.0.AAAAAAAAAAAAAAAAAAAAAA",  # ours
                     "/v1/streams/1.7.AAAAAAAAAAAAAAAAAAAAAA",  # an earlier worker 1's
                     "/v1/streams/AAAAAAAAAAAAAAAAAAAAAA",  # no worker's
                     "/v1/streams/9.0.AAAAAAAAAAAAAAAAAAAAAA"):  # no such worker
            answer = await ask(server, get(path))
            assert answer.startswith(b"HTTP/1.1 404") and b"expired" in answer
        assert server.gateway is not None
        server.gateway.store.shared = True  # type: ignore[attr-defined]
        assert (await ask(server, get(PEER_STREAM))).startswith(b"HTTP/1.1 404")
        assert server.peers is not None and server.peers.handed_out == 0

    run(test)


def test_the_stream_of_a_worker_that_died_is_expired_at_once() -> None:
    async def test(server: Server, other: OtherWorker) -> None:
        other.sock.close()  # its process died: the loop may not have seen it yet
        answer = await ask(server, get(PEER_STREAM))
        assert answer.startswith(b"HTTP/1.1 404") and b"expired" in answer
        ready = await ask(server, get("/readyz"))
        assert ready.startswith(b"HTTP/1.1 503") and b'"workers_up":1' in ready

    run(test)


def test_a_connection_handed_over_here_is_served_as_if_accepted() -> None:
    async def test(server: Server, other: OtherWorker) -> None:
        other.send({"kind": "hello"})
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        client.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        other.send({"kind": "handoff"}, request, accepted.fileno())
        accepted.close()
        client.settimeout(5)
        answer = b""
        while chunk := await asyncio.to_thread(client.recv, 65536):
            answer += chunk
        assert answer.count(b"HTTP/1.1 200 OK") == 2 and b'{"status":"ok"}' in answer
        assert answer.endswith(b'"streams":0}')  # then the request that followed it
        assert server.peers is not None and server.peers.handed_in == 1
        for sock in (client, listener):
            sock.close()

    run(test)


def test_metrics_sum_the_other_workers_answer_and_never_wait_past_the_bound() -> None:
    async def test(server: Server, other: OtherWorker) -> None:
        other.send({"kind": "hello"})
        await asyncio.sleep(0.1)
        started = time.monotonic()
        silent = await ask(server, get("/metrics"))  # worker 1 does not answer
        assert time.monotonic() - started < PEER_ANSWER_TIMEOUT + 2
        assert b"\nsseserver_workers_missing 1\n" in silent

        async def answer_once() -> None:
            for _ in range(2):  # too late for the first scrape: ignored
                head, _, _ = await other.receive()
                assert head["kind"] == "ask" and head["what"] == "metrics"
                other.send({"kind": "answer", "id": head["id"], "text":
                            "sseserver_http_requests_total 40\nsseserver_streams_active 2\n"})

        answering = asyncio.create_task(answer_once())
        text = (await ask(server, get("/metrics"))).decode()
        await answering
        assert "\nsseserver_workers_missing 0\n" in text and "\nsseserver_workers 2\n" in text
        assert "\nsseserver_http_requests_total 42\n" in text  # 40 + these two scrapes
        assert "\nsseserver_streams_active 2\n" in text

    run(test)


def test_ready_only_while_the_other_worker_is_up() -> None:
    async def test(server: Server, other: OtherWorker) -> None:
        assert (await ask(server, get("/readyz"))).startswith(b"HTTP/1.1 503")
        other.send({"kind": "hello"})
        await asyncio.sleep(0.1)
        ready = await ask(server, get("/readyz"))
        assert ready.startswith(b"HTTP/1.1 200") and b'"status":"ready"' in ready

    run(test)


def test_a_chat_that_runs_on_the_other_worker_is_handed_there() -> None:
    async def test(server: Server, other: OtherWorker) -> None:
        other.send({"kind": "hello"})
        await asyncio.sleep(0.1)
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(get("/v1/chat/c%201/stream"))
        head, _, _ = await other.receive()
        assert head == {"kind": "ask", "id": head["id"], "what": "chat", "chat": "c 1"}
        other.send({"kind": "answer", "id": head["id"], "age": 0.5})
        head, payload, fds = await other.receive()
        assert head == {"kind": "handoff"} and payload.startswith(b"GET /v1/chat/c%201/")
        socket.close(fds[0])
        writer.close()
        # no worker runs it: this one answers, 204 (no answer within the bound counts)
        answer = await ask(server, get("/v1/chat/none/stream"))
        assert answer.startswith(b"HTTP/1.1 204")

    run(test)


def test_a_malformed_or_unknown_message_from_another_worker_is_ignored() -> None:
    async def test(server: Server, other: OtherWorker) -> None:
        other.sock.send(b"no separator")
        other.send({"kind": "answer", "id": 99})  # to no question
        other.send({"kind": "what"}, b"", socket.dup(other.sock.fileno()))
        other.send({"kind": "ask", "id": 1, "what": "nothing"})
        head, _, _ = await other.receive()
        assert head == {"kind": "answer", "id": 1}
        assert (await ask(server, get("/healthz"))).startswith(b"HTTP/1.1 200")
        assert orjson.loads((await ask(server, get("/healthz"))).split(b"\r\n\r\n")[1]) == \
            {"status": "ok"}

    run(test)
