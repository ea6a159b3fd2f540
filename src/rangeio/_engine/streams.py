"""Range streams as programs: named byte ranges, each a lazily opened, validated streaming response.

Overlapping ranges are pruned by ``pruning_level`` when a range is added::

    existing   [==========)            existing [======)  new [====)  (inside: split)
    new              [=========)

    0 replant: existing keeps its head   [=====)      and any tail beyond the new range is
               re-requested on demand as its own range: [=====)[====)[==)
    1 burn:    every existing range the new one touches is dropped
    2 strict:  overlapping is an error (RangeOverlapError)

With ``single_request`` every range is served from one response instead (``SingleResponse``).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rangeio._core.diskcache import Accumulator
from rangeio._core.exchange import RangeExchange
from rangeio._core.headers import RangeSpec
from rangeio._core.ranges import ByteRange
from rangeio._core.travel import Description
from rangeio._engine.ops import Abandon, Program, advance
from rangeio._engine.remote import RemoteFile
from rangeio.errors import ProtocolError, RangeioError

# Open responses at once, per stream. A response is a connection; range-streams keeps one per
# range, which exhausts connection pools (httpx's default is 10 per host) on a 150-member zip.
MAX_OPEN_RESPONSES = 8


PRUNING_LEVELS = (0, 1, 2)


class RangeOverlapError(RangeioError, ValueError):
    """A range was added that overlaps another while ``pruning_level`` is 2 (strict)."""


class SingleRequestError(RangeioError, ValueError):
    """In ``single_request`` mode, a range was added that the one response cannot serve: its
    bytes lie behind what the response has already passed (and no range holds them), or past
    the end of the span the response was opened for. Add every range before the first read."""


def check_pruning_level(value: object) -> int:
    """``value`` as a pruning level, or ValueError (a bool is not a level, though it is an int)."""
    if type(value) is not int or value not in PRUNING_LEVELS:
        raise ValueError(
            f"pruning_level must be 0 (replant), 1 (burn) or 2 (strict), not {value!r}"
        )
    return value


def to_byte_range(value: Any, size: int | None) -> ByteRange:
    """A ``(start, stop)`` tuple, a ByteRange, or a python-ranges ``Range``, as a ByteRange.

    Negative positions count from the end once the size is known; ``(-N, 0)`` is the last N bytes.
    """
    if isinstance(value, ByteRange):
        return value
    if hasattr(value, "start") and hasattr(value, "end") and hasattr(value, "include_end"):
        start = int(value.start) + (0 if getattr(value, "include_start", True) else 1)
        stop = int(value.end) + (1 if value.include_end else 0)
    else:
        start, stop = value
    if start < 0 or stop < 0 or (start < 0 and stop == 0):
        if size is None:
            raise ValueError("negative positions need the size; add the range after opening")
        if stop == 0 and start < 0:
            stop = size
        start = size + start if start < 0 else start
        stop = size + stop if stop < 0 else stop
    if start < 0 or stop < start:
        raise ValueError(f"invalid byte range ({start}, {stop})")
    return ByteRange(start, stop if size is None else min(stop, size))


def single_span(spans: list[ByteRange]) -> ByteRange:
    """The one request of ``single_request`` mode: from the lowest start of the ranges still
    wanting bytes to the highest stop, whatever order they were added in (a response comes in
    file order; bytes between ranges are passed over, not kept)."""
    return ByteRange(min(s.start for s in spans), max(s.stop for s in spans))


def servable(span: ByteRange, held: int, reached: int | None, single: ByteRange | None) -> bool:
    """Can a range added now be served by the one response? ``held`` bytes of it, from its
    start, are held already (taken from ranges it replaces); the response has passed
    ``reached`` within ``single`` (None: not opened yet, so it will cover the range)."""
    need = span.start + held
    if need >= span.stop or reached is None or single is None:
        return True
    return need >= reached and span.stop <= single.stop


class _Feed:
    """One open streaming response for ``[start, stop)``: its exchange, the program driving it,
    and where its next byte lands."""

    def __init__(self, remote: RemoteFile, start: int, stop: int) -> None:
        self.exchange: RangeExchange = remote.new_exchange(RangeSpec.closed(start, stop))
        self.program: Program[None] = remote.drive(self.exchange)
        self.position = start
        self.stop = stop

    def next(self) -> Program[tuple[int, bytes] | None]:
        """The bytes received since the last call and where they start (possibly none yet),
        or None once the response has ended."""
        paused = yield from advance(self.program)
        start, data = self.exchange.take()
        if data:
            self.position = start + len(data)
        elif not paused:
            return None
        return start, data

    def see_the_end(self) -> Program[None]:
        """Every byte of the span has arrived: run the exchange to the body's end. A well-framed
        body is over already (no wait), and its connection goes back to the pool instead of
        being dropped by a later abandon; a body that runs past its Content-Range is refused
        here (ProtocolError), as by the file, whatever the chunks the transport happened to
        hand over."""
        while True:
            paused = yield from advance(self.program)
            self.exchange.take()  # nothing: past the range, on_data raises instead
            if not paused:
                return

    def abandon(self) -> Program[None]:
        yield Abandon(self.program)


class StreamRange:
    """One range of a stream, as the engine keeps it: position, the bytes at hand, its own
    response (or, with ``single_request``, the bytes the one response passed it). The public
    faces are ``rangeio.RangeResponse`` and ``rangeio.aio.RangeResponse``."""

    def __init__(self, owner: StreamSet, span: ByteRange, name: str) -> None:
        self._owner = owner
        self.range = span
        self.name = name
        self.position = span.start
        self._pending = bytearray()
        self._pending_at = span.start  # where the first pending byte (or the next one) lands
        self._feed: _Feed | None = None
        # single_request: the range's bytes from its start, as far as the response has passed.
        # Kept until the range is closed, so seeking back within it costs no request.
        self.held = bytearray()
        # The disk cache's writer for the open response's body (None: no disk cache).
        self._through: Accumulator | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"<RangeResponse {self.name!r} {self.range} at {self.position}>"

    def tell(self) -> int:
        """Position relative to the range's start."""
        return self.position - self.range.start

    def is_consumed(self) -> bool:
        return self.position >= self.range.stop

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.tell(), 2: self.range.length}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        target = max(0, min(base + offset, self.range.length))
        self.position = self.range.start + target
        return target

    def read(self, n: int | None = -1) -> Program[bytes]:
        if self.closed or self._owner.closed:
            raise ValueError("I/O operation on closed range response.")
        remaining = max(self.range.stop - self.position, 0)
        want = remaining if n is None or n < 0 else min(n, remaining)
        single = self._owner.single
        if single is not None:
            out = yield from single.serve(self, want)
        else:
            out = yield from self._stream(want)
        self.position += len(out)
        return bytes(out)

    def _stream(self, want: int) -> Program[bytes]:
        out = bytearray()
        ended_early = False
        while len(out) < want:
            at = self.position + len(out)
            if self._pending_at != at and (self._pending or self._feed is not None):
                # A seek moved us away from the bytes at hand: drop them, ask again from here.
                yield from self._drop()
            if self._pending:
                take = min(len(self._pending), want - len(out))
                out += self._pending[:take]
                del self._pending[:take]
                self._pending_at += take
                continue
            if self._feed is None:
                disk = self._owner.remote.disk
                if disk is not None:  # disk cache: what it holds from here, before a request
                    stored = yield from disk.read_run(
                        self._owner.remote, ByteRange(at, self.range.stop)
                    )
                    if stored:
                        self._pending += stored
                        self._pending_at = at
                        continue
                yield from self._finish_through()
                yield from self._owner.make_room(self)
                self._open(at)
            assert self._feed is not None
            got = yield from self._feed.next()
            if got is None:
                self._feed = None
                self._owner.forget(self)
                # An exchange ends only with its whole range or an error, so a response that
                # ended short was ended from outside (a fork ends the parent's responses in the
                # child): ask again from here, rather than hand back a short read. Twice in a
                # row without a byte is not that, and is refused.
                if ended_early:
                    raise ProtocolError(f"range response ended at byte {at} of {self.range}")
                ended_early = True
            elif got[1]:
                self._pending += got[1]
                ended_early = False
                if self._through is not None:  # disk cache: write the body through
                    yield from self._write_through(self._through.feed(got[0], got[1]))
        if self._feed is not None and self._feed.position >= self.range.stop:
            feed, self._feed = self._feed, None
            self._owner.forget(self)
            yield from feed.see_the_end()
            yield from self._finish_through()
        return bytes(out)

    def _open(self, at: int) -> None:
        if at >= self.range.stop:
            raise ValueError("nothing left to read in this range")
        self._feed = _Feed(self._owner.remote, at, self.range.stop)
        self._pending.clear()
        self._pending_at = at
        self._owner.opened(self)
        disk = self._owner.remote.disk
        self._through = disk.accumulator(self._owner.remote) if disk is not None else None

    def _finish_through(self) -> Program[None]:
        """The part-filled block of the last response's body, written through."""
        through, self._through = self._through, None
        if through is not None:
            yield from self._write_through(through.finish())

    def _write_through(self, blocks: list[Any]) -> Program[None]:
        disk = self._owner.remote.disk
        if blocks and disk is not None:
            yield from disk.write(self._owner.remote, blocks)

    def _drop(self) -> Program[None]:
        feed, self._feed = self._feed, None
        self._pending.clear()
        self._owner.forget(self)
        if feed is not None:
            yield from feed.abandon()
        yield from self._finish_through()

    def close(self) -> Program[None]:
        self.closed = True
        self.held = bytearray()
        yield from self._drop()


