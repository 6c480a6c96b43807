"""CORS decisions, sans-IO: response headers per Origin, and preflight answers."""

from __future__ import annotations

import pytest

from sseserver.core import cors
from sseserver.core.cors import CORSPolicy, PreflightRefused

LISTED = CORSPolicy.from_settings(("https://app.example",), False, ())
WITH_CREDENTIALS = CORSPolicy.from_settings(("https://app.example", "*"), True, ())


def test_nothing_without_configured_origins() -> None:
    assert cors.response_headers(CORSPolicy(), "https://app.example") == []


@pytest.mark.parametrize("origin", ["https://app.example", "https://evil.example", None])
def test_every_response_varies_on_origin_once_configured(origin: str | None) -> None:
    for policy in (LISTED, WITH_CREDENTIALS,
                   CORSPolicy.from_settings(("*",), False, ())):
        assert ("vary", "origin") in cors.response_headers(policy, origin)


def test_credentials_only_when_configured_and_never_with_star() -> None:
    listed = dict(cors.response_headers(LISTED, "https://app.example"))
    assert listed["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-credentials" not in listed
    credentialed = dict(cors.response_headers(WITH_CREDENTIALS, "https://app.example"))
    assert credentialed["access-control-allow-credentials"] == "true"
    other = dict(cors.response_headers(WITH_CREDENTIALS, "https://other.example"))
    assert other["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in other
    assert "access-control-allow-origin" not in dict(
        cors.response_headers(LISTED, "https://evil.example"))


def test_requested_token_names_are_reflected_lower_case() -> None:
    allowed = cors.allowed_request_headers(LISTED, "X-Stainless-OS, content-type,,x-custom")
    assert allowed.split(", ") == sorted(
        {"x-stainless-os", "x-custom", *cors.ALLOWED_REQUEST_HEADERS})


@pytest.mark.parametrize("requested", ["x-a\x01b", "x a", "x-\x7f", "na\u00efve", "x:y",
                                       "x-a\tb", ", ".join(f"x-{i}" for i in range(65)),
                                       "x-" + "a" * 2100])
def test_a_list_that_is_not_token_names_is_refused(requested: str) -> None:
    with pytest.raises(PreflightRefused) as info:
        cors.allowed_request_headers(LISTED, requested)
    assert "\x01" not in str(info.value) and len(str(info.value)) < 120


def test_credential_names_with_credentials_only_when_configured() -> None:
    asked = "authorization, cookie, x-api-key, x-custom"
    assert {"authorization", "cookie", "x-api-key"} <= set(
        cors.allowed_request_headers(LISTED, asked).split(", "))
    refused = set(cors.allowed_request_headers(WITH_CREDENTIALS, asked).split(", "))
    assert refused.isdisjoint({"authorization", "cookie", "x-api-key"})
    assert "x-custom" in refused
    configured = CORSPolicy.from_settings(("https://app.example",), True, ("Authorization",))
    assert "authorization" in cors.allowed_request_headers(configured, "").split(", ")


@pytest.mark.parametrize(("key", "value"), [
    ("server.cors_origins", ("https://app.example/path",)),
    ("server.cors_origins", ("https://app.example\r\nx: y",)),
    ("server.cors_allow_headers", ("x y",))])
def test_settings_refuse_what_could_not_be_sent(key: str, value: tuple[str, ...]) -> None:
    from sseserver.config import load_config
    from sseserver.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        load_config(overrides={key: value})
