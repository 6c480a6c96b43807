"""The fake provider's script: ``#fake {json}`` in the last user message, sans-IO."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

PREFIX = "#fake "
DEFAULT_REPLY = "This is a reply from the fake provider, streamed one token at a time."


class ScriptError(ValueError):
    """The script is not valid JSON, or names an unknown knob, or a bad value."""


@dataclass(frozen=True, slots=True)
class Script:
    tokens: int = 20
    text: str | None = None
    rate: float = 0.0  # tokens per second; 0 = as fast as possible
    ttfb_ms: float = 0.0
    fail: tuple[int, ...] = ()
    key: str | None = None
    retry_after: float | None = None
    drop_after: int | None = None
    stall_after: int | None = None
    error_after: int | None = None
    malformed_after: int | None = None
    tool_call: dict[str, str] | list[dict[str, str]] | None = None  # a list: parallel
    usage: dict[str, int] | None = None
    thinking: int = 0
    require_key: str | None = None
    stamp: bool = False  # each token is "t<monotonic ns> ": load benchmarks measure latency
    stop_sequence: str | None = None  # the reply ends as if it met this stop sequence
    source: str = field(default="", compare=False)

    def reply_tokens(self) -> list[str]:
        if self.text is not None:
            return split_tokens(self.text)
        return [f"tok{i} " for i in range(self.tokens)]

    @property
    def tool_calls(self) -> list[dict[str, str]]:
        call = self.tool_call
        return call if isinstance(call, list) else [call] if call is not None else []

    @property
    def fail_key(self) -> str:
        return self.key if self.key is not None else self.source


_KNOBS = {f.name for f in fields(Script)} - {"source"}
_INT_KNOBS = ("tokens", "drop_after", "stall_after", "error_after", "malformed_after",
              "thinking")


def split_tokens(text: str) -> list[str]:
    """Words with the whitespace before them, so the tokens join back to the text."""
    tokens = re.findall(r"\s*\S+", text)
    tail = text[len("".join(tokens)):]
    if tail:
        tokens.append(tail)
    return tokens


def parse_script(message: str) -> Script | None:
    """The script in ``message``, or None when it holds none. Raises ScriptError."""
    if not message.startswith(PREFIX):
        return None
    source = message[len(PREFIX):]
    try:
        raw = orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        raise ScriptError(f"#fake script is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ScriptError("#fake script must be a JSON object")
    unknown = sorted(set(raw) - _KNOBS)
    if unknown:
        raise ScriptError(f"unknown #fake knob(s): {', '.join(unknown)}")
    return Script(**_checked(raw), source=source)


def _checked(raw: dict[str, Any]) -> dict[str, Any]:
    values = dict(raw)
    for name in _INT_KNOBS:
        value = values.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 0):
            raise ScriptError(f"#fake {name} must be a non-negative integer")
    for name in ("rate", "ttfb_ms", "retry_after"):
        value = values.get(name)
        if value is not None and (not isinstance(value, int | float) or value < 0):
            raise ScriptError(f"#fake {name} must be a non-negative number")
    fail = values.get("fail", [])
    if not isinstance(fail, list) or not all(isinstance(s, int) and 400 <= s <= 599
                                             for s in fail):
        raise ScriptError("#fake fail must be a list of HTTP error statuses")
    values["fail"] = tuple(fail)
    call = values.get("tool_call")
    calls = call if isinstance(call, list) else [call] if call is not None else []
    if not all(isinstance(c, dict) and isinstance(c.get("name"), str)
               and isinstance(c.get("arguments", ""), str) for c in calls):
        raise ScriptError('#fake tool_call must be {"name": str, "arguments": str} or a '
                          'list of them (parallel calls)')
    if not isinstance(values.get("stamp", False), bool):
        raise ScriptError("#fake stamp must be true or false")
    for name in ("text", "stop_sequence"):
        if values.get(name) is not None and not isinstance(values[name], str):
            raise ScriptError(f"#fake {name} must be a string")
    return values


def last_user_text(messages: Any) -> str:
    """The text of the last user message of a provider-native request body."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content
                               if isinstance(p, dict) and isinstance(p.get("text"), str))
            return ""
    return ""
