"""rangeio.RangeStream: named byte ranges of one URL, each a lazily streamed, validated response."""

from __future__ import annotations

from dataclasses import replace
from types import TracebackType
from typing import Any

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
from rangeio._sync.file import revived_runner
from rangeio._sync.runner import SyncRunner
from rangeio._transport import make_transport


class RangeStream(StreamFacts["RangeResponse"]):
    """Ranges of one remote file, added by name, streamed on demand.

    ``RangeStream(url)`` costs one request (it learns ``total_bytes`` and pins the file's
    identity); each added range costs one request when first read, and can be abandoned early.
    ``read``/``seek``/``tell`` act on the active range: the one added last (unless added with
    ``activate=False``), or ``activate(name)``. At most a few responses stay open; others are
    closed and asked again when read. ``ranges`` maps each range to its ``RangeResponse``.

    With ``single_request=True`` every range is served from ONE response instead: it is sent
    at the first read and covers every range added by then, from the lowest start to the
    highest stop, whatever order they were added in. The response arrives in file order, so
    reading a range far into it first passes over the ranges before it: their bytes are kept
    for them (memory: the ranges' own sizes, held until each range is closed); bytes between
    ranges are dropped. A range added after the first read must lie ahead of what the response
    has passed and within its span (or be held already by ranges it replaces), else
    ``SingleRequestError``: add every range before reading. In all: two requests, the opening
    probe and the one response (more only if a cut response must be resumed).
    """

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
        check_pruning_level(pruning_level)  # before any request
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
            self._set = StreamSet(remote, pruning_level, single_request)
            self._faces = Faces(self._set.ranges, self._face)
            self.add(byte_range)  # the default (0, 0), like any empty range, adds nothing
        except BaseException:
            self._runner.close()
            raise

    def _face(self, response: StreamRange) -> RangeResponse:
        return RangeResponse(self._runner, response)

    def __reduce__(self) -> tuple[Any, ...]:
        # As HttpFile pickles (docs/distributed.md), with each range's name and position.
        return (_revive, (self._set.describe(),))

    def add(self, byte_range: Any, *, name: str = "", activate: bool = True) -> RangeResponse:
        """Add a range (no request until it is read) and make it the active one unless
        ``activate`` is False. An empty range adds nothing: the response returned reads b""."""
        response = self._runner.run(self._set.add(byte_range, name, activate))
        face: RangeResponse = self._faces.face(response)
        return face

    def read(self, n: int | None = -1) -> bytes:
        return self.active.read(n)

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


def _revive(state: StreamSetState) -> RangeStream:
    """Unpickle a RangeStream: no request until a range is read."""
    stream = RangeStream.__new__(RangeStream)
    stream._runner = revived_runner(state.description)
    stream._set = StreamSet.revived(state)
    stream._faces = Faces(stream._set.ranges, stream._face)
    return stream


class RangeResponse(ResponseFacts):
    """One range of a ``RangeStream`` (``rangeio.RangeResponse``), read like a binary file
    positioned within the range: ``read(n)`` returns bytes, ``seek``/``tell`` are relative
    to the range's start. ``range`` is its ``ByteRange`` in the file, ``name`` its name."""

    __slots__ = ("_runner", "_range")

    def __init__(self, runner: SyncRunner, response: StreamRange) -> None:
        self._runner = runner
        self._range = response

    def __repr__(self) -> str:
        return f"<rangeio.RangeResponse {self.name!r} {self.range} at {self.tell()}>"

    def read(self, n: int | None = -1) -> bytes:
        """Up to ``n`` bytes (all that is left of the range when ``n`` is None or negative)."""
        return self._runner.run(self._range.read(n))

    def close(self) -> None:
        self._runner.run(self._range.close())
