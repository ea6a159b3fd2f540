"""What the format planners share: FormatError, opening a source, bounded parsing and read-ahead."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from rangeio.errors import RangeioError

KiB = 1024
MiB = 1024 * KiB

# The open's prefetch for a walk from the start (tar headers, PNG chunks): the walk reads
# through small members a MiB at a time anyway, so its first MiB comes with the open.
WALK_PREFETCH = 1 * MiB


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


def open_source(
    source: str | RangeSource, client: Any, options: dict[str, Any], **defaults: Any
) -> tuple[RangeSource, bool]:
    """The file to read and whether we own it (opened it, so must close it).

    ``defaults`` are options a format prefers (where to prefetch, say); the caller's own
    options win. A file the caller opened is used as it is.
    """
    if isinstance(source, str):
        import rangeio

        merged = {**defaults, **options}
        return rangeio.open(source, client=client, **merged), True
    if options or client is not None:
        raise TypeError("client and options apply only when a URL is given, not an open file")
    if not isinstance(source, RangeSource):
        raise TypeError(f"expected a URL or a file with size and read_ranges, not {source!r}")
    return source, False


def close_source(source: RangeSource, owned: bool) -> None:
    if owned:
        close = getattr(source, "close", None)
        if close is not None:
            close()


_Holder = TypeVar("_Holder", bound="SourceHolder")


class SourceHolder:
    """What every planner does with its source: expose it, its traffic counters, and close it
    (only if the planner opened it) as a context manager."""

    _source: RangeSource
    _owned: bool

    @property
    def file(self) -> RangeSource:
        return self._source

    @property
    def stats(self) -> Any:
        """The underlying file's traffic counters (requests, bytes_fetched, ...)."""
        return getattr(self._source, "stats", None)

    def close(self) -> None:
        close_source(self._source, self._owned)

    # A planner pickles (a dask task, a process pool) as what it parsed (a zip's directory, a
    # tar's members, a PNG's chunks) and its source: an HttpFile pickles as its description
    # (docs/distributed.md), so the worker reads the members with no request for the index,
    # and the first one it sends must find the version the index came from.
    _NOT_PICKLED: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._NOT_PICKLED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __enter__(self: _Holder) -> _Holder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_exact(source: RangeSource, start: int, stop: int, what: str) -> bytes:
    """Bytes ``[start, stop)``, all of them, or FormatError naming ``what`` was cut short."""
    if start < 0 or stop < start or stop > source.size:
        raise FormatError(
            f"{what}: bytes {start}..{stop} lie outside the file (size {source.size})"
        )
    (data,) = source.read_ranges([(start, stop)])
    if len(data) != stop - start:
        raise FormatError(f"{what}: expected {stop - start} bytes at {start}, got {len(data)}")
    return data


def unpack(fmt: struct.Struct, data: bytes | memoryview, offset: int, what: str) -> tuple[Any, ...]:
    """``fmt.unpack_from`` that says which structure was cut short instead of struct.error."""
    if offset < 0 or offset + fmt.size > len(data):
        raise FormatError(f"{what} is truncated (needs {fmt.size} bytes at {offset})")
    return fmt.unpack_from(data, offset)


