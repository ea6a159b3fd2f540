"""rangeio.RangeStream: named byte ranges of one URL, each a lazily streamed, validated response."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any

from rangeio._core.options import FileOptions, concurrency_limits
from rangeio._core.ranges import ByteRange
from rangeio._core.stats import Stats
from rangeio._engine.remote import RemoteFile
from rangeio._engine.streams import RangeResponse, StreamSet, asks_nothing
from rangeio._sync.runner import SyncRunner
from rangeio._transport import make_transport


class RangeStream:
    """Ranges of one remote file, added by name, streamed on demand.

    ``RangeStream(url)`` costs one request (it learns ``total_bytes`` and pins the file's
    identity); each added range costs one request when first read, and can be abandoned early.
    ``read``/``seek``/``tell`` act on the active range: the one added last, or ``activate(name)``.
    At most a few responses stay open; others are closed and asked again when read.
    """

    def __init__(
        self,
        url: str,
        client: Any = None,
        byte_range: Any = (0, 0),
        *,
        pruning_level: int = 0,
        **options: Any,
    ) -> None:
        # No prefetch and no cache: the open is a `bytes=0-0` probe, and a 200 to any range
        # is an error rather than a body to buffer.
        file_options = replace(FileOptions.from_kwargs(**options), prefetch_bytes=0, cache_bytes=0)
        remote = RemoteFile(url, file_options)
        self._runner = SyncRunner(
            make_transport(client, file_options.verify),
            *concurrency_limits(file_options.max_concurrency),
        )
        try:
            self._runner.run(remote.open())
            self._set = StreamSet(remote, pruning_level)
            if not asks_nothing(byte_range):
                self.add(byte_range)
        except BaseException:
            self._runner.close()
            raise

    @property
    def total_bytes(self) -> int:
        return self._set.remote.size

    @property
    def stats(self) -> Stats:
        return self._set.remote.stats

    @property
    def ranges(self) -> Mapping[ByteRange, RangeResponse]:
        return self._set.ranges

    @property
    def active(self) -> SyncRangeResponse:
        if self._set.active is None:
            raise ValueError("no range added yet")
        return SyncRangeResponse(self._runner, self._set.active)

    def add(self, byte_range: Any, *, name: str = "") -> SyncRangeResponse:
        response = self._runner.run(self._set.add(byte_range, name))
        return SyncRangeResponse(self._runner, response)

    def activate(self, name: str) -> SyncRangeResponse:
        self._set.active = self._set.find(name)
        return self.active

    def read(self, n: int = -1) -> bytes:
        return self.active.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.active.seek(offset, whence)

    def tell(self) -> int:
        return self.active.tell()

    @property
    def open_responses(self) -> int:
        return self._set.open_responses

    def close(self) -> None:
        if self._set.closed:
            return
        try:
            self._runner.run(self._set.close())
        finally:
            self._set.remote.mark_closed()
            self._runner.close()

    def __enter__(self) -> RangeStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncRangeResponse:
    """A range's response, read synchronously."""

    def __init__(self, runner: SyncRunner, response: RangeResponse) -> None:
        self._runner = runner
        self.response = response

    @property
    def range(self) -> ByteRange:
        return self.response.range

    @property
    def name(self) -> str:
        return self.response.name

    def read(self, n: int = -1) -> bytes:
        return self._runner.run(self.response.read(n))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.response.seek(offset, whence)

    def tell(self) -> int:
        return self.response.tell()

    def is_consumed(self) -> bool:
        return self.response.is_consumed()

    def close(self) -> None:
        self._runner.run(self.response.close())
