"""ParquetPlan: read a remote Parquet footer in one suffix read and plan column chunk range reads.

The footer's and the column chunks' reads are programs (``_program.py``), run by the sync face
here and by ``rangeio.aio.formats.parquet``; pyarrow parses and decodes the fetched bytes.
"""

from __future__ import annotations

import bisect
import io
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from rangeio.formats._common import FormatError, Source
from rangeio.formats._program import Program, read_exact, read_ranges
from rangeio.formats._runner import SourceHolder

__all__ = ["ParquetPlan", "open"]

MAGIC = b"PAR1"
_ENCRYPTED_MAGIC = b"PARE"
_TAIL = struct.Struct("<I4s")  # metadata length, magic: the last 8 bytes


def _pyarrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, imported on first use: it is an optional extra."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError(
            "rangeio.formats.parquet needs pyarrow: pip install 'rangeio[parquet]'"
        ) from exc
    return pyarrow, pyarrow.parquet


def read_footer(size: int) -> Program[tuple[int, bytes]]:
    """The program that reads a Parquet file's footer: where it starts, and its bytes (the
    metadata, its length and the magic)."""
    if size < len(MAGIC) + _TAIL.size:
        raise FormatError(f"not a Parquet file: {size} bytes is too short")
    tail = yield from read_exact(size, size - _TAIL.size, size, "Parquet footer")
    length, magic = _TAIL.unpack(tail)
    if magic == _ENCRYPTED_MAGIC:
        raise FormatError("Parquet file has an encrypted footer (not supported)")
    if magic != MAGIC:
        raise FormatError("not a Parquet file: the footer magic PAR1 is missing")
    if length > size - len(MAGIC) - _TAIL.size:
        raise FormatError(f"Parquet footer length {length} exceeds the file ({size} bytes)")
    start = size - _TAIL.size - length
    return start, (yield from read_exact(size, start, size, "Parquet footer"))


class ParquetFacts:
    """What ParquetPlan and rangeio.aio's AsyncParquetPlan share: the parsed footer and the
    column chunk ranges, no I/O; the reads as programs."""

    _pa: Any
    _pq: Any
    _file_size: int
    _footer_start: int
    _footer: bytes
    metadata: Any

    def _parse_footer(self) -> None:
        try:
            self.metadata = self._pq.read_metadata(self._pa.BufferReader(self._footer))
        except (self._pa.ArrowException, OSError, ValueError) as exc:
            raise FormatError(f"Parquet metadata cannot be parsed: {exc}") from exc

    # pyarrow's modules and its parsed metadata stay behind: the footer's bytes travel, and are
    # parsed again on the other side (no request).
    _NOT_PICKLED: tuple[str, ...] = ("_pa", "_pq", "metadata")

    def _revived(self) -> None:
        self._pa, self._pq = _pyarrow()
        self._parse_footer()

    def _read_footer(self, size: int) -> Program[None]:
        self._file_size = size
        self._footer_start, self._footer = yield from read_footer(size)
        self._parse_footer()

    # -- metadata ---------------------------------------------------------------------------

    @property
    def num_row_groups(self) -> int:
        return int(self.metadata.num_row_groups)

    @property
    def num_rows(self) -> int:
        return int(self.metadata.num_rows)

    @property
    def schema(self) -> Any:
        """The Arrow schema."""
        return self.metadata.schema.to_arrow_schema()

    def column_paths(self) -> list[str]:
        """The leaf columns' dotted paths (``a.b`` for nested fields), in file order."""
        schema = self.metadata.schema
        return [schema.column(i).path for i in range(len(schema))]

    def _leaves(self, columns: Iterable[str] | None) -> list[int]:
        """Leaf column indices for ``columns``: a name selects that leaf, or every leaf under
        it (``a`` selects ``a.b`` and ``a.c``), as pyarrow's ``columns=`` does."""
        paths = self.column_paths()
        if columns is None:
            return list(range(len(paths)))
        chosen: set[int] = set()
        for name in columns:
            found = {i for i, p in enumerate(paths) if p == name or p.startswith(name + ".")}
            if not found:
                raise KeyError(f"no column {name!r} in the Parquet file")
            chosen |= found
        return sorted(chosen)

    def _row_groups(self, row_groups: Iterable[int] | None) -> list[int]:
        if row_groups is None:
            return list(range(self.num_row_groups))
        out = list(row_groups)
        for rg in out:
            if not 0 <= rg < self.num_row_groups:
                raise IndexError(f"row group {rg} out of range (0..{self.num_row_groups - 1})")
        return out

    def column_chunk_ranges(
        self, row_groups: Iterable[int] | None = None, columns: Iterable[str] | None = None
    ) -> list[tuple[int, int]]:
        """``(start, stop)`` of each selected column chunk, row group by row group, for
        ``read_ranges``. A chunk starts at its dictionary page when it has one, else at its
        first data page, and spans ``total_compressed_size`` bytes. None selects all."""
        leaves = self._leaves(columns)
        ranges = []
        for rg in self._row_groups(row_groups):
            group = self.metadata.row_group(rg)
            for leaf in leaves:
                ranges.append(self._chunk_range(group.column(leaf), rg))
        return ranges

    def _chunk_range(self, chunk: Any, rg: int) -> tuple[int, int]:
        start = int(chunk.data_page_offset)
        dictionary = chunk.dictionary_page_offset if chunk.has_dictionary_page else None
        # Some writers record a dictionary offset of 0 without one: only an offset before
        # the data pages is a dictionary page.
        if dictionary is not None and 0 < dictionary < start:
            start = int(dictionary)
        stop = start + int(chunk.total_compressed_size)
        if start < len(MAGIC) or stop > self._footer_start or stop < start:
            raise FormatError(
                f"Parquet column chunk {chunk.path_in_schema!r} of row group {rg} claims bytes "
                f"{start}..{stop}, outside the data section (4..{self._footer_start})"
            )
        return start, stop

    # -- reading ----------------------------------------------------------------------------

    def _read_columns(self, row_group: int, columns: Sequence[str] | None) -> Program[Any]:
        ranges = self.column_chunk_ranges([row_group], columns)
        datas = yield from read_ranges(ranges)
        pieces = [(start, data) for (start, _), data in zip(ranges, datas)]
        pieces.append((self._footer_start, self._footer))
        sparse = _SparseFile(self._file_size, pieces)
        try:
            reader = self._pq.ParquetFile(sparse, metadata=self.metadata, pre_buffer=False)
            return reader.read_row_group(
                row_group, columns=list(columns) if columns is not None else None
            )
        except FormatError:
            raise
        except (self._pa.ArrowException, OSError, ValueError) as exc:
            if isinstance(exc.__context__, FormatError):
                raise exc.__context__ from None
            raise FormatError(f"Parquet row group {row_group} cannot be decoded: {exc}") from exc

    def __repr__(self) -> str:
        kind = f"{type(self).__module__}.{type(self).__qualname__}"
        return f"<{kind} row_groups={self.num_row_groups} columns={len(self.column_paths())}>"


