"""Each SDK's exception class for each status the compatible endpoints can answer, on
both provider wire formats, streaming and not.

What the gateway produces: a provider's 400, 404, 413 and 422 as they are (the caller's
request was at fault); 429; an overloaded provider (503, 529) as each API says it
(Anthropic's 529 overloaded_error, OpenAI's 503); any other provider failure, its
refusal of the gateway's own key (401, 403) included, as a 502; a provider too slow as
a 504. 401, 403 and 409 are never the gateway's answer (it checks no caller key and
retries a provider's 409), so no test expects those classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.stack import Stack

UPSTREAMS = ["openai", "anthropic"]


@pytest.fixture(scope="module", params=UPSTREAMS)
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    # heartbeats far apart: a stream's failure before its first heartbeat is a status
    with Stack({"streams.heartbeat_interval": 5.0, "upstream.backoff_initial": 0.01,
                "upstream.backoff_max": 0.02, "upstream.first_byte_timeout": 0.3},
               provider_kind=request.param) as s:
        yield s


def fake(**knobs: Any) -> list[Any]:
    return [{"role": "user", "content": "#fake " + json.dumps(knobs)}]


def openai_call(stack: Stack, stream: bool, **knobs: Any) -> None:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0,
                           timeout=10)
    answer = client.chat.completions.create(model="gpt-4o-mini", stream=stream,
                                            messages=fake(**knobs))
    if stream:
        list(answer)  # type: ignore[arg-type]


def anthropic_call(stack: Stack, stream: bool, **knobs: Any) -> None:
    client = anthropic.Anthropic(base_url=stack.url, api_key="unused", max_retries=0,
                                 timeout=10)
    answer = client.messages.create(model="claude-sonnet-4-6", max_tokens=100,
                                    stream=stream, messages=fake(**knobs))
    if stream:
        list(answer)  # type: ignore[arg-type]


# provider status -> (status, class) for an OpenAI client, then for an Anthropic one
STATUSES: list[tuple[int, int, type[Exception], int, type[Exception]]] = [
    (400, 400, openai.BadRequestError, 400, anthropic.BadRequestError),
    (401, 502, openai.InternalServerError, 502, anthropic.InternalServerError),
    (403, 502, openai.InternalServerError, 502, anthropic.InternalServerError),
    (404, 404, openai.NotFoundError, 404, anthropic.NotFoundError),
    (413, 413, openai.APIStatusError, 413, anthropic.RequestTooLargeError),
    (422, 422, openai.UnprocessableEntityError, 422, anthropic.UnprocessableEntityError),
    (429, 429, openai.RateLimitError, 429, anthropic.RateLimitError),
    (500, 502, openai.InternalServerError, 502, anthropic.InternalServerError),
    (503, 503, openai.InternalServerError, 529, anthropic.OverloadedError),
    (529, 503, openai.InternalServerError, 529, anthropic.OverloadedError),
]


@pytest.mark.parametrize(("upstream", "openai_status", "openai_class", "anthropic_status",
                          "anthropic_class"), STATUSES, ids=[str(s[0]) for s in STATUSES])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_provider_status_raises_each_sdks_class(
        stack: Stack, upstream: int, openai_status: int, openai_class: type[Exception],
        anthropic_status: int, anthropic_class: type[Exception], stream: bool) -> None:
    for call, status, error_class in [(openai_call, openai_status, openai_class),
                                      (anthropic_call, anthropic_status, anthropic_class)]:
        stack.reset_fake()
        key = f"errors-{upstream}-{stream}-{call.__name__}"
        with pytest.raises(error_class) as raised:
            call(stack, stream, tokens=1, fail=[upstream] * 3, key=key)
        assert raised.value.status_code == status  # type: ignore[attr-defined]


def test_anthropic_overloaded_is_its_own_error_shape(stack: Stack) -> None:
    with pytest.raises(anthropic.OverloadedError) as raised:
        anthropic_call(stack, False, tokens=1, fail=[529] * 3, key="overloaded-shape")
    assert raised.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert raised.value.type == "overloaded_error"  # type: ignore[attr-defined]
    with pytest.raises(openai.InternalServerError) as failed:
        openai_call(stack, False, tokens=1, fail=[529] * 3, key="overloaded-openai")
    assert failed.value.body["type"] == "server_error"  # type: ignore[index]


def test_provider_too_slow_is_a_gateway_timeout(stack: Stack) -> None:
    """A whole answer (a stream has begun with a heartbeat by then: its error is in it)."""
    with pytest.raises(anthropic.InternalServerError) as raised:
        anthropic_call(stack, False, tokens=1, ttfb_ms=2000)
    assert raised.value.status_code == 504
    assert raised.value.type == "timeout_error"  # type: ignore[attr-defined]
    with pytest.raises(openai.InternalServerError) as failed:
        openai_call(stack, False, tokens=1, ttfb_ms=2000)
    assert failed.value.status_code == 504


def test_overloaded_after_the_first_token_of_a_whole_answer(stack: Stack) -> None:
    """Nothing was sent yet, so the whole answer's status still says what happened:
    an Anthropic-format provider's in-stream overloaded_error is overloaded here too."""
    overloaded = stack.provider_kind == "anthropic"  # the OpenAI wire's is a server_error
    with pytest.raises(anthropic.InternalServerError) as raised:
        anthropic_call(stack, False, tokens=4, error_after=1)
    assert raised.value.status_code == (529 if overloaded else 502)
    with pytest.raises(openai.InternalServerError) as failed:
        openai_call(stack, False, tokens=4, error_after=1)
    assert failed.value.status_code == (503 if overloaded else 502)
