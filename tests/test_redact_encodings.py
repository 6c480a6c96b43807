"""A configured key echoed encoded (percent-encoded, base64) is redacted too."""

from __future__ import annotations

import base64

import pytest

from sseserver.redact import REDACTED, Redactor

# Lower-case hex, as some providers' keys are: the random-looking rule (upper, lower
# and digits mixed) does not catch it, only knowing the key does.
KEY = "3f9c2a7e1b8d4c6f0a5e9b2d7c1f8a4e"


def percent(text: str, digits: str = "%02X") -> str:
    return "".join("%" + digits % byte for byte in text.encode())


@pytest.mark.parametrize("form", [percent(KEY), percent(KEY, "%02x")],
                         ids=["upper-hex", "lower-hex"])
def test_a_percent_encoded_key_is_redacted(form: str) -> None:
    text = Redactor([KEY])(f"invalid key {form} for model m")
    assert form[3:-3] not in text and REDACTED in text
    assert text.endswith(" for model m")


@pytest.mark.parametrize("before", ["", "u", "us", "user:", "Basic user:"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode],
                         ids=["standard", "urlsafe"])
def test_a_key_in_base64_is_redacted_wherever_it_starts(before: str, encode) -> None:  # type: ignore[no-untyped-def]
    encoded = encode((before + KEY).encode()).decode()
    text = Redactor([KEY])(f"Authorization: Basic {encoded} refused")
    assert REDACTED in text
    # what is left of the base64 text is the few characters the key shares a byte with
    left = text.removeprefix("Authorization: Basic ").removesuffix(" refused")
    assert len(left.replace(REDACTED, "")) <= len(encode(before.encode())) + 4


def test_words_and_ids_stay() -> None:
    text = "model claude-3-5-sonnet-20241022 request req_01HXYZ abc%20def"
    assert Redactor([KEY])(text) == text