class ParquetPlan(ParquetFacts, SourceHolder):
    """A remote Parquet file's metadata, and the byte ranges of its column chunks.

    The footer (metadata, its length and the magic) is at the end of the file, where rangeio's
    open request prefetches 1 MiB by default: a footer under that costs no request beyond the
    open; a bigger one costs one more, for its missing part only. The metadata is parsed by
    pyarrow (``pip install 'rangeio[parquet]'``).

    ``source`` is a URL (opened with ``client`` and ``options`` like ``rangeio.open``) or an
    open file with ``size`` and ``read_ranges``.
    """

    def __init__(self, source: Source, client: Any = None, **options: Any) -> None:
        self._pa, self._pq = _pyarrow()
        self._attach(source, client, options)
        self._load(self._read_footer(self._size))

    def read_columns(self, row_group: int, columns: Sequence[str] | None = None) -> Any:
        """One row group's columns as a ``pyarrow.Table``: their chunks are fetched with one
        ``read_ranges`` call, then decoded by pyarrow from memory."""
        return self._run(self._read_columns(row_group, columns))


def open(  # noqa: A001 - the module's entry point, as zip's
    source: Source, client: Any = None, **options: Any
) -> ParquetPlan:
    """Open a remote Parquet file: see ParquetPlan."""
    return ParquetPlan(source, client, **options)


class _SparseFile(io.RawIOBase):
    """A read-only file of ``size`` bytes of which only some ranges are present: pyarrow reads
    the planned chunks from it, and a read of anything else fails loudly instead of quietly
    costing a request."""

    def __init__(self, size: int, pieces: list[tuple[int, bytes]]) -> None:
        super().__init__()
        self._size = size
        self._pieces = sorted(pieces, key=lambda p: p[0])
        self._starts = [p[0] for p in self._pieces]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        bases = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}
        if whence not in bases:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        base = bases[whence]
        if base + offset < 0:
            raise OSError(22, "negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        done = 0
        while done < want:
            pos = self._pos + done
            i = bisect.bisect_right(self._starts, pos) - 1
            start, data = self._pieces[i] if i >= 0 else (0, b"")
            if not start <= pos < start + len(data):
                raise FormatError(f"pyarrow read byte {pos}, outside the planned ranges")
            n = min(want - done, start + len(data) - pos)
            view[done : done + n] = data[pos - start : pos - start + n]
            done += n
        self._pos += done
        return done
