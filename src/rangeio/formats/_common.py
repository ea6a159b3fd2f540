"""What the format planners share: FormatError, the sources they read, bounded field codecs."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import IO, Any, Protocol, runtime_checkable

from rangeio.errors import RangeioError

KiB = 1024
MiB = 1024 * KiB


class FormatError(RangeioError, ValueError):
    """The remote bytes are not a well-formed file of the expected format (or use a feature
    rangeio.formats does not support); the message says what and where."""


@runtime_checkable
class RangeSource(Protocol):
    """What a planner needs from a file: its size and vectored reads. ``rangeio.HttpFile``
    is one; ``BytesSource`` is an in-memory one."""

    @property
    def size(self) -> int: ...

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]: ...


# What a sync face opens: a URL, a file with size and read_ranges, or a seekable binary file.
Source = str | RangeSource | IO[bytes]


class BytesSource:
    """A RangeSource over bytes in memory (for nested archives, and for tests)."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self.reads: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return len(self._data)

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        out = []
        for start, stop in ranges:
            if start < 0 or stop < start:
                raise ValueError(f"invalid range ({start}, {stop})")
            self.reads.append((start, stop))
            out.append(self._data[start:stop])
        return out

    def close(self) -> None:
        pass


def url_options(defaults: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options a format opens a URL with: ``defaults`` (where to prefetch, say) are what
    the format prefers; the caller's own ``options`` win."""
    return {**defaults, **options}


def given_file(source: Any, client: Any, options: dict[str, Any], *, seekable: bool = True) -> Any:
    """A file the caller opened, used as it is (so no client or options may come with it):
    anything with ``size`` and ``read_ranges`` (HttpFile, AsyncHttpFile, BytesSource), or,
    when ``seekable`` (the sync runner), a seekable binary file (``seek`` and ``read``)."""
    if options or client is not None:
        raise TypeError("client and options apply only when a URL is given, not an open file")
    if not (hasattr(source, "read_ranges") or (seekable and _seekable(source))):
        raise TypeError(f"expected a URL or a file with size and read_ranges, not {source!r}")
    return source


def _seekable(source: Any) -> bool:
    seekable = getattr(source, "seekable", None)
    return callable(seekable) and hasattr(source, "read") and bool(seekable())


def source_size(source: Any) -> int:
    """A given file's size: its ``size``, else where a seek to its end lands."""
    size = getattr(source, "size", None)
    if size is not None:
        return int(size)
    here = source.tell()
    try:
        return int(source.seek(0, 2))
    finally:
        source.seek(here)


class SourceFacts:
    """The I/O-free members every format face has, sync or async: its file and the file's
    traffic counters."""

    _source: Any
    _owned: bool

    @property
    def _size(self) -> int:
        return source_size(self._source)

    @property
    def file(self) -> Any:
        return self._source

    @property
    def stats(self) -> Any:
        """The underlying file's traffic counters (requests, bytes_fetched, ...)."""
        return getattr(self._source, "stats", None)

    # A planner pickles (a dask task, a process pool) as what it parsed (a zip's directory, a
    # tar's members, a PNG's chunks) and its source: an HttpFile or AsyncHttpFile pickles as
    # its description (docs/distributed.md), so the worker reads the members with no request
    # for the index, and the first one it sends must find the version the index came from.
    # The runner (its cursors) stays behind and is made again (``_new_runner``).
    _NOT_PICKLED: tuple[str, ...] = ()

    def _new_runner(self) -> Any:
        raise NotImplementedError

    def _revived(self) -> None:
        """What a face rebuilds once unpickled, beyond its runner (nothing by default)."""

    def __getstate__(self) -> dict[str, Any]:
        skip = {*self._NOT_PICKLED, "_runner"}
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._runner = self._new_runner()
        self._revived()


def unpack(fmt: struct.Struct, data: bytes | memoryview, offset: int, what: str) -> tuple[Any, ...]:
    """``fmt.unpack_from`` that says which structure was cut short instead of struct.error."""
    if offset < 0 or offset + fmt.size > len(data):
        raise FormatError(f"{what} is truncated (needs {fmt.size} bytes at {offset})")
    return fmt.unpack_from(data, offset)


def decode_text(raw: bytes, encoding: str = "utf-8") -> str:
    """Text from a name field: undecodable bytes are kept (surrogateescape), as tarfile and
    os.fsdecode do, so a name never raises UnicodeDecodeError and round-trips to bytes."""
    return raw.decode(encoding, "surrogateescape")


def prefetched_head(source: Any, owned: bool) -> int:
    """How many leading bytes the open request fetched, when we opened the file and its
    prefetch was taken from the start (0 when unknown)."""
    prefetch = getattr(getattr(source, "_remote", None), "prefetch", None)
    if not owned or prefetch is None or prefetch.direction != "START":
        return 0
    return int(prefetch.size)
