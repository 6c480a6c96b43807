"""Micro benchmarks of each step of the per-token hot path, one fixed workload each.

Run with timing by `make bench`; `make test` runs them once with --benchmark-disable so
they cannot rot. Correctness of each result is recorded in extra_info and asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import h11
import orjson

from benchmarks.peers.floor import Upstream as FloorUpstream
from sseserver.aio.http_server import HTTPConnection, StreamWriter
from sseserver.aio.upstream import State, Timeouts, UpstreamConnection
from sseserver.config import LimitsSettings, ProviderSettings
from sseserver.core.chunked import ChunkedDecoder
from sseserver.core.eventstream import encode_message
from sseserver.core.h11_server import END_OF_MESSAGE, RequestHead, RequestReader
from sseserver.core.http_client import ResponseHeadParser, encode_request
from sseserver.core.sse import (
    MAX_BYTES_WITHOUT_EVENT,
    MAX_EVENT_BYTES,
    SSEParser,
    encode_event,
)
from sseserver.core.sse_crlf import CRLFEventParser
from sseserver.events import TextDelta
from sseserver.formats.anthropic_messages import AnthropicMessagesFormatter
from sseserver.formats.openai_chat import OpenAIChatFormatter
from sseserver.formats.sse import SSEFormatter
from sseserver.output import DirectOutput
from sseserver.providers.anthropic import AnthropicAdapter
from sseserver.providers.azure import AzureAdapter
from sseserver.providers.bedrock import BedrockAdapter, EventStreamReader
from sseserver.providers.gemini import GeminiAdapter
from sseserver.providers.ollama import OllamaAdapter, OllamaProvider
from sseserver.providers.openai import OpenAIAdapter, OpenAIProvider
from sseserver.providers.openai_responses import ResponsesAdapter
from sseserver.pump import Pump

# reference/openai-chat-stream.md §8.1, one content chunk as it arrives in one read
OPENAI_CHUNK = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1727346172,'
    b'"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":'
    b'{"content":"Hello"},"logprobs":null,"finish_reason":null}]}\n\n')
OPENAI_DATA = OPENAI_CHUNK[6:-2].decode()
ANTHROPIC_CHUNK = (b'event: content_block_delta\ndata: {"type":"content_block_delta",'
                   b'"index":0,"delta":{"type":"text_delta","text":"Hello"}}\n\n')


def test_encode_event(benchmark: Any) -> None:
    benchmark.group = "sse"
    frame = benchmark(encode_event, '{"content":"Hello"}', id=42)
    benchmark.extra_info["frame"] = frame.decode()
    assert frame == b'id: 42\ndata: {"content":"Hello"}\n\n'


def test_parse_openai_chunk(benchmark: Any) -> None:
    benchmark.group = "sse"
    parser = SSEParser()
    events = benchmark(parser.feed, OPENAI_CHUNK)
    benchmark.extra_info["events"] = len(events)
    assert [e.data for e in events] == [OPENAI_DATA]


def test_parse_anthropic_event(benchmark: Any) -> None:
    benchmark.group = "sse"
    parser = SSEParser()
    events = benchmark(parser.feed, ANTHROPIC_CHUNK)
    assert [e.event for e in events] == ["content_block_delta"]


def test_openai_adapter(benchmark: Any) -> None:
    benchmark.group = "adapter"
    adapter = OpenAIAdapter()
    events = benchmark(adapter.feed, "message", OPENAI_DATA)
    benchmark.extra_info["events"] = repr(events)
    assert events == [TextDelta("Hello")]


def test_anthropic_adapter(benchmark: Any) -> None:
    benchmark.group = "adapter"
    adapter = AnthropicAdapter()
    data = ANTHROPIC_CHUNK.split(b"data: ", 1)[1].strip().decode()
    events = benchmark(adapter.feed, "content_block_delta", data)
    assert events == [TextDelta("Hello")]


# reference/openai-responses-stream.md §4, one text delta as it arrives in one read
RESPONSES_CHUNK = (
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
    b'"sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,'
    b'"delta":"Hello","logprobs":[]}\n\n')


def test_responses_adapter(benchmark: Any) -> None:
    benchmark.group = "adapter"
    adapter = ResponsesAdapter()
    data = RESPONSES_CHUNK.split(b"data: ", 1)[1].strip().decode()
    events = benchmark(adapter.feed, "response.output_text.delta", data)
    assert events == [TextDelta("Hello")]


# the az_text_deployments recording's content chunk shape: filter results on the choice
AZURE_DATA = (
    '{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},'
    '"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,'
    '"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}},"delta":'
    '{"content":"Hello"},"finish_reason":null,"index":0,"logprobs":null}],"created":'
    '1762402679,"id":"chatcmpl-1","model":"gpt-4o-mini-2024-07-18","obfuscation":"RCSc2e",'
    '"object":"chat.completion.chunk"}')


def test_azure_adapter(benchmark: Any) -> None:
    benchmark.group = "adapter"
    adapter = AzureAdapter()
    events = benchmark(adapter.feed, "message", AZURE_DATA)
    assert events == [TextDelta("Hello")]


# the ol_emoji recording's content line, as one read
OLLAMA_LINE = (b'{"model":"gemma3:1b","created_at":"2025-08-20T13:48:24.421331Z","message":'
               b'{"role":"assistant","content":"Hello"},"done":false}\n')


def test_ollama_adapter(benchmark: Any) -> None:
    benchmark.group = "adapter"
    adapter = OllamaAdapter()
    events = benchmark(adapter.feed, "message", OLLAMA_LINE[:-1].decode())
    assert events == [TextDelta("Hello")]


def test_format_text_delta(benchmark: Any) -> None:
    benchmark.group = "format"
    formatter = SSEFormatter()
    frame = benchmark(formatter.event, TextDelta("Hello"))
    assert frame.endswith(b'\ndata: {"content":"Hello"}\n\n')


def test_format_text_delta_as_chat_chunk(benchmark: Any) -> None:
    """The per-token frame of /v1/chat/completions (formatter.text, as the relay calls it)."""
    benchmark.group = "format"
    formatter = OpenAIChatFormatter(1727346172, include_usage=False)
    formatter.start({"stream_id": "S", "provider": "p", "model": "gpt-4o-mini"})
    frame = benchmark(formatter.text, "Hello")
    assert frame.endswith(
        b'"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}\n\n')


def test_format_text_delta_as_anthropic_event(benchmark: Any) -> None:
    """The per-token frame of /v1/messages."""
    benchmark.group = "format"
    formatter = AnthropicMessagesFormatter()
    formatter.start({"stream_id": "S", "provider": "p", "model": "claude"})
    formatter.text("open the block")
    frame = benchmark(formatter.text, "Hello")
    assert frame == ANTHROPIC_CHUNK


def test_transform_openai_chunk_to_frame(benchmark: Any) -> None:
    """Upstream body bytes of one token in, the client's frame bytes out."""
    benchmark.group = "transform"
    parser, adapter, formatter = SSEParser(), OpenAIAdapter(), SSEFormatter()

    def transform() -> bytes:
        frames = [formatter.event(event) for sse in parser.feed(OPENAI_CHUNK)
                  for event in adapter.feed(sse.event, sse.data)]
        return b"".join(frames)

    frame = benchmark(transform)
    payload = orjson.loads(frame.split(b"data: ", 1)[1])
    benchmark.extra_info["payload"] = payload
    assert payload == {"content": "Hello"}


