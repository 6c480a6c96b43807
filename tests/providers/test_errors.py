"""Provider error answers: what a 200 that is no event stream amounts to, and which
kinds of error no retry cures."""

from __future__ import annotations

import orjson
import pytest

from sseserver.providers.base import UpstreamRequest
from sseserver.providers.errors import error_kind, is_event_stream, status_error


def error_body(kind: str, message: str = "m", code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "code": code}})


@pytest.mark.parametrize(("content_type", "expected"), [
    ("text/event-stream", True),
    ("text/event-stream; charset=utf-8", True),
    ("Text/Event-Stream;charset=UTF-8", True),
    (" text/event-stream ", True),
    (None, True),  # unlabelled: the stream parser judges the body
    ("", True),
    ("application/json", False),
    ("text/html; charset=utf-8", False),
    ("text/plain", False),
    ("text/event-streams", False),
])
def test_an_event_stream_is_known_by_its_media_type(content_type: str | None,
                                                    expected: bool) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    assert is_event_stream(headers) is expected


@pytest.mark.parametrize(("body", "kind"), [
    (error_body("insufficient_quota", code="insufficient_quota"), "insufficient_quota"),
    (error_body("requests", code="rate_limit_exceeded"), "rate_limit_exceeded"),  # the code
    (error_body("invalid_request_error", code="some_new_code"), "invalid_request_error"),
    (orjson.dumps({"type": "error", "error": {"type": "overloaded_error"}}), "overloaded_error"),
    (b"<html>quota</html>", None),
    (orjson.dumps({"id": "chatcmpl-1", "choices": []}), None),  # a completion, no error
])
def test_the_kind_of_an_error_body(body: bytes, kind: str | None) -> None:
    assert error_kind(body) == kind


@pytest.mark.parametrize(("content_type", "body", "status", "retryable", "says"), [
    ("application/json", error_body("insufficient_quota", "You exceeded your quota",
                                    "insufficient_quota"), 429, False, "You exceeded"),
    ("application/json", error_body("rate_limit_error", "Slow down"), 429, True, "Slow down"),
    ("application/json", error_body("overloaded_error", "Overloaded"), 529, True, "Overloaded"),
    ("application/json", error_body("invalid_request_error", "Bad"), 400, False, "Bad"),
    ("application/json", error_body("authentication_error", "No"), 401, False, "No"),
    ("application/json", error_body("something_new", "Odd"), None, False, "Odd"),
    ("application/json", b'{"id": "chatcmpl-1", "choices": []}', None, False,
     "application/json instead of an event stream"),
    ("text/html", b"<html><h1>Quota exceeded</h1></html>", None, False,
     "text/html instead of an event stream"),
])
def test_a_200_that_is_no_event_stream_amounts_to_its_error(
        content_type: str, body: bytes, status: int | None, retryable: bool,
        says: str) -> None:
    error = status_error("p", 200, {"content-type": content_type}, body, None)
    assert (error.status, error.retryable) == (status, retryable)
    assert says in str(error) and str(error).startswith("p answered 200 with ")
    assert "chatcmpl" not in str(error) and "<h1>" not in str(error)  # no body but a message


def test_no_retry_cures_an_empty_quota_whatever_the_status_says() -> None:
    quota = error_body("insufficient_quota", code="insufficient_quota")
    assert not status_error("p", 429, {}, quota, None).retryable
    assert status_error("p", 429, {}, error_body("requests", code="rate_limit_exceeded"),
                        None).retryable
    # the provider's own word comes first
    assert status_error("p", 429, {"x-should-retry": "true"}, quota, None).retryable
    assert not status_error("p", 503, {"x-should-retry": "false"}, b"", None).retryable


def test_an_upstream_request_shows_no_header_value() -> None:
    request = UpstreamRequest("POST", "https://api.example/v1/x",
                              (("authorization", "Bearer sk-secret-0123456789"),), b"{}")
    assert "sk-secret" not in repr(request) and "authorization" in repr(request)
