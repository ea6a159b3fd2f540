"""rangeio.aio.RangeStream: the async twin of RangeStream, on the same engine programs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any

from rangeio._async.runner import AsyncRunner
from rangeio._async.transports import make_async_transport
from rangeio._core.options import FileOptions, concurrency_limits
from rangeio._core.ranges import ByteRange
from rangeio._core.stats import Stats
from rangeio._engine.remote import RemoteFile
from rangeio._engine.streams import RangeResponse, StreamSet, asks_nothing


class AsyncRangeStream:
    """``async with rangeio.aio.RangeStream(url) as rs:`` then ``await rs.add(...)`` and
    ``await rs.read(...)``; ``seek``/``tell``/``activate`` do no I/O."""

    def __init__(
        self,
        url: str,
        client: Any = None,
        byte_range: Any = (0, 0),
        *,
        pruning_level: int = 0,
        **options: Any,
    ) -> None:
        self._options = replace(FileOptions.from_kwargs(**options), prefetch_bytes=0, cache_bytes=0)
        self._remote = RemoteFile(url, self._options)
        self._client = client
        self._first = byte_range
        self._set = StreamSet(self._remote, pruning_level)
        self._runner: AsyncRunner | None = None

    async def open(self) -> AsyncRangeStream:
        if self._runner is not None:
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
        if not asks_nothing(self._first):
            await self.add(self._first)
        return self

    def _live(self) -> AsyncRunner:
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

    @property
    def total_bytes(self) -> int:
        return self._remote.size

    @property
    def stats(self) -> Stats:
        return self._remote.stats

    @property
    def ranges(self) -> Mapping[ByteRange, RangeResponse]:
        return self._set.ranges

    @property
    def open_responses(self) -> int:
        return self._set.open_responses

    @property
    def active(self) -> AsyncRangeResponse:
        if self._set.active is None:
            raise ValueError("no range added yet")
        return AsyncRangeResponse(self._live(), self._set.active)

    async def add(self, byte_range: Any, *, name: str = "") -> AsyncRangeResponse:
        response = await self._live().run(self._set.add(byte_range, name))
        return AsyncRangeResponse(self._live(), response)

    def activate(self, name: str) -> AsyncRangeResponse:
        self._set.active = self._set.find(name)
        return self.active

    async def read(self, n: int = -1) -> bytes:
        return await self.active.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.active.seek(offset, whence)

    def tell(self) -> int:
        return self.active.tell()

    async def close(self) -> None:
        runner = self._runner
        if runner is None or self._set.closed:
            return
        try:
            await runner.run(self._set.close())
        finally:
            self._remote.mark_closed()
            await runner.aclose()


class AsyncRangeResponse:
    """A range's response, read with await."""

    def __init__(self, runner: AsyncRunner, response: RangeResponse) -> None:
        self._runner = runner
        self.response = response
        self.range = response.range
        self.name = response.name

    async def read(self, n: int = -1) -> bytes:
        return await self._runner.run(self.response.read(n))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.response.seek(offset, whence)

    def tell(self) -> int:
        return self.response.tell()

    def is_consumed(self) -> bool:
        return self.response.is_consumed()

    async def close(self) -> None:
        await self._runner.run(self.response.close())
