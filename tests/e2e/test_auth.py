"""The gate over real sockets: keys, tokens, limits and refusals as clients meet them,
the official SDKs authenticating with a gateway key, and no key or token in the log."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

import sseserver
from sseserver.config import load_config
from sseserver.core.auth import hash_key
from sseserver.errors import ConfigError
from sseserver.server import Server
from tests.e2e.served import serve
from tests.e2e.stack import Stack, request_body

APP_KEY = "gw-app-Wq8Zcanary4Kd2Lp9Xe"
NEXT_KEY = "gw-next-Hs5Tcanary7Ub3Rn1Ym"  # the rotation's new key, valid beside the old
SMALL_KEY = "gw-small-Fa6Vcanary2Qj8Mt4Oc"
SECRET = "token-secret-Bz3Ncanary-" + "9" * 16
SETTINGS = {"streams.heartbeat_interval": 0.2}


def auth_toml(extra: str = "", **auth: str) -> str:
    lines = "".join(f'{name} = "{value}"\n' for name, value in auth.items())
    return (f'[auth]\ntoken_secret = "{SECRET}"\n{lines}'
            f'[auth.keys.app]\nhash = "{hash_key(APP_KEY)}"\n'
            f'[auth.keys.next]\nhash = "{hash_key(NEXT_KEY)}"\n'
            f'[auth.keys.small]\nhash = "{hash_key(SMALL_KEY)}"\nmax_streams = 10\n'
            f'requests_per_minute = 1000\nmodels = ["gpt-4o-mini"]\nmax_tokens = 50\n'
            f'{extra}')


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(SETTINGS, toml=auth_toml()) as s:
        yield s


def post(stack: Stack, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
         **params: str) -> httpx.Response:
    return httpx.post(stack.url + path, json=body, headers=headers or {}, params=params,
                      timeout=10)


def bearer(credential: str) -> dict[str, str]:
    return {"authorization": f"Bearer {credential}"}


# -- 401 in each endpoint's shape ------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), {"x-api-key": "wrong"},
                                     bearer(APP_KEY[:-1])])
def test_no_or_a_wrong_key_is_401_in_our_shape(stack: Stack, headers: dict[str, str]
                                              ) -> None:
    response = post(stack, "/v1/stream", request_body(), headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert "app" not in error["message"] and "next" not in error["message"]


def test_401_in_openai_shape_on_chat_completions(stack: Stack) -> None:
    response = post(stack, "/v1/chat/completions", request_body(), bearer("wrong"))
    assert response.status_code == 401 and "www-authenticate" in response.headers
    assert response.json()["error"]["type"] == "authentication_error"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_401_in_anthropic_shape_on_messages(stack: Stack) -> None:
    body = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user",
                                                                 "content": "hi"}]}
    response = post(stack, "/v1/messages", body, {"x-api-key": "wrong"})
    assert response.status_code == 401 and "www-authenticate" in response.headers
    assert response.json() == {"type": "error", "error": {
        "type": "authentication_error", "message": "invalid API key"}}


def test_wrong_and_unknown_keys_answer_alike(stack: Stack) -> None:
    answers = {post(stack, "/v1/stream", request_body(), bearer(key)).text
               for key in ("wrong", APP_KEY + "x", "app", hash_key(APP_KEY))}
    assert len(answers) == 1


# -- keys that work ----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [bearer(APP_KEY), {"x-api-key": APP_KEY},
                                     bearer(NEXT_KEY)])
def test_a_key_as_bearer_or_x_api_key_streams(stack: Stack, headers: dict[str, str]
                                             ) -> None:
    response = post(stack, "/v1/stream", request_body({"tokens": 2}), headers)
    assert response.status_code == 200 and "tok1" in response.text


def test_open_routes_stay_open(stack: Stack) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/"):
        assert httpx.get(stack.url + path, timeout=5).status_code == 200, path


def test_a_cors_preflight_needs_no_credential() -> None:
    with Stack({**SETTINGS, "server.cors_origins": ("https://app.example",)},
               toml=auth_toml()) as s:
        response = httpx.options(s.url + "/v1/stream", timeout=5, headers={
            "origin": "https://app.example", "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"})
        assert response.status_code == 204
        assert "authorization" in response.headers["access-control-allow-headers"]


def test_metrics_can_require_a_key() -> None:
    with Stack(SETTINGS, toml=auth_toml(metrics="key")) as s:
        assert httpx.get(s.url + "/metrics", timeout=5).status_code == 401
        token = sseserver.mint_token(SECRET, "app", stream_id="x")
        assert httpx.get(s.url + "/metrics", headers=bearer(token), timeout=5
                         ).status_code == 403
        assert httpx.get(s.url + "/metrics", headers=bearer(APP_KEY), timeout=5
                         ).status_code == 200


# -- the official SDKs -----------------------------------------------------------------


def test_the_openai_sdk_authenticates_with_a_gateway_key(stack: Stack) -> None:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=APP_KEY, max_retries=0,
                           timeout=10)
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "#fake {\"tokens\": 2}"}])
    assert completion.choices[0].message.content == "tok0 tok1 "
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", stream=True,
        messages=[{"role": "user", "content": "#fake {\"tokens\": 2}"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "tok0 tok1 "
    wrong = openai.OpenAI(base_url=stack.url + "/v1", api_key="wrong", max_retries=0,
                          timeout=10)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="gpt-4o-mini",
                                      messages=[{"role": "user", "content": "hi"}])


def test_the_anthropic_sdk_authenticates_with_a_gateway_key(stack: Stack) -> None:
    client = anthropic.Anthropic(base_url=stack.url, api_key=NEXT_KEY, max_retries=0,
                                 timeout=10)
    message = client.messages.create(model="gpt-4o-mini", max_tokens=50, messages=[
        {"role": "user", "content": "#fake {\"tokens\": 2}"}])
    assert message.content[0].text == "tok0 tok1 "  # type: ignore[union-attr]
    wrong = anthropic.Anthropic(base_url=stack.url, api_key="wrong", max_retries=0,
                                timeout=10)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="gpt-4o-mini", max_tokens=5,
                              messages=[{"role": "user", "content": "hi"}])


def test_the_sdks_get_their_permission_error_out_of_scope(stack: Stack) -> None:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=SMALL_KEY, max_retries=0,
                           timeout=10)
    with pytest.raises(openai.PermissionDeniedError, match="model 'gpt-4o' is not allowed"):
        client.chat.completions.create(model="gpt-4o", max_completion_tokens=10,
                                       messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.PermissionDeniedError, match="max_tokens"):
        client.chat.completions.create(model="gpt-4o-mini", max_completion_tokens=51,
                                       messages=[{"role": "user", "content": "hi"}])
    messages = anthropic.Anthropic(base_url=stack.url, api_key=SMALL_KEY, max_retries=0,
                                   timeout=10)
    with pytest.raises(anthropic.PermissionDeniedError):
        messages.messages.create(model="gpt-4o-mini", max_tokens=51,
                                 messages=[{"role": "user", "content": "hi"}])


# -- browser tokens --------------------------------------------------------------------


def test_a_create_token_starts_one_generation_then_is_spent(stack: Stack) -> None:
    token = sseserver.mint_token(SECRET, "app", ttl=60, model="gpt-4o-mini", max_tokens=20)
    body = request_body({"tokens": 2}, max_tokens=20)
    first = post(stack, "/v1/stream", body, bearer(token))
    assert first.status_code == 200 and "tok1" in first.text
    again = post(stack, "/v1/stream", body, bearer(token))
    assert again.status_code == 403 and again.json()["error"]["type"] == "permission_error"


def test_a_create_token_fixing_a_model_refuses_another(stack: Stack) -> None:
    token = sseserver.mint_token(SECRET, "app", model="gpt-4o-mini")
    response = post(stack, "/v1/stream", request_body(model="gpt-4o"), bearer(token))
    assert response.status_code == 403


def test_expired_forged_and_tampered_tokens_are_401(stack: Stack) -> None:
    expired = sseserver.mint_token(SECRET, "app", ttl=1, now=time.time() - 10)
    forged = sseserver.mint_token("x" * 32, "app")
    good = sseserver.mint_token(SECRET, "app")
    tampered = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    for token in (expired, forged, tampered):
        response = post(stack, "/v1/stream", request_body(), bearer(token))
        assert response.status_code == 401, token


def test_subscribe_stays_open_by_id_by_default(stack: Stack) -> None:
    created = post(stack, "/v1/streams", request_body({"tokens": 2}), bearer(APP_KEY))
    assert created.status_code == 201
    events = httpx.get(stack.url + created.json()["url"], timeout=10)
    assert events.status_code == 200 and "tok1" in events.text


def test_subscribe_token_mode_takes_a_key_or_a_token_for_that_stream() -> None:
    with Stack(SETTINGS, toml=auth_toml(subscribe="token")) as s:
        ids = [post(s, "/v1/streams", request_body({"tokens": 2}), bearer(APP_KEY)
                    ).json()["id"] for _ in range(2)]
        url = f"{s.url}/v1/streams/{ids[0]}"
        assert httpx.get(url, timeout=5).status_code == 401
        for_b = sseserver.mint_token(SECRET, "app", stream_id=ids[1])
        assert httpx.get(url, params={"token": for_b}, timeout=5).status_code == 403
        create = sseserver.mint_token(SECRET, "app")
        assert httpx.get(url, params={"token": create}, timeout=5).status_code == 403
        for_a = sseserver.mint_token(SECRET, "app", stream_id=ids[0])
        events = httpx.get(url, params={"token": for_a}, timeout=10)  # as EventSource
        assert events.status_code == 200 and "tok1" in events.text
        assert httpx.get(url, headers=bearer(APP_KEY), timeout=10).status_code in (200, 204)


def test_a_subscribe_token_cannot_create(stack: Stack) -> None:
    token = sseserver.mint_token(SECRET, "app", stream_id="anything")
    assert post(stack, "/v1/stream", request_body(), bearer(token)).status_code == 403
    assert post(stack, "/v1/streams", request_body(), token=token).status_code == 403


# -- per-key limits ----------------------------------------------------------------------


def test_200_parallel_requests_against_a_concurrency_limit_of_10(stack: Stack) -> None:
    body = json.dumps(request_body({"tokens": 400, "rate": 40}, max_tokens=50)).encode()
    head = (f"POST /v1/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {SMALL_KEY}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode()
    socks = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
            sock.sendall(head + body)
            socks.append(sock)
        statuses = [sock.recv(64).split(b" ")[1] for sock in socks]
        assert statuses.count(b"200") == 10 and statuses.count(b"429") == 190
    finally:
        for sock in socks:
            sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and \
            post(stack, "/v1/stream", request_body(max_tokens=5), bearer(SMALL_KEY)
                 ).status_code == 429:
        time.sleep(0.05)
    response = post(stack, "/v1/stream", request_body(max_tokens=5), bearer(SMALL_KEY))
    assert response.status_code == 200  # the slots came back when the clients left


def test_the_rate_limit_answers_429_with_retry_after() -> None:
    extra = f'[auth.keys.slow]\nhash = "{hash_key("slow-key")}"\nrequests_per_minute = 2\n'
    with Stack(SETTINGS, toml=auth_toml(extra)) as s:
        answers = [post(s, "/v1/chat/completions", request_body(), bearer("slow-key"))
                   for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert int(answers[2].headers["retry-after"]) >= 1
        assert answers[2].json()["error"]["type"] == "rate_limit_error"


# -- accounting and logs ---------------------------------------------------------------


def test_metrics_count_streams_usage_and_refusals_per_key(stack: Stack) -> None:
    post(stack, "/v1/stream", request_body({"tokens": 3}), bearer(NEXT_KEY))
    post(stack, "/v1/stream", request_body(model="gpt-4o", max_tokens=5), bearer(SMALL_KEY))
    text = httpx.get(stack.url + "/metrics", timeout=5).text
    assert 'sseserver_key_streams_total{key="next"}' in text
    assert 'sseserver_key_output_tokens_total{key="next"}' in text
    refusals = [line for line in text.splitlines()
                if line.startswith('sseserver_key_refusals_total{key="small"}')]
    assert refusals and int(refusals[0].split()[-1]) >= 1
    assert APP_KEY not in text and hash_key(APP_KEY) not in text


@pytest.fixture()
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("sseserver"):  # not the test's own HTTP client
                lines.append(formatter.format(record))

    root = logging.getLogger()
    handler, level = Collect(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lines
    root.setLevel(level)
    root.removeHandler(handler)


def test_no_key_or_token_reaches_a_log_line(log_lines: list[str]) -> None:
    with Stack(SETTINGS, toml=auth_toml(subscribe="token")) as s:
        post(s, "/v1/stream", request_body({"tokens": 2}), bearer(APP_KEY))
        post(s, "/v1/stream", request_body({"error_after": 1}), {"x-api-key": APP_KEY})
        post(s, "/v1/stream", request_body(), bearer(APP_KEY + "-wrong"))
        token = sseserver.mint_token(SECRET, "app")
        post(s, "/v1/stream", request_body({"tokens": 1}), bearer(token))
        created = post(s, "/v1/streams", request_body({"tokens": 1}), bearer(APP_KEY))
        read = sseserver.mint_token(SECRET, "app", stream_id=created.json()["id"])
        httpx.get(s.url + created.json()["url"], params={"token": read}, timeout=10)
        httpx.get(s.url + "/v1/streams/nope", params={"token": read}, timeout=10)
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            sock.sendall(f"GET /v1/streams/x?token={read} HTTP/1.1\r\nhost: x\r\n"
                         f"authorization: Bearer {APP_KEY}\r\n\x00bad\r\n\r\n".encode())
            sock.recv(4096)
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            sock.sendall(f"GET /?token={read} HTTP/1.1 x\r\nhost: x\r\n\r\n".encode())
            sock.recv(4096)  # a malformed request line, with a token in its query
    text = "\n".join(log_lines)
    ends = [line for line in log_lines if '"stream_end"' in line]
    assert len(ends) >= 4 and all('"key":"app"' in line for line in ends)
    for secret in (APP_KEY, token, read, token.split(".")[2], read.split(".")[2], SECRET):
        assert secret not in text
    assert APP_KEY[:12] not in text
    pieces = {minted[i:i + 12] for minted in (token, read) for i in range(5, len(minted) - 12)}
    assert not [piece for piece in pieces if piece in text]


# -- safe by default -------------------------------------------------------------------


def test_a_public_bind_without_auth_does_not_start() -> None:
    async def main() -> None:
        server = Server(load_config(overrides={"server.host": "0.0.0.0", "server.port": 0}))
        with pytest.raises(ConfigError, match="--allow-unauthenticated"):
            await server.start()
        allowed = load_config(overrides={"server.host": "0.0.0.0", "server.port": 0,
                                         "server.allow_unauthenticated": True})
        async with Server(allowed) as started:
            assert started.port > 0

    asyncio.run(main())


def test_the_cli_refuses_a_public_bind_without_auth(capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    from sseserver.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "0", "--demo"]) == 2
    error = capsys.readouterr().err
    assert "[auth]" in error and "--allow-unauthenticated" in error


# -- the keys file, reread on SIGHUP by the real process ------------------------------------


def test_sighup_rereads_the_keys_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[keys.one]\nhash = "{hash_key("first-key")}"\n')
    config = tmp_path / "config.toml"
    config.write_text(f'[auth]\nkeys_file = "{keys}"\n')
    for workers in ("1", "2"):
        with socket.socket() as probe:  # one port for both workers (0 would give two)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with serve("--demo", "--config", str(config), "--workers", workers,
                   "--port", str(port)) as (process, url):
            try:
                _reload_and_check(process, url, keys)
            finally:
                process.send_signal(signal.SIGTERM)  # the workers with it, not orphaned
                process.wait(15)
        keys.write_text(f'[keys.one]\nhash = "{hash_key("first-key")}"\n')


def _reload_and_check(process: subprocess.Popen[str], url: str, keys: Path) -> None:
    # every worker up (and so handling SIGHUP) before the signal: /readyz says when
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and \
            httpx.get(url + "/readyz", timeout=5).status_code != 200:
        time.sleep(0.05)
    assert _models(url, "first-key") == 200
    keys.write_text(f'[keys.two]\nhash = "{hash_key("second-key")}"\n')
    process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _models(url, "second-key") != 200:
        time.sleep(0.05)
    # every worker reloaded: new connections land on either
    assert [_models(url, "second-key") for _ in range(8)] == [200] * 8
    assert _models(url, "first-key") == 401
    assert process.poll() is None


def _models(url: str, key: str) -> int:
    return httpx.get(url + "/v1/models", headers={"x-api-key": key}, timeout=5).status_code


# -- Expect: 100-continue: the head alone decides ------------------------------------------


def _head_awaiting_continue(port: int, path: str, headers: str, length: int
                            ) -> tuple[socket.socket, bytes]:
    """A head that awaits 100 and no body; what the server answers to it alone."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"POST {path} HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\n{headers}"
                 f"content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
                 .encode())
    answer = b""
    while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
        answer += chunk
    return sock, answer


