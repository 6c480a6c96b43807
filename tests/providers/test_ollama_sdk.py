"""Every ol_* recording read by the official ``ollama`` client and by the gateway's
NDJSON reader and adapter, cut at random points: the same text, thinking, tool calls,
usage and finish. The client reads the bytes from a loopback server, as it would from
Ollama."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from tests.providers.test_ollama import OLLAMA_RECORDINGS, gateway
from tests.providers.test_recordings import RECORDINGS, Outcome

ollama = pytest.importorskip("ollama")


class _Ollama(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body: ClassVar[bytes] = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ollama)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def sdk(host: str) -> Outcome:
    """The client's stream, accumulated as an application would."""
    outcome = Outcome()
    chunks = ollama.Client(host=host).chat(model="m", stream=True,
                                          messages=[{"role": "user", "content": "hi"}])
    for chunk in chunks:
        message = chunk.message
        outcome.text += message.content or ""
        outcome.reasoning += message.thinking or ""
        for call in message.tool_calls or ():
            outcome.tools[len(outcome.tools)] = (None, call.function.name, json.dumps(
                dict(call.function.arguments), separators=(",", ":")))
        if chunk.done:
            outcome.usage = (chunk.prompt_eval_count or 0, chunk.eval_count or 0)
            outcome.finish = "tool_calls" if outcome.tools else (chunk.done_reason or "stop")
    return outcome


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason=f"no recordings at {RECORDINGS}")
@pytest.mark.parametrize("body_file", OLLAMA_RECORDINGS)
def test_the_gateway_reads_a_recording_as_the_ollama_client_does(host: str,
                                                                 body_file: str) -> None:
    _Ollama.body = (RECORDINGS / body_file).read_bytes()
    expected = sdk(host)
    assert expected.finish is not None and (expected.text or expected.reasoning)
    for split in range(3):
        assert gateway(_Ollama.body, random.Random(f"sdk/{body_file}/{split}")) == expected
