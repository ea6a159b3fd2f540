"""The formats' sync runner (format programs performed on HttpFile or any sync file) and its faces' base."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from rangeio.formats._common import SourceFacts, given_file, url_options
from rangeio.formats._program import EndPull, Op, Program, Pull, ReadNext, ReadRanges, Stepper

T = TypeVar("T")


def read_ranges_of(source: Any, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """``ranges`` of a sync file: its ``read_ranges`` (HttpFile merges and multiparts them),
    else a seek and a read each."""
    if hasattr(source, "read_ranges"):
        datas: list[bytes] = source.read_ranges(list(ranges))
        return datas
    out = []
    for start, stop in ranges:
        source.seek(start)
        out.append(bytes(source.read(stop - start)))
    return out


class Cursors:
    """What both runners keep for the Pulls of their programs: one cursor each (by identity),
    made at its first ReadNext from the source's ``clone()`` and positioned at the pull (None
    for a source that has no ``clone``: its pulls are read as ranges)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._open: dict[Pull, Any] = {}

    def cursor_for(self, pull: Pull) -> Any:
        cursor = self._open.get(pull)
        if cursor is None and hasattr(self.source, "clone"):
            cursor = self._open[pull] = self.source.clone()
            cursor.seek(pull.pos)
        return cursor

    def release(self, pull: Pull) -> Any:
        """The pull's cursor, now to be closed (None if it never had one)."""
        return self._open.pop(pull, None)

    def release_all(self) -> list[Any]:
        """Every cursor left (pulls a reader abandoned), now to be closed."""
        cursors, self._open = list(self._open.values()), {}
        return cursors


class SyncRunner:
    """Performs a format program's reads on a sync file: ReadRanges through ``read_ranges_of``,
    a Pull's ReadNext through a cursor of its own (``clone()``: sequential reads, which rangeio
    turns into read-ahead and then one streaming request) or, for a file with no ``clone``,
    through ranges. No format logic: a dispatch of three ops."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._cursors = Cursors(source)

    def run(self, program: Program[T]) -> T:
        stepper = Stepper(program)
        while (op := stepper.next_op()) is not None:
            try:
                stepper.succeeded(self._perform(op))
            except Exception as exc:  # into the program: its handlers and finally run
                stepper.failed(exc)
        result: T = stepper.result
        return result

    def _perform(self, op: Op) -> Any:
        if isinstance(op, ReadRanges):
            return read_ranges_of(self.source, op.ranges)
        if isinstance(op, ReadNext):
            cursor = self._cursors.cursor_for(op.pull)
            if cursor is None:
                return read_ranges_of(self.source, [op.pull.span(op.n)])[0]
            return bytes(cursor.read(op.n))
        assert isinstance(op, EndPull)
        cursor = self._cursors.release(op.pull)
        if cursor is not None:
            cursor.close()
        return None

    def close(self) -> None:
        """Close the cursors of pulls left unfinished (a reader that stopped early)."""
        for cursor in self._cursors.release_all():
            cursor.close()


def open_source(
    source: Any, client: Any, options: dict[str, Any], **defaults: Any
) -> tuple[Any, bool]:
    """The file to read and whether we own it (opened it, so must close it).

    ``defaults`` are options a format prefers (where to prefetch, say); the caller's own
    options win. A file the caller opened is used as it is.
    """
    if isinstance(source, str):
        import rangeio

        return rangeio.open(source, client=client, **url_options(defaults, options)), True
    return given_file(source, client, options), False


def close_source(source: Any, owned: bool) -> None:
    if owned:
        close = getattr(source, "close", None)
        if close is not None:
            close()


_Holder = TypeVar("_Holder", bound="SourceHolder")


class SourceHolder(SourceFacts):
    """What every sync format face does with its source: open it (``_attach``), run the
    format's programs on it (``_run``), expose it and its traffic counters, and close it (only
    if the face opened it) as a context manager."""

    _runner: SyncRunner

    def _attach(self, source: Any, client: Any, options: dict[str, Any], **defaults: Any) -> None:
        self._source, self._owned = open_source(source, client, options, **defaults)
        self._runner = self._new_runner()

    def _load(self, program: Program[T]) -> T:
        """Run the program that reads the format's index; close what was opened if it fails."""
        try:
            return self._run(program)
        except BaseException:
            self.close()
            raise

    def _run(self, program: Program[T]) -> T:
        return self._runner.run(program)

    def close(self) -> None:
        try:
            self._runner.close()
        finally:
            close_source(self._source, self._owned)

    def _new_runner(self) -> SyncRunner:
        return SyncRunner(self._source)

    def __enter__(self: _Holder) -> _Holder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