class SingleResponse:
    """``single_request`` mode: one response, opened at the first read, covering every range
    added by then (``single_span``). Its bytes come in file order; each range takes the bytes
    that fall inside it as they pass, the rest are dropped."""

    def __init__(self, owner: StreamSet) -> None:
        self._owner = owner
        self._feed: _Feed | None = None
        self.span: ByteRange | None = None

    @property
    def reached(self) -> int | None:
        """How far the response has come (None: not opened yet)."""
        if self.span is None:
            return None
        return self._feed.position if self._feed is not None else self.span.stop

    @property
    def is_open(self) -> bool:
        return self._feed is not None

    def serve(self, r: StreamRange, want: int) -> Program[bytes]:
        end = r.position + want
        while r.range.start + len(r.held) < end:
            yield from self._pull()
        offset = r.position - r.range.start
        return bytes(r.held[offset : offset + want])

    def _pull(self) -> Program[None]:
        if self._feed is None:
            if self.span is not None:
                raise ProtocolError(f"the single response for {self.span} has ended")
            self.span = single_span(self._owner.wanting())
            self._feed = _Feed(self._owner.remote, self.span.start, self.span.stop)
        got = yield from self._feed.next()
        if got is None:
            at, self._feed = self._feed.position, None
            raise ProtocolError(f"the single response ended at byte {at} of {self.span}")
        if got[1]:
            self._owner.dispatch(*got)
        if self._feed.position >= self._feed.stop:
            feed, self._feed = self._feed, None
            yield from feed.see_the_end()

    def close(self) -> Program[None]:
        feed, self._feed = self._feed, None
        if feed is not None:
            yield from feed.abandon()


