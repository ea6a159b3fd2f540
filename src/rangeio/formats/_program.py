"""The formats' sans-IO seam: the reads a format program yields, and the pure helpers programs use.

A format's logic (where the zip directory is, which tar header comes next, which bytes a member
needs) is written once, as generator programs that ``yield`` a read and get its bytes back:
``ReadRanges`` (vectored reads, answered with one ``bytes`` per range) and ``ReadNext`` (the next
bytes of a span read in order, ``Pull``, answered from a cursor the runner keeps for it, so that
rangeio turns the reads into read-ahead and one streaming request). ``formats/_runner.py``'s
SyncRunner performs them on an HttpFile (or any sync source), ``_async/formats/_runner.py``'s
AsyncRunner on an AsyncHttpFile by awaiting; neither holds format logic. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rangeio._core.planner import ReadPolicy
from rangeio._core.prefetch import START_PREFETCH
from rangeio.formats._common import FormatError, KiB

T = TypeVar("T")

_POLICY = ReadPolicy()

# The open's prefetch for a walk from the start (tar headers, PNG chunks), and the read-ahead of
# a walk through small members: their data comes along whatever the window, so a bigger window
# only saves round trips, and 1 MiB is where the planner itself stops growing a chain of
# requests and streams (``ReadPolicy.stream_after_bytes``).
WALK_PREFETCH = _POLICY.stream_after_bytes


@dataclass(frozen=True, slots=True)
class ReadRanges:
    """Read ``ranges`` (``(start, stop)`` each): answered with one ``bytes`` per range, in order
    (short only past the end of a forward stream, see ``Forward``)."""

    ranges: tuple[tuple[int, int], ...]


class Pull:
    """The bytes ``[pos, stop)`` handed out in order (a zip member's compressed data, a PNG's
    IDAT chunks): first ``prefix`` (bytes fetched already), then the rest through ``ReadNext``.
    A runner keeps one cursor per Pull (by identity) until ``EndPull``."""

    __slots__ = ("pos", "stop", "what", "_prefix")

    def __init__(self, pos: int, stop: int, prefix: bytes = b"", what: str = "data") -> None:
        self.pos = pos
        self.stop = stop
        self.what = what
        self._prefix = prefix

    def take(self, n: int) -> Program[bytes]:
        """At most ``n`` next bytes; b"" once ``stop`` is reached; FormatError if the file
        ends first."""
        if self._prefix:
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        n = min(n, self.stop - self.pos)
        if n <= 0:
            return b""
        data = yield ReadNext(self, n)
        if not data:
            raise FormatError(f"{self.what} ends early at {self.pos}")
        self.pos += len(data)
        return bytes(data)

    def span(self, n: int) -> tuple[int, int]:
        """The range of the next ``n`` bytes, for a source read by ranges."""
        return self.pos, self.pos + n

    def close(self) -> Program[None]:
        """Let the runner close this pull's cursor (no more bytes will be taken)."""
        yield EndPull(self)


@dataclass(frozen=True, slots=True)
class ReadNext:
    """At most ``n`` bytes of ``pull`` from ``pull.pos`` (b"" at the file's end)."""

    pull: Pull
    n: int


@dataclass(frozen=True, slots=True)
class EndPull:
    """``pull`` is done: close its cursor, if one was opened. Answered with None."""

    pull: Pull


Op = ReadRanges | ReadNext | EndPull
Program = Generator[Op, Any, T]


def read_ranges(ranges: Iterable[tuple[int, int]]) -> Program[list[bytes]]:
    """The bytes of each range (no op for none)."""
    wanted = tuple(ranges)
    if not wanted:
        return []
    datas: list[bytes] = yield ReadRanges(wanted)
    return datas


def read_exact(size: int, start: int, stop: int, what: str) -> Program[bytes]:
    """Bytes ``[start, stop)`` of a file of ``size`` bytes, all of them, or FormatError naming
    ``what`` was cut short."""
    if start < 0 or stop < start or stop > size:
        raise FormatError(f"{what}: bytes {start}..{stop} lie outside the file (size {size})")
    (data,) = yield from read_ranges([(start, stop)])
    if len(data) != stop - start:
        raise FormatError(f"{what}: expected {stop - start} bytes at {start}, got {len(data)}")
    return data


class Stepper:
    """Drives one program for a runner: ``next_op`` sends the last answer (or throws the last
    error) in and returns the next op, or None once the program has returned (``result``)."""

    __slots__ = ("_program", "_value", "_error", "result")

    def __init__(self, program: Program[Any]) -> None:
        self._program = program
        self._value: Any = None
        self._error: BaseException | None = None
        self.result: Any = None

    def next_op(self) -> Op | None:
        value, error = self._value, self._error
        self._value = self._error = None
        try:
            return self._program.throw(error) if error is not None else self._program.send(value)
        except StopIteration as stop:
            self.result = stop.value
            return None

    def succeeded(self, value: Any) -> None:
        self._value = value

    def failed(self, error: BaseException) -> None:
        self._error = error


def in_memory(program: Program[T], data: bytes, seen: list[Op] | None = None) -> T:
    """Run ``program`` over bytes held in memory (a decompressed tarball): no I/O, so both
    runners call it as it is. ``seen`` (tests) collects the ops it yielded."""
    stepper = Stepper(program)
    while (op := stepper.next_op()) is not None:
        if seen is not None:
            seen.append(op)
        if isinstance(op, ReadRanges):
            stepper.succeeded([data[start:stop] for start, stop in op.ranges])
        elif isinstance(op, ReadNext):
            stepper.succeeded(data[op.pull.pos : op.pull.pos + op.n])
        else:
            stepper.succeeded(None)
    result: T = stepper.result
    return result


