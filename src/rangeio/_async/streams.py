"""rangeio.aio.RangeStream: the async twin of RangeStream, on the same engine programs."""

from __future__ import annotations

from dataclasses import replace
from types import TracebackType
from typing import Any

from rangeio._async.file import revived_runner
from rangeio._async.runner import AsyncRunner
from rangeio._async.transports import make_async_transport
from rangeio._core.options import FileOptions, concurrency_limits
from rangeio._engine.faces import ResponseFacts, StreamFacts
from rangeio._engine.remote import RemoteFile
from rangeio._engine.streams import (
    Faces,
    StreamRange,
    StreamSet,
    StreamSetState,
    check_pruning_level,
)


class AsyncRangeStream(StreamFacts["AsyncRangeResponse"]):
    """``async with rangeio.aio.RangeStream(url) as rs:`` then ``await rs.add(...)`` and
    ``await rs.read(...)``; ``seek``/``tell``/``activate`` do no I/O. Everything else is as
    ``rangeio.RangeStream`` (``single_request``, ``pruning_level``, ``activate=False``), and
    ``rs.ranges[r]`` is a ``rangeio.aio.RangeResponse`` whose ``read`` is awaited."""

    def __init__(
        self,
        url: str,
        client: Any = None,
        byte_range: Any = (0, 0),
        *,
        pruning_level: int = 0,
        single_request: bool = False,
        **options: Any,
    ) -> None:
        check_pruning_level(pruning_level)
        self._options = replace(FileOptions.from_kwargs(**options), prefetch_bytes=0, cache_bytes=0)
        self._remote = RemoteFile(url, self._options)
        self._client = client
        self._first = byte_range
        self._set = StreamSet(self._remote, pruning_level, single_request)
        self._faces = Faces(self._set.ranges, self._face)
        self._runner: AsyncRunner | None = None
        self._travelled = False  # unpickled: opened by its first read, client from the factory

    def __reduce__(self) -> tuple[Any, ...]:
        # As HttpFile pickles (docs/distributed.md); a stream never opened travels the same
        # way once open (its probe pins the identity), so it must be opened first.
        if self._runner is None and not self._travelled:
            raise ValueError("open the range stream before pickling it (`await rs.open()`)")
        return (_revive, (self._set.describe(),))

    def _face(self, response: StreamRange) -> AsyncRangeResponse:
        return AsyncRangeResponse(self._live(), response)

    async def open(self) -> AsyncRangeStream:
        if self._runner is not None:
            return self
        if self._travelled:
            self._live()
            return self
        runner = AsyncRunner(
            make_async_transport(self._client, self._options.verify),
            *concurrency_limits(self._options.max_concurrency),
        )
        try:
            await runner.run(self._remote.open())
        except BaseException:
            await runner.aclose()
            raise
        self._runner = runner
        await self.add(self._first)  # the default (0, 0), like any empty range, adds nothing
        return self

    def _live(self) -> AsyncRunner:
        if self._runner is None and self._travelled:
            self._runner = revived_runner(self._remote.url, self._options)
        if self._runner is None:
            raise ValueError("stream is not open: use `async with` or `await rs.open()`")
        return self._runner

    async def __aenter__(self) -> AsyncRangeStream:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def add(
        self, byte_range: Any, *, name: str = "", activate: bool = True
    ) -> AsyncRangeResponse:
        response = await self._live().run(self._set.add(byte_range, name, activate))
        face: AsyncRangeResponse = self._faces.face(response)
        return face

    async def read(self, n: int | None = -1) -> bytes:
        return await self.active.read(n)

    async def close(self) -> None:
        runner = self._runner
        if runner is None or self._set.closed:
            return
        try:
            await runner.run(self._set.close())
        finally:
            self._remote.mark_closed()
            await runner.aclose()


def _revive(state: StreamSetState) -> AsyncRangeStream:
    """Unpickle a rangeio.aio.RangeStream: open, with no request until a range is read."""
    stream = AsyncRangeStream.__new__(AsyncRangeStream)
    stream._set = StreamSet.revived(state)
    stream._remote = stream._set.remote
    stream._options = stream._remote.options
    stream._client, stream._first, stream._runner = None, (0, 0), None
    stream._travelled = True
    stream._faces = Faces(stream._set.ranges, stream._face)
    return stream


class AsyncRangeResponse(ResponseFacts):
    """One range of a ``rangeio.aio.RangeStream`` (``rangeio.aio.RangeResponse``): as
    ``rangeio.RangeResponse``, with ``read`` and ``close`` awaited."""

    __slots__ = ("_runner", "_range")

    def __init__(self, runner: AsyncRunner, response: StreamRange) -> None:
        self._runner = runner
        self._range = response

    def __repr__(self) -> str:
        return f"<rangeio.aio.RangeResponse {self.name!r} {self.range} at {self.tell()}>"

    async def read(self, n: int | None = -1) -> bytes:
        return await self._runner.run(self._range.read(n))

    async def close(self) -> None:
        await self._runner.run(self._range.close())