# -- once per stream: the upstream request out, the response head in ----------------
# One chat request as the OpenAI adapter builds it, and a streamed response's head as
# the provider sends it (its first chunk arrives in the same read).
REQUEST_HEADERS = (("content-type", "application/json"), ("accept", "text/event-stream"),
                   ("authorization", "Bearer sk-test-0123456789abcdef0123456789abcdef"))
REQUEST_BODY = orjson.dumps({"model": "gpt-4o-mini", "stream": True,
                             "messages": [{"role": "user", "content": "Hello"}]})
RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nDate: Mon, 30 Sep 2024 10:22:52 GMT\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: keep-alive\r\naccess-control-expose-headers: X-Request-ID\r\n"
    b"openai-organization: user-test\r\nopenai-processing-ms: 182\r\n"
    b"openai-version: 2020-10-01\r\nx-request-id: req_0123456789abcdef0123456789abcdef\r\n"
    b"cache-control: no-cache, must-revalidate\r\nCF-RAY: 8cb6e3b9fb2d2a3e-AMS\r\n"
    b"Server: cloudflare\r\n\r\n")
FIRST_CHUNK = b"%x\r\n%b\r\n" % (len(OPENAI_CHUNK), OPENAI_CHUNK)


def encode_request_h11() -> bytes:
    """What the upstream client did per request before: a connection, three sends."""
    client = h11.Connection(h11.CLIENT)
    request = h11.Request(method="POST", target="/v1/chat/completions", headers=[
        ("host", "api.openai.com"), *REQUEST_HEADERS,
        ("content-length", str(len(REQUEST_BODY)))])
    return b"".join(client.send(event) or b"" for event in (
        request, h11.Data(data=REQUEST_BODY), h11.EndOfMessage()))