class ReadAhead:
    """Sizes reads when a walk (tar headers, PNG chunks) must learn each header's position
    from the one before it, so the positions cannot be asked for at once.

    While members are small (``small_span`` on average, recent ones weighing most), the walk
    reads through: ``most`` bytes a request, since their data comes along whatever the window,
    and a bigger window only saves round trips. Past ``small_span`` a round trip costs less
    than the bytes it skips (64 KiB is also rangeio's ``gap_fill_bytes``, its estimate of what
    a round trip is worth), so each header is fetched alone, with ``alone`` bytes in all for
    what usually follows a header at once. The first read takes ``first`` bytes: what the
    open request prefetched from the start, when known (it costs nothing).
    """

    def __init__(
        self,
        *,
        first: int = 64 * KiB,
        small_span: int = 64 * KiB,
        most: int = 1 * MiB,
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


def prefetched_head(source: RangeSource, owned: bool) -> int:
    """How many leading bytes the open request fetched, when we opened the file and its
    prefetch was taken from the start (0 when unknown)."""
    prefetch = getattr(getattr(source, "_remote", None), "prefetch", None)
    if not owned or prefetch is None or prefetch.direction != "START":
        return 0
    return int(prefetch.size)


class Window:
    """The bytes last fetched by a walk, and fetching the next ones through ReadAhead."""

    def __init__(self, source: RangeSource, readahead: ReadAhead) -> None:
        self.source = source
        self.readahead = readahead
        self.start = 0
        self.data = b""

    @property
    def stop(self) -> int:
        return self.start + len(self.data)

    def holds(self, start: int, stop: int) -> bool:
        return self.start <= start and stop <= self.stop

    def get(self, start: int, stop: int, what: str) -> bytes:
        """Bytes ``[start, stop)``, fetched (with read-ahead) unless the window holds them."""
        if stop > self.source.size:
            raise FormatError(
                f"{what}: needs bytes up to {stop}, past the end of the file ({self.source.size})"
            )
        if not self.holds(start, stop):
            fetch_stop = min(self.source.size, start + self.readahead.extent(stop - start))
            if fetch_stop > stop and isinstance(self.source, ForwardSource):
                # Its size is unknown until its end: the read-ahead may run past it.
                (self.data,) = self.source.read_ranges([(start, fetch_stop)])
                if len(self.data) < stop - start:
                    raise FormatError(f"{what}: needs bytes up to {stop}, past the end")
            else:
                self.data = read_exact(self.source, start, fetch_stop, what)
            self.start = start
        return self.data[start - self.start : stop - self.start]


class ForwardSource:
    """A RangeSource over a stream read once, forward (a decompressed tarball): ranges must
    come in order; bytes between them are read and dropped, never held. Its ``size`` is
    unknown (``UNKNOWN``, past any real file) until the stream ends, then exact; a range
    running past the end comes back short."""

    UNKNOWN = 2**62

    def __init__(self, read: Callable[[int], bytes], what: str, step: int = 256 * KiB) -> None:
        self._read = read
        self._what = what
        self._step = step
        self._pos = 0
        self._ended = False

    @property
    def size(self) -> int:
        return self._pos if self._ended else self.UNKNOWN

    def _take(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n and not self._ended:
            piece = self._read(min(n - len(out), self._step))
            if not piece:
                self._ended = True
            out += piece
            self._pos += len(piece)
        return bytes(out)

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        out = []
        for start, stop in ranges:
            if start < self._pos:
                raise FormatError(f"{self._what}: read backwards (at {start}, past {self._pos})")
            while self._pos < start and not self._ended:
                self._take(min(start - self._pos, self._step))
            out.append(self._take(stop - start) if self._pos == start else b"")
        return out

    def drain(self) -> None:
        """Read the stream to its end (a decompressor's checks run there), dropping it."""
        while not self._ended:
            self._take(self._step)


def decode_text(raw: bytes, encoding: str = "utf-8") -> str:
    """Text from a name field: undecodable bytes are kept (surrogateescape), as tarfile and
    os.fsdecode do, so a name never raises UnicodeDecodeError and round-trips to bytes."""
    return raw.decode(encoding, "surrogateescape")


class RangePull:
    """Hands out the bytes ``[pos, stop)`` in order (a zip member's compressed data, a PNG's
    IDAT chunks): first ``prefix`` (bytes fetched already), then the rest through a cursor of
    its own (sequential reads, which rangeio turns into read-ahead and then one streaming
    request), or ``read_ranges`` for a source that has no ``clone``."""

    def __init__(
        self, source: RangeSource, pos: int, stop: int, prefix: bytes = b"", what: str = "data"
    ) -> None:
        self._source = source
        self._what = what
        self._prefix = prefix
        self._pos = pos
        self._stop = stop
        self._cursor: Any = None

    def __call__(self, n: int) -> bytes:
        if self._prefix:
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        n = min(n, self._stop - self._pos)
        if n <= 0:
            return b""
        if self._cursor is None and hasattr(self._source, "clone"):
            self._cursor = self._source.clone()
            self._cursor.seek(self._pos)
        if self._cursor is not None:
            data = bytes(self._cursor.read(n))
        else:
            data = self._source.read_ranges([(self._pos, self._pos + n)])[0]
        if not data:
            raise FormatError(f"{self._what} ends early at {self._pos}")
        self._pos += len(data)
        return data

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None


# -- decompression ------------------------------------------------------------------------


class Inflater(Protocol):
    """An incremental decompressor with bounded output, as bz2/lzma decompressors are:
    ``decompress(data, max_length)`` returns at most ``max_length`` bytes and keeps the
    rest of its input for the next call (``needs_input`` is False while it has some)."""

    @property
    def needs_input(self) -> bool: ...

    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int) -> bytes: ...


class StoredInflater:
    """Method 0: the bytes as they are, still bounded per call."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def needs_input(self) -> bool:
        return not self._buffer

    @property
    def eof(self) -> bool:
        return False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        self._buffer += data
        out = bytes(self._buffer[:max_length])
        del self._buffer[:max_length]
        return out


class ZlibInflater:
    """zlib's decompressobj behind the bz2-style interface (its leftover input is
    ``unconsumed_tail``, which must be passed back in)."""

    def __init__(self, wbits: int) -> None:
        import zlib

        self._d = zlib.decompressobj(wbits)

    @property
    def needs_input(self) -> bool:
        return not self._d.unconsumed_tail

    @property
    def eof(self) -> bool:
        return self._d.eof

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self._d.decompress(self._d.unconsumed_tail + data, max_length)


class ZstdPackageInflater:
    """The ``zstandard`` package's decompressobj, bounded: it has no ``max_length``, so input
    is fed in small slices. A zstd block (at most 128 KiB out) takes at least 4 bytes in, so a
    slice of 512 bytes yields at most 16 MiB, however hostile the data. Concatenated frames
    are decoded one after the other, as the zstd tool does."""

    _SLICE = 512

    def __init__(self) -> None:
        import zstandard

        self._zstd = zstandard
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._input = b""
        self._used = 0
        self._output = bytearray()
        self._frames = 0

    @property
    def needs_input(self) -> bool:
        return self._used >= len(self._input) and not self._output and not self._d.unused_data

    @property
    def eof(self) -> bool:
        return self._d.eof and self.needs_input

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if data:
            self._input = self._input[self._used :] + data
            self._used = 0
        while len(self._output) < max_length:
            if self._d.eof:
                # Another frame may follow; what the last one left unused is part of it.
                pending = bytes(self._d.unused_data) + self._input[self._used :]
                if not pending:
                    break
                self._input, self._used = pending, 0
                self._d = self._zstd.ZstdDecompressor().decompressobj()
            if self._used >= len(self._input):
                break
            piece = self._input[self._used : self._used + self._SLICE]
            self._used += len(piece)
            self._output += self._d.decompress(piece)
        out = bytes(self._output[:max_length])
        del self._output[:max_length]
        return out


def zstd_inflater(extra: str) -> Inflater:
    """A zstd decompressor: the standard library's (Python 3.14+) or the ``zstandard``
    package's; ImportError naming the extra ``extra`` that installs it when neither exists."""
    try:
        from compression import zstd

        inflater: Inflater = zstd.ZstdDecompressor()
        return inflater
    except ImportError:
        pass
    try:
        return ZstdPackageInflater()
    except ImportError:
        raise ImportError(
            f"zstd decompression needs the zstandard package: pip install 'rangeio[{extra}]'"
        ) from None


