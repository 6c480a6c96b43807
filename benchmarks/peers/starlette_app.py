"""Peer: uvicorn + sse-starlette + httpx, the common FastAPI pattern.

    python -m benchmarks.peers.starlette_app PORT UPSTREAM_PORT
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator

import httpx
import uvicorn
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

UPSTREAM = ""
client: httpx.AsyncClient | None = None


async def stream(request: Request) -> EventSourceResponse:
    body = await request.json()

    async def events() -> AsyncIterator[str]:
        global client
        if client is None:
            client = httpx.AsyncClient(timeout=None, limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=None))
        payload = {"model": body["model"], "messages": body["messages"], "stream": True}
        async with client.stream("POST", UPSTREAM, json=payload) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                choices = json.loads(line[6:]).get("choices")
                if choices and choices[0].get("delta", {}).get("content"):
                    yield json.dumps({"content": choices[0]["delta"]["content"]})
        yield "[DONE]"

    return EventSourceResponse(events())


app = Starlette(routes=[Route("/v1/stream", stream, methods=["POST"])])

if __name__ == "__main__":
    port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    UPSTREAM = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="uvloop", http="h11",
                            log_level="warning", backlog=4096)
    server = uvicorn.Server(config)
    print(f"listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.run()
