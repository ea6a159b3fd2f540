"""png_chunks / PngImage: a remote PNG's chunks and IHDR without its pixel data, and its pixel rows
streamed from the IDAT chunks (zlib, then filter reversal) as far as they are read."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rangeio.formats._common import (
    WALK_PREFETCH,
    FormatError,
    KiB,
    MiB,
    RangePull,
    RangeSource,
    ReadAhead,
    SourceHolder,
    Window,
    close_source,
    open_source,
    prefetched_head,
)

__all__ = ["PngChunk", "PngHeader", "PngImage", "PngInfo", "png_chunks", "unfilter"]

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


def png_chunks(source: str | RangeSource, client: Any = None, **options: Any) -> PngInfo:
    """Walk a remote PNG's chunk headers (reading ahead while chunks are small, fetching each
    header alone past big ones), check the CRC of every chunk whose bytes were fetched (IHDR
    always: a bad IHDR CRC is a FormatError), stop at IEND.

    ``source`` is a URL (opened with ``client`` and ``options``; the open request prefetches
    from the start, where a PNG's header is) or an open file with ``size`` and ``read_ranges``.
    """
    file, owned = open_source(
        source, client, options, prefetch_direction="START", prefetch_bytes=WALK_PREFETCH
    )
    head = prefetched_head(file, owned)
    try:
        return _walk(file, head)
    finally:
        close_source(file, owned)


class PngImage(SourceHolder):
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

    def __init__(self, source: str | RangeSource, client: Any = None, **options: Any) -> None:
        self._source, self._owned = open_source(
            source, client, options, prefetch_direction="START", prefetch_bytes=WALK_PREFETCH
        )
        try:
            self.info = _walk(self._source, prefetched_head(self._source, self._owned))
        except BaseException:
            close_source(self._source, self._owned)
            raise

    @property
    def header(self) -> PngHeader:
        return self.info.header

    @property
    def channel_count(self) -> int:
        return self.header.channel_count

    def rows(self, stop: int | None = None) -> Iterator[bytes]:
        """Rows ``0 .. stop`` (all of them by default), each decoded when reached: stopping
        early fetches no more. Reading every row also checks the zlib stream's end."""
        header = self.header
        if header.interlaced:
            raise FormatError("interlaced (Adam7) PNG: rows are not supported, only chunks")
        if header.row_bytes > MAX_ROW_BYTES:
            raise FormatError(f"PNG rows of {header.row_bytes} bytes are too wide")
        idats = self.info.find("IDAT")
        if not idats:
            raise FormatError("PNG has no IDAT chunk")
        for before, after in zip(idats, idats[1:]):
            if before.end != after.offset:
                raise FormatError(f"PNG IDAT chunks are not consecutive (at {before.end})")
        count = header.height if stop is None else max(0, min(stop, header.height))
        pull = RangePull(self._source, idats[0].data_range[0], idats[-1].end, what="PNG IDAT")
        try:
            yield from _decode_rows(header, _idat_data(pull, idats), count)
        finally:
            pull.close()

    def __repr__(self) -> str:
        h = self.header
        return f"<rangeio.formats.png.PngImage {h.width}x{h.height} colour type {h.color_type}>"


def _idat_data(pull: RangePull, idats: list[PngChunk]) -> Iterator[bytes]:
    """The IDAT chunks' data in order, from one pull over them all (consecutive chunks: data,
    CRC, the next chunk's length and type); each chunk's CRC is checked at its end."""
    for i, chunk in enumerate(idats):
        crc = zlib.crc32(b"IDAT")
        left = chunk.length
        while left:
            piece = pull(min(left, _PULL))
            left -= len(piece)
            crc = zlib.crc32(piece, crc)
            yield piece
        framing = 4 + (8 if i + 1 < len(idats) else 0)
        tail = b""
        while len(tail) < framing:
            tail += pull(framing - len(tail))
        if int.from_bytes(tail[:4], "big") != crc:
            raise FormatError(f"PNG IDAT chunk at {chunk.offset} fails its CRC check")


def _decode_rows(header: PngHeader, data: Iterator[bytes], count: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj()
    line = 1 + header.row_bytes
    unit = header.filter_unit
    previous = bytes(header.row_bytes)
    buffer = bytearray()

    def more(y: int) -> None:
        compressed = inflater.unconsumed_tail or next(data, b"")
        if not compressed:
            raise FormatError(f"PNG image data ends before row {y} of {header.height}")
        try:
            buffer.extend(inflater.decompress(compressed, _INFLATE_STEP))
        except zlib.error as exc:
            raise FormatError(f"PNG image data is corrupt before row {y}: {exc}") from exc

    for y in range(count):
        while len(buffer) < line:
            if inflater.eof:
                raise FormatError(f"PNG image data ends before row {y} of {header.height}")
            more(y)
        row = unfilter(buffer[0], bytes(buffer[1:line]), previous, unit)
        del buffer[:line]
        previous = row
        yield row
    if count == header.height:
        # Every row read: what is left must be the zlib stream's end, not more pixels.
        while not inflater.eof:
            more(count)
            if buffer:
                raise FormatError(f"PNG image data holds more than {header.height} rows")
        if buffer or inflater.unused_data or any(data):
            raise FormatError(f"PNG image data holds more than {header.height} rows")


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


def _walk(source: RangeSource, head: int = 0) -> PngInfo:
    size = source.size
    # Past a big chunk, a header fetch also takes an IEND whole (12 bytes) and some more.
    window = Window(source, ReadAhead(first=max(head, 64 * KiB), alone=64))
    if window.get(0, min(size, 8), "PNG signature") != SIGNATURE:
        raise FormatError("not a PNG file: the PNG signature is missing")
    chunks: list[PngChunk] = []
    header: PngHeader | None = None
    pos = 8
    while True:
        if len(chunks) >= MAX_CHUNKS:
            raise FormatError(f"PNG has more than {MAX_CHUNKS} chunks")
        if pos + 12 > size:
            raise FormatError(f"PNG ends at {size} without an IEND chunk")
        length, raw_type = _CHUNK_HEAD.unpack(window.get(pos, pos + 8, f"PNG chunk at {pos}"))
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
            body = window.get(pos, end, f"PNG chunk {kind} at {pos}")
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
