"""SigV4 signing: AWS's published test suite (the aws-signing-test-suite v4 vectors of
awslabs/aws-c-auth, AWS's own example credentials), and botocore's signer as the oracle
for a ConverseStream request (a model id with a colon, a session token)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sseserver.core.sigv4 import AwsCredentials, canonical_headers, signed_headers

SUITE = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SUITE_TOKEN = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"


def suite_signature(method: str, path: str, credentials: AwsCredentials = SUITE) -> str:
    added = signed_headers(method, f"https://example.amazonaws.com{path}", [], b"",
                           credentials, "us-east-1", "service", SUITE_TIME)
    return dict(added)["authorization"].rpartition("Signature=")[2]


@pytest.mark.parametrize(("vector", "method", "path", "signature"), [
    ("get-vanilla", "GET", "/",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("post-vanilla", "POST", "/",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("get-utf8", "GET", "/ሴ",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("get-vanilla-query-unreserved", "GET", f"/?{UNRESERVED}={UNRESERVED}",
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
    ("get-vanilla-query-order-key-case", "GET", "/?Param2=value2&Param1=value1",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
])
def test_aws_signing_test_suite(vector: str, method: str, path: str, signature: str) -> None:
    assert suite_signature(method, path) == signature, vector


def test_aws_signing_test_suite_with_session_token() -> None:
    credentials = AwsCredentials(SUITE.access_key_id, SUITE.secret_access_key, SUITE_TOKEN)
    added = dict(signed_headers("GET", "https://example.amazonaws.com/", [], b"",
                                credentials, "us-east-1", "service", SUITE_TIME))
    assert added["x-amz-security-token"] == SUITE_TOKEN
    assert added["x-amz-date"] == "20150830T123600Z"
    assert added["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8")


def test_header_canonical_form() -> None:
    names, lines = canonical_headers([("My-Header", "  a   b "), ("my-header", "c"),
                                      ("Host", "h")])
    assert names == "host;my-header" and lines == "host:h\nmy-header:a b,c\n"


def test_the_secret_is_in_no_header_and_no_repr() -> None:
    credentials = AwsCredentials("AKID", "SECRETSECRETSECRET", "TOKENTOKEN")
    added = signed_headers("POST", "https://h/", [], b"", credentials, "r", "s", SUITE_TIME)
    assert all("SECRETSECRETSECRET" not in value for _, value in added)
    assert "SECRET" not in repr(credentials) and "TOKEN" not in repr(credentials)


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLETOKEN"])
def test_a_converse_stream_request_signs_as_botocore_signs_it(token: str | None) -> None:
    pytest.importorskip("botocore")
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = ("https://bedrock-runtime.eu-west-3.amazonaws.com/model/"
           "anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")
    headers = [("content-type", "application/json"),
               ("accept", "application/vnd.amazon.eventstream")]
    body = b'{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}'
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token), "bedrock",
              "eu-west-3").add_auth(request)
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ") \
        .replace(tzinfo=UTC)
    ours = dict(signed_headers("POST", url, headers, body,
                               AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token),
                               "eu-west-3", "bedrock", when))
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")
