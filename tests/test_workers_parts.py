"""The parts of ``--workers N`` acting as one server, each alone: stream ids naming
their worker, metrics text and its combination, a request serialised for another
worker, and the channel between two processes (over a real socket pair)."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from sseserver import metrics, stream_ids
from sseserver.aio.handoff import request_bytes
from sseserver.aio.http_server import HTTPRequest
from sseserver.aio.worker_channel import MAX_MESSAGE_BYTES, Channel, Message, channel_pair
from sseserver.config import LimitsSettings
from sseserver.core.h11_server import END_OF_MESSAGE, RequestHead, RequestReader
from sseserver.core.request_checks import check_head
from sseserver.stream_ids import Owner

# -- stream ids ----------------------------------------------------------------------


def test_a_single_process_id_is_128_random_bits_and_names_no_worker() -> None:
    stream_ids.set_owner(None)
    stream_id = stream_ids.new_stream_id()
    assert len(stream_id) == 22 and stream_ids.owner_of(stream_id) is None


def test_a_worker_id_names_its_slot_and_incarnation_and_keeps_128_random_bits() -> None:
    stream_ids.set_owner(Owner(3, 12))
    try:
        ids = {stream_ids.new_stream_id() for _ in range(100)}
    finally:
        stream_ids.set_owner(None)
    assert len(ids) == 100
    for stream_id in ids:
        assert stream_id.startswith("3.12.") and len(stream_id.split(".")[2]) == 22
        assert stream_ids.owner_of(stream_id) == Owner(3, 12)


@pytest.mark.parametrize("stream_id", [
    "", "abc", "1.2", "1.2.3.4", "a.0.xyz", "0.b.xyz", "-1.0.xyz", "1234567.0.xyz",
    "\u0661.0.xyz", " 1.0.xyz", ".0.xyz"])
def test_an_id_of_no_worker_names_none(stream_id: str) -> None:
    assert stream_ids.owner_of(stream_id) is None


# -- metrics -------------------------------------------------------------------------

COUNTERS = {"requests": 7, "streams_started": 3, "streams_ok": 2, "streams_error": 1,
            "streams_cancelled": 0, "stream_events": 40, "http_errors": 1,
            "http_refused": 0}


def test_render_is_prometheus_text_of_the_counters() -> None:
    text = metrics.render(COUNTERS, active=1, draining=False, extra=["x_total 5"])
    assert text.endswith("x_total 5\n")
    lines = text.splitlines()
    for sample in ("sseserver_streams_active 1", 'sseserver_streams_total{status="ok"} 2',
                   'sseserver_streams_total{status="error"} 1',
                   "sseserver_streams_started_total 3", "sseserver_stream_events_total 40",
                   "sseserver_http_requests_total 7", "sseserver_draining 0"):
        assert sample in lines
    names = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(names) == len(set(names))


def test_combine_sums_each_series_and_keeps_each_comment_once() -> None:
    one = metrics.render(COUNTERS, active=1, draining=False,
                         extra=['h_total{worker="0"} 2'])
    two = metrics.render({**COUNTERS, "requests": 5}, active=4, draining=True,
                         extra=['h_total{worker="1"} 3'])
    combined = metrics.combine([one, two]).splitlines()
    assert "sseserver_http_requests_total 12" in combined
    assert "sseserver_streams_active 5" in combined
    assert "sseserver_streams_started_total 6" in combined
    assert "sseserver_draining 1" in combined  # whether, not how many
    assert 'h_total{worker="0"} 2' in combined and 'h_total{worker="1"} 3' in combined
    assert combined.count("# TYPE sseserver_streams_active gauge") == 1
    assert combined.index("sseserver_streams_active 5") < combined.index(
        "sseserver_http_requests_total 12")  # the order of the first text


def test_combine_of_one_text_is_that_text_and_skips_what_is_no_sample() -> None:
    text = metrics.render(COUNTERS, active=0, draining=False)
    assert metrics.combine([text]) == text
    assert metrics.combine(["a 1.5\nb nan-ish\n\nc\na 2\n"]) == "a 3.5\n"


def test_worker_lines_say_how_complete_the_scrape_is() -> None:
    lines = metrics.worker_lines(4, 1)
    assert "sseserver_workers 4" in lines and "sseserver_workers_missing 1" in lines


# -- a request serialised for another worker ------------------------------------------


def read_back(data: bytes) -> tuple[RequestHead, bytes, bytes]:
    reader = RequestReader()
    reader.feed(data)
    head = reader.next_event()
    assert isinstance(head, RequestHead)
    body = b""
    while (event := reader.next_event()) is not END_OF_MESSAGE:
        assert isinstance(event, bytes)
        body += event
    return head, body, reader.unread


def test_a_request_serialised_reads_back_as_the_same_request() -> None:
    request = HTTPRequest("GET", "/v1/streams/0.0.abc", "lastEventId=4&x=%20",
                          {"host": "h", "last-event-id": "3", "x-note": "\u00e9t\u00e9",
                           "accept": "a, b"}, "1.1")
    head, body, rest = read_back(request_bytes(request) + b"GET /next")
    assert head.method == "GET" and head.target == "/v1/streams/0.0.abc?lastEventId=4&x=%20"
    assert check_head(head, LimitsSettings()) == request.headers
    assert body == b"" and rest == b"GET /next"


def test_a_chunked_body_is_sent_whole_with_its_length_and_no_expectation() -> None:
    request = HTTPRequest("DELETE", "/v1/streams/x", "", {
        "host": "h", "transfer-encoding": "chunked", "expect": "100-continue"}, "1.1",
        body=b"hello")
    head, body, _ = read_back(request_bytes(request))
    assert dict(head.fields) == {"host": "h", "content-length": "5"}
    assert body == b"hello"


# -- the channel ---------------------------------------------------------------------


async def _channel_pair() -> tuple[Channel, Channel, asyncio.Queue[Message | None],
                                   asyncio.Queue[Message | None]]:
    loop = asyncio.get_running_loop()
    one, two = channel_pair()
    inbox_one: asyncio.Queue[Message | None] = asyncio.Queue()
    inbox_two: asyncio.Queue[Message | None] = asyncio.Queue()
    first = Channel(one, loop, inbox_one.put_nowait, lambda: inbox_one.put_nowait(None), "1")
    second = Channel(two, loop, inbox_two.put_nowait, lambda: inbox_two.put_nowait(None), "2")
    return first, second, inbox_one, inbox_two


def test_messages_and_a_descriptor_cross_the_channel_in_order() -> None:
    async def main() -> None:
        first, second, _, inbox = await _channel_pair()
        left, right = socket.socketpair()
        for number in range(50):  # more than one turn of reads
            assert first.send({"kind": "n", "n": number}, b"\0payload")
        assert first.send({"kind": "fd"}, b"", os.dup(left.fileno()))
        left.close()
        for number in range(50):
            message = await asyncio.wait_for(inbox.get(), 5)
            assert message is not None
            assert message.head == {"kind": "n", "n": number} and message.payload == b"\0payload"
        message = await asyncio.wait_for(inbox.get(), 5)
        assert message is not None and message.fd is not None
        with socket.socket(fileno=message.fd) as received:  # the same socket
            received.sendall(b"through")
            assert right.recv(16) == b"through"
        right.close()
        first.close()
        second.close()

    asyncio.run(main())


def test_the_end_of_the_other_side_is_seen_and_a_message_too_large_is_refused() -> None:
    async def main() -> None:
        first, second, _, inbox = await _channel_pair()
        left, right = socket.socketpair()
        duplicate = os.dup(left.fileno())
        assert not first.send({}, b"x" * MAX_MESSAGE_BYTES, duplicate)
        with pytest.raises(OSError):
            os.fstat(duplicate)  # closed by the refusal
        assert not second.other_end_gone()
        first.close()
        assert second.other_end_gone() and second.closed
        assert await asyncio.wait_for(inbox.get(), 5) is None  # on_closed, once
        assert not second.send({"kind": "late"})
        for sock in (left, right):
            sock.close()

    asyncio.run(main())


def test_a_packet_that_is_no_message_is_dropped_with_its_descriptor() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        raw, end = channel_pair()
        inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        channel = Channel(end, loop, inbox.put_nowait, lambda: inbox.put_nowait(None))
        left, right = socket.socketpair()
        socket.send_fds(raw, [b"no separator"], [left.fileno()])
        raw.send(b"[1]\0not a dict")
        raw.send(b'{"kind": "ok"}\0')
        message = await asyncio.wait_for(inbox.get(), 5)
        assert message is not None and message.head == {"kind": "ok"}
        left.close()  # the only descriptor left: the dropped packet's was closed
        assert right.recv(1) == b""
        right.close()
        raw.close()
        assert await asyncio.wait_for(inbox.get(), 5) is None
        channel.close()

    asyncio.run(main())
