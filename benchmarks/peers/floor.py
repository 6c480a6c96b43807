"""The floor: a minimal hand-written uvloop relay with no HTTP library.

It does the same job as the gateway (POST /v1/stream -> OpenAI-format upstream ->
`data: {"content": ...}` frames -> `data: [DONE]`) with the least Python possible, and
no hardening, heartbeats or error handling: the fastest Python can do this job.

    python -m benchmarks.peers.floor PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import sys

import orjson
import uvloop

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")


class Upstream(asyncio.Protocol):
    def __init__(self, client: Client, request: bytes) -> None:
        self.client = client
        self.request = request
        self.buffer = b""
        self.head_done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if not self.head_done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            buffer = buffer[end + 4:]
            self.head_done = True
        frames = []
        while True:  # chunked framing, then SSE lines, both by hand
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(buffer[:line_end], 16)
            if len(buffer) < line_end + 2 + size + 2:
                break
            payload = buffer[line_end + 2:line_end + 2 + size]
            buffer = buffer[line_end + 4 + size:]
            if size == 0:
                frames.append(b"data: [DONE]\n\n")
                break
            for line in payload.split(b"\n"):
                if line.startswith(b"data: {"):
                    choices = orjson.loads(line[6:]).get("choices")
                    if choices:
                        content = choices[0].get("delta", {}).get("content")
                        if content:
                            frames.append(b"data: " + orjson.dumps({"content": content})
                                          + b"\n\n")
        self.buffer = buffer
        if frames:
            body = b"".join(frames)
            out = b"%x\r\n%b\r\n" % (len(body), body)
            if frames[-1] == b"data: [DONE]\n\n":
                out += b"0\r\n\r\n"
                self.transport.close()
            self.client.transport.write(out)


class Client(asyncio.Protocol):
    upstream_port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
        if len(self.buffer) < end + 4 + length:
            return
        body = orjson.loads(self.buffer[end + 4:end + 4 + length])
        self.buffer = b""
        upstream_body = orjson.dumps({"model": body["model"], "messages": body["messages"],
                                      "stream": True})
        request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: upstream\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                   % (len(upstream_body), upstream_body))
        self.transport.write(HEAD)  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        self.connecting = loop.create_task(loop.create_connection(
            lambda: Upstream(self, request), "127.0.0.1", self.upstream_port))


async def main(port: int, upstream_port: int) -> None:
    Client.upstream_port = upstream_port
    server = await asyncio.get_running_loop().create_server(Client, "127.0.0.1", port,
                                                            backlog=4096)
    print(f"listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}",
          file=sys.stderr, flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
