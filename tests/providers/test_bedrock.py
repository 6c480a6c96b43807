"""The Bedrock provider: a signed ConverseStream request, Converse events, exceptions,
error bodies, credentials from botocore's variables, and secrets kept out of sight."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sseserver.config import ProviderSettings, load_config
from sseserver.core.eventstream import encode_message
from sseserver.errors import ConfigError, ProviderError
from sseserver.events import ErrorEvent, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from sseserver.fake.bedrock_wire import signed_with
from sseserver.providers.bedrock import BedrockAdapter, BedrockProvider, EventStreamReader
from sseserver.providers.errors import is_event_stream
from sseserver.providers.registry import make_provider
from sseserver.redact import Redactor
from sseserver.schema import parse_generation_request

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETKEY"
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDFAKESESSIONTOKEN"
SETTINGS = ProviderSettings("br", "bedrock", "https://bedrock-runtime.eu-west-3.amazonaws.com",
                            SECRET, "eu-west-3", "AKIDEXAMPLE", TOKEN)


def request(**fields: Any) -> Any:
    return parse_generation_request(orjson.dumps({
        "model": "m", "messages": [{"role": "user", "content": "Hi"}], **fields}))


def test_request_is_signed_and_carries_no_secret() -> None:
    provider = BedrockProvider(SETTINGS, clock=lambda: 1_700_000_000.0)
    upstream = provider.build_request(request(system="Terse.", max_tokens=9, temperature=0.2,
                                              tools=[{"name": "w", "parameters": {}}]),
                                      "anthropic.claude-3-haiku-20240307-v1:0")
    assert upstream.url == ("https://bedrock-runtime.eu-west-3.amazonaws.com/model/"
                            "anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")
    headers = dict(upstream.headers)
    assert headers["x-amz-date"] == "20231114T221320Z"
    assert headers["x-amz-security-token"] == TOKEN
    assert headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-3/bedrock/aws4_request, "
        "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, ")
    assert SECRET not in repr(upstream) and SECRET not in str(upstream.headers)
    target = upstream.url.partition(".com")[2]
    wire = {**headers, "host": "bedrock-runtime.eu-west-3.amazonaws.com"}
    assert signed_with(SECRET, "POST", target, wire, upstream.body)
    assert not signed_with("another-secret", "POST", target, wire, upstream.body)
    assert orjson.loads(upstream.body) == {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "system": [{"text": "Terse."}], "inferenceConfig": {"maxTokens": 9, "temperature": 0.2},
        "toolConfig": {"tools": [{"toolSpec": {"name": "w", "inputSchema": {"json": {
            "type": "object", "properties": {}}}}}]}}


def feed(adapter: BedrockAdapter, event: str, payload: dict[str, Any]) -> list[Any]:
    return adapter.feed(event, orjson.dumps(payload).decode())


def test_converse_events() -> None:
    adapter = BedrockAdapter()
    assert feed(adapter, "messageStart", {"role": "assistant"}) == []
    assert feed(adapter, "contentBlockDelta", {"contentBlockIndex": 0, "delta": {
        "reasoningContent": {"text": "hm"}}}) == [ReasoningDelta("hm")]
    assert feed(adapter, "contentBlockDelta", {"contentBlockIndex": 0, "delta": {
        "reasoningContent": {"signature": "sig"}}}) == []
    assert feed(adapter, "contentBlockDelta", {"contentBlockIndex": 1, "delta": {
        "text": "Hi"}}) == [TextDelta("Hi")]
    assert feed(adapter, "contentBlockStart", {"contentBlockIndex": 2, "start": {
        "toolUse": {"toolUseId": "t1", "name": "f"}}}) == [ToolCallDelta(0, "t1", "f", "")]
    assert feed(adapter, "contentBlockDelta", {"contentBlockIndex": 2, "delta": {
        "toolUse": {"input": '{"a":'}}}) == [ToolCallDelta(0, None, None, '{"a":')]
    assert feed(adapter, "contentBlockStop", {"contentBlockIndex": 2}) == []
    assert feed(adapter, "contentBlockStart", {"contentBlockIndex": 3, "start": {
        "toolUse": {"toolUseId": "t2", "name": "g"}}}) == [ToolCallDelta(1, "t2", "g", "")]
    assert feed(adapter, "contentBlockStop", {"contentBlockIndex": 3}) == [
        ToolCallDelta(1, None, None, "{}")]
    assert feed(adapter, "messageStop", {"stopReason": "tool_use"}) == [Finish("tool_calls")]
    assert not adapter.finished  # usage comes after messageStop
    assert feed(adapter, "metadata", {"usage": {"inputTokens": 3, "outputTokens": 4}}) == [
        Usage(3, 4)]
    assert adapter.finished and adapter.usage_so_far() == Usage(3, 4)


@pytest.mark.parametrize(("reason", "finish"), [
    ("end_turn", "stop"), ("max_tokens", "length"), ("content_filtered", "content_filter"),
    ("guardrail_intervened", "content_filter"), ("something_new", "something_new")])
def test_stop_reasons(reason: str, finish: str) -> None:
    assert feed(BedrockAdapter(), "messageStop", {"stopReason": reason}) == [Finish(finish)]


@pytest.mark.parametrize(("exception", "status", "retryable"), [
    ("throttlingException", 429, True), ("serviceUnavailableException", 503, True),
    ("internalServerException", 500, True), ("modelStreamErrorException", 424, True),
    ("validationException", 400, False), ("unknownException", None, False)])
def test_exception_messages(exception: str, status: int | None, retryable: bool) -> None:
    reader = EventStreamReader(1 << 20)
    (event,) = reader.feed(encode_message(
        {":message-type": "exception", ":exception-type": exception,
         ":content-type": "application/json"}, b'{"message":"went wrong"}'))
    assert feed(BedrockAdapter(), event.event, orjson.loads(event.data)) == [
        ErrorEvent(exception, "went wrong", retryable=retryable, status=status)]


def test_an_error_message() -> None:
    (event,) = EventStreamReader(1 << 20).feed(encode_message(
        {":message-type": "error", ":error-code": "InternalFailure",
         ":error-message": "boom"}, b""))
    (error,) = BedrockAdapter().feed(event.event, event.data)
    assert type(error) is ErrorEvent and (error.type, error.message) == ("InternalFailure",
                                                                         "boom")


@pytest.mark.parametrize(("event", "data"), [
    ("contentBlockDelta", "[]"), ("contentBlockDelta", '{"delta": {"text": 1}}'),
    ("contentBlockDelta", '{"delta": {"reasoningContent": "x"}}'),
    ("contentBlockStart", '{"contentBlockIndex": -1, "start": {"toolUse": {}}}'),
    ("metadata", '{"usage": {"inputTokens": "3"}}'), ("messageStop", '{"stopReason": 3}'),
    ("contentBlockDelta", "{not json")])
def test_wrong_shapes_are_provider_errors(event: str, data: str) -> None:
    with pytest.raises(ProviderError):
        BedrockAdapter().feed(event, data)


@pytest.mark.parametrize(("status", "error_type", "retryable"), [
    (429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", True),
    (503, "ServiceUnavailableException", True), (424, "ModelErrorException", False),
    (400, "ValidationException", False), (403, "", False), (500, "", True)])
def test_error_bodies(status: int, error_type: str, retryable: bool) -> None:
    headers = {"x-amzn-errortype": error_type} if error_type else {}
    error = BedrockProvider(SETTINGS).map_error(
        status, headers, orjson.dumps({"message": f"bad {SECRET}"}))
    assert error.status == status and error.retryable is retryable
    assert "bad" in str(error) and SECRET not in str(error)


def test_credentials_and_region_from_botocore_variables() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_SESSION_TOKEN": TOKEN, "AWS_DEFAULT_REGION": "ap-south-1"}
    (bedrock,) = load_config(env=env).providers
    assert (bedrock.name, bedrock.kind, bedrock.region) == ("bedrock", "bedrock", "ap-south-1")
    assert bedrock.base_url == "https://bedrock-runtime.ap-south-1.amazonaws.com"
    assert (bedrock.access_key_id, bedrock.api_key, bedrock.session_token) == (
        "AKIDEXAMPLE", SECRET, TOKEN)
    assert SECRET not in repr(bedrock) and TOKEN not in repr(bedrock)
    assert type(make_provider(bedrock)) is BedrockProvider
    redact = Redactor(secret for p in load_config(env=env).providers for secret in p.secrets)
    assert redact(f"key {SECRET} token {TOKEN}") == "key [redacted] token [redacted]"
    named = load_config('[providers.aws]\nkind = "bedrock"\nregion = "us-west-2"\n',
                        {**env, "AWS_REGION": "eu-central-1"})
    assert [(p.name, p.region) for p in named.providers] == [("aws", "us-west-2")]


def test_without_credentials_or_region_no_provider_or_a_clear_error() -> None:
    assert load_config(env={"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": SECRET}
                       ).providers == ()
    with pytest.raises(ConfigError, match="region"):
        load_config('[providers.aws]\nkind = "bedrock"\n', {})
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        load_config('[providers.aws]\nkind = "bedrock"\nregion = "us-east-1"\n', {})


def test_a_200_must_be_an_event_stream_of_its_own_media_type() -> None:
    provider = BedrockProvider(SETTINGS)
    assert is_event_stream({"content-type": provider.media_types[0]}, provider.media_types)
    assert not is_event_stream({"content-type": "text/event-stream"}, provider.media_types)
    assert not is_event_stream({"content-type": "application/json"}, provider.media_types)
    assert is_event_stream({"content-type": "text/event-stream; charset=utf-8"})


def test_the_gateway_redacts_the_secret_key_and_the_session_token() -> None:
    from tests.test_routing import gateway

    gw = gateway({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET,
                  "AWS_SESSION_TOKEN": TOKEN, "AWS_REGION": "us-east-1"})
    text = gw.policy.redact(f"signed with {SECRET} and {TOKEN}")
    assert SECRET not in text and TOKEN not in text and "[redacted]" in text
