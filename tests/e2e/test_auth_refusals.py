"""Every refusal of the gate on every route that starts a generation: its status, its
headers, and the error shape of the endpoint called (ours, OpenAI's, Anthropic's)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import sseserver
from sseserver.core.auth import hash_key
from tests.e2e.stack import Stack, request_body

SECRET = "token-secret-refusals-" + "3" * 16
KEYS = {"app": "", "small": 'models = ["gpt-4o-mini"]\nmax_tokens = 50\n',
        "narrow": 'providers = ["elsewhere"]\n', "once": "requests_per_minute = 1\n",
        "single": "max_streams = 1\n"}
ROUTES = ["/v1/stream", "/v1/streams", "/v1/chat/completions", "/v1/messages", "/v1/chat"]


def key_of(name: str) -> str:
    return f"gw-{name}-Xr5Pcanary1Nq"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    toml = f'[auth]\ntoken_secret = "{SECRET}"\n' + "".join(
        f'[auth.keys.{name}]\nhash = "{hash_key(key_of(name))}"\n{limits}'
        for name, limits in KEYS.items())
    with Stack({"streams.heartbeat_interval": 0.2}, toml=toml) as s:
        yield s


def body_for(path: str, model: str = "gpt-4o-mini", **fields: Any) -> dict[str, Any]:
    if path == "/v1/chat":
        return {"id": "chat-r", "model": model, **fields, "messages": [
            {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}
    if path == "/v1/messages":  # required by the Messages API
        fields.setdefault("max_tokens", 5)
    return request_body({"tokens": 1}, model=model, **fields)


def send(stack: Stack, path: str, credential: str | None, body: dict[str, Any]
         ) -> httpx.Response:
    headers = {"authorization": f"Bearer {credential}"} if credential else {}
    return httpx.post(stack.url + path, json=body, headers=headers, timeout=10)


def error_of(path: str, response: httpx.Response) -> dict[str, Any]:
    payload = response.json()
    if path == "/v1/messages":
        assert payload["type"] == "error"
    if path == "/v1/chat/completions":
        assert {"message", "type", "param", "code"} <= set(payload["error"])
    error: dict[str, Any] = payload["error"]
    assert error["message"]
    return error


Case = Callable[[Stack, str], httpx.Response]


def _spent_token(stack: Stack, path: str) -> httpx.Response:
    token = sseserver.mint_token(SECRET, "app", ttl=60)
    assert send(stack, "/v1/stream", token, body_for("/v1/stream")).status_code == 200
    return send(stack, path, token, body_for(path))


def _rate(stack: Stack, path: str) -> httpx.Response:
    httpx.get(stack.url + "/v1/models", headers={"x-api-key": key_of("once")}, timeout=5)
    return send(stack, path, key_of("once"), body_for(path))


def _concurrency(stack: Stack, path: str) -> httpx.Response:
    body = json.dumps(request_body({"tokens": 400, "rate": 40})).encode()
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as held:
        held.sendall(f"POST /v1/stream HTTP/1.1\r\nhost: x\r\nx-api-key: {key_of('single')}"
                     f"\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
                     "\r\n\r\n".encode() + body)
        assert held.recv(64).startswith(b"HTTP/1.1 200 ")
        response = send(stack, path, key_of("single"), body_for(path))
    deadline = time.monotonic() + 5  # the held stream ends once its client has gone
    while time.monotonic() < deadline and stack.server.gateway.relays:  # type: ignore[union-attr]
        time.sleep(0.02)
    return response


CASES: dict[str, tuple[Case, int, str]] = {
    "no credential": (lambda s, p: send(s, p, None, body_for(p)), 401,
                      "authentication_error"),
    "a wrong key": (lambda s, p: send(s, p, "gw-wrong", body_for(p)), 401,
                    "authentication_error"),
    "an expired token": (lambda s, p: send(s, p, sseserver.mint_token(
        SECRET, "app", ttl=1, now=time.time() - 5), body_for(p)), 401,
        "authentication_error"),
    "a forged token": (lambda s, p: send(s, p, sseserver.mint_token(
        "f" * 32, "app"), body_for(p)), 401, "authentication_error"),
    "a subscribe token": (lambda s, p: send(s, p, sseserver.mint_token(
        SECRET, "app", stream_id="s"), body_for(p)), 403, "permission_error"),
    "a spent create token": (_spent_token, 403, "permission_error"),
    "a model out of the key": (lambda s, p: send(s, p, key_of("small"), body_for(
        p, model="gpt-4o")), 403, "permission_error"),
    "a provider out of the key": (lambda s, p: send(s, p, key_of("narrow"), body_for(p)),
                                  403, "permission_error"),
    "a model out of the token": (lambda s, p: send(s, p, sseserver.mint_token(
        SECRET, "app", model="gpt-4o"), body_for(p)), 403, "permission_error"),
    "max_tokens over the ceiling": (lambda s, p: send(s, p, key_of("small"), body_for(
        p, max_tokens=51)), 403, "permission_error"),
    "requests a minute": (_rate, 429, "rate_limit_error"),
    "streams at once": (_concurrency, 429, "rate_limit_error"),
}


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("case", list(CASES))
def test_every_refusal_on_every_route(stack: Stack, case: str, path: str) -> None:
    make, status, error_type = CASES[case]
    response = make(stack, path)
    assert response.status_code == status, response.text
    assert error_of(path, response)["type"] == error_type
    if status == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="sseserver"'
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1
    assert not any(key_of(name) in response.text for name in KEYS)