def zstd_reader(fileobj: Any, extra: str) -> Any:
    """A binary reader of the zstd stream in ``fileobj`` (concatenated frames decoded one
    after the other, ``read(n)`` bounded): the standard library's (3.14+) or the ``zstandard``
    package's; ImportError naming the extra ``extra`` when neither exists."""
    try:
        from compression import zstd

        return zstd.ZstdFile(fileobj)
    except ImportError:
        pass
    try:
        import zstandard
    except ImportError:
        raise ImportError(
            f"zstd decompression needs the zstandard package: pip install 'rangeio[{extra}]'"
        ) from None
    return zstandard.ZstdDecompressor().stream_reader(fileobj, read_across_frames=True)


def decompression_errors() -> tuple[type[BaseException], ...]:
    """What the decompressors raise on corrupt input (turned into FormatError)."""
    import lzma
    import zlib

    errors: list[type[BaseException]] = [zlib.error, lzma.LZMAError, EOFError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    try:
        from compression import zstd

        errors.append(zstd.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def inflate_all(inflater: Inflater, data: bytes, limit: int, what: str) -> bytes:
    """Decompress ``data`` whole, refusing more than ``limit`` bytes of output and streams
    that stop before their end."""
    errors = decompression_errors()
    out = bytearray()
    fed = False
    try:
        while not inflater.eof:
            chunk = inflater.decompress(b"" if fed else data, limit - len(out) + 1)
            fed = True
            out += chunk
            if len(out) > limit:
                raise FormatError(f"{what}: decompresses to more than {limit} bytes")
            if not chunk and inflater.needs_input:
                raise FormatError(f"{what}: compressed data ends before the end of the stream")
    except FormatError:
        raise
    except errors as exc:
        raise FormatError(f"{what}: corrupt compressed data ({exc})") from exc
    except OSError as exc:  # bz2's "Invalid data stream"; no I/O happens in here
        raise FormatError(f"{what}: corrupt compressed data ({exc})") from exc
    return bytes(out)
