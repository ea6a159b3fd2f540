"""Range streams as programs: named byte ranges, each a lazily opened, validated streaming response.

Overlapping ranges are pruned by ``pruning_level`` when a range is added::

    existing   [==========)            existing [======)  new [====)  (inside: split)
    new              [=========)

    0 replant: existing keeps its head   [=====)      and any tail beyond the new range is
               re-requested on demand as its own range: [=====)[====)[==)
    1 burn:    every existing range the new one touches is dropped
    2 strict:  overlapping is an error (RangeOverlapError)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from rangeio._core.diskcache import Accumulator
from rangeio._core.exchange import RangeExchange
from rangeio._core.headers import RangeSpec
from rangeio._core.ranges import ByteRange
from rangeio._engine.ops import Abandon, Advance, Program
from rangeio._engine.remote import RemoteFile
from rangeio.errors import ProtocolError, RangeioError

# Open responses at once, per stream. A response is a connection; range-streams keeps one per
# range, which exhausts connection pools (httpx's default is 10 per host) on a 150-member zip.
MAX_OPEN_RESPONSES = 8


class RangeOverlapError(RangeioError, ValueError):
    """A range was added that overlaps another while ``pruning_level`` is 2 (strict)."""


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


def asks_nothing(value: Any) -> bool:
    """The ``[0, 0)`` a RangeStream opens with by default: learn the size, add no range."""
    if isinstance(value, ByteRange):
        return value.start == value.stop == 0
    return isinstance(value, tuple) and tuple(value) == (0, 0)


class RangeResponse:
    """One range's response: read it like a file; nothing is fetched until the first read."""

    def __init__(self, owner: StreamSet, span: ByteRange, name: str) -> None:
        self._owner = owner
        self.range = span
        self.name = name
        self.position = span.start
        self._pending = bytearray()
        self._exchange: RangeExchange | None = None
        self._program: Program[None] | None = None
        self._stream_position = span.start  # where the open response's next byte lands
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

    def read(self, n: int = -1) -> Program[bytes]:
        if self.closed or self._owner.closed:
            raise ValueError("I/O operation on closed range response.")
        remaining = max(self.range.stop - self.position, 0)
        want = remaining if n is None or n < 0 else min(n, remaining)
        out = bytearray()
        ended_early = False
        while len(out) < want:
            at = self.position + len(out)
            if (self._program is not None or self._pending) and (
                self._stream_position - len(self._pending) != at
            ):
                # A seek moved us away from the open response (or from bytes the disk gave):
                # drop it, ask again from here.
                yield from self._drop()
            if self._pending:
                take = min(len(self._pending), want - len(out))
                out += self._pending[:take]
                del self._pending[:take]
                continue
            if self._program is None:
                disk = self._owner.remote.disk
                if disk is not None:  # disk cache: what it holds from here, before a request
                    stored = yield from disk.read_run(
                        self._owner.remote, ByteRange(at, self.range.stop)
                    )
                    if stored:
                        self._pending += stored
                        self._stream_position = at + len(stored)
                        continue
                yield from self._finish_through()
                yield from self._owner.make_room(self)
                self._open(at)
            assert self._program is not None and self._exchange is not None
            paused = yield Advance(self._program)
            start, data = self._exchange.take()
            if data:
                self._pending += data
                self._stream_position = start + len(data)
                ended_early = False
                if self._through is not None:  # disk cache: write the body through
                    yield from self._write_through(self._through.feed(start, data))
            elif not paused:
                self._program = self._exchange = None
                # An exchange ends only with its whole range or an error, so a response that
                # ended short was ended from outside (a fork ends the parent's responses in the
                # child): ask again from here, rather than hand back a short read. Twice in a
                # row without a byte is not that, and is refused.
                if ended_early:
                    raise ProtocolError(f"range response ended at byte {at} of {self.range}")
                ended_early = True
        if self._program is not None and self._stream_position >= self.range.stop:
            yield from self._see_the_end()
        self.position += len(out)
        return bytes(out)

    def _see_the_end(self) -> Program[None]:
        """Every byte of the range has arrived: run the exchange to the body's end. A well-framed
        body is over already (no wait), and its connection goes back to the pool instead of
        being dropped by a later abandon; a body that runs past its Content-Range is refused
        here (ProtocolError), as by the file, whatever the chunks the transport happened to
        hand over."""
        while self._program is not None:
            assert self._exchange is not None
            try:
                paused = yield Advance(self._program)
            except BaseException:
                self._program = self._exchange = None
                self._owner.forget(self)
                raise
            self._exchange.take()  # nothing: past the range, on_data raises instead
            if not paused:
                self._program = self._exchange = None
                self._owner.forget(self)
        yield from self._finish_through()

    def _open(self, at: int) -> None:
        if at >= self.range.stop:
            raise ValueError("nothing left to read in this range")
        self._exchange = self._owner.remote.new_exchange(RangeSpec.closed(at, self.range.stop))
        self._program = self._owner.remote.drive(self._exchange)
        self._stream_position = at
        self._pending.clear()
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
        program, self._program, self._exchange = self._program, None, None
        self._pending.clear()
        self._owner.forget(self)
        if program is not None:
            yield Abandon(program)
        yield from self._finish_through()

    def close(self) -> Program[None]:
        self.closed = True
        yield from self._drop()


