"""png_chunks / PngImage: a remote PNG's chunks and IHDR without its pixel data, and its pixel rows
streamed from the IDAT chunks (zlib, then filter reversal) as far as they are read.

The chunk walk and the row decoder are programs (``_program.py``), run by the sync faces here
and by ``rangeio.aio.formats.png``; IHDR and the filters are pure functions.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rangeio._core.prefetch import START, START_PREFETCH
from rangeio.formats._common import FormatError, MiB, Source, prefetched_head
from rangeio.formats._program import WALK_PREFETCH, Program, Pull, ReadAhead, Window
from rangeio.formats._runner import SourceHolder

__all__ = ["PngChunk", "PngHeader", "PngImage", "PngInfo", "open", "png_chunks", "unfilter"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_HEAD = struct.Struct(">I4s")
_IHDR = struct.Struct(">IIBBBBB")
# PNG 5.3: lengths and dimensions are at most 2**31 - 1.
_MAX_LENGTH = 2**31 - 1
# PNG 11.2.2: the bit depths each colour type allows.
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# PNG 6.1: samples per pixel of each colour type (greyscale, RGB, palette index, grey+alpha, RGBA).
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# A row is held (twice: this one and the one above) while rows are decoded; a wider one is
# refused rather than allocated from the header's claim.
MAX_ROW_BYTES = 64 * MiB
# Compressed IDAT bytes fetched per step, and decompressed bytes produced per call.
_PULL = 64 * 1024
_INFLATE_STEP = 256 * 1024
# Chunk walks stop after this many chunks: a PNG with more is refused, not walked forever.
MAX_CHUNKS = 1_000_000


@dataclass(frozen=True)
class PngChunk:
    """One chunk: ``offset`` is where its length field starts, ``length`` its data's length.
    ``crc_ok`` is None for chunks whose bytes were not fetched (big IDATs, say)."""

    type: str
    offset: int
    length: int
    crc_ok: bool | None

    @property
    def data_range(self) -> tuple[int, int]:
        return self.offset + 8, self.offset + 8 + self.length

    @property
    def end(self) -> int:
        return self.offset + 12 + self.length


@dataclass(frozen=True)
class PngHeader:
    """The IHDR chunk (PNG 11.2.2)."""

    width: int
    height: int
    bit_depth: int
    color_type: int
    compression: int
    filter: int
    interlace: int

    @property
    def interlaced(self) -> bool:
        return self.interlace == 1

    @property
    def channel_count(self) -> int:
        """Samples per pixel: 1 greyscale, 3 RGB, 1 palette (an index), 2 grey+alpha, 4 RGBA."""
        return _CHANNELS[self.color_type]

    @property
    def bits_per_pixel(self) -> int:
        return self.channel_count * self.bit_depth

    @property
    def filter_unit(self) -> int:
        """The "bpp" of PNG 9.2's filters: bytes per complete pixel, at least 1."""
        return max(1, self.bits_per_pixel // 8)

    @property
    def row_bytes(self) -> int:
        """Bytes of one row of pixels, without its filter-type byte (sub-byte depths packed)."""
        return (self.width * self.bits_per_pixel + 7) // 8


@dataclass(frozen=True)
class PngInfo:
    """A PNG's header and chunk list, in file order, up to and including IEND."""

    header: PngHeader
    chunks: list[PngChunk] = field(default_factory=list)

    def find(self, chunk_type: str) -> list[PngChunk]:
        return [c for c in self.chunks if c.type == chunk_type]


OPEN_OPTIONS: dict[str, Any] = {"prefetch_direction": START, "prefetch_bytes": WALK_PREFETCH}


def png_chunks(source: Source, client: Any = None, **options: Any) -> PngInfo:
    """Walk a remote PNG's chunk headers (reading ahead while chunks are small, fetching each
    header alone past big ones), check the CRC of every chunk whose bytes were fetched (IHDR
    always: a bad IHDR CRC is a FormatError), stop at IEND.

    ``source`` is a URL (opened with ``client`` and ``options``; the open request prefetches
    from the start, where a PNG's header is) or an open file with ``size`` and ``read_ranges``.
    """
    with PngImage(source, client, **options) as image:
        return image.info


class PngFacts:
    """What PngImage and rangeio.aio's AsyncPngImage share: the chunks and header, no I/O."""

    info: PngInfo

    @property
    def header(self) -> PngHeader:
        return self.info.header

    @property
    def channel_count(self) -> int:
        return self.header.channel_count

    def _rows(self, stop: int | None) -> RowDecoder:
        return RowDecoder(self.info, stop)

    def __repr__(self) -> str:
        h = self.header
        kind = f"{type(self).__module__}.{type(self).__qualname__}"
        return f"<{kind} {h.width}x{h.height} colour type {h.color_type}>"


class PngImage(PngFacts, SourceHolder):
    """A remote PNG: its chunks and header (``png_chunks``' walk, at open), and its pixel rows,
    decoded as they are read: ``rows()`` streams the IDAT chunks (one sequential read, which
    rangeio turns into a streaming request) through one zlib decompressor and reverses each
    row's filter (None, Sub, Up, Average, Paeth), so the first rows cost only the compressed
    bytes before them. Every IDAT chunk read whole has its CRC checked.

    A row is the samples as PNG stores them: ``row_bytes`` bytes, 16-bit samples big-endian,
    depths under 8 bits packed, palette images as indices; for an 8-bit image it equals
    ``numpy.asarray(PIL.Image.open(f))[y].tobytes()``. Interlaced (Adam7) images have no
    row before the last pass, and are refused (FormatError).

    ``source`` is a URL (opened with ``client`` and ``options``, prefetching from the start)
    or an open file with ``size`` and ``read_ranges``.
    """

    def __init__(self, source: Source, client: Any = None, **options: Any) -> None:
        self._attach(source, client, options, **OPEN_OPTIONS)
        self.info = self._load(walk(self._size, prefetched_head(self._source, self._owned)))

    def rows(self, stop: int | None = None) -> Iterator[bytes]:
        """Rows ``0 .. stop`` (all of them by default), each decoded when reached: stopping
        early fetches no more. Reading every row also checks the zlib stream's end."""
        decoder = self._rows(stop)
        try:
            while (row := self._run(decoder.next_row())) is not None:
                yield row
        finally:
            self._run(decoder.close())


def open(  # noqa: A001 - the module's entry point, as zip's
    source: Source, client: Any = None, **options: Any
) -> PngImage:
    """Open a remote PNG: see PngImage (``info`` is what ``png_chunks`` returns)."""
    return PngImage(source, client, **options)


class _IdatPieces:
    """The IDAT chunks' data in order, from one pull over them all (consecutive chunks: data,
    CRC, the next chunk's length and type); each chunk's CRC is checked at its end."""

    def __init__(self, pull: Pull, idats: list[PngChunk]) -> None:
        self._pull = pull
        self._idats = idats
        self._i = 0
        self._left = idats[0].length
        self._crc = zlib.crc32(b"IDAT")

    def next(self) -> Program[bytes]:
        """The next piece of image data; b"" after the last chunk (its CRC checked)."""
        while self._i < len(self._idats):
            if self._left:
                piece = yield from self._pull.take(min(self._left, _PULL))
                self._left -= len(piece)
                self._crc = zlib.crc32(piece, self._crc)
                return piece
            chunk = self._idats[self._i]
            framing = 4 + (8 if self._i + 1 < len(self._idats) else 0)
            tail = b""
            while len(tail) < framing:
                tail += yield from self._pull.take(framing - len(tail))
            if int.from_bytes(tail[:4], "big") != self._crc:
                raise FormatError(f"PNG IDAT chunk at {chunk.offset} fails its CRC check")
            self._i += 1
            if self._i < len(self._idats):
                self._left = self._idats[self._i].length
                self._crc = zlib.crc32(b"IDAT")
        return b""


class RowDecoder:
    """A PNG's pixel rows ``0 .. stop``, as programs: ``next_row()`` gives the next row
    (inflating and unfiltering as far as it needs), None after the last (having checked, when
    every row was read, that the zlib stream ends there)."""

    def __init__(self, info: PngInfo, stop: int | None) -> None:
        header = info.header
        if header.interlaced:
            raise FormatError("interlaced (Adam7) PNG: rows are not supported, only chunks")
        if header.row_bytes > MAX_ROW_BYTES:
            raise FormatError(f"PNG rows of {header.row_bytes} bytes are too wide")
        idats = info.find("IDAT")
        if not idats:
            raise FormatError("PNG has no IDAT chunk")
        for before, after in zip(idats, idats[1:]):
            if before.end != after.offset:
                raise FormatError(f"PNG IDAT chunks are not consecutive (at {before.end})")
        self._header = header
        self._count = header.height if stop is None else max(0, min(stop, header.height))
        self._pull = Pull(idats[0].data_range[0], idats[-1].end, what="PNG IDAT")
        self._data = _IdatPieces(self._pull, idats)
        self._inflater = zlib.decompressobj()
        self._line = 1 + header.row_bytes
        self._previous = bytes(header.row_bytes)
        self._buffer = bytearray()
        self._y = 0
        self._ended = False

    def _more(self, y: int) -> Program[None]:
        compressed = self._inflater.unconsumed_tail or (yield from self._data.next())
        if not compressed:
            raise FormatError(f"PNG image data ends before row {y} of {self._header.height}")
        try:
            self._buffer.extend(self._inflater.decompress(compressed, _INFLATE_STEP))
        except zlib.error as exc:
            raise FormatError(f"PNG image data is corrupt before row {y}: {exc}") from exc

    def next_row(self) -> Program[bytes | None]:
        height, y, buffer = self._header.height, self._y, self._buffer
        if y < self._count:
            while len(buffer) < self._line:
                if self._inflater.eof:
                    raise FormatError(f"PNG image data ends before row {y} of {height}")
                yield from self._more(y)
            unit = self._header.filter_unit
            row = unfilter(buffer[0], bytes(buffer[1 : self._line]), self._previous, unit)
            del buffer[: self._line]
            self._previous = row
            self._y += 1
            return row
        if self._count == height and not self._ended:
            self._ended = True
            # Every row read: what is left must be the zlib stream's end, not more pixels.
            while not self._inflater.eof:
                yield from self._more(height)
                if buffer:
                    raise FormatError(f"PNG image data holds more than {height} rows")
            if buffer or self._inflater.unused_data or (yield from self._data.next()):
                raise FormatError(f"PNG image data holds more than {height} rows")
        return None

    def close(self) -> Program[None]:
        yield from self._pull.close()


def unfilter(kind: int, raw: bytes, previous: bytes, unit: int) -> bytes:
    """Reverse PNG 9.2's filter ``kind`` on one row: ``raw`` as stored (without its type byte),
    ``previous`` the row above, decoded (zeros for the first), ``unit`` the filter's bpp."""
    if kind == 0:
        return raw
    out = bytearray(raw)
    n = len(out)
    if kind == 1:  # Sub: + the byte one pixel to the left
        for i in range(unit, n):
            out[i] = (out[i] + out[i - unit]) & 0xFF
    elif kind == 2:  # Up: + the byte above
        for i in range(n):
            out[i] = (out[i] + previous[i]) & 0xFF
    elif kind == 3:  # Average: + the floor of the mean of left and above
        for i in range(n):
            left = out[i - unit] if i >= unit else 0
            out[i] = (out[i] + ((left + previous[i]) >> 1)) & 0xFF
    elif (
        kind == 4
    ):  # Paeth: + whichever of left, above, upper-left is nearest left+above-upper-left
        for i in range(n):
            a = out[i - unit] if i >= unit else 0
            b = previous[i]
            c = previous[i - unit] if i >= unit else 0
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    else:
        raise FormatError(f"PNG row filter type {kind} is invalid (0 to 4)")
    return bytes(out)


def walk(size: int, head: int = 0) -> Program[PngInfo]:
    """The program that walks the chunks of a PNG of ``size`` bytes, ``head`` bytes of which
    the open prefetched."""
    # Past a big chunk, a header fetch also takes an IEND whole (12 bytes) and some more.
    window = Window(size, ReadAhead(first=max(head, START_PREFETCH), alone=64))
    if (yield from window.get(0, min(size, 8), "PNG signature")) != SIGNATURE:
        raise FormatError("not a PNG file: the PNG signature is missing")
    chunks: list[PngChunk] = []
    header: PngHeader | None = None
    pos = 8
    while True:
        if len(chunks) >= MAX_CHUNKS:
            raise FormatError(f"PNG has more than {MAX_CHUNKS} chunks")
        if pos + 12 > size:
            raise FormatError(f"PNG ends at {size} without an IEND chunk")
        length, raw_type = _CHUNK_HEAD.unpack(
            (yield from window.get(pos, pos + 8, f"PNG chunk at {pos}"))
        )
        if length > _MAX_LENGTH:
            raise FormatError(f"PNG chunk at {pos} declares length {length} (over 2**31 - 1)")
        if not all(65 <= c <= 90 or 97 <= c <= 122 for c in raw_type):
            raise FormatError(f"PNG chunk at {pos} has an invalid type {raw_type!r}")
        kind = raw_type.decode("ascii")
        end = pos + 12 + length
        if end > size:
            raise FormatError(f"PNG chunk {kind} at {pos} runs past the end of the file")
        if not chunks and kind != "IHDR":
            raise FormatError(f"PNG's first chunk is {kind}, not IHDR")
        # A chunk is checked when its bytes are at hand: fetched already, or small and about
        # to be fetched as the walk reads through. Skipping big ones is the point of the walk.
        readahead = window.readahead
        small = readahead.reading_through and readahead.is_small(end - pos)
        if kind in ("IHDR", "IEND") or small or window.holds(pos, end):
            body = yield from window.get(pos, end, f"PNG chunk {kind} at {pos}")
            crc_ok: bool | None = zlib.crc32(body[4:-4]) == int.from_bytes(body[-4:], "big")
        else:
            body, crc_ok = b"", None
        if kind == "IHDR":
            if header is not None:
                raise FormatError(f"PNG has a second IHDR chunk at {pos}")
            if not crc_ok:
                raise FormatError("PNG IHDR chunk fails its CRC check")
            header = _parse_ihdr(body[8:-4])
        elif header is None:
            raise FormatError("PNG's first chunk is not IHDR")
        chunks.append(PngChunk(kind, pos, length, crc_ok))
        window.readahead.observe(end - pos)
        if kind == "IEND":
            if length != 0:
                raise FormatError(f"PNG IEND chunk at {pos} has data ({length} bytes)")
            assert header is not None
            return PngInfo(header, chunks)
        pos = end


def _parse_ihdr(data: bytes) -> PngHeader:
    if len(data) != _IHDR.size:
        raise FormatError(f"PNG IHDR is {len(data)} bytes, not {_IHDR.size}")
    header = PngHeader(*_IHDR.unpack(data))
    if not (0 < header.width <= _MAX_LENGTH and 0 < header.height <= _MAX_LENGTH):
        raise FormatError(f"PNG dimensions {header.width}x{header.height} are invalid")
    depths = _DEPTHS.get(header.color_type)
    if depths is None:
        raise FormatError(f"PNG colour type {header.color_type} is invalid")
    if header.bit_depth not in depths:
        raise FormatError(
            f"PNG bit depth {header.bit_depth} is invalid for colour type {header.color_type}"
        )
    if header.compression != 0 or header.filter != 0 or header.interlace not in (0, 1):
        raise FormatError("PNG IHDR has an unknown compression, filter or interlace method")
    return header
