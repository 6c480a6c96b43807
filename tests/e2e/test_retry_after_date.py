"""A provider's Retry-After given as an HTTP date (RFC 9110 §10.2.3) is honoured end to
end: waited for before the next attempt, and refused when it is past the cap, as its
seconds form is."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate

import httpx
import pytest

from tests.e2e.raw_upstream import OPENAI, RawUpstream, head, whole
from tests.e2e.stack import Stack

# The backoff of its own is near nothing, so a wait can only be the provider's.
SETTINGS = {"upstream.max_retries": 1, "upstream.backoff_initial": 0.01,
            "upstream.backoff_max": 0.02}
BODY = {"model": "m", "provider": "raw", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream([]) as raw:
        yield raw


@pytest.fixture(scope="module")
def stack(upstream: RawUpstream) -> Iterator[Stack]:
    toml = f'[providers.raw]\nkind = "openai"\nbase_url = "{upstream.url}/v1"\n' \
           'api_key = "sk-raw"\n'
    with Stack(SETTINGS, toml=toml) as s:
        yield s


def busy(seconds_from_now: float) -> bytes:
    """A 429 asking to come back at a date (whole seconds: an HTTP date has no less)."""
    return whole("429 Too Many Requests", "application/json",
                 b'{"error": {"message": "slow down", "type": "rate_limit_error"}}',
                 f"Retry-After: {formatdate(time.time() + seconds_from_now, usegmt=True)}")


def test_a_date_is_waited_for_before_the_next_attempt(stack: Stack,
                                                      upstream: RawUpstream) -> None:
    # two seconds ahead, cut to the second: between one and two seconds from now
    upstream.answer([busy(2.0)], [head(), OPENAI.start, OPENAI.token("ok"), OPENAI.done])
    started = time.monotonic()
    response = httpx.post(stack.url + "/v1/stream", json=BODY, timeout=15)
    waited = time.monotonic() - started
    assert response.status_code == 200 and '"ok"' in response.text
    assert upstream.requests == 2
    assert waited >= 0.9, waited  # not the 10 ms backoff


def test_a_date_past_the_cap_is_not_waited_for_and_is_passed_on(
        stack: Stack, upstream: RawUpstream) -> None:
    upstream.answer([busy(3600.0)])
    started = time.monotonic()
    response = httpx.post(stack.url + "/v1/stream", json=BODY, timeout=15)
    assert time.monotonic() - started < 5
    assert response.status_code == 429 and upstream.requests == 1
    assert 3500 <= int(response.headers["retry-after"]) <= 3600