def _to_close(sock: socket.socket, start: bytes) -> bytes:
    while chunk := sock.recv(65536):
        start += chunk
    sock.close()
    return start


@pytest.mark.parametrize(("path", "headers", "status"), [
    ("/v1/stream", "", b"401"),
    ("/v1/streams", "authorization: Bearer wrong\r\n", b"401"),
    ("/v1/chat/completions", "", b"401"),
    ("/v1/messages", "x-api-key: wrong\r\n", b"401"),
    ("/v1/chat", "", b"401"),
    ("/v1/stream", f"authorization: Bearer {sseserver.mint_token(SECRET, 'app', stream_id='s')}"
                   "\r\n", b"403"),
])
def test_a_refused_credential_is_answered_before_100_continue(
        stack: Stack, path: str, headers: str, status: bytes) -> None:
    sock, answer = _head_awaiting_continue(stack.port, path, headers, 50_000)
    response = _to_close(sock, answer)  # the body is never sent: the server closes
    assert response.startswith(b"HTTP/1.1 " + status + b" "), response[:80]
    assert b" 100 " not in response.split(b"\r\n")[0]
    if status == b"401":
        assert b"www-authenticate: Bearer" in response
    error = json.loads(response.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["type"] in ("authentication_error", "permission_error")


def test_a_spent_token_and_a_spent_bucket_are_answered_before_100_continue() -> None:
    extra = (f'[auth.keys.slow]\nhash = "{hash_key("slow-key")}"\nrequests_per_minute = 1\n'
             f'[auth.keys.single]\nhash = "{hash_key("single-key")}"\nmax_streams = 1\n')
    with Stack(SETTINGS, toml=auth_toml(extra)) as s:
        held = httpx.Client(timeout=10)
        with held.stream("POST", s.url + "/v1/stream", headers={"x-api-key": "single-key"},
                         json=request_body({"tokens": 400, "rate": 40})) as running:
            assert running.status_code == 200
            sock, answer = _head_awaiting_continue(s.port, "/v1/streams",
                                                   "x-api-key: single-key\r\n", 100)
            response = _to_close(sock, answer)
            assert response.startswith(b"HTTP/1.1 429 ") and b"retry-after: 1" in response
        held.close()
        assert post(s, "/v1/stream", request_body({"tokens": 1}), bearer("slow-key")
                    ).status_code == 200
        sock, answer = _head_awaiting_continue(s.port, "/v1/stream",
                                               "x-api-key: slow-key\r\n", 100)
        response = _to_close(sock, answer)
        assert response.startswith(b"HTTP/1.1 429 ") and b"retry-after: " in response
        token = sseserver.mint_token(SECRET, "app", ttl=60)
        assert post(s, "/v1/stream", request_body({"tokens": 1}), bearer(token)
                    ).status_code == 200
        sock, answer = _head_awaiting_continue(s.port, "/v1/stream",
                                               f"authorization: Bearer {token}\r\n", 100)
        assert _to_close(sock, answer).startswith(b"HTTP/1.1 403 ")


def test_a_create_token_gets_100_and_the_look_does_not_spend_it(stack: Stack) -> None:
    token = sseserver.mint_token(SECRET, "app", ttl=60)
    body = json.dumps(request_body({"tokens": 2})).encode()
    sock, answer = _head_awaiting_continue(stack.port, "/v1/stream",
                                           f"authorization: Bearer {token}\r\n", len(body))
    assert answer == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(body)
    response = answer
    while b"[DONE]" not in response and (chunk := sock.recv(65536)):
        response += chunk
    sock.close()
    assert b"HTTP/1.1 200 OK\r\n" in response and b"[DONE]" in response


def test_a_request_refused_after_its_check_leaves_its_token_unspent(stack: Stack) -> None:
    token = sseserver.mint_token(SECRET, "app", ttl=60)
    assert post(stack, "/v1/stream", {"model": "gpt-4o-mini"}, bearer(token)
                ).status_code == 400  # no messages: no stream started
    assert post(stack, "/v1/stream", request_body({"tokens": 1}), bearer(token)
                ).status_code == 200
    assert post(stack, "/v1/stream", request_body({"tokens": 1}), bearer(token)
                ).status_code == 403


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_the_openai_node_sdk_authenticates_with_a_gateway_key(stack: Stack) -> None:
    root = Path(__file__).resolve().parents[2]
    if not (root / "node_modules" / "openai").is_dir():
        pytest.fail("node_modules/openai is missing: run `npm ci` (make test does)")

    def node(api_key: str) -> dict[str, Any]:
        options = {"base": stack.url, "apiKey": api_key, "request": {
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "#fake {}"}]}}
        done = subprocess.run(["node", str(root / "tests" / "node" / "openai_client.mjs"),
                               json.dumps(options)], capture_output=True, text=True,
                              timeout=60, cwd=root)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    streamed = node(APP_KEY)
    assert streamed["error"] is None and streamed["finish"] == "stop"
    refused = node("gw-wrong-key")
    assert refused["error"]["name"] == "AuthenticationError"
    assert refused["error"]["status"] == 401