def test_encode_request(benchmark: Any) -> None:
    benchmark.group = "upstream-head"
    request = benchmark(encode_request, "POST", "/v1/chat/completions", "api.openai.com",
                        REQUEST_HEADERS, REQUEST_BODY)
    benchmark.extra_info["same_bytes_as_h11"] = request == encode_request_h11()
    assert request == encode_request_h11()


def test_encode_request_h11(benchmark: Any) -> None:
    benchmark.group = "upstream-head"
    request = benchmark(encode_request_h11)
    assert request.endswith(b"\r\n\r\n" + REQUEST_BODY)


def h11_client_awaiting_head() -> h11.Connection:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/", headers=[
        ("host", "t"), ("content-length", "0")]))
    client.send(h11.EndOfMessage())
    return client


def parse_response_head_h11(client: h11.Connection) -> tuple[int, dict[str, str], bytes]:
    """What the upstream client did per response before: h11 reads the head."""
    client.receive_data(RESPONSE_HEAD + FIRST_CHUNK)
    event = client.next_event()
    assert isinstance(event, h11.Response)
    headers = {name.decode("latin-1").lower(): value.decode("latin-1")
               for name, value in event.headers.raw_items()}
    return event.status_code, headers, bytes(client.trailing_data[0])


def test_parse_response_head(benchmark: Any) -> None:
    benchmark.group = "upstream-head"

    def parse() -> tuple[int, dict[str, str], bytes]:
        parser = ResponseHeadParser()
        head = parser.feed(RESPONSE_HEAD + FIRST_CHUNK)
        assert head is not None
        return head.status, head.headers, parser.rest

    parsed = benchmark(parse)
    same = parsed == parse_response_head_h11(h11_client_awaiting_head())
    benchmark.extra_info["same_head_as_h11"] = same
    assert same and parsed[2] == FIRST_CHUNK


def test_parse_response_head_h11(benchmark: Any) -> None:
    """The h11 connection is set up outside the timing (it sent the request)."""
    benchmark.group = "upstream-head"
    status, headers, rest = benchmark.pedantic(
        parse_response_head_h11, setup=lambda: ((h11_client_awaiting_head(),), {}),
        rounds=2000)
    benchmark.extra_info["headers"] = len(headers)
    assert (status, rest) == (200, FIRST_CHUNK)


# -- once per stream: the client's request in -----------------------------------------
# The request the load benchmark sends (benchmarks/load.py), arriving in one read.
STREAM_BODY = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": (
    '#fake {"tokens":100,"rate":0.0,"stamp":false} Tell me a story about a gateway.')}]})
