"""The fake provider: a real HTTP/1.1 server speaking the providers' streams (OpenAI,
Anthropic, and each further kind's own wire format: OpenAI Responses, Azure OpenAI,
Ollama, Gemini, Bedrock).

Scripted per request by ``#fake {json}`` (see :mod:`sseserver.fake.script`). It honours
TCP backpressure: a client that stops reading makes it stop producing, which is how
the gateway's end-to-end flow control is proven.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, cast
from urllib.parse import unquote

import h11
import orjson

from sseserver.fake.azure_wire import AzureWire, azure_route
from sseserver.fake.bedrock_wire import (
    BedrockWire,
    bedrock_error_body,
    bedrock_error_headers,
    signed_with,
)
from sseserver.fake.gemini_wire import GeminiWire, gemini_error_body, gemini_user_messages
from sseserver.fake.ollama_wire import OllamaWire, ollama_error_body
from sseserver.fake.responses_wire import ResponsesWire, responses_input_text
from sseserver.fake.script import (
    DEFAULT_REPLY,
    Script,
    ScriptError,
    last_user_text,
    parse_script,
    split_tokens,
)
from sseserver.fake.wire import (
    AnthropicWire,
    OpenAIWire,
    Wire,
    anthropic_error_body,
    openai_error_body,
)

logger = logging.getLogger("sseserver.fake")

# Tokens written per loop pass at rate 0: big enough to saturate a client, small
# enough that thousands of concurrent streams all make progress.
BATCH_TOKENS = 32
MAX_REQUEST_BODY = 8 * 1024 * 1024
EVENT_STREAM = "text/event-stream; charset=utf-8"
GEMINI_PATH, GEMINI_METHOD = "/v1beta/models/", ":streamGenerateContent"
BEDROCK_METHOD = "/converse-stream"
_ERROR_BODIES: dict[str, Callable[[int, str], bytes]] = {
    "openai": openai_error_body, "anthropic": anthropic_error_body,
    "openai-responses": openai_error_body, "azure-openai": openai_error_body,
    "ollama": ollama_error_body, "gemini": gemini_error_body,
    "bedrock": bedrock_error_body}


@dataclass(slots=True)
class FakeStats:
    requests: int = 0
    connections: int = 0
    active: int = 0
    cancelled: int = 0
    completed: int = 0
    tokens_sent: int = 0


class FakeProvider:
    """A fake provider on loopback. ``async with FakeProvider() as fake: fake.base_url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 ssl: ssl_module.SSLContext | None = None) -> None:
        self.host = host
        self._port = port
        self._ssl = ssl
        self.counters = FakeStats()
        self.attempts: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    def __repr__(self) -> str:
        return f"<FakeProvider {self.base_url} {self.stats()}>"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self, loop),
                                                self.host, self._port, backlog=4096,
                                                ssl=self._ssl)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        """The origin, without ``/v1``: ``http://127.0.0.1:PORT`` (https with TLS)."""
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def stats(self) -> dict[str, int]:
        return asdict(self.counters)

    def reset(self) -> None:
        # in place: running generations hold this object
        active = self.counters.active
        for name in FakeStats.__slots__:
            setattr(self.counters, name, 0)
        self.counters.active = active
        self.attempts.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        self._connections.clear()

    async def __aenter__(self) -> FakeProvider:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


async def serve_fake_provider(host: str, port: int) -> None:
    """Run a fake provider until cancelled (the ``sseserver fake-provider`` command)."""
    async with FakeProvider(host, port):
        await asyncio.Event().wait()


