import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sseserver.errors import RequestError
from sseserver.schema import ROLES, messages_one_by_one, parse_generation_request


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


_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-9, 9), st.text(max_size=5))
_ROLE_VALUES = st.one_of(st.sampled_from([*sorted(ROLES), "robot", ""]), _JSON_SCALARS,
                         st.lists(st.just("user"), max_size=1))
_CONTENT_VALUES = st.one_of(st.text(max_size=5), st.lists(st.dictionaries(
    st.just("text"), st.text(max_size=3)), max_size=2), _JSON_SCALARS,
    st.dictionaries(st.just("text"), st.text(max_size=3)))


@st.composite
def _message_items(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 9)) == 0:  # now and then no object at all
        return draw(st.one_of(_JSON_SCALARS, st.lists(st.just("user"), max_size=2)))
    item: dict[str, object] = {}
    if draw(st.integers(0, 9)):
        item["role"] = draw(_ROLE_VALUES)
    if draw(st.integers(0, 9)):
        item["content"] = draw(_CONTENT_VALUES)
    return item


def _outcome(read: object, value: list[object]) -> object:
    try:
        return read(value)  # type: ignore[operator]
    except RequestError as exc:
        return str(exc)


@given(value=st.lists(_message_items(), min_size=1, max_size=6))
def test_messages_read_at_once_as_one_by_one(value: list[object]) -> None:
    """Messages that are all valid are read without a call each: the same messages,
    or the same error naming the one at fault, as each checked on its own."""
    body = orjson.dumps({"model": "m", "messages": value})
    assert _outcome(lambda v: parse_generation_request(body).messages, value) == \
        _outcome(messages_one_by_one, value)


@pytest.mark.parametrize("role", [[], ["user"], {}, {"user": 1}])
def test_a_role_that_is_an_array_or_object_is_a_400_not_a_crash(role: object) -> None:
    """Such a role was looked up in a frozenset: a TypeError, and the client a 500."""
    body = orjson.dumps({"model": "m", "messages": [{"role": role, "content": "hi"}]})
    with pytest.raises(RequestError, match=r"messages\[0\]\.role must be one of") as caught:
        parse_generation_request(body)
    assert caught.value.status == 400


@pytest.mark.parametrize("field", ["format", "on_disconnect"])
@pytest.mark.parametrize("value", [[], {}, ["sse"]])
def test_a_choice_that_is_an_array_or_object_is_a_400_not_a_crash(field: str,
                                                                   value: object) -> None:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                         field: value})
    with pytest.raises(RequestError, match=f"'{field}' must be one of") as caught:
        parse_generation_request(body)
    assert caught.value.status == 400
