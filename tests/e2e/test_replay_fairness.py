"""Readers replaying a long resumable stream take turns with everyone else: another
client's /healthz answers quickly while hundreds of them catch up."""

from __future__ import annotations

import socket

import httpx

from tests.e2e.served import HealthProbe, served
from tests.e2e.stack import request_body

READERS = 200
EVENTS = 30_000  # 1.2 MB of log: 240 MB to replay in all
# Another client's wait, generous for a shared 2-core machine; it was 2.3 s.
STALL_BOUND = 0.2


def finished_stream(base_url: str, tokens: int) -> str:
    started = httpx.post(base_url + "/v1/streams", json=request_body(
        {"tokens": tokens, "rate": 0}, model="demo"), timeout=10)
    assert started.status_code == 201
    url = str(started.json()["url"])
    with httpx.stream("GET", base_url + url, timeout=30) as response:
        for _ in response.iter_raw():
            pass
    return url


def test_hundreds_of_replaying_readers_do_not_stall_another_client() -> None:
    with served() as server:
        url = finished_stream(server.url, EVENTS)
        probe = HealthProbe(server.port)
        readers = [socket.create_connection(("127.0.0.1", server.port))
                   for _ in range(READERS)]
        try:
            probe.once()
            request = b"GET %b HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 0\r\n\r\n" % url.encode()
            for reader in readers:  # they never read: each replays until its buffers fill
                reader.sendall(request)
            slowest = probe.run_for(2.5)
            readers[0].settimeout(5)
            assert readers[0].recv(64).startswith(b"HTTP/1.1 200 ")
        finally:
            for reader in readers:
                reader.close()
            probe.close()
        print(f"slowest /healthz while {READERS} readers replay {EVENTS} events: "
              f"{slowest * 1000:.1f} ms over {len(probe.latencies)} probes")
        assert slowest < STALL_BOUND
