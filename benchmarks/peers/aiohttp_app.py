"""Peer: aiohttp + aiohttp-sse.

    python -m benchmarks.peers.aiohttp_app PORT UPSTREAM_PORT
"""

from __future__ import annotations

import json
import sys

import aiohttp
import uvloop
from aiohttp import web
from aiohttp_sse import sse_response

UPSTREAM = ""


async def stream(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    session: aiohttp.ClientSession = request.app["session"]
    payload = {"model": body["model"], "messages": body["messages"], "stream": True}
    async with sse_response(request, allow_all_methods=True) as sse, \
            session.post(UPSTREAM, json=payload) as upstream:
        async for raw in upstream.content:
            line = raw.decode().rstrip("\n")
            if not line.startswith("data: {"):
                continue
            choices = json.loads(line[6:]).get("choices")
            if choices and choices[0].get("delta", {}).get("content"):
                await sse.send(json.dumps({"content": choices[0]["delta"]["content"]}))
        await sse.send("[DONE]")
    return sse


async def make_app() -> web.Application:
    app = web.Application()
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    app.router.add_post("/v1/stream", stream)
    return app


if __name__ == "__main__":
    port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    UPSTREAM = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
    uvloop.install()
    print(f"listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None, backlog=4096,
                access_log=None)
