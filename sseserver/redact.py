"""Provider text made safe to show: every configured key, and anything shaped like one,
redacted; control characters and runs of whitespace made one space; the length bounded.

A provider's words reach clients and logs in error messages and error types. A
provider may echo a key (``Incorrect API key provided: sk-...``), a proxy may quote a
request header, and a hostile upstream may send anything. One :class:`Redactor`, built
from the keys of every configured provider (a fallback chain sends one provider's error
through another's stream), cleans every such text at the one place it leaves the relay.
Sans-IO, and only on error paths: nothing here runs per token.
"""

from __future__ import annotations

import base64
import re
import traceback
from collections.abc import Callable, Iterable

REDACTED = "[redacted]"
# A relayed message stays readable and a log line stays a line: long enough for the
# longest provider messages known (OpenAI's context-length errors run ~300 characters),
# short enough that a page of HTML cannot fill a log line.
MAX_TEXT_CHARS = 500
# A key shorter than this cannot be told from an ordinary word (a local server's dummy
# key "ollama"), and redacting it would garble messages without hiding anything worth
# hiding; real provider keys are 40 characters and more.
MIN_SECRET_CHARS = 8
# A piece of a configured key this long, found alone (the key cut by an ellipsis, a
# line break, or a provider's own masking), is redacted too: 12 characters of a random
# key are as good as a password, and no ordinary word is a substring of a key that long.
MIN_FRAGMENT_CHARS = 12

_KEY_CHARS = r"A-Za-z0-9_\-"
_RUN = re.compile(rf"(?<![{_KEY_CHARS}])[{_KEY_CHARS}]{{{MIN_FRAGMENT_CHARS},}}")
# Keys by their published shapes: OpenAI sk-, sk-proj-, sk-svcacct-; Anthropic sk-ant-;
# OpenRouter sk-or-; Groq gsk_; xAI xai-; Hugging Face hf_; Fireworks fw_; Replicate r8_;
# Google AIza. A prefix alone, or with a short tail ("sk-...abcd", a provider's own
# masking), is no key.
_PREFIXED_KEY = re.compile(
    rf"(?<![{_KEY_CHARS}])(?:(?:sk|gsk|xai|hf|fw|r8)[-_]|AIza)[{_KEY_CHARS}]{{16,}}")
# A credential named as such: "Bearer <token>", "x-api-key: <token>", "api_key=<token>".
_NAMED_CREDENTIAL = re.compile(
    r"(?i)(\bbearer\s+|\b(?:x-)?api[-_]?key[\"']?\s*[:=]\s*[\"']?|"
    r"\b(?:access[-_]?token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]{8,}")
# Anything else long and random-looking: 32+ key characters that mix upper case, lower
# case and digits (Mistral's keys are 32 such characters). Ordinary words, model names
# (claude-3-5-sonnet-20241022), lower-case hex request ids and UUIDs mix fewer kinds
# or are shorter, and stay.
_LONG_RUN = re.compile(rf"(?<![{_KEY_CHARS}])[{_KEY_CHARS}]{{32,}}(?![{_KEY_CHARS}])")
_UPPER, _LOWER, _DIGIT = re.compile("[A-Z]"), re.compile("[a-z]"), re.compile("[0-9]")
# C0 and C1 controls, DEL and every kind of whitespace: one space (no forged log lines,
# no terminal escapes).
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


class Redactor:
    """``redactor(text)``: ``text`` with every secret redacted, one line, bounded.

    Never raises. Holds the secrets, so its repr counts them and shows none.
    """

    __slots__ = ("_encoded", "_secrets")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        keys = {secret for secret in secrets if secret and len(secret) >= MIN_SECRET_CHARS}
        # longest first: a key that contains another is redacted whole
        self._secrets = tuple(sorted(keys, key=len, reverse=True))
        self._encoded = tuple(sorted({form for key in keys for form in _encodings(key)},
                                     key=len, reverse=True))

    def __repr__(self) -> str:
        return f"<Redactor secrets={len(self._secrets)}>"

    def __call__(self, text: str, limit: int = MAX_TEXT_CHARS) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if self._secrets:
            text = _RUN.sub(self._fragment, text)
            for form in self._encoded:
                if form in text:
                    text = text.replace(form, REDACTED)
        text = _PREFIXED_KEY.sub(REDACTED, text)
        text = _NAMED_CREDENTIAL.sub(lambda match: match.group(1) + REDACTED, text)
        text = _LONG_RUN.sub(_random_looking, text)
        return shorten(_SPACE_OR_CONTROL.sub(" ", text).strip(), limit)

    def _fragment(self, match: re.Match[str]) -> str:
        run = match.group()
        return REDACTED if any(run in secret for secret in self._secrets) else run


def _encodings(key: str) -> list[str]:
    """``key`` as a provider or proxy may echo it encoded: percent-encoded byte by byte
    (a URL or form field quoting it), and in base64 (an ``Authorization: Basic``
    header echoed, ``user:key`` included). Of base64, for each of the three places the
    key may start within a 3-byte group, the characters made of its bytes alone, so
    that it is found inside any longer base64 text."""
    raw = key.encode()
    forms = ["".join(f"%{byte:02X}" for byte in raw), "".join(f"%{byte:02x}" for byte in raw)]
    for shift in range(3):
        start, end = -(-8 * shift // 6), 8 * (shift + len(raw)) // 6
        padded = bytes(shift) + raw
        forms.append(base64.b64encode(padded).decode()[start:end])
        forms.append(base64.urlsafe_b64encode(padded).decode()[start:end])
    return forms


def _random_looking(match: re.Match[str]) -> str:
    run = match.group()
    if _UPPER.search(run) and _LOWER.search(run) and _DIGIT.search(run):
        return REDACTED
    return run


def describe_exception(exc: BaseException, redact: Callable[[str], str]) -> str:
    """An exception for a log line, in place of ``exc_info``: its type, its message
    redacted (it may quote provider data: ``int("sk-...")``), and where it was raised.
    The traceback's frames show code, never data; a chained exception's message could
    carry a key, so the chain is left out."""
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    return f"{type(exc).__name__}: {redact(str(exc))}\n{frames}"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
