"""The bytes of Bedrock's ConverseStream, sans-IO: Converse events in
``application/vnd.amazon.eventstream`` messages, as the br_* recordings show them (text
blocks open with their first delta; a toolUse block with contentBlockStart; usage in
the metadata event after messageStop)."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from sseserver.core.eventstream import encode_message
from sseserver.core.sigv4 import AwsCredentials, signed_headers
from sseserver.fake.wire import split_arguments

_ids = itertools.count(1)
_dumps = orjson.dumps
CONTENT_TYPE = "application/vnd.amazon.eventstream"
_EXCEPTIONS = {400: "ValidationException", 403: "AccessDeniedException",
               404: "ResourceNotFoundException", 424: "ModelErrorException",
               429: "ThrottlingException", 500: "InternalServerException",
               503: "ServiceUnavailableException"}
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}")


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return encode_message({":event-type": name, ":content-type": "application/json",
                           ":message-type": "event"}, _dumps(payload))


class BedrockWire:
    content_type = CONTENT_TYPE

    def __init__(self, input_tokens: int) -> None:
        self.input_tokens = input_tokens
        self._block = 0
        self._text_open = False

    def start(self) -> bytes:
        return _event("messageStart", {"role": "assistant"})

    def token(self, text: str) -> bytes:
        self._text_open = True
        return _event("contentBlockDelta", {"contentBlockIndex": self._block,
                                            "delta": {"text": text}})

    def _stop_block(self) -> bytes:
        frame = _event("contentBlockStop", {"contentBlockIndex": self._block})
        self._block += 1
        return frame

    def _end_text(self) -> bytes:
        if not self._text_open:
            return b""
        self._text_open = False
        return self._stop_block()

    def thinking(self, texts: list[str]) -> bytes:
        if not texts:
            return b""
        frames = [_event("contentBlockDelta", {"contentBlockIndex": self._block, "delta": {
            "reasoningContent": {"text": text}}}) for text in texts]
        frames.append(_event("contentBlockDelta", {"contentBlockIndex": self._block, "delta": {
            "reasoningContent": {"signature": "ZmFrZXNpZw=="}}}))
        return b"".join(frames) + self._stop_block()

    def tool_call(self, name: str, arguments: str) -> bytes:
        frames = [self._end_text(), _event("contentBlockStart", {
            "contentBlockIndex": self._block, "start": {"toolUse": {
                "toolUseId": f"tooluse_fake{next(_ids)}", "name": name}}})]
        frames.extend(_event("contentBlockDelta", {"contentBlockIndex": self._block, "delta": {
            "toolUse": {"input": part}}}) for part in split_arguments(arguments) if part)
        return b"".join(frames) + self._stop_block()

    def finish(self, reason: str, input_tokens: int, output_tokens: int,
               stop_sequence: str | None = None) -> bytes:
        stop = "tool_use" if reason == "tool_calls" else "end_turn"
        return self._end_text() + _event("messageStop", {"stopReason": stop}) + \
            _event("metadata", {"usage": {"inputTokens": input_tokens,
                                          "outputTokens": output_tokens,
                                          "totalTokens": input_tokens + output_tokens},
                                "metrics": {"latencyMs": 1}})

    def stream_error(self) -> bytes:
        return encode_message({":exception-type": "modelStreamErrorException",
                               ":content-type": "application/json",
                               ":message-type": "exception"},
                              b'{"message":"Model Stream Error","originalStatusCode":424}')

    def malformed(self) -> bytes:
        return encode_message({":event-type": "contentBlockDelta",
                               ":content-type": "application/json",
                               ":message-type": "event"}, b"{not json")


def bedrock_error_body(status: int, message: str) -> bytes:
    return _dumps({"message": message})


def bedrock_error_headers(status: int) -> list[tuple[str, str]]:
    return [("x-amzn-errortype", _EXCEPTIONS.get(status, "InternalServerException"))]


def signed_with(secret: str, method: str, target: str, headers: dict[str, str],
                body: bytes) -> bool:
    """Whether the request's SigV4 signature is one made with ``secret``."""
    authorization = headers.get("authorization", "")
    match = _AUTHORIZATION.fullmatch(authorization)
    date = headers.get("x-amz-date", "")
    if match is None or not re.fullmatch(r"\d{8}T\d{6}Z", date):
        return False
    key_id, region, service, names = match.groups()
    own = ("host", "x-amz-date", "x-amz-security-token")
    signed = [(name, headers.get(name, "")) for name in names.split(";") if name not in own]
    when = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    credentials = AwsCredentials(key_id, secret, headers.get("x-amz-security-token"))
    expected = signed_headers(method, f"http://{headers.get('host', '')}{target}", signed,
                              body, credentials, region, service, when)
    return dict(expected)["authorization"] == authorization
