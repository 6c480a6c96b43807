"""Admission decisions and the rate-limited log, without sockets."""

from __future__ import annotations

from sseserver.aio.admission import (
    FD_HEADROOM,
    Admission,
    default_max_connections,
    refusal,
    refusal_log,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_default_total_leaves_every_stream_its_upstream_socket() -> None:
    assert default_max_connections(20_000) == 9_990  # the idle benchmark's 9,990 streams
    assert default_max_connections(1024) == 502
    assert default_max_connections(10) == 1


def test_total_and_per_address_limits() -> None:
    admission = Admission(3, 2, 1000, refusal_log(Clock()))
    assert admission.admit("10.0.0.1", 10) is None
    assert admission.admit("10.0.0.1", 11) is None
    per_address = admission.admit("10.0.0.1", 12)
    assert per_address is not None and b"your address" in per_address
    assert admission.admit("10.0.0.2", 12) is None
    total = admission.admit("10.0.0.3", 13)
    assert total is not None and b"connection limit" in total
    admission.release("10.0.0.1")
    assert admission.admit("10.0.0.3", 13) is None
    assert admission.refused == 2 and "open=3/3" in repr(admission)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        admission.release(address)
    assert admission.open == 0 and "addresses=0" in repr(admission)


def test_no_per_address_limit_at_zero_and_the_last_descriptors_are_refused() -> None:
    admission = Admission(100, 0, 64, refusal_log(Clock()))
    assert all(admission.admit("127.0.0.1", fd) is None for fd in range(64 - FD_HEADROOM))
    assert admission.admit("127.0.0.1", 64 - FD_HEADROOM) is not None


def test_the_refusal_is_a_whole_503_with_retry_after_and_json() -> None:
    answer = refusal("busy")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nretry-after: 1\r\n" in head and b"\r\nconnection: close" in head
    assert b"content-length: %d" % len(body) in head
    assert body == b'{"error":{"type":"unavailable","message":"busy"}}'


