"""Random request heads and bodies against `sseserver serve --demo` as a process: every
one gets an answer or a close, the process stays up, and its log has no traceback.

The heads mix the fields the server acts on (framing, Expect, CORS, resume positions)
with values a client might get wrong or a fuzzer picks, on every route; the bodies
are random bytes or near-valid JSON for each API.
"""

from __future__ import annotations

import socket
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.served import Served, served

METHODS = st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "DELETE", "PUT", "get", "PRI"])
PATHS = st.sampled_from([
    "/v1/stream", "/v1/streams", "/v1/streams/x", "/v1/streams/x?lastEventId=%00",
    "/v1/chat/completions", "/v1/messages", "/v1/chat", "/v1/chat/%ff/stream",
    "/v1/models", "/healthz", "/metrics", "/", "*", "http://h/healthz", "/%zz"])
NAMES = st.sampled_from([
    "Host", "Content-Length", "Transfer-Encoding", "Expect", "Origin", "Connection",
    "Access-Control-Request-Headers", "Access-Control-Request-Method", "Last-Event-ID",
    "Content-Type", "anthropic-version", "X-A"])
VALUES = st.one_of(
    st.sampled_from(["", "0", "5", "-1", "chunked", "gzip, chunked", "100-continue",
                     "close", "*", "http://app.example", "null", "application/json",
                     "99999999999999999999", " 12 ", "1,1"]),
    st.binary(max_size=24).map(lambda raw: raw.decode("latin-1")))
BODIES = st.one_of(st.binary(max_size=200), st.sampled_from([
    b'{"model":"demo","messages":[{"role":"user","content":"#fake {\\"tokens\\":1}"}]}',
    b'{"model":"demo","stream":true,"max_tokens":5,"messages":[]}',
    b'{"id":"c","model":"demo","messages":[{"role":"user","parts":[{"type":"text"}]}]}',
    b'{"model":1}', b"[]", b"\xff\xfe"]))
# Enough to cover every route with every framing a few times; ~10 s here.
EXAMPLES = 300


def build(method: str, path: str, version: str, fields: list[tuple[str, str]],
          body: bytes, chunked: bool) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in fields)
    request = f"{method} {path} HTTP/{version}\r\n{head}\r\n".encode("latin-1")
    if chunked:
        return request + (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    return request + body


def exchange(server: Served, request: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass  # a refusal may close before reading all we sent


def test_random_requests_never_crash_the_server_or_log_a_traceback() -> None:
    with served({"SSESERVER_SERVER_CORS_ORIGINS": "http://app.example",
                 "SSESERVER_LIMITS_HEADER_TIMEOUT": "1",
                 "SSESERVER_LIMITS_BODY_TIMEOUT": "1"}) as server:

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(METHODS, PATHS, st.sampled_from(["1.1", "1.0", "2.0"]),
               st.lists(st.tuples(NAMES, VALUES), max_size=6), BODIES, st.booleans(),
               st.booleans())
        def one_request(method: str, path: str, version: str, fields: list[tuple[str, str]],
                        body: bytes, chunked: bool, host: bool) -> None:
            if host:
                fields = [("Host", "t"), *fields]
            exchange(server, build(method, path, version, fields, body, chunked))
            assert server.process.poll() is None, "the server died"

        one_request()
        time.sleep(0.3)  # the last lines reach the log
        assert server.process.poll() is None
        log = "".join(server.log)
        assert "Traceback" not in log, log[-3000:]
