"""A stream's body turned into client frames, sans-IO: upstream body bytes in, frames
out (DESIGN.md §4).

Driving contract. A :class:`Pump` serves one stream for its whole life, attempt after
attempt, with the stream's one formatter (its frame numbering spans them):

- :meth:`Pump.begin` starts reading a body with an attempt's reader and adapter.
- the upstream connection then drives the pump as its body sink: :meth:`on_body` with
  each decoded piece of the body, then :meth:`on_body_end` or :meth:`on_body_error`.
  Each read's frames go to the output in one write (``output.write`` or, for the one
  frame of a token, ``output.write_frame``), but those of the read in which the
  provider finished: they lead the stream's last frames (:meth:`end_frames`), so
  that the client gets them and the end in one write.
- until the first content event the stream is not committed: other events are held,
  and the first content event commits it (the driver's ``on_commit`` opens the
  response and says the stream's metadata), writing the ``metadata`` frame and the
  held events before it.
- when the body ends, well or not, the driver's ``on_settled`` hears it once: None
  (the provider finished), the :class:`UpstreamError` that ended it (the frames before the fault
  were written first), or :class:`NotAStream` (the 200 was an error document, to be
  read as one from its start).
- :meth:`failure_frames` and :meth:`end_frames` give a stream's last frames; the
  driver sends them. :meth:`stop` stops listening.

Once the stream has committed and its text chunks have a known shape, a text token
read alone takes the text lane: the data line, the chunk's text and the frame at once,
in this one call, by what the reader, the adapter and the formatter promise (their
``data_event_framing``, ``text_chunk_shape`` and ``text_template``), no call of theirs
a token. Any other read closes the lane: a read of one whole data event takes the
reader's whole-data-line shortcut, the adapter's bare-text shortcut, the formatter's
text frame, one write. A read of several whole events (a burst) reads its text chunks
as the lane does and its other events by those shortcuts, and writes once. Every other
read takes the general path: the reader's events, the adapter's events, the
formatter's frames. :class:`ReferencePump` is the general path alone; tests prove
both give the same frames for any cut of a recorded body (tests/test_pump.py), and
the lane the same frames and state at each read that must close it
(tests/test_pump_lane.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from orjson import JSONDecodeError

from sseserver.core.sse import NotAnEventStream, SSEParser
from sseserver.errors import ProviderError, RemoteProtocolError, SSEServerError, UpstreamError
from sseserver.events import CONTENT_EVENTS, ErrorEvent, NormalizedEvent, TextDelta, Usage
from sseserver.failures import body_fault
from sseserver.formats.base import Formatter
from sseserver.providers.base import EventReader, StreamAdapter


class FrameOutput(Protocol):
    """Where a pump's frames go (the stream's :class:`sseserver.output.Output`)."""

    def write(self, frames: list[bytes]) -> None: ...

    def write_frame(self, frame: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class NotAStream:
    """The body labelled an event stream is some other document: ``start`` is what
    was read of it."""

    start: bytes


class PumpDriver(Protocol):
    """What a pump tells the one who drives it (the relay)."""

    def on_commit(self) -> dict[str, Any]:
        """The stream commits (its first content event is going out): open the
        response; the answer is the ``metadata`` frame's content."""
        ...

    def on_settled(self, result: UpstreamError | NotAStream | None) -> None:
        """The body ended: well (None), with an error, or as no event stream at all."""
        ...

    def on_unreadable(self, exc: Exception) -> None:
        """The adapter met data of a wrong shape (not an error of the package's own):
        the body ends with a generic error; this is the chance to log what it was."""
        ...


class _Unread:
    """The adapter of a pump before its first body: nothing reads it."""

    finished = False

    def usage_so_far(self) -> Usage | None:
        return None


_UNREAD = _Unread()
# What a pump reads with before its first body: never fed (a body comes with its own).
_NO_BODY_YET = SSEParser()


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


