"""Connection limits against `sseserver serve` as a process: a host holding sockets
with a POST head and no body is answered 503 past its share, other clients are not,
and running out of descriptors is said in the log, once."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import textwrap
import time

import orjson

from tests.e2e.served import HealthProbe, served

HOSTILE_HEAD = (b"POST /v1/stream HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n")


def hold(port: int, count: int) -> list[socket.socket]:
    """Connections that send a head and never the body (held for the body timeout)."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(HOSTILE_HEAD)
        held.append(sock)
    return held


def answer(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def assert_refused(data: bytes) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), data
    assert b"\r\nretry-after: 1" in head.lower()
    assert orjson.loads(body)["error"]["type"] == "unavailable"


def wait_for_log(server: object, text: str, timeout: float = 3) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in server.log if text in line]  # type: ignore[attr-defined]
        if lines:
            return lines
        time.sleep(0.02)
    return []


def test_one_address_gets_its_share_and_then_503() -> None:
    with served({"SSESERVER_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "50"}) as server:
        held = hold(server.port, 50)
        try:
            late = socket.create_connection(("127.0.0.1", server.port))
            late.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            started = time.monotonic()
            assert_refused(answer(late))
            assert time.monotonic() - started < 1.0, "answered at once, not at a timeout"
            assert wait_for_log(server, "per-address limit")
            # another address (all of 127/8 is loopback) is served meanwhile
            with socket.create_connection(("127.0.0.1", server.port),
                                          source_address=("127.0.0.2", 0)) as other:
                other.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close"
                              b"\r\n\r\n")
                assert answer(other).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)
        probe = HealthProbe(server.port)  # the share is given back as they close
        probe.once()
        probe.close()


def test_the_total_limit_answers_503_and_logs_once() -> None:
    env = {"SSESERVER_SERVER_MAX_CLIENT_CONNECTIONS": "40",
           "SSESERVER_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0"}
    with served(env) as server:
        held = hold(server.port, 40)
        try:
            refused = [socket.create_connection(("127.0.0.1", server.port))
                       for _ in range(30)]
            for sock in refused:
                assert_refused(answer(sock))
                sock.close()
            assert len(wait_for_log(server, "connection limit (40) reached")) == 1
        finally:
            for sock in held:
                sock.close()


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


def test_near_the_open_file_limit_clients_get_503_and_one_log_line() -> None:
    """uvloop (what `sseserver serve` runs) accepts and closes connections by itself
    when accept fails for lack of descriptors, and reports nothing: before that point,
    a connection on one of the last descriptors is answered 503, and logged once."""
    env = {"SSESERVER_SERVER_MAX_CLIENT_CONNECTIONS": "1000",  # above what fds allow
           "SSESERVER_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0"}
    with served(env, preexec=_low_file_limit) as server:
        held = hold(server.port, 110)
        try:
            time.sleep(0.3)
            extra = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
            answers = [answer(sock, timeout=2) for sock in extra]
            for data in answers:
                assert_refused(data)
            for sock in extra:
                sock.close()
            lines = wait_for_log(server, "of the open-file limit")
            assert len(lines) == 1, server.log
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.3)
        probe = HealthProbe(server.port)  # descriptors given back: it serves again
        probe.once()
        probe.close()
        assert server.process.poll() is None


ASYNCIO_SERVER = textwrap.dedent("""
    import asyncio, logging, os, resource, sys
    import sseserver
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    async def main():
        config = sseserver.load_config(overrides={"server.port": 0, "server.demo": True})
        async with sseserver.Server(config) as server:
            print("READY", server.port, file=sys.stderr, flush=True)
            filler = []
            try:  # take every descriptor left: the next accept fails with EMFILE
                while True:
                    filler.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                pass
            await asyncio.sleep(3.5)
            for fd in filler:
                os.close(fd)
            await asyncio.sleep(0.5)

    asyncio.run(main())
""")


def test_accept_failing_for_lack_of_descriptors_is_logged_once_under_asyncio() -> None:
    """asyncio reports each failed accept (every second, with a traceback) through the
    loop's exception handler; the server turns them into one line."""
    process = subprocess.Popen([sys.executable, "-c", ASYNCIO_SERVER],
                               stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    while not line.startswith("READY") and line:
        line = process.stderr.readline()
    port = int(line.split()[1])
    time.sleep(0.3)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    _out, log = process.communicate(timeout=15)
    for sock in clients:
        sock.close()
    assert "Traceback" not in log, log
    assert log.count("cannot accept connections") == 1, log
    assert "Too many open files" in log
