"""The one redaction every provider text passes before a client or a log sees it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sseserver.redact import MAX_TEXT_CHARS, REDACTED, Redactor, describe_exception

OPENAI_KEY = "sk-proj-Qx7CanaryOpenAIv9Lk2Jd8Hs5Fp3Wm6Rt1Yb4Nc"
ANTHROPIC_KEY = "sk-ant-api03-Zr4CanaryAnthropicTg7Vu2Xe9Kw5Hm8Pq3Ld6"
# A configured key of no known shape, as a self-hosted server may use.
PLAIN_KEY = "local-server-secret-7f3k2m9q"
RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "recordings"

redact = Redactor([OPENAI_KEY, ANTHROPIC_KEY, PLAIN_KEY, None, ""])


@pytest.mark.parametrize("text", [
    f"Incorrect API key provided: {OPENAI_KEY}.",
    f"{ANTHROPIC_KEY}{OPENAI_KEY}",  # glued together
    f"key={PLAIN_KEY}",
    f"the key {PLAIN_KEY[:14]}… is not valid",  # cut by the echo
    f"split {OPENAI_KEY[:20]}\n{OPENAI_KEY[20:]} over lines",
    f"{PLAIN_KEY[:13]} {PLAIN_KEY[13:]}",
])
def test_configured_keys_and_their_pieces_are_redacted(text: str) -> None:
    cleaned = redact(text)
    for key in (OPENAI_KEY, ANTHROPIC_KEY, PLAIN_KEY):
        assert not any(key[at:at + 12] in cleaned for at in range(len(key) - 11)), cleaned
    assert REDACTED in cleaned


@pytest.mark.parametrize(("text", "expected"), [
    ("API key provided: sk-abcdefghijklmnop1234", f"API key provided: {REDACTED}"),
    ("sk-ant-api03-unknownunknownunknown0000", REDACTED),
    ("sk-or-v1-0123456789abcdef0123456789abcdef", REDACTED),
    ("gsk_0123456789abcdefABCDEF", REDACTED),
    ("AIzaSyA0123456789abcdefghijklmnopqrstu", REDACTED),
    ("Authorization: Bearer abcdefgh.ijklmnop", f"Authorization: Bearer {REDACTED}"),
    ('{"x-api-key": "abcdefgh12345678"}', '{"x-api-key": "[redacted]"}'),
    ("token Zx8Kq2Lm9Np4Rs7Tv1Wy3Ab6Cd0Ef5Gh2", f"token {REDACTED}"),  # 32 mixed characters
])
def test_anything_shaped_like_a_key_is_redacted(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


@pytest.mark.parametrize("text", [
    "The server had an error while processing your request. Sorry about that!",
    "This model's maximum context length is 128000 tokens. However, your messages "
    "resulted in 130000 tokens. Please reduce the length of the messages.",
    "model claude-3-5-sonnet-20241022 not found; try gpt-4o-mini-2024-07-18",
    "request req_8f7c2b1e9d0a4c3b8e7f6a5d4c3b2a10 failed",  # lower-case hex id
    "id 123e4567-e89b-12d3-a456-426614174000, see https://platform.openai.com/docs/guides",
    "request_id req_011CSHoEeqs5C35K2UUqR7Fy",  # Anthropic's, 28 characters
    "the sky is blue; sk-short is not a key, nor is a bearer token named so",
    "Überlastet: bitte später erneut versuchen ✓",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason="no recordings folder")
def test_real_provider_error_messages_are_left_alone() -> None:
    messages = []
    for path in RECORDINGS.glob("*.sse"):
        for line in path.read_text("utf-8", "replace").splitlines():
            if line.startswith("data: {") and '"error"' in line:
                try:
                    error = orjson.loads(line[6:]).get("error")
                except orjson.JSONDecodeError:
                    continue
                if isinstance(error, dict) and isinstance(error.get("message"), str):
                    messages.append(" ".join(error["message"].split()))
    assert messages
    for message in messages:
        assert redact(message) == message[:MAX_TEXT_CHARS - 1] + "…" \
            if len(message) > MAX_TEXT_CHARS else message


def test_one_line_of_bounded_length() -> None:
    assert redact("a\r\nforged: line\x1b[31m\tred\x85") == "a forged: line [31m red"
    assert len(redact("word " * 1000)) == MAX_TEXT_CHARS
    assert len(redact("x" * 100, limit=10)) == 10


def test_the_redactor_shows_no_secret_and_short_keys_are_not_secrets() -> None:
    assert repr(redact) == "<Redactor secrets=3>" and OPENAI_KEY not in repr(redact)
    assert Redactor(["ollama"])("ollama is not running") == "ollama is not running"


def test_an_exception_is_described_without_its_secrets() -> None:
    try:
        int(OPENAI_KEY)
    except ValueError as exc:
        described = describe_exception(exc, redact)
    assert described.startswith("ValueError: invalid literal") and OPENAI_KEY not in described
    assert "test_an_exception_is_described_without_its_secrets" in described  # where