class StreamSet:
    """The ranges of one RangeStream, in the order they were added, sharing one RemoteFile
    (identity pinned by the first answer, every response validated against it)."""

    def __init__(self, remote: RemoteFile, pruning_level: int) -> None:
        if pruning_level not in (0, 1, 2):
            raise ValueError("pruning_level must be 0 (replant), 1 (burn) or 2 (strict)")
        self.remote = remote
        self.pruning_level = pruning_level
        self._ranges: OrderedDict[ByteRange, RangeResponse] = OrderedDict()
        self._open: OrderedDict[int, RangeResponse] = OrderedDict()
        self.active: RangeResponse | None = None
        self.closed = False

    @property
    def ranges(self) -> Mapping[ByteRange, RangeResponse]:
        return _ReadOnly(self._ranges)

    def add(self, value: Any, name: str) -> Program[RangeResponse]:
        span = to_byte_range(value, self.remote.size)
        existing = self._ranges.get(span)
        if existing is not None:
            # Already present: no request, just make it the active one again.
            self.active = existing
            return existing
        yield from self._prune(span)
        response = RangeResponse(self, span, name or f"{span.start}-{span.stop}")
        self._ranges[span] = response
        self.active = response
        return response

    def _prune(self, new: ByteRange) -> Program[None]:
        for old_span, old in list(self._ranges.items()):
            if not old_span.overlaps(new):
                continue
            if self.pruning_level == 2:
                raise RangeOverlapError(f"range {new} overlaps {old.name!r} {old_span}")
            del self._ranges[old_span]
            yield from old.close()
            if self.pruning_level == 1:
                continue
            # Replant: what lies outside the new range stays available, as its own range(s),
            # keeping how far it was read.
            pieces = []
            if old_span.start < new.start:
                pieces.append(ByteRange(old_span.start, new.start))
            if new.stop < old_span.stop:
                pieces.append(ByteRange(new.stop, old_span.stop))
            for piece in pieces:
                if piece:
                    replanted = RangeResponse(self, piece, old.name)
                    replanted.position = min(max(old.position, piece.start), piece.stop)
                    self._ranges[piece] = replanted

    def find(self, name: str) -> RangeResponse:
        for response in self._ranges.values():
            if response.name == name:
                return response
        raise KeyError(f"no range named {name!r}")

    def make_room(self, keep: RangeResponse) -> Program[None]:
        """Close least-recently opened responses so at most MAX_OPEN_RESPONSES stay open."""
        while len(self._open) >= MAX_OPEN_RESPONSES:
            _, victim = self._open.popitem(last=False)
            if victim is not keep:
                yield from victim._drop()

    def opened(self, response: RangeResponse) -> None:
        self._open[id(response)] = response

    def forget(self, response: RangeResponse) -> None:
        self._open.pop(id(response), None)

    @property
    def open_responses(self) -> int:
        return len(self._open)

    def close(self) -> Program[None]:
        for response in list(self._ranges.values()):
            yield from response.close()
        self.closed = True


class _ReadOnly(Mapping[ByteRange, RangeResponse]):
    def __init__(self, data: Mapping[ByteRange, RangeResponse]) -> None:
        self._data = data

    def __getitem__(self, key: ByteRange) -> RangeResponse:
        return self._data[key]

    def __iter__(self) -> Iterator[ByteRange]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)