def through(program: Program[T], forward: Forward) -> Program[T]:
    """``program`` with its ReadRanges answered by ``forward`` (a stream read once), and its
    other ops passed on: a tar walk over a decompressed payload."""
    stepper = Stepper(program)
    while (op := stepper.next_op()) is not None:
        try:
            if isinstance(op, ReadRanges):
                stepper.succeeded((yield from forward.read_ranges(op.ranges)))
            else:
                stepper.succeeded((yield op))
        except Exception as exc:  # into the program, whose own handlers and finally run
            stepper.failed(exc)
    result: T = stepper.result
    return result


# -- walks ----------------------------------------------------------------------------------


class ReadAhead:
    """Sizes reads when a walk (tar headers, PNG chunks) must learn each header's position
    from the one before it, so the positions cannot be asked for at once.

    The planner's AccessPattern guesses a reader's pattern from its offsets; a walk knows each
    member's span from its header, so it sizes its own window: while members are small
    (``small_span`` on average, recent ones weighing most), the walk reads through, ``most``
    bytes a request, since their data comes along whatever the window. Past ``small_span`` a
    round trip costs less than the bytes it skips (the planner's ``gap_fill_bytes``, its
    estimate of what a round trip is worth), so each header is fetched alone, with ``alone``
    bytes in all for what usually follows a header at once. The first read takes ``first``
    bytes: what the open request prefetched from the start, when known (it costs nothing).
    """

    def __init__(
        self,
        *,
        first: int = START_PREFETCH,
        small_span: int = _POLICY.gap_fill_bytes,
        most: int = WALK_PREFETCH,
        alone: int = 0,
    ) -> None:
        self._first = first
        self._small_span = small_span
        self._most = most
        self._alone = alone
        self._average: float | None = None

    def observe(self, span: int) -> None:
        """A member's header and data took ``span`` bytes."""
        # Exponential average: recent members say most about the next ones (archives are
        # often sorted, so sizes come in runs).
        self._average = span if self._average is None else (self._average + span) / 2

    @property
    def reading_through(self) -> bool:
        return self._average is None or self._average <= self._small_span

    def is_small(self, span: int) -> bool:
        return span <= self._small_span

    def extent(self, need: int) -> int:
        """How many bytes to fetch when ``need`` bytes are required at a new position."""
        if self._average is None:
            ahead = self._first
        elif self._average <= self._small_span:
            ahead = self._most
        else:
            ahead = self._alone
        return max(need, ahead)


class Window:
    """The bytes last fetched by a walk over a file of ``size`` bytes, and the programs that
    fetch the next ones through ReadAhead. ``forward``: the file is a stream of unknown size
    (``Forward.UNKNOWN``), so a read-ahead may come back short at its end."""

    def __init__(self, size: int, readahead: ReadAhead, *, forward: bool = False) -> None:
        self.size = size
        self.readahead = readahead
        self.forward = forward
        self.start = 0
        self.data = b""

    @property
    def stop(self) -> int:
        return self.start + len(self.data)

    def holds(self, start: int, stop: int) -> bool:
        return self.start <= start and stop <= self.stop

    def get(self, start: int, stop: int, what: str) -> Program[bytes]:
        """Bytes ``[start, stop)``, fetched (with read-ahead) unless the window holds them."""
        if stop > self.size:
            raise FormatError(
                f"{what}: needs bytes up to {stop}, past the end of the file ({self.size})"
            )
        if not self.holds(start, stop):
            fetch_stop = min(self.size, start + self.readahead.extent(stop - start))
            if fetch_stop > stop and self.forward:
                (self.data,) = yield from read_ranges([(start, fetch_stop)])
                if len(self.data) < stop - start:
                    raise FormatError(f"{what}: needs bytes up to {stop}, past the end")
            else:
                self.data = yield from read_exact(self.size, start, fetch_stop, what)
            self.start = start
        return self.data[start - self.start : stop - self.start]


class Forward:
    """A stream read once, forward (a decompressed tarball), answering a walk's ReadRanges
    (``through``): ranges must come in order; bytes between them are read and dropped, never
    held. ``read(n)`` is a program giving the stream's next bytes (b"" at its end). Its size is
    unknown (``UNKNOWN``, past any real file) until the stream ends; a range running past the
    end comes back short."""

    UNKNOWN = 2**62

    def __init__(
        self, read: Callable[[int], Program[bytes]], what: str, step: int = 256 * KiB
    ) -> None:
        self._read = read
        self._what = what
        self._step = step
        self._pos = 0
        self._ended = False

    def _take(self, n: int) -> Program[bytes]:
        out = bytearray()
        while len(out) < n and not self._ended:
            piece = yield from self._read(min(n - len(out), self._step))
            if not piece:
                self._ended = True
            out += piece
            self._pos += len(piece)
        return bytes(out)

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> Program[list[bytes]]:
        out = []
        for start, stop in ranges:
            if start < self._pos:
                raise FormatError(f"{self._what}: read backwards (at {start}, past {self._pos})")
            while self._pos < start and not self._ended:
                yield from self._take(min(start - self._pos, self._step))
            out.append((yield from self._take(stop - start)) if self._pos == start else b"")
        return out

    def drain(self) -> Program[None]:
        """Read the stream to its end (a decompressor's checks run there), dropping it."""
        while not self._ended:
            yield from self._take(self._step)
