"""Provider trouble end to end: timeouts of each kind, retries, fallbacks, routing, TLS."""

from __future__ import annotations

import concurrent.futures
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import trustme
from httpx_sse import connect_sse

from tests.conftest import blackhole_port
from tests.e2e.stack import Stack, request_body


@pytest.fixture(scope="module")
def blackhole() -> Iterator[int]:
    with blackhole_port() as port:
        yield port


@pytest.fixture(scope="module")
def refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def stack(blackhole: int, refused_port: int) -> Iterator[Stack]:
    toml = f"""
[providers.dead]
kind = "openai"
base_url = "http://127.0.0.1:{refused_port}/v1"

[providers.blackhole]
kind = "openai"
base_url = "http://127.0.0.1:{blackhole}/v1"

[providers.openai]
kind = "openai"
base_url = "{{fake}}/v1"

[providers.badkey]
kind = "openai"
base_url = "{{fake}}/v1"
api_key = "sk-secret-\\nline"

[providers.anthropic]
kind = "anthropic"
base_url = "{{fake}}"

[routing.aliases]
fast = "anthropic/claude-fast"

[routing.fallbacks]
smart = ["dead/gpt-dead", "openai/gpt-alive"]
"""
    settings = {"upstream.connect_timeout": 0.3, "upstream.first_byte_timeout": 0.3,
                "upstream.idle_timeout": 0.3, "upstream.total_timeout": 1.0,
                "upstream.max_retries": 1, "upstream.backoff_initial": 0.01,
                "upstream.backoff_max": 0.02}
    with Stack(settings, toml=toml) as s:
        yield s


def stream(stack: Stack, body: dict[str, Any]) -> tuple[int, list[Any], Any]:
    with httpx.Client(timeout=10) as client, \
            connect_sse(client, "POST", stack.url + "/v1/stream", json=body) as source:
        if source.response.status_code != 200:
            source.response.read()
            return source.response.status_code, [], source.response.json()
        return 200, list(source.iter_sse()), None


def test_first_byte_timeout_before_the_head_is_a_504(stack: Stack) -> None:
    started = time.monotonic()
    status, _, error = stream(stack, request_body({"tokens": 2, "ttfb_ms": 3000}))
    assert status == 504
    assert error["error"]["type"] == "upstream_timeout"
    assert "first byte" in error["error"]["message"]
    assert 0.55 < time.monotonic() - started < 2.5  # two attempts of 0.3 s


def test_idle_timeout_mid_stream_is_an_error_event(stack: Stack) -> None:
    status, events, _ = stream(stack, request_body({"tokens": 5, "stall_after": 2}))
    assert status == 200
    error = orjson.loads(events[-2].data)
    assert error["type"] == "upstream_timeout" and "next event" in error["message"]
    assert events[-1].data == "[DONE]"


def test_total_timeout_mid_stream(stack: Stack) -> None:
    status, events, _ = stream(stack, request_body({"tokens": 100, "rate": 10}))
    assert status == 200
    error = orjson.loads(events[-2].data)
    assert error["type"] == "upstream_timeout" and "total" in error["message"]
    tokens = sum(1 for e in events if e.event == "message" and e.data != "[DONE]")
    assert 3 <= tokens < 100


def test_connect_timeout(stack: Stack) -> None:
    started = time.monotonic()
    status, _, error = stream(stack, request_body({"tokens": 1}, provider="blackhole"))
    assert status == 504 and "connecting" in error["error"]["message"]
    assert time.monotonic() - started < 2.5


def test_a_key_that_cannot_be_sent_is_a_502_that_never_shows_it(stack: Stack) -> None:
    """A key with a line break cannot go into a header: the attempt fails at once,
    whether an idle pooled connection was at hand (the first request follows one that
    left it) or a new one was opened (two at once), and no error shows the key."""
    assert stream(stack, request_body({"tokens": 1}))[0] == 200  # leaves an idle one
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: stream(stack, request_body(
            {"tokens": 1}, provider="badkey")), range(3)))
    for status, _, error in answers:
        assert status == 502 and error["error"]["type"] == "upstream_connect_error"
        assert "authorization" in error["error"]["message"]
        assert "secret" not in error["error"]["message"]


def test_connection_refused_is_a_502(stack: Stack) -> None:
    status, _, error = stream(stack, request_body({"tokens": 1}, provider="dead"))
    assert status == 502 and error["error"]["type"] == "upstream_connect_error"