STREAM_REQUEST = (
    b"POST /v1/stream HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(STREAM_BODY), STREAM_BODY))
ParsedRequest = tuple[str, str, str, list[tuple[str, str]], bytes]


def read_request() -> ParsedRequest:
    """What the server does per request: a reader for the connection, the events."""
    reader = RequestReader(max_head_size=16384)
    reader.feed(STREAM_REQUEST)
    head = reader.next_event()
    body = reader.next_event()
    end = reader.next_event()
    assert isinstance(head, RequestHead) and isinstance(body, bytes)
    assert end is END_OF_MESSAGE
    return head.method, head.target, head.http_version, head.fields, body


def read_request_h11() -> ParsedRequest:
    """What the server did per request before: an h11 connection reads the events."""
    server = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
    server.receive_data(STREAM_REQUEST)
    request = server.next_event()
    data = server.next_event()
    end = server.next_event()
    assert isinstance(request, h11.Request) and isinstance(data, h11.Data)
    assert isinstance(end, h11.EndOfMessage)
    return (request.method.decode(), request.target.decode(), request.http_version.decode(),
            [(name.decode("latin-1"), value.decode("latin-1"))
             for name, value in request.headers], bytes(data.data))


def test_read_request(benchmark: Any) -> None:
    benchmark.group = "downstream-request"
    parsed = benchmark(read_request)
    same = parsed == read_request_h11()
    benchmark.extra_info["same_request_as_h11"] = same
    benchmark.extra_info["request_bytes"] = len(STREAM_REQUEST)
    assert same and parsed[4] == STREAM_BODY


def test_read_request_h11(benchmark: Any) -> None:
    benchmark.group = "downstream-request"
    parsed = benchmark(read_request_h11)
    assert parsed[4] == STREAM_BODY


# -- per token: the body chunk decoded, the frame written, and the whole way through ---

def test_decode_body_chunk(benchmark: Any) -> None:
    """One framed body chunk, as a provider flushes one event, to its payload."""
    benchmark.group = "chunk"
    decoder = ChunkedDecoder()
    pieces = benchmark(decoder.feed, FIRST_CHUNK)
    benchmark.extra_info["payload_intact"] = pieces == [OPENAI_CHUNK]
    assert pieces == [OPENAI_CHUNK]


def test_decode_body_chunk_h11(benchmark: Any) -> None:
    benchmark.group = "chunk"
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/", headers=[("host", "x"),
                                                               ("content-length", "0")]))
    client.send(h11.EndOfMessage())
    client.receive_data(RESPONSE_HEAD)
    assert isinstance(client.next_event(), h11.Response)

    def decode() -> bytes:
        client.receive_data(FIRST_CHUNK)
        event = client.next_event()
        assert isinstance(event, h11.Data)
        return bytes(event.data)

    assert benchmark(decode) == OPENAI_CHUNK


class RecordingTransport:
    """Stands in for the client socket: the benchmark times our work, not the kernel's."""

    def __init__(self) -> None:
        self.last = b""
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.last = data
        self.writes += 1

    def get_write_buffer_size(self) -> int:
        return 0

    def is_reading(self) -> bool:
        return True


def streaming_client(loop: asyncio.AbstractEventLoop
                     ) -> tuple[HTTPConnection, StreamWriter, RecordingTransport]:
    transport = RecordingTransport()
    conn = HTTPConnection(lambda request, c: None, LimitsSettings(header_timeout=0),
                          lambda c, status, message: None, loop)
    writer = StreamWriter(conn, transport)  # type: ignore[arg-type]
    return conn, writer, transport


def test_write_frame(benchmark: Any) -> None:
    """One frame to the client as one HTTP chunk."""
    benchmark.group = "frame-write"
    loop = asyncio.new_event_loop()
    _, writer, transport = streaming_client(loop)
    frame = SSEFormatter().event(TextDelta("Hello"))
    benchmark(writer.write, frame)
    benchmark.extra_info["chunk"] = transport.last.decode()
    assert transport.last == b"%x\r\n%b\r\n" % (len(frame), frame)
    loop.close()


class QuietDriver:
    """A pump's driver that has nothing to do: the stream is committed and flowing."""

    def on_commit(self) -> dict[str, Any]:
        return {"stream_id": "bench"}

    def on_settled(self, result: object) -> None:
        pass

    def on_unreadable(self, exc: Exception) -> None:
        pass


def our_token_path(loop: asyncio.AbstractEventLoop, ndjson: bool = False
                   ) -> tuple[Callable[[bytes], None], RecordingTransport]:
    """One committed stream, as after its first token: the upstream protocol's read
    callback, and the client transport it writes to. ``ndjson``: an Ollama stream, its
    body read by the NDJSON line reader."""
    conn, writer, transport = streaming_client(loop)
    output = DirectOutput(conn, [])
    output._writer = writer
    output.write_frame = writer.write  # as open() leaves it
    settings = ProviderSettings("bench", "ollama" if ndjson else "openai", "http://x/v1")
    provider = OllamaProvider(settings) if ndjson else OpenAIProvider(settings)
    pump = Pump(SSEFormatter(), output, QuietDriver())
    pump.begin(provider.new_body_reader(MAX_EVENT_BYTES, MAX_BYTES_WITHOUT_EVENT),
               provider.new_adapter())
    pump.commit([])  # as after the first token
    upstream = UpstreamConnection(Timeouts(), loop)
    upstream.connection_made(RecordingTransport())  # type: ignore[arg-type]
    upstream.state = State.BODY  # as after the response head
    upstream._decoder = ChunkedDecoder()
    upstream.stream(pump)
    return upstream.data_received, transport


