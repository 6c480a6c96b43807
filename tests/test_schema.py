import re

import orjson
import pytest

from sseserver.errors import RequestError
from sseserver.schema import parse_generation_request


def parse(obj: object) -> object:
    return parse_generation_request(orjson.dumps(obj))


def test_minimal_request() -> None:
    request = parse({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert request.model == "m"
    assert request.messages[0].content == "hi"
    assert request.format == "sse"
    assert request.resumable is False
    assert request.last_user_text == "hi"


def test_all_fields() -> None:
    request = parse({
        "model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}],
        "provider": "openai", "system": "be brief", "max_tokens": 10, "temperature": 0.5,
        "tools": [{"name": "t"}], "resumable": True, "format": "ai-sdk",
        "on_disconnect": "detach",
    })
    assert request.provider == "openai"
    assert request.max_tokens == 10
    assert request.temperature == 0.5
    assert request.tools == ({"name": "t"},)
    assert request.last_user_text == "a"


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object, not an array"),
    (b'"text"', "not a string"),
    (b"\xff\xfe", "not valid JSON"),
    (b"{}", "'model' is required"),
    (b'{"model": "", "messages": []}', "'model' must be a non-empty string"),
    (b'{"model": "m"}', "'messages' is required"),
    (b'{"model": "m", "messages": []}', "must not be empty"),
    (b'{"model": "m", "messages": {}}', "must be an array"),
    (b'{"model": "m", "messages": [1]}', "messages[0] must be an object"),
    (b'{"model": "m", "messages": [{"role": "x", "content": "a"}]}', "messages[0].role"),
    (b'{"model": "m", "messages": [{"role": "user"}]}', "messages[0].content"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "a"}], "max_tokens": 0}',
     "'max_tokens' must be a positive integer"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "a"}], "max_tokens": true}',
     "'max_tokens'"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "a"}], "temperature": 3}',
     "'temperature'"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "a"}], "format": "xml"}',
     "'format' must be one of"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "a"}], "strem": true}',
     "unknown field(s): strem"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "a"}], "tools": [1]}',
     "'tools' must be an array of objects"),
])
def test_bad_requests_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_generation_request(body)
    assert message in str(info.value)
    assert info.value.status == 400


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "be brief"},
     {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
])
def test_a_request_of_model_and_messages_alone_is_the_general_parse(
        messages: list[dict[str, object]]) -> None:
    common = {"model": "gpt-4o-mini", "messages": messages}
    # every other field stated at its default: the general parse
    stated = {**common, "provider": None, "system": None, "max_tokens": None,
              "temperature": None, "tools": None, "resumable": False, "format": None,
              "on_disconnect": None}
    assert parse_generation_request(orjson.dumps(common)) == \
        parse_generation_request(orjson.dumps(stated))


@pytest.mark.parametrize("body, message", [
    (b'{"messages": [{"role": "user", "content": "hi"}]}', "'model' is required"),
    (b'{"model": "m"}', "'messages' is required"),
    (b'{"model": "m", "messages": [{"role": "x", "content": "hi"}]}', "messages[0].role"),
])
def test_a_request_of_model_and_messages_alone_is_checked_all_the_same(
        body: bytes, message: str) -> None:
    with pytest.raises(RequestError, match=re.escape(message)):
        parse_generation_request(body)