@dataclass(frozen=True, slots=True)
class StreamSetState:
    """A pickled RangeStream: its file's description and, per range in the order added,
    ``(start, stop, name, position, closed)``; the active range's index. Bytes at hand (a
    response's, or those ``single_request`` kept for a range) stay behind: asked again there."""

    description: Description
    ranges: tuple[tuple[int, int, str, int, bool], ...]
    active: int | None
    pruning_level: int
    single_request: bool


class StreamSet:
    """The ranges of one RangeStream, in the order they were added, sharing one RemoteFile
    (identity pinned by the first answer, every response validated against it)."""

    def __init__(
        self, remote: RemoteFile, pruning_level: int, single_request: bool = False
    ) -> None:
        self.remote = remote
        self.pruning_level = pruning_level
        self.single = SingleResponse(self) if single_request else None
        self._ranges: OrderedDict[ByteRange, StreamRange] = OrderedDict()
        self._open: OrderedDict[int, StreamRange] = OrderedDict()
        self.active: StreamRange | None = None
        self.closed = False

    def describe(self) -> StreamSetState:
        if self.closed:
            raise ValueError("cannot pickle a closed range stream")
        kept = list(self._ranges.values())
        return StreamSetState(
            self.remote.describe(),
            tuple((r.range.start, r.range.stop, r.name, r.position, r.closed) for r in kept),
            next((i for i, r in enumerate(kept) if r is self.active), None),
            self.pruning_level,
            self.single is not None,
        )

    @classmethod
    def revived(cls, state: StreamSetState) -> StreamSet:
        """An unpickled stream's ranges, as they were, with no response open: a range's first
        read sends its request, judged against the pinned identity (``RemoteFile.revived``)."""
        made = cls(RemoteFile.revived(state.description), state.pruning_level, state.single_request)
        for start, stop, name, position, closed in state.ranges:
            r = StreamRange(made, ByteRange(start, stop), name)
            r.position, r.closed = position, closed
            made._ranges[r.range] = r
        if state.active is not None:
            made.active = list(made._ranges.values())[state.active]
        return made

    @property
    def pruning_level(self) -> int:
        return self._pruning_level

    @pruning_level.setter
    def pruning_level(self, value: int) -> None:
        # Checked on every change, not only at construction: range-streams lets it change.
        self._pruning_level = check_pruning_level(value)

    @property
    def ranges(self) -> Mapping[ByteRange, StreamRange]:
        return _ReadOnly(self._ranges)

    def add(self, value: Any, name: str, activate: bool = True) -> Program[StreamRange]:
        """Add a range (made the active one unless ``activate`` is False). An empty range,
        ``(0, 0)`` or python-ranges' ``Range(0, 0)`` alike, adds nothing: the range returned
        reads ``b""`` and is neither kept nor made active."""
        span = to_byte_range(value, self.remote.size)
        if not span:
            return StreamRange(self, span, name)
        existing = self._ranges.get(span)
        if existing is not None:
            # Already present: no request, just make it the active one again.
            if activate:
                self.active = existing
            return existing
        held = self._held_for(span) if self.single is not None else bytearray()
        if self.single is not None and not servable(
            span, len(held), self.single.reached, self.single.span
        ):
            raise SingleRequestError(
                f"range {span} cannot be served by the single response for {self.single.span}, "
                f"which has reached byte {self.single.reached}: add every range before reading"
            )
        yield from self._prune(span)
        response = StreamRange(self, span, name or f"{span.start}-{span.stop}")
        response.held = held
        self._ranges[span] = response
        if activate:
            self.active = response
        return response

    def _held_for(self, span: ByteRange) -> bytearray:
        """The bytes of ``span`` from its start that ranges it overlaps hold already."""
        out = bytearray()
        at = span.start
        for old in sorted(self._ranges.values(), key=lambda r: r.range.start):
            have = old.range.start + len(old.held)
            if old.range.start <= at < have:
                stop = min(have, span.stop)
                out += old.held[at - old.range.start : stop - old.range.start]
                at = stop
        return out

    def _prune(self, new: ByteRange) -> Program[None]:
        for old_span, old in list(self._ranges.items()):
            if not old_span.overlaps(new):
                continue
            if self.pruning_level == 2:
                raise RangeOverlapError(f"range {new} overlaps {old.name!r} {old_span}")
            del self._ranges[old_span]
            held = old.held
            yield from old.close()
            if self.active is old:
                self.active = None
            if self.pruning_level == 1:
                continue
            # Replant: what lies outside the new range stays available, as its own range(s),
            # keeping how far it was read (and, with single_request, the bytes it holds).
            pieces = []
            if old_span.start < new.start:
                pieces.append(ByteRange(old_span.start, new.start))
            if new.stop < old_span.stop:
                pieces.append(ByteRange(new.stop, old_span.stop))
            for piece in pieces:
                if piece:
                    replanted = StreamRange(self, piece, old.name)
                    replanted.position = min(max(old.position, piece.start), piece.stop)
                    offset = piece.start - old_span.start
                    replanted.held = held[offset : offset + piece.length]
                    self._ranges[piece] = replanted

    def wanting(self) -> list[ByteRange]:
        """The spans of the ranges still waiting for bytes of the single response."""
        return [
            r.range
            for r in self._ranges.values()
            if not r.closed and r.range.start + len(r.held) < r.range.stop
        ]

    def dispatch(self, start: int, data: bytes) -> None:
        """The single response passed ``data`` at ``start``: each range takes its part."""
        stop = start + len(data)
        for r in self._ranges.values():
            have = r.range.start + len(r.held)
            if r.closed or have >= r.range.stop or r.range.stop <= start or stop <= have:
                continue
            if have < start:
                # Bytes of this range went by before it was added: add() refuses that.
                raise ProtocolError(f"the single response skipped bytes {have}..{start}")
            r.held += data[have - start : min(stop, r.range.stop) - start]

    def find(self, name: str) -> StreamRange:
        for response in self._ranges.values():
            if response.name == name:
                return response
        raise KeyError(f"no range named {name!r}")

    def make_room(self, keep: StreamRange) -> Program[None]:
        """Close least-recently opened responses so at most MAX_OPEN_RESPONSES stay open."""
        while len(self._open) >= MAX_OPEN_RESPONSES:
            _, victim = self._open.popitem(last=False)
            if victim is not keep:
                yield from victim._drop()

    def opened(self, response: StreamRange) -> None:
        self._open[id(response)] = response

    def forget(self, response: StreamRange) -> None:
        self._open.pop(id(response), None)

    @property
    def open_responses(self) -> int:
        if self.single is not None:
            return int(self.single.is_open)
        return len(self._open)

    def close(self) -> Program[None]:
        for response in list(self._ranges.values()):
            yield from response.close()
        if self.single is not None:
            yield from self.single.close()
        self.closed = True


