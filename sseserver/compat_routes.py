"""The compatible endpoints' routes: OpenAI Chat Completions, Anthropic Messages, the
models list, and the AI SDK's ``useChat`` (README, "OpenAI- and Anthropic-compatible
endpoints" and "The AI SDK").

:class:`CompatRoutes` is held by the :class:`~sseserver.gateway.Gateway`, which routes
requests to it and runs the streams it starts: the same relay, admission, routing and
stream store as ``/v1/stream``, with each API's own request parser, formatter, whole
answer and error shape.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import unquote

from sseserver.aio.http_server import HTTPConnection, HTTPRequest
from sseserver.compat.api import ANTHROPIC_MESSAGES, OPENAI_CHAT, CompatAPI
from sseserver.compat.models import models_list
from sseserver.compat.requests import CompatRequest, ResumeOptions, parse_resume_options
from sseserver.compat.ui_chat import parse_ui_chat
from sseserver.errors import RequestError
from sseserver.fanout import NumberedLogOutput
from sseserver.output import CollectingOutput, Output, ShapedOutput
from sseserver.relay import Relay, Target

if TYPE_CHECKING:
    from sseserver.gateway import Gateway

CHAT_PREFIX = "/v1/chat/"  # GET /v1/chat/{id}/stream: where useChat resumes
CHAT_STREAM_SUFFIX = "/stream"


class CompatRoutes:
    """The route handlers of the compatible endpoints, for the gateway's route table."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def __repr__(self) -> str:
        return f"<CompatRoutes of {self._gateway!r}>"

    def post_chat_completions(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        self._serve(OPENAI_CHAT, request, conn)

    def post_messages(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        self._serve(ANTHROPIC_MESSAGES, request, conn)

    def models(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        gateway = self._gateway
        conn.respond_json(200, models_list(gateway.config.routing, gateway.providers,
                                           "anthropic-version" in request.headers))

    def _serve(self, api: CompatAPI, request: HTTPRequest, conn: HTTPConnection) -> None:
        """An OpenAI- or Anthropic-compatible request: the same relay as /v1/stream,
        with that API's formatter (streaming) or assembler (a whole answer)."""
        gateway = self._gateway
        try:
            gateway.check_room()
            compat = api.parse(request.body)
            compat = replace(compat, generation=gateway.within_ceiling(compat.generation))
            resume = parse_resume_options(request.headers, compat.stream)
            route = gateway.resolve(compat.generation)
        except RequestError as exc:
            self._refuse(api, exc, conn)
            return
        created = int(time.time())
        if resume.resumable:
            try:  # refused while the stream store is out of reach
                self._serve_resumable(api, compat, resume, route, created, conn)
            except RequestError as exc:
                self._refuse(api, exc, conn)
            return
        if compat.stream:
            formatter = api.formatter(compat, created)
            output: Output = ShapedOutput(conn, [], api.error_answer)
        else:
            formatter = assembler = api.assembler(created)
            output = CollectingOutput(conn, assembler, gateway.config.streams.max_bytes,
                                      api.error_answer)
        gateway.start_relay(Relay(output, compat.generation, route, formatter,
                                  gateway.policy, gateway.pool, on_end=gateway.relay_ended,
                                  loop=conn.loop))

    def _refuse(self, api: CompatAPI, exc: RequestError, conn: HTTPConnection) -> None:
        """A request refused before its stream started, in its API's error shape."""
        self._gateway.counters["http_errors"] += 1
        conn.respond_json(exc.status, api.shape(exc.status, {"error": {
            "type": exc.error_type, "message": str(exc)}}), exc.headers)

    def _serve_resumable(self, api: CompatAPI, compat: CompatRequest, resume: ResumeOptions,
                         route: list[Target], created: int, conn: HTTPConnection) -> None:
        """``X-Resumable: true``: the stream goes into the log, each frame numbered, and
        this response is its first reader."""
        resumable = self._gateway.start_resumable(
            compat.generation, api.formatter(compat, created), [],
            cancel_when_alone=resume.cancel_when_alone, route=route,
            output_type=NumberedLogOutput)
        conn.response_headers.append(("location", resumable.url))
        resumable.output.subscribe(conn, 0, resumable.headers)

    def post_chat(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        """``useChat``'s DefaultChatTransport: the turn streams at once in the UI message
        stream format, and stays resumable at GET /v1/chat/{id}/stream."""
        self._gateway.check_room()
        turn = parse_ui_chat(request.body)
        resumable = self._gateway.start_resumable_request(
            self._gateway.within_ceiling(turn.generation), turn.chat_id)
        resumable.output.subscribe(conn, 0, resumable.headers)

    def resume_chat(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        """The chat's running turn, replayed from its start (the transport's
        ``resumeStreamIsReplay``); 204 when none is running."""
        # the transport sends the id through encodeURIComponent
        chat_id = unquote(request.path[len(CHAT_PREFIX):-len(CHAT_STREAM_SUFFIX)])
        if not chat_id:
            conn.respond(204, [], b"")
            return
        self._gateway.store.subscribe_chat(chat_id, conn)
