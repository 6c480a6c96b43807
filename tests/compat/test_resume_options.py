"""The compatible endpoints' resume headers, and the ids their resumable frames get."""

from __future__ import annotations

import pytest

from sseserver.compat.requests import ResumeOptions, parse_resume_options
from sseserver.errors import RequestError
from sseserver.fanout import with_event_id
from sseserver.formats.anthropic_messages import AnthropicMessagesFormatter
from sseserver.formats.openai_chat import OpenAIChatFormatter


def test_no_header_is_not_resumable() -> None:
    assert parse_resume_options({}, stream=True) == ResumeOptions(False, False)


@pytest.mark.parametrize(("headers", "expected"), [
    ({"x-resumable": "true"}, ResumeOptions(True, False)),
    ({"x-resumable": " TRUE "}, ResumeOptions(True, False)),
    ({"x-resumable": "false"}, ResumeOptions(False, False)),
    ({"x-resumable": "true", "x-on-disconnect": "cancel"}, ResumeOptions(True, True)),
    ({"x-resumable": "true", "x-on-disconnect": "continue"}, ResumeOptions(True, False)),
])
def test_headers_read(headers: dict[str, str], expected: ResumeOptions) -> None:
    assert parse_resume_options(headers, stream=True) == expected


@pytest.mark.parametrize(("headers", "stream", "says"), [
    ({"x-resumable": "yes"}, True, "X-Resumable header must be true or false"),
    ({"x-resumable": "true", "x-on-disconnect": "later"}, True, "cancel or continue"),
    ({"x-on-disconnect": "cancel"}, True, "needs X-Resumable"),
    ({"x-resumable": "true"}, False, "needs 'stream': true"),
])
def test_bad_headers_are_400(headers: dict[str, str], stream: bool, says: str) -> None:
    with pytest.raises(RequestError, match=says) as caught:
        parse_resume_options(headers, stream)
    assert caught.value.status == 400


def test_the_id_goes_on_the_last_event_of_a_frame() -> None:
    frame = b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n"
    assert with_event_id(frame, 7) == b"event: a\ndata: 1\n\nevent: b\ndata: 2\nid: 7\n\n"


def test_a_frame_with_no_event_keeps_no_id() -> None:
    assert with_event_id(b"", 3) == b""
    assert with_event_id(b": ping\n", 3) == b": ping\n"


def test_compat_frames_end_every_event_with_a_blank_line() -> None:
    """What with_event_id relies on: each formatter frame ends an event."""
    openai_chat = OpenAIChatFormatter(0, include_usage=True)
    anthropic = AnthropicMessagesFormatter()
    for formatter in (openai_chat, anthropic):
        frames = [formatter.start({"stream_id": "s", "model": "m"}), formatter.text("hi"),
                  formatter.end()]
        assert all(frame.endswith(b"\n\n") for frame in frames)
