"""The pump's text lane and its bursts, sans-IO: a committed stream's text tokens read
by what its reader, adapter and formatter promise (DESIGN.md §4).

The promises are asked when the lane opens, never per token: the reader's
``data_event_framing`` (a read ``before + D + after`` is one whole event of data D),
the adapter's ``text_chunk_shape`` (the data ``head + J + tail``, J a JSON string of a
non-empty text, is a text delta of that text) and the formatter's ``text_template``
(the text's frame is a template around its JSON). :class:`LaneReading` is the part of
:class:`~sseserver.pump.Pump` that reads by them: a burst that begins with the lane's
tokens, a burst's runs of text chunks, and the opening of the lane. The single token's
read stays in ``Pump.on_body``, the per-token path, in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import orjson
from orjson import JSONDecodeError

from sseserver.events import NormalizedEvent

if TYPE_CHECKING:
    from sseserver.formats.base import Formatter
    from sseserver.providers.base import EventReader, StreamAdapter

# The text lane: a committed stream's text token read in one step, the data line, the
# chunk's text and the frame at once, while the reader is between events, the adapter
# knows its text chunk's shape and the formatter's text frame is a template around the
# text's JSON (their documented promises, asked when the lane opens). A read of any
# other kind closes it and takes the general path, and a later text token opens it
# again. (data line and chunk head, chunk tail and event end, where the text begins,
# where it ends, the frame's template, whether it is numbered)
_Lane = tuple[bytes, bytes, int, int, bytes, bool]
# The same for a burst's decoded lines: (the chunk's head, its tail, where the text
# begins, where it ends, the frame's template, whether it is numbered)
_LaneLines = tuple[str, str, int, int, bytes, bool]
# The lane's cut of a burst of its text tokens alone, in bytes: (what lies between two
# events, where the first event's line begins, where the last one's ends, the chunk's
# head, its tail, where the text begins in a line, where it ends)
_BurstCut = tuple[bytes, int, int, bytes, bytes, int, int]
# The adapter learns its text chunk's shape from its first text chunks: a body whose
# text tokens have not opened the lane in this many tries (its shape broken, say)
# keeps to the general path and pays no more tries (each costs a few calls).
LANE_TRIES = 4
# Asking for the lane costs a burst about what it saves on eight of its text chunks:
# a read of fewer events (a stream's last, with its finish and usage) reads them by
# the adapter's and formatter's calls.
BURST_LANE_MIN = 8
_loads = orjson.loads
_dumps = orjson.dumps


def _one_line(part: str) -> bool:
    return "\n" not in part and "\r" not in part


class _Frames(Protocol):
    """What the lane writes to (the pump's output): a read's frames, one write."""

    def write(self, frames: list[bytes]) -> None: ...


class LaneReading:
    """The lane's reading of a :class:`~sseserver.pump.Pump`'s reads (a mixin: the
    pump holds the state named here)."""

    __slots__ = ()

    _adapter: StreamAdapter
    _formatter: Formatter
    _reader: EventReader
    _output: _Frames
    _lane: _Lane | None
    _lane_burst_cut: _BurstCut | None
    _lane_tries: int
    committed: bool
    events: int
    commit: Callable[[list[bytes]], None]
    _frames: Callable[[list[NormalizedEvent], list[bytes]], None]
    _fault: Callable[[Exception, bytes, list[bytes]], None]
    _read_events: Callable[[bytes, list[bytes], _Lane | None], None]

    def _lane_burst(self, data: bytes, lane: _Lane) -> bool:
        """A burst that begins with the lane's text tokens (a fast model's batch, or a
        stream's last read: its last tokens, then its finish, usage and end), relayed
        in one write: the tokens read by the lane's promises as a token alone is, each
        event the framing around ``head + J + tail``, J one JSON string of a non-empty
        text, no LF in it and no CR among its blanks; the rest of the read, from its
        first event of another kind, read as any burst is. False, and nothing taken,
        if it begins otherwise."""
        between, first, last, head, tail, start, end = self._lane_burst_cut  # type: ignore[misc]
        whole = data.endswith(between[:-first])  # its last event ends in this read
        lines = (data[first:last] if whole else data[first:]).split(between)
        readable = len(lines) if whole else len(lines) - 1  # a cut last event waits
        texts: list[bytes] = []
        append = texts.append
        taken = 0  # bytes of the events read so
        for line in lines[:readable]:
            if not (line.startswith(head) and line.endswith(tail)):
                break
            text = line[start:end]
            try:
                content = _loads(text)
            except JSONDecodeError:
                break
            if type(content) is not str or not content:
                break
            if len(text) != len(content) + 2:  # (as Pump.on_body reads a token alone)
                if 13 in text:
                    break
                text = _dumps(content)
            append(text)
            taken += len(line)
        count = len(texts)
        taken += count * len(between)
        # no LF in those events but the two each ends with: no J held one
        if not count or data.count(b"\n", 0, taken) != between.count(b"\n") * count:
            return False
        self.events += count
        frames = self._lane_frames(lane[4], lane[5], texts)
        if taken < len(data):  # the rest as any burst, read after these tokens
            self._lane = None  # (the burst's reading opens it again if it can)
            self._read_events(data[taken:], frames, None)
            return True
        try:
            self._output.write(frames)
        except Exception as exc:  # as the general path's write
            self._fault(exc, data, [])
        return True

    def _open_lane(self) -> None:
        """Open the text lane if the reader, the adapter and the formatter allow it
        now (their documented promises: the reader's data_event_framing, the adapter's
        text_chunk_shape, the formatter's text_template), after a text token read by
        the shortcuts; a try that fails counts against the body's few."""
        framing_of = getattr(self._reader, "data_event_framing", None)
        promised = self._text_promises() if framing_of is not None else None
        framing = framing_of() if framing_of is not None else None
        if promised is None or framing is None:
            if framing_of is None:
                self._lane_tries = 0  # no reader of this body promises its framing
            elif self._lane_tries:
                self._lane_tries -= 1
            return
        (head, tail), template = promised
        head_bytes, tail_bytes = head.encode(), tail.encode()
        prefix = framing[0] + head_bytes
        suffix = tail_bytes + framing[1]
        self._lane = (prefix, suffix, len(prefix), -len(suffix), *template)
        self._lane_burst_cut = (framing[1] + framing[0], len(framing[0]), -len(framing[1]),
                                head_bytes, tail_bytes, len(head_bytes), -len(tail_bytes))

    def _text_promises(self) -> tuple[tuple[str, str], tuple[bytes, bool]] | None:
        """The adapter's text chunk shape, one line, and the formatter's text template,
        when both are promised now; None otherwise (no try left when either offers no
        such promise at all)."""
        shape_of = getattr(self._adapter, "text_chunk_shape", None)
        template_of = getattr(self._formatter, "text_template", None)
        if shape_of is None or template_of is None:
            self._lane_tries = 0  # none of this body's reads can take a lane
            return None
        shape, template = shape_of(), template_of()
        if shape is None or template is None or not _one_line(shape[0]) or \
                not _one_line(shape[1]):
            return None
        return shape, template

    def _burst(self, lines: list[str], frames: list[bytes], lane: _Lane | None) -> None:
        """Several whole "data:" events in one read (a fast model, a stream catching
        up, a stream's last read): one write for them all. Once the stream commits,
        its runs of text chunks are read as the lane reads them (the adapter's shape
        and the formatter's template, asked after a text the adapter read, a few times
        a read), any other event by the adapter's and formatter's calls."""
        adapter = self._adapter
        feed, text, append = adapter.feed_message, self._formatter.text, frames.append
        texts = 0  # frames of text deltas made here, counted once at the end
        # Read by the open lane's promises (if the lane was open before this read: it
        # stays so if they read every line, having changed nothing), or asked for
        # after a text read by the adapter (which may learn its shape from the first
        # few), a few times a read at most, and only for a read of many events.
        shaped = self._burst_lane() if lane is not None else None
        asks = 0 if shaped is not None or not self._lane_tries or \
            len(lines) < BURST_LANE_MIN else LANE_TRIES
        index, count = 0, len(lines)
        try:
            while index < count:
                if shaped is not None:
                    read = self._shaped_run(lines, index, shaped, frames)
                    texts += read
                    index += read
                    if index == count:
                        break
                    shaped = lane = None  # the adapter and formatter are asked again
                lane = None
                result = feed(lines[index])
                index += 1
                if type(result) is str:
                    if not self.committed:  # as _frame commits for a TextDelta
                        self.commit(frames)
                    append(text(result))
                    texts += 1
                    if asks:
                        asks -= 1
                        shaped = self._burst_lane()
                else:
                    self._frames(result, frames)
                    if adapter.finished:
                        return
        finally:
            self.events += texts
        self._lane = lane
        if lane is None and shaped is not None and self._lane_tries:
            self._open_lane()  # its last lines were the lane's: the next read may be too

    def _shaped_run(self, lines: list[str], index: int, shaped: _LaneLines,
                    frames: list[bytes]) -> int:
        """How many of ``lines``, from ``index`` on, are text chunks the lane's reading
        takes (up to the first it does not); their frames appended to ``frames``."""
        head, tail, start, end, template, numbered = shaped
        texts: list[bytes] = []
        append = texts.append
        for line in lines[index:] if index else lines:
            if not (line.startswith(head) and line.endswith(tail)):
                break
            try:
                content = _loads(line[start:end])
            except JSONDecodeError:
                break
            if type(content) is not str or not content:
                break
            append(_dumps(content))
        if texts:
            frames += self._lane_frames(template, numbered, texts)
        return len(texts)

    def _lane_frames(self, template: bytes, numbered: bool, texts: list[bytes]
                     ) -> list[bytes]:
        """The frames of ``texts`` (JSON strings) by the lane's template, one each (an
        output may keep each frame as its event), numbered on from the formatter's
        last id if it numbers its frames."""
        if not numbered:
            return [template % text for text in texts]
        formatter = self._formatter
        number: int = formatter.last_id  # type: ignore[attr-defined]
        formatter.last_id = number + len(texts)  # type: ignore[attr-defined]
        return [template % pair for pair in zip(range(number + 1, number + len(texts) + 1),
                                                texts, strict=True)]

    def _burst_lane(self) -> _LaneLines | None:
        promised = self._text_promises()
        if promised is None:
            return None
        (head, tail), template = promised
        return (head, tail, len(head), -len(tail), *template)