def test_fallback_to_the_next_provider(stack: Stack) -> None:
    status, events, _ = stream(stack, {**request_body({"tokens": 2}), "model": "smart"})
    assert status == 200
    metadata = orjson.loads(events[0].data)
    assert (metadata["provider"], metadata["model"]) == ("openai", "gpt-alive")
    assert events[-1].data == "[DONE]"


def test_alias_routes_to_its_provider_and_model(stack: Stack) -> None:
    status, events, _ = stream(stack, {**request_body({"tokens": 1}), "model": "fast"})
    assert status == 200
    metadata = orjson.loads(events[0].data)
    assert (metadata["provider"], metadata["model"]) == ("anthropic", "claude-fast")


def test_provider_slash_model_routing(stack: Stack) -> None:
    status, events, _ = stream(stack, {**request_body({"tokens": 1}),
                                       "model": "anthropic/claude-x"})
    assert status == 200
    assert orjson.loads(events[0].data)["model"] == "claude-x"


def test_retry_honours_retry_after(stack: Stack) -> None:
    started = time.monotonic()
    status, events, _ = stream(stack, request_body(
        {"tokens": 1, "fail": [429], "retry_after": 0.4, "key": "slow-down"}))
    assert status == 200 and events[-1].data == "[DONE]"
    assert time.monotonic() - started >= 0.4


def test_no_retry_on_client_errors(stack: Stack) -> None:
    stack.reset_fake()
    status, _, error = stream(stack, request_body({"fail": [401, 401], "key": "no-auth"}))
    assert status == 502  # our key was refused: the gateway's problem, not the client's
    assert "401" in error["error"]["message"]
    assert stack.stats()["requests"] == 1


def test_a_retry_after_longer_than_the_cap_is_not_waited_for(stack: Stack) -> None:
    started = time.monotonic()
    status, _, _ = stream(stack, request_body(
        {"fail": [429, 429], "retry_after": 3600, "key": "come-back-in-an-hour"}))
    assert status == 429
    assert time.monotonic() - started < 2


def test_mid_stream_provider_error_is_typed(stack: Stack) -> None:
    status, events, _ = stream(stack, request_body({"tokens": 3, "error_after": 1},
                                                   provider="anthropic"))
    assert status == 200
    error = orjson.loads(events[-2].data)
    assert error == {"type": "overloaded_error", "message": "Overloaded", "retryable": True,
                     "status": 529}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_stack(ca: trustme.CA, server_ca: trustme.CA, tmp_path_factory: Any,
              monkeypatch: pytest.MonkeyPatch) -> Stack:
    context = __import__("ssl").create_default_context(__import__("ssl").Purpose.CLIENT_AUTH)
    server_ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the trust store OpenSSL reads
    return Stack(fake_ssl=context)


def test_tls_provider_with_a_trusted_certificate(ca: trustme.CA, tmp_path_factory: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_stack(ca, ca, tmp_path_factory, monkeypatch) as stack:
        assert stack.fake is not None and stack.fake.base_url.startswith("https://")
        status, events, _ = stream(stack, request_body({"tokens": 2}))
        assert status == 200 and events[-1].data == "[DONE]"


def test_tls_provider_with_an_untrusted_certificate_is_refused(
        ca: trustme.CA, tmp_path_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_stack(ca, trustme.CA(), tmp_path_factory, monkeypatch) as stack:
        status, _, error = stream(stack, request_body({"tokens": 2}))
        assert status == 502
        assert "CERTIFICATE_VERIFY_FAILED" in error["error"]["message"]
        assert stack.stats()["requests"] == 0


def test_a_stream_that_ends_early_reports_the_usage_known_so_far(stack: Stack) -> None:
    status, events, _ = stream(stack, request_body({"tokens": 10, "drop_after": 4},
                                                   provider="anthropic"))
    assert status == 200
    assert [e.event for e in events[-3:]] == ["usage", "error", "message"]
    assert orjson.loads(events[-3].data)["input_tokens"] > 0


def test_a_request_the_provider_cannot_take_is_a_400(stack: Stack) -> None:
    body = request_body({"tokens": 1}, provider="anthropic")
    body["messages"].append({"role": "tool", "content": "result"})
    status, _, error = stream(stack, body)
    assert status == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert "not supported" in error["error"]["message"]