class _Connection(asyncio.Protocol):
    def __init__(self, fake: FakeProvider, loop: asyncio.AbstractEventLoop) -> None:
        self.fake = fake
        self.loop = loop
        self.h11 = h11.Connection(h11.SERVER)
        self.transport: asyncio.Transport | None = None
        self.request: h11.Request | None = None
        self.body: list[bytes] = []
        self.generation: _Generation | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.fake.counters.connections += 1
        self.fake._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fake._connections.discard(self)
        if self.generation is not None:
            self.generation.cancel()
            self.generation = None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.generation is not None:
            self.generation.schedule()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        try:
            self.h11.receive_data(data)
            self._process()
        except (h11.RemoteProtocolError, h11.LocalProtocolError):
            self.abort()

    def _process(self) -> None:
        while self.generation is None:
            event = self.h11.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.request, self.body = event, []
            elif isinstance(event, h11.Data):
                self.body.append(bytes(event.data))
                if sum(map(len, self.body)) > MAX_REQUEST_BODY:
                    self.abort()
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._route()
            elif isinstance(event, h11.ConnectionClosed):
                return

    def _route(self) -> None:
        request = self.request
        assert request is not None
        path = request.target.decode().partition("?")[0]
        method = request.method.decode()
        if path == "/_fake/stats" and method == "GET":
            self.respond(200, orjson.dumps(self.fake.stats()))
        elif path == "/_fake/reset" and method == "POST":
            self.fake.reset()
            self.respond(200, b'{"reset":true}')
        elif path == "/v1/chat/completions" and method == "POST":
            self.fake.counters.requests += 1
            self._generate("openai")
        elif path == "/v1/messages" and method == "POST":
            self.fake.counters.requests += 1
            self._generate("anthropic")
        elif path == "/v1/responses" and method == "POST":
            self.fake.counters.requests += 1
            self._generate("openai-responses")
        elif azure_route(path) and method == "POST" and (
                b"api-version=" in request.target or path.startswith("/openai/v1/")):
            self.fake.counters.requests += 1
            self._generate("azure-openai")
        elif path == "/api/chat" and method == "POST":
            self.fake.counters.requests += 1
            self._generate("ollama")
        elif path.startswith(GEMINI_PATH) and path.endswith(GEMINI_METHOD) and \
                method == "POST":
            self.fake.counters.requests += 1
            self._generate("gemini", unquote(path[len(GEMINI_PATH):-len(GEMINI_METHOD)]))
        elif path.startswith("/model/") and path.endswith(BEDROCK_METHOD) and \
                method == "POST":
            self.fake.counters.requests += 1
            self._generate("bedrock", unquote(path[len("/model/"):-len(BEDROCK_METHOD)]))
        else:
            self.respond(404, orjson.dumps({"error": {"message": f"no route {path}",
                                                      "type": "not_found_error"}}))

    def respond(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
                ) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        head = h11.Response(status_code=status, reason=b"OK" if status == 200 else b"Error",
                            headers=[("content-type", "application/json"),
                                     ("content-length", str(len(body))), *(headers or [])])
        self.transport.write(self.h11.send(head) + self.h11.send(h11.Data(data=body))
                             + self.h11.send(h11.EndOfMessage()))
        self._next_cycle()

    def _next_cycle(self) -> None:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            if self.h11.trailing_data[0]:
                self.loop.call_soon(self._process)
        else:
            self.transport.close() if self.transport else None

    def _generate(self, kind: str, model: str | None = None) -> None:
        request = self.request
        assert request is not None
        error_body = _ERROR_BODIES[kind]
        try:
            body = orjson.loads(b"".join(self.body))
            if not isinstance(body, dict):
                raise ScriptError("request body must be a JSON object")
            if kind == "gemini":  # the model is in the path, the messages in contents
                body = {**body, "model": model, "messages": gemini_user_messages(body)}
            script = parse_script(_script_text(kind, body)) or Script(text=DEFAULT_REPLY)
        except (orjson.JSONDecodeError, ScriptError) as exc:
            self.respond(400, error_body(400, str(exc)))
            return
        failure = self._scripted_failure(script, request, kind)
        if failure is not None:
            status, headers = failure
            if kind == "bedrock":
                headers = [*headers, *bedrock_error_headers(status)]
            self.respond(status, error_body(status, f"scripted failure {status}"), headers)
            return
        wire = _make_wire(kind, body)
        if body.get("stream") is False and kind in ("openai", "anthropic"):
            self.respond(200, _whole_reply(kind, script, body))
            return
        self.generation = _Generation(self, script, wire)
        self.generation.begin()

    def _scripted_failure(self, script: Script, request: h11.Request, kind: str
                          ) -> tuple[int, list[tuple[str, str]]] | None:
        if script.require_key is not None and kind == "bedrock":
            headers_read = {n.decode().lower(): v.decode() for n, v in request.headers}
            if not signed_with(script.require_key, request.method.decode(),
                               request.target.decode(), headers_read, b"".join(self.body)):
                return 403, []  # Bedrock's answer to a bad signature
        elif script.require_key is not None:
            headers = {n.lower(): v for n, v in request.headers}
            given = headers.get(b"x-api-key", b"").decode() or \
                headers.get(b"api-key", b"").decode() or \
                headers.get(b"x-goog-api-key", b"").decode() or \
                headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
            if given != script.require_key:
                return 401, []
        if not script.fail:
            return None
        attempt = self.fake.attempts.get(script.fail_key, 0)
        self.fake.attempts[script.fail_key] = attempt + 1
        if attempt >= len(script.fail):
            return None
        status = script.fail[attempt]
        if status in (429, 503, 529):
            after = script.retry_after if script.retry_after is not None else 0
            return status, [("retry-after", f"{after:g}"),
                            ("retry-after-ms", str(int(after * 1000) or 10))]
        return status, []

    def finish_generation(self) -> None:
        self.generation = None
        self.transport.write(self.h11.send(h11.EndOfMessage())) if self.transport else None
        self._next_cycle()


def _script_text(kind: str, body: dict[str, Any]) -> str:
    if kind == "openai-responses":
        return responses_input_text(body.get("input"))
    return last_user_text(body.get("messages"))


def _make_wire(kind: str, body: dict[str, Any]) -> Wire:
    model = str(body.get("model") or "fake-model")
    if kind == "openai-responses":
        return ResponsesWire(model)
    if kind == "azure-openai":
        return AzureWire(model, _includes_usage(body))
    if kind == "ollama":
        return OllamaWire(model)
    if kind == "openai":
        return OpenAIWire(model, _includes_usage(body))
    if kind == "gemini":
        return GeminiWire(model, _input_tokens(body))
    if kind == "bedrock":
        return BedrockWire(_input_tokens(body))
    return AnthropicWire(model, _input_tokens(body))


