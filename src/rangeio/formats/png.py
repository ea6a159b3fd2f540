"""png_chunks: list a remote PNG's chunks and parse its IHDR without fetching the pixel data."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from rangeio.formats._common import (
    WALK_PREFETCH,
    FormatError,
    KiB,
    RangeSource,
    ReadAhead,
    Window,
    close_source,
    open_source,
    prefetched_head,
)

__all__ = ["PngChunk", "PngHeader", "PngInfo", "png_chunks"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_HEAD = struct.Struct(">I4s")
_IHDR = struct.Struct(">IIBBBBB")
# PNG 5.3: lengths and dimensions are at most 2**31 - 1.
_MAX_LENGTH = 2**31 - 1
# PNG 11.2.2: the bit depths each colour type allows.
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
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