def floor_token_path() -> tuple[Callable[[bytes], None], RecordingTransport]:
    """The same for the floor (benchmarks/peers/floor.py)."""
    client, upstream_transport = RecordingTransport(), RecordingTransport()
    upstream = FloorUpstream(SimpleNamespace(transport=client), b"")  # type: ignore[arg-type]
    upstream.transport = upstream_transport  # type: ignore[assignment]
    upstream.head_done = True  # as after the response head
    return upstream.data_received, client


def sent_payload(transport: RecordingTransport) -> Any:
    return orjson.loads(transport.last.split(b"data: ", 1)[1].split(b"\n", 1)[0])


def test_upstream_read_to_client_write(benchmark: Any) -> None:
    """The whole per-token path in one process: the provider's read (one framed chunk)
    through the upstream protocol, the relay (SSE parse, adapter, formatter) and the
    output to the client's transport."""
    benchmark.group = "per-token"
    loop = asyncio.new_event_loop()
    read, transport = our_token_path(loop)
    benchmark(read, FIRST_CHUNK)
    benchmark.extra_info["payload"] = sent_payload(transport)
    benchmark.extra_info["writes"] = transport.writes
    assert sent_payload(transport) == {"content": "Hello"}
    assert transport.last.endswith(b"\n\n\r\n")
    loop.close()


def test_upstream_read_to_client_write_ollama(benchmark: Any) -> None:
    """The same for an Ollama stream: one NDJSON line per read, through the line
    reader instead of the SSE parser."""
    benchmark.group = "per-token"
    loop = asyncio.new_event_loop()
    read, transport = our_token_path(loop, ndjson=True)
    benchmark(read, b"%x\r\n%b\r\n" % (len(OLLAMA_LINE), OLLAMA_LINE))
    assert sent_payload(transport) == {"content": "Hello"}
    loop.close()


def test_floor_read_to_client_write(benchmark: Any) -> None:
    """The same per-token work done by the floor: what the least Python can spend on
    one provider read."""
    benchmark.group = "per-token"
    read, client = floor_token_path()
    benchmark(read, FIRST_CHUNK)
    benchmark.extra_info["payload"] = sent_payload(client)
    assert sent_payload(client) == {"content": "Hello"}


# A burst: a fast model (hundreds of tokens a second), or a stream catching up, brings
# several events in one read. The fake provider at rate 0 writes its tokens so, one
# HTTP chunk each; this is ten of them in one read.
BURST_EVENTS = 10
BURST_READ = FIRST_CHUNK * BURST_EVENTS


def test_upstream_burst_read_to_client_write(benchmark: Any) -> None:
    """A read carrying 10 events through the whole path: one client write for all ten
    (time / 10 is the per-event cost)."""
    benchmark.group = "burst of 10 events in one read"
    loop = asyncio.new_event_loop()
    read, transport = our_token_path(loop)
    writes = transport.writes
    read(BURST_READ)
    assert transport.writes - writes == 1  # one write for the read's ten frames
    benchmark(read, BURST_READ)
    benchmark.extra_info["events"] = BURST_EVENTS
    assert transport.last.count(b'data: {"content":"Hello"}') == BURST_EVENTS
    loop.close()


def test_floor_burst_read_to_client_write(benchmark: Any) -> None:
    benchmark.group = "burst of 10 events in one read"
    read, client = floor_token_path()
    benchmark(read, BURST_READ)
    benchmark.extra_info["events"] = BURST_EVENTS
    assert client.last.count(b'data: {"content":"Hello"}') == BURST_EVENTS


# A fast model's read as the fake provider writes it at rate 0: one HTTP chunk holding
# twenty token events, each its own text, in the chunk shape OpenAI sends.
BURST_20_TEXTS = [f"word{n} " for n in range(20)]
BURST_20_PAYLOAD = b"".join(OPENAI_CHUNK.replace(b'"Hello"', orjson.dumps(text))
                            for text in BURST_20_TEXTS)
BURST_20_READ = b"%x\r\n%b\r\n" % (len(BURST_20_PAYLOAD), BURST_20_PAYLOAD)
BURST_20_GROUP = "burst of 20 events in one chunk"


def burst_20_texts(written: bytes) -> list[str]:
    return [orjson.loads(line[6:])["content"] for line in written.split(b"\n")
            if line.startswith(b"data: {")]


