"""Retry-After in both forms (RFC 9110 §10.2.3: seconds, or an HTTP date counted
from the time the answer came) and OpenAI's retry-after-ms; past dates and garbage."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sseserver.config import ProviderSettings
from sseserver.providers.errors import retry_after, status_error
from sseserver.providers.registry import make_provider

# 2026-12-01 10:00:00 UTC, the time the answers below came
NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("headers", "seconds"), [
    ({}, None),
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": "0"}, 0.0),
    ({"retry-after": "1.5"}, 1.5),  # a fraction, as some providers send
    ({"retry-after": " 20 "}, 20.0),
    # an HTTP date, in each of the three forms RFC 9110 §5.6.7 accepts
    ({"retry-after": "Tue, 01 Dec 2026 10:00:30 GMT"}, 30.0),
    ({"retry-after": "Tuesday, 01-Dec-26 10:01:00 GMT"}, 60.0),
    ({"retry-after": "Tue Dec  1 10:00:05 2026"}, 5.0),
    ({"retry-after": "Tue, 01 Dec 2026 11:00:00 +0100"}, 0.0),  # 10:00 UTC: now
    ({"retry-after": "Tue, 01 Dec 2026 10:00:10 -0000"}, 10.0),  # UTC, zone unknown
    # a date already past: at once
    ({"retry-after": "Tue, 01 Dec 2026 09:59:00 GMT"}, 0.0),
    ({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0),
    # retry-after-ms first, then retry-after when it is unreadable
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
    ({"retry-after-ms": "-5", "retry-after": "Tue, 01 Dec 2026 10:00:02 GMT"}, 2.0),
    # garbage waits for nothing
    ({"retry-after": "-1"}, None),
    ({"retry-after": "soon"}, None),
    ({"retry-after": ""}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "inf"}, None),
    ({"retry-after": "1e999"}, None),
    ({"retry-after": "Tue, 32 Dec 2026 10:00:00 GMT"}, None),
    ({"retry-after": "Tue, 01 Dec 99999 10:00:00 GMT"}, None),
    ({"retry-after": "Tue, 01 Foo 2026 10:00:00 GMT"}, None),
    ({"retry-after-ms": "nan"}, None),
])
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers, NOW) == seconds


def test_a_date_is_ignored_when_the_time_is_unknown() -> None:
    assert retry_after({"retry-after": "Tue, 01 Dec 2026 10:00:30 GMT"}, None) is None
    assert retry_after({"retry-after": "30"}, None) == 30.0


@given(st.text(max_size=60))
def test_any_value_gives_a_wait_or_none_never_an_exception(value: str) -> None:
    for name in ("retry-after", "retry-after-ms"):
        waited = retry_after({name: value}, NOW)
        assert waited is None or 0 <= waited < float("inf")


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1),
                    timezones=st.just(UTC)))
def test_any_date_counts_from_now(when: datetime) -> None:
    waited = retry_after({"retry-after": format_datetime(when, usegmt=True)}, NOW)
    expected = max(0.0, when.replace(microsecond=0).timestamp() - NOW)
    assert waited == pytest.approx(expected)


@pytest.mark.parametrize("kind", ["openai", "anthropic", "ollama", "gemini", "bedrock"])
def test_every_provider_counts_a_date_from_the_time_it_is_given(kind: str) -> None:
    settings = ProviderSettings("p", kind, "http://127.0.0.1:9", "k", region="us-east-1",
                                access_key_id="AKID")
    headers = {"retry-after": "Tue, 01 Dec 2026 10:00:12 GMT"}
    error = make_provider(settings).map_error(503, headers, b"{}", NOW)
    assert error.retry_after == 12.0
    assert status_error("p", 429, headers, b"", None, NOW).retry_after == 12.0
    assert status_error("p", 429, headers, b"", None).retry_after is None  # no time known
