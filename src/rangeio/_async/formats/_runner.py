"""The formats' async runner (format programs performed on AsyncHttpFile, awaiting) and its faces' base."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

from rangeio.formats._common import SourceFacts, given_file, url_options
from rangeio.formats._program import EndPull, Op, Program, ReadNext, ReadRanges, Stepper
from rangeio.formats._runner import Cursors

T = TypeVar("T")
F = TypeVar("F", bound="AsyncSourceHolder")


async def _done(value: Any) -> Any:
    """``value``, awaited if it is awaitable: an AsyncHttpFile's reads are coroutines, a
    BytesSource's are not."""
    return await value if inspect.isawaitable(value) else value


async def read_ranges_of(source: Any, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    datas: list[bytes] = await _done(source.read_ranges(list(ranges)))
    return datas


class AsyncRunner:
    """Performs a format program's reads on an async file by awaiting them: ReadRanges through
    its ``read_ranges``, a Pull's ReadNext through a cursor of its own (``Cursors``: a clone,
    read in order) or through ranges. The same ops as ``formats/_runner.py``'s SyncRunner; no
    format logic."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._cursors = Cursors(source)

    async def run(self, program: Program[T]) -> T:
        stepper = Stepper(program)
        while (op := stepper.next_op()) is not None:
            try:
                stepper.succeeded(await self._perform(op))
            except Exception as exc:  # into the program: its handlers and finally run
                stepper.failed(exc)
        result: T = stepper.result
        return result

    async def _perform(self, op: Op) -> Any:
        if isinstance(op, ReadRanges):
            return await read_ranges_of(self.source, op.ranges)
        if isinstance(op, ReadNext):
            cursor = self._cursors.cursor_for(op.pull)
            if cursor is None:
                return (await read_ranges_of(self.source, [op.pull.span(op.n)]))[0]
            return bytes(await _done(cursor.read(op.n)))
        assert isinstance(op, EndPull)
        cursor = self._cursors.release(op.pull)
        if cursor is not None:
            await _done(cursor.close())
        return None

    async def aclose(self) -> None:
        """Close the cursors of pulls left unfinished (a reader that stopped early)."""
        for cursor in self._cursors.release_all():
            await _done(cursor.close())


async def open_source(
    source: Any, client: Any, options: dict[str, Any], **defaults: Any
) -> tuple[Any, bool]:
    """The file to read and whether we own it: a URL is opened as an AsyncHttpFile with the
    format's ``defaults`` under the caller's options, as the sync faces open an HttpFile."""
    if isinstance(source, str):
        from rangeio._async.file import AsyncHttpFile

        file = AsyncHttpFile(source, client=client, **url_options(defaults, options))
        await file.open()
        return file, True
    return given_file(source, client, options, seekable=False), False


class AsyncSourceHolder(SourceFacts):
    """What every async format face does with its source: open it, run the format's programs
    on it, and close it (only if the face opened it), as an async context manager."""

    _runner: AsyncRunner

    async def _attach(
        self, source: Any, client: Any, options: dict[str, Any], **defaults: Any
    ) -> None:
        self._source, self._owned = await open_source(source, client, options, **defaults)
        self._runner = self._new_runner()

    def _new_runner(self) -> AsyncRunner:
        return AsyncRunner(self._source)

    async def _load(self, program: Program[T]) -> T:
        """Run the program that reads the format's index; close what was opened if it fails."""
        try:
            return await self._run(program)
        except BaseException:
            await self.close()
            raise

    async def _run(self, program: Program[T]) -> T:
        return await self._runner.run(program)

    async def close(self) -> None:
        try:
            await self._runner.aclose()
        finally:
            if self._owned:
                await _done(self._source.close())

    async def __aenter__(self: F) -> F:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class Opening(Generic[F]):
    """What a module's ``open()`` returns: ``async with open(url) as face`` (closed at the
    end) or ``face = await open(url)`` (closed by the caller)."""

    def __init__(self, make: Callable[[], Awaitable[F]]) -> None:
        self._make = make
        self._face: F | None = None

    def __await__(self) -> Generator[Any, None, F]:
        return self._make().__await__()

    async def __aenter__(self) -> F:
        self._face = await self._make()
        return self._face

    async def __aexit__(self, *exc_info: object) -> None:
        if self._face is not None:
            await self._face.close()