def _includes_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _input_tokens(body: dict[str, Any]) -> int:
    return max(1, len(split_tokens(last_user_text(body.get("messages")))))


def _whole_reply(kind: str, script: Script, body: dict[str, Any]) -> bytes:
    text = "".join(script.reply_tokens())
    if kind == "openai":
        return orjson.dumps({"id": "chatcmpl-fake", "object": "chat.completion",
                             "model": body.get("model"), "choices": [{
                                 "index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}]})
    return orjson.dumps({"id": "msg_fake", "type": "message", "role": "assistant",
                         "model": body.get("model"), "stop_reason": "end_turn",
                         "content": [{"type": "text", "text": text}]})


class _Generation:
    """One scripted stream, driven by loop callbacks (no task per token)."""

    def __init__(self, conn: _Connection, script: Script, wire: Wire) -> None:
        self.conn = conn
        self.script = script
        self.wire = wire
        self.tokens = script.reply_tokens()
        self.sent = 0
        self.stalled = False
        self.handle: asyncio.Handle | None = None
        self.interval = 1.0 / script.rate if script.rate > 0 else 0.0
        counters = conn.fake.counters
        counters.active += 1
        self.counters = counters

    def begin(self) -> None:
        delay = self.script.ttfb_ms / 1000
        self._later(delay, self._send_head)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        loop = self.conn.loop
        self.handle = loop.call_later(delay, callback) if delay > 0 else loop.call_soon(callback)

    def _send_head(self) -> None:
        self.handle = None
        conn = self.conn
        head = conn.h11.send(h11.Response(status_code=200, reason=b"OK", headers=[
            ("content-type", getattr(self.wire, "content_type", EVENT_STREAM)),
            ("transfer-encoding", "chunked"), ("cache-control", "no-cache")]))
        thinking = [f"think{i} " for i in range(self.script.thinking)]
        self._write(head, self.wire.start() + self.wire.thinking(thinking))
        self.schedule()

    def schedule(self) -> None:
        if self.handle is None and not self.stalled and self.conn.generation is self:
            self._later(self.interval, self._step)

    def _step(self) -> None:
        self.handle = None
        if self.conn.paused or self.conn.generation is not self:
            return  # resume_writing() schedules us again
        frames: list[bytes] = []
        budget = BATCH_TOKENS if self.interval == 0 else 1
        while budget and self.sent < len(self.tokens):
            if self._special(frames):
                return
            token = f"t{time.monotonic_ns()} " if self.script.stamp else self.tokens[self.sent]
            frames.append(self.wire.token(token))
            self.sent += 1
            self.counters.tokens_sent += 1
            budget -= 1
        if self.sent >= len(self.tokens) and not self._special(frames):
            self._write(b"", b"".join(frames) + self._ending())
            self._done(cancelled=False)
            self.conn.finish_generation()
            return
        self._write(b"", b"".join(frames))
        self.schedule()

    def _special(self, frames: list[bytes]) -> bool:
        """Apply the knob due at this token; True when the stream stops here."""
        script, sent = self.script, self.sent
        if script.malformed_after == sent:
            frames.append(self.wire.malformed())
        if script.drop_after == sent:
            self._write(b"", b"".join(frames))
            self._done(cancelled=False)
            self.conn.generation = None
            self.conn.abort()
            return True
        if script.stall_after == sent:
            self._write(b"", b"".join(frames))
            self.stalled = True
            return True
        if script.error_after == sent:
            self._write(b"", b"".join(frames) + self.wire.stream_error())
            self._done(cancelled=False)
            self.conn.finish_generation()
            return True
        return False

    def _ending(self) -> bytes:
        frames = b""
        reason = "stop"
        for call in self.script.tool_calls:
            frames += self.wire.tool_call(call["name"], call.get("arguments", ""))
            reason = "tool_calls"
        usage = self.script.usage or {}
        input_tokens = int(usage.get("input_tokens", _input_guess(self.wire)))
        output_tokens = int(usage.get("output_tokens", self.sent))
        return frames + self.wire.finish(reason, input_tokens, output_tokens,
                                         self.script.stop_sequence)

    def _write(self, head: bytes, payload: bytes) -> None:
        transport = self.conn.transport
        if transport is None or transport.is_closing():
            return
        if payload:
            transport.write(head + b"%x\r\n%b\r\n" % (len(payload), payload))
        elif head:
            transport.write(head)

    def _done(self, cancelled: bool) -> None:
        self.counters.active -= 1
        if cancelled:
            self.counters.cancelled += 1
        else:
            self.counters.completed += 1

    def cancel(self) -> None:
        """The client went away before the end."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self._done(cancelled=True)


def _input_guess(wire: Wire) -> int:
    return wire.input_tokens if isinstance(wire, AnthropicWire | GeminiWire | BedrockWire) \
        else 10