_Face = TypeVar("_Face")


class Faces(Mapping[ByteRange, _Face], Generic[_Face]):
    """A stream's ranges as its users see them: each value the public face of an engine range
    (made once per range, so ``rs.ranges[r] is rs.ranges[r]``), in the order they were added."""

    def __init__(
        self, ranges: Mapping[ByteRange, StreamRange], make: Callable[[StreamRange], _Face]
    ) -> None:
        self._ranges = ranges
        self._make = make
        self._faces: weakref.WeakKeyDictionary[StreamRange, _Face] = weakref.WeakKeyDictionary()

    def face(self, response: StreamRange) -> _Face:
        face = self._faces.get(response)
        if face is None:
            face = self._faces[response] = self._make(response)
        return face

    def __getitem__(self, key: Any) -> _Face:
        if not isinstance(key, ByteRange):
            # A (start, stop) tuple or a python-ranges Range names the same key.
            try:
                key = to_byte_range(key, None)
            except (TypeError, ValueError):
                raise KeyError(key) from None
        return self.face(self._ranges[key])

    def __iter__(self) -> Iterator[ByteRange]:
        return iter(self._ranges)

    def __len__(self) -> int:
        return len(self._ranges)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {self[k]!r}" for k in self) + "}"


class _ReadOnly(Mapping[ByteRange, StreamRange]):
    def __init__(self, data: Mapping[ByteRange, StreamRange]) -> None:
        self._data = data

    def __getitem__(self, key: ByteRange) -> StreamRange:
        return self._data[key]

    def __iter__(self) -> Iterator[ByteRange]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)