def test_upstream_burst_20_read_to_client_write(benchmark: Any) -> None:
    """One read of one chunk of 20 events through the whole path, one client write
    (time / 20 is the per-event cost)."""
    benchmark.group = BURST_20_GROUP
    loop = asyncio.new_event_loop()
    read, transport = our_token_path(loop)
    writes = transport.writes
    read(BURST_20_READ)
    assert transport.writes - writes == 1
    benchmark(read, BURST_20_READ)
    benchmark.extra_info["events"] = len(BURST_20_TEXTS)
    assert burst_20_texts(transport.last) == BURST_20_TEXTS
    loop.close()


def test_floor_burst_20_read_to_client_write(benchmark: Any) -> None:
    benchmark.group = BURST_20_GROUP
    read, client = floor_token_path()
    benchmark(read, BURST_20_READ)
    benchmark.extra_info["events"] = len(BURST_20_TEXTS)
    assert burst_20_texts(client.last) == BURST_20_TEXTS


# A server holds thousands of streams, and a token touches its own stream's objects,
# which the tokens of the others have pushed out of the CPU caches: a round of one token
# to each of this many streams times that, divided by it per token.
INTERLEAVED_STREAMS = 3000


def test_upstream_read_to_client_write_interleaved(benchmark: Any) -> None:
    """The per-token path, a token to each of 3,000 streams in turn (time / 3,000)."""
    benchmark.group = "per-token, 3000 streams interleaved"
    loop = asyncio.new_event_loop()
    paths = [our_token_path(loop) for _ in range(INTERLEAVED_STREAMS)]
    reads = [read for read, _ in paths]
    benchmark.pedantic(lambda: [read(FIRST_CHUNK) for read in reads], rounds=20)
    assert all(sent_payload(transport) == {"content": "Hello"} for _, transport in paths)
    benchmark.extra_info["streams"] = INTERLEAVED_STREAMS
    loop.close()


def test_floor_read_to_client_write_interleaved(benchmark: Any) -> None:
    benchmark.group = "per-token, 3000 streams interleaved"
    paths = [floor_token_path() for _ in range(INTERLEAVED_STREAMS)]
    reads = [read for read, _ in paths]
    benchmark.pedantic(lambda: [read(FIRST_CHUNK) for read in reads], rounds=20)
    assert all(sent_payload(client) == {"content": "Hello"} for _, client in paths)
    benchmark.extra_info["streams"] = INTERLEAVED_STREAMS


# -- each provider kind's body reading, next to OpenAI's ------------------------------
# One upstream read of one text token to its normalized event: framing (SSE parser, or
# the event-stream decoder) and adapter together, as the relay runs them; the workloads
# are one token each as the live APIs send it (the gm_* and br_* recordings' shapes).

OPENAI_READ = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1727346172,'
    b'"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":'
    b'{"content":"Hello"},"logprobs":null,"finish_reason":null}]}\n\n')
GEMINI_READ = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"},'
    b'"index": 0}],"usageMetadata": {"promptTokenCount": 15,"totalTokenCount": 15,'
    b'"promptTokensDetails": [{"modality": "TEXT","tokenCount": 15}]},'
    b'"modelVersion": "gemini-2.5-flash","responseId": "w1peaMz6INOvnvgPgYfPiQY"}\r\n\r\n')
BEDROCK_READ = encode_message(
    {":event-type": "contentBlockDelta", ":content-type": "application/json",
     ":message-type": "event"},
    b'{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdefghijklmnopqrstuvwxyzAB"}')
GROUP = "provider read to event"


def test_openai_read_to_event(benchmark: Any) -> None:
    benchmark.group = GROUP
    parser, adapter = SSEParser(), OpenAIAdapter()

    def read() -> Any:
        line = parser.feed_data_line(OPENAI_READ)
        return adapter.feed_message(line) if line is not None else None

    assert benchmark(read) == "Hello"


def test_gemini_read_to_event(benchmark: Any) -> None:
    benchmark.group = GROUP
    parser, adapter = CRLFEventParser(), GeminiAdapter()

    def read() -> Any:
        line = parser.feed_data_line(GEMINI_READ)
        return adapter.feed_message(line) if line is not None else None

    assert benchmark(read) == "Hello"


def test_bedrock_read_to_event(benchmark: Any) -> None:
    benchmark.group = GROUP
    reader, adapter = EventStreamReader(1 << 20), BedrockAdapter()

    def read() -> Any:
        line = reader.feed_data_line(BEDROCK_READ)
        return adapter.feed_message(line) if line is not None else None

    assert benchmark(read) == "Hello"