class Pump:
    # Slots: a token's read touches this object, one of thousands; a dict of its
    # attributes would be more memory to miss in the cache.
    # Every open stream holds one, idle or not: what the driver knows (the stream's
    # id, its target) is asked of it rather than kept twice.
    __slots__ = ("_adapter", "_driver", "_flowing", "_formatter", "_held", "_lane",
                 "_lane_burst_cut", "_lane_tries", "_last", "_output", "_reader",
                 "_write_frame", "committed", "events", "silent_events", "usage")

    def __init__(self, formatter: Formatter, output: FrameOutput, driver: PumpDriver
                 ) -> None:
        self._formatter = formatter
        self._output = output
        self._write_frame = output.write_frame  # looked up again once committed
        self._driver = driver
        self._reader: EventReader = _NO_BODY_YET
        self._adapter: StreamAdapter = _UNREAD  # type: ignore[assignment]
        # Non-content events before the commit; a list only once there is one (most
        # streams have none, and an idle stream should hold little).
        self._held: list[NormalizedEvent] | None = None
        # The frames of the read in which the provider finished: they go out with the
        # stream's last frames (end_frames, failure_frames), one write for both.
        self._last: list[bytes] | None = None
        self._flowing = False  # a body is being read; on_settled not yet called
        self._lane: _Lane | None = None  # the text lane, while open
        # the lane's reading of a burst's lines, from the same promises, while open
        self._lane_burst_cut: _BurstCut | None = None
        self._lane_tries = 0  # times left to try opening it, for the body being read
        self.committed = False
        self.events = 0  # frames made
        self.silent_events = 0  # upstream events that made no frame (pings, held ones)
        self.usage: Usage | None = None

    def __repr__(self) -> str:
        return (f"<Pump committed={self.committed} "
                f"flowing={self._flowing} events={self.events}>")

    @property
    def progress(self) -> int:
        """Upstream events so far, for the upstream's idle limit: those that made a
        frame and those that made none. Bytes that carry no event are no progress."""
        return self.events + self.silent_events

    @property
    def finished(self) -> bool:
        """The provider said its last word in the body being read (or the last)."""
        return self._adapter.finished

    def begin(self, reader: EventReader, adapter: StreamAdapter) -> None:
        """Read a body with this attempt's ``reader`` and ``adapter``."""
        self._reader = reader
        self._adapter = adapter
        self._flowing = True
        self._lane = None
        self._lane_tries = LANE_TRIES

    def stop(self) -> None:
        """Stop reading: a body still flowing is settled as over (``on_settled(None)``,
        for the driver to let its connection go)."""
        self._settle(None)

    # -- the body sink: upstream body bytes to client frames -----------------------

    def on_body(self, data: bytes) -> None:
        lane = self._lane
        if lane is not None:  # a committed text token, read here alone (see _Lane)
            prefix, suffix, start, end, template, numbered = lane
            # an LF in the text: a read of several events (a burst), no JSON string
            if data.startswith(prefix) and data.endswith(suffix) and \
                    10 not in (text := data[start:end]):
                try:
                    content = _loads(text)
                except JSONDecodeError:  # no JSON string: the general path says what
                    content = None
                # One byte a character and its quotes (plain): ASCII with no escape
                # and no blank, which orjson writes as it is; otherwise orjson's own.
                # A CR among the blanks JSON allows is a line break to the reader.
                if type(content) is str and content and \
                        ((plain := len(text) == len(content) + 2) or 13 not in text):
                    if not plain:
                        text = _dumps(content)
                    if numbered:
                        formatter = self._formatter
                        formatter.last_id = number = formatter.last_id + 1  # type: ignore[attr-defined]
                        frame = template % (number, text)
                    else:
                        frame = template % text
                    self.events += 1
                    try:
                        self._write_frame(frame)
                    except Exception as exc:  # as the general path's write
                        self._fault(exc, data, [])
                    return
            elif data.startswith(prefix) and self._lane_burst(data, lane):
                return
            self._lane = None  # until the reader, adapter and formatter allow it again
            # (or the read is a burst of the lane's text tokens alone: see _burst)
        adapter = self._adapter
        frames: list[bytes] = []
        try:
            line = self._reader.feed_data_line(data)
            if line is not None:  # one whole "data:" event: the per-token read
                result = adapter.feed_message(line)
                if type(result) is not str:
                    self._frames(result, frames)
                elif self.committed:  # a text delta: the fewest steps
                    self.events += 1
                    self._write_frame(self._formatter.text(result))
                    if self._lane_tries:
                        self._open_lane()
                    return
                else:  # the first: what _frame does with its TextDelta, without one
                    self.commit(frames)
                    frames.append(self._formatter.text(result))
                    self.events += 1
        except Exception as exc:  # whatever the provider sent: this stream ends, cleanly
            self._fault(exc, data, frames)
            return
        if line is None:  # several events, or an event cut across reads
            self._read_events(data, frames, lane)
        elif adapter.finished:
            self._finished_with(frames)
        elif frames:
            self._output.write(frames)

    def _read_events(self, data: bytes, frames: list[bytes], lane: _Lane | None) -> None:
        """A read of several whole events (a burst), or any other the shortcuts leave
        (an event cut across reads, a named event), its frames after ``frames`` (a
        burst's lane tokens, if any); then one write, or the end's."""
        try:
            if (lines := self._reader.feed_data_lines(data)) is not None:
                self._burst(lines, frames, lane)
            else:
                self._general(data, frames)
        except Exception as exc:  # whatever the provider sent: this stream ends, cleanly
            self._fault(exc, data, frames)
            return
        if self._adapter.finished:
            self._finished_with(frames)
        elif frames:
            self._output.write(frames)

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
            if len(text) != len(content) + 2:  # (as a token alone, above)
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
        prefix = framing[0] + head.encode()
        suffix = tail.encode() + framing[1]
        self._lane = (prefix, suffix, len(prefix), -len(suffix), *template)
        head_bytes, tail_bytes = head.encode(), tail.encode()
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
        its text chunks are read as the lane reads them (the adapter's shape, the
        formatter's template, asked once a read), any other event by the adapter's
        and formatter's calls."""
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

    def _general(self, data: bytes, frames: list[bytes]) -> None:
        """A read the reader's shortcuts leave (an event cut across reads, a named
        event): its events, the unnamed ones still by the adapter's shortcuts."""
        adapter = self._adapter
        for sse in self._reader.feed(data):
            if sse.event == "message":
                result = adapter.feed_message(sse.data)
                self._frames([TextDelta(result)] if type(result) is str else result, frames)
            else:
                self._frames(adapter.feed(sse.event, sse.data), frames)
            if adapter.finished:
                return

    def on_body_end(self) -> None:
        if not self._flowing:
            return
        adapter = self._adapter
        frames: list[bytes] = []
        if not adapter.finished:
            try:  # the last event, if only its blank line is missing
                for sse in self._reader.end():
                    self._frames(adapter.feed(sse.event, sse.data), frames)
            except Exception as exc:
                self._flush(frames)
                self._settle(self._body_fault(exc))
                return
        if adapter.finished:
            self._finished_with(frames)
        else:
            self._flush(frames)
            self._settle(UpstreamError("provider ended the stream before it was complete"))

    def _finished_with(self, frames: list[bytes]) -> None:
        """The provider finished in the read that made ``frames``: they are kept for
        the stream's last frames (the driver asks for them next), then the body is
        settled as over."""
        self._last = frames
        self._settle(None)

    def on_body_error(self, error: UpstreamError) -> None:
        self._settle(error)

    def _settle(self, result: UpstreamError | NotAStream | None) -> None:
        if self._flowing:
            self._flowing = False
            self._driver.on_settled(result)

    def _fault(self, exc: Exception, data: bytes, frames: list[bytes]) -> None:
        """A read could not be relayed whole: what came before the fault is the
        client's (``frames``, and the events the reader completed before a bound
        broke), then the body ends, or is read as the error it is."""
        adapter = self._adapter
        if isinstance(exc, RemoteProtocolError) and exc.read_before:
            try:
                for sse in exc.read_before:
                    self._frames(adapter.feed(sse.event, sse.data), frames)
                    if adapter.finished:  # the provider's end came before the fault
                        self._flush(frames)
                        self._settle(None)
                        return
            except Exception as later:  # an event before the bound was malformed itself
                exc = later
        self._flush(frames)
        if type(exc) is NotAnEventStream:
            self._settle(NotAStream(data))
        else:
            self._settle(self._body_fault(exc))

    def _body_fault(self, exc: Exception) -> UpstreamError:
        if not isinstance(exc, SSEServerError):
            self._driver.on_unreadable(exc)  # the adapter met data of a wrong shape
        return body_fault(exc)

    # -- events to frames ----------------------------------------------------------

    def _frames(self, events: list[NormalizedEvent], frames: list[bytes]) -> None:
        if not events:
            self.silent_events += 1
        for event in events:
            self._frame(event, frames)

    def _frame(self, event: NormalizedEvent, frames: list[bytes]) -> None:
        if type(event) is ErrorEvent:
            raise ProviderError(event.message, retryable=event.retryable,
                                status=event.status, error_type=event.type)
        if not self.committed:
            if not isinstance(event, CONTENT_EVENTS):
                if self._held is None:
                    self._held = []
                self._held.append(event)
                self.silent_events += 1
                return
            self.commit(frames)
        if type(event) is Usage:
            self.usage = event
        frame = self._formatter.event(event)
        if frame:
            self.events += 1
            frames.append(frame)

    def commit(self, frames: list[bytes]) -> None:
        """Commit the stream (if it is not): the driver's ``on_commit``, then the
        ``metadata`` frame and the held events into ``frames``."""
        if self.committed:
            return
        metadata = self._driver.on_commit()
        self.committed = True
        self._write_frame = self._output.write_frame
        frames.append(self._formatter.start(metadata))
        self.events += 1
        held, self._held = self._held, None
        for event in held or ():
            self._frame(event, frames)

    def _flush(self, frames: list[bytes]) -> None:
        if frames:
            self._output.write(frames)

    # -- a stream's last frames ----------------------------------------------------

    def end_frames(self) -> list[bytes]:
        """A stream's last frames when the provider finished: the last read's, what is
        held, the end."""
        frames, self._last = self._last or [], None
        self.commit(frames)
        frames.append(self._formatter.end())
        self.events += 1
        return frames

    def failure_frames(self, error_type: str, message: str, retryable: bool,
                       status: int | None) -> list[bytes]:
        """A stream's last frames when it fails after its head: the last read's (if
        the provider had finished), what is held, the usage so far (a stream that ends
        early reports what it used), the error, the end."""
        frames, self._last = self._last or [], None
        self.commit(frames)
        usage = self._adapter.usage_so_far()
        if self.usage is None and usage is not None:
            self._frame(usage, frames)
        frames.append(self._formatter.event(ErrorEvent(
            type=error_type, message=message, retryable=retryable, status=status)))
        frames.append(self._formatter.end())
        self.events += 2
        return frames


class ReferencePump(Pump):
    """The general path alone, with no shortcut: what the fast paths must equal."""

    __slots__ = ()

    def on_body(self, data: bytes) -> None:
        adapter = self._adapter
        frames: list[bytes] = []
        try:
            self._general(data, frames)
        except Exception as exc:
            self._fault(exc, data, frames)
            return
        if adapter.finished:
            self._finished_with(frames)
        else:
            self._flush(frames)

    def _general(self, data: bytes, frames: list[bytes]) -> None:
        adapter = self._adapter
        for sse in self._reader.feed(data):
            self._frames(adapter.feed(sse.event, sse.data), frames)
            if adapter.finished:
                return
