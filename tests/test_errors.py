"""The one exception tree: every error the package raises, and the types clients read."""

from __future__ import annotations

import inspect

import orjson
import pytest

import sseserver.errors as errors
from sseserver.core import request_checks
from sseserver.errors import (
    HTTPError,
    ShuttingDown,
    SSEServerError,
    StreamCancelled,
    StreamFailure,
    StreamStopped,
    StreamTooLarge,
    UpstreamError,
    status_error_type,
)
from sseserver.failures import client_status
from sseserver.relay import StreamStatus


def test_every_exception_of_the_package_is_in_the_one_tree() -> None:
    classes = [value for _, value in inspect.getmembers(errors, inspect.isclass)
               if issubclass(value, BaseException) and value.__module__ == errors.__name__]
    assert HTTPError in classes
    assert all(issubclass(cls, SSEServerError) for cls in classes)
    assert request_checks.HTTPError is HTTPError  # refusals before a handler, too


@pytest.mark.parametrize(("stop", "error_type", "retryable"), [
    (StreamCancelled("stop"), "cancelled", False),
    (StreamTooLarge("too big"), "stream_too_large", False),
    (ShuttingDown("draining", retry_after=5), "shutdown", True),
])
def test_the_gateways_own_stops_are_types_of_their_own(
        stop: StreamStopped, error_type: str, retryable: bool) -> None:
    assert isinstance(stop, StreamFailure) and not isinstance(stop, UpstreamError)
    assert (stop.error_type, stop.retryable, stop.status) == (error_type, retryable, None)


def test_a_shutdown_before_the_head_is_a_503_that_says_when_to_come_back() -> None:
    assert client_status(ShuttingDown("draining", retry_after=5)) == (
        503, [("retry-after", "5")])
    assert client_status(StreamCancelled("stop")) == (502, [])


def test_a_providers_own_error_type_is_given_when_the_error_is_made() -> None:
    error = UpstreamError("overloaded", retryable=True, error_type="overloaded_error")
    assert error.error_type == "overloaded_error"
    assert UpstreamError("x").error_type == "upstream_error"  # the class's, otherwise


@pytest.mark.parametrize(("status", "error_type"), [
    (400, "invalid_request_error"), (403, "forbidden"), (404, "not_found_error"),
    (431, "headers_too_large"), (503, "unavailable"), (418, "request_error"),
    (599, "server_error")])
def test_one_table_gives_the_error_type_of_every_status(status: int, error_type: str) -> None:
    assert status_error_type(status) == error_type
    assert request_checks.error_type(status) == error_type


def test_a_stream_status_is_an_enum_that_reads_and_logs_as_its_word() -> None:
    assert {"ok": 1}.get(StreamStatus.OK) == 1
    assert orjson.loads(orjson.dumps({"status": StreamStatus.CANCELLED})) == {
        "status": "cancelled"}
