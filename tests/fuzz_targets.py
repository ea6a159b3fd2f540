"""Fuzz targets, their seed inputs and a mutation engine, shared by tests/test_fuzz.py and scripts/fuzz.

A target takes arbitrary bytes and drives one parser with them. The only exceptions allowed out
of a target are rangeio's typed errors (RangeioError and its subclasses): anything else is a bug
in the library, and so is a broken invariant, checked with ``_require`` (never ``assert``, which
``python -O`` would drop).
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import tarfile
import time
import traceback
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from rangeio._core import control
from rangeio._core.headers import (
    format_content_range,
    format_range,
    parse_content_length,
    parse_content_range,
    parse_range,
)
from rangeio._core.multipart import MultipartParser, Part
from rangeio._core.ranges import ByteRange
from rangeio.errors import RangeioError
from rangeio.formats._common import BytesSource
from rangeio.formats.tar import TarIndex
from rangeio.formats.zip import ZipStream

# Members declaring more than this are listed but not read: their output is bounded by the
# declared size, which is legitimately large, and only slows the run down.
_MAX_READ = 256 * 1024
_MAX_MEMBERS_READ = 8
_T = TypeVar("_T")


class InvariantError(AssertionError):
    """A parser accepted an input but its result breaks a promise (round trip, bounds)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantError(message)


def _text(data: bytes) -> str:
    # Adapters hand header values over as str: latin-1 decoded (urllib3, aiohttp) or UTF-8 when
    # it decodes (httpx). Both shapes are reachable, so both are fuzzed.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _typed(fn: Callable[[], _T]) -> _T | None:
    """``fn()``, or None when it refused the input with a typed error."""
    try:
        return fn()
    except RangeioError:
        return None


class _Reader:
    """Structured values pulled off the front of a fuzz input (zeros once it runs out)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        out = self.data[self.at : self.at + n]
        self.at += n
        return out.ljust(n, b"\0")

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def rest(self) -> bytes:
        out = self.data[self.at :]
        self.at = len(self.data)
        return out


# -- Range and Content-Range --------------------------------------------------------------


def target_range(data: bytes) -> bool:
    specs = _typed(lambda: parse_range(_text(data)))
    if specs is None:
        return False
    again = parse_range(format_range(specs))
    _require(again == specs, f"Range round trip: {specs} -> {again}")
    for size in (0, 1, 1000, 2**62):
        for spec in specs:
            r = spec.resolve(size)
            _require(r is None or 0 <= r.start < r.stop <= size, f"{spec} resolves to {r}")
    return True


def target_content_range(data: bytes) -> bool:
    text = _text(data)
    cr = _typed(lambda: parse_content_range(text))
    if cr is not None:
        again = parse_content_range(format_content_range(cr.range, cr.total))
        _require(again == cr, f"Content-Range round trip: {cr} -> {again}")
    length = _typed(lambda: parse_content_length(text))
    _require(length is None or length >= 0, f"length {length}")
    return cr is not None or length is not None


def range_seeds() -> list[bytes]:
    return [
        b"bytes=0-499",
        b"bytes=500-999,-500",
        b"bytes=9500-",
        b"Bytes = 0-0, 1-1 ,, -1",
        b"bytes=0-0,-1,5-,100-199",
        b"bytes=1234567890123456789-",
    ]


def content_range_seeds() -> list[bytes]:
    return [
        b"bytes 0-499/1234",
        b"bytes 500-999/*",
        b"bytes */1234",
        b"BYTES  7-7 / 8",
        b"42",
        b"7, 7",
        b"bytes 0-9223372036854775806/9223372036854775807",
    ]


# -- multipart/byteranges -----------------------------------------------------------------
# Input layout: boundary length (1 byte, mod 71) and boundary; the number of requested ranges
# (1 byte, mod 4, plus 1) and each as start and length-1 (u16 each); a total (u16, 0xFFFF for
# unknown); a seed for the chunking (u32); then the body.


def multipart_input(
    boundary: bytes, ranges: Sequence[tuple[int, int]], total: int | None, chunks: int, body: bytes
) -> bytes:
    out = bytearray([len(boundary)]) + boundary + bytes([len(ranges) - 1])
    for start, stop in ranges:
        out += struct.pack(">HH", start, stop - start - 1)
    out += struct.pack(">HI", 0xFFFF if total is None else total, chunks)
    return bytes(out + body)


def _chunked(body: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    at = 0
    while at < len(body):
        n = rng.choice((1, 1, 2, 3, 5, 8, 13, 64, 1000, 1 << 16))
        yield body[at : at + n]
        at += n


def _parse_parts(
    boundary: str, requested: list[ByteRange], total: int | None, chunks: Iterator[bytes]
) -> list[Part] | None:
    try:
        parser = MultipartParser(boundary, requested, total)
        for chunk in chunks:
            parser.feed(chunk)
        parts = parser.end()
        parser.feed(b"epilogue after the close delimiter")
        return parts
    except RangeioError:
        return None


def target_multipart(data: bytes) -> bool:
    reader = _Reader(data)
    boundary = _text(reader.take(reader.uint(1) % 71))
    requested = []
    for _ in range(reader.uint(1) % 4 + 1):
        start, length = reader.uint(2), reader.uint(2) + 1
        requested.append(ByteRange(start, start + length))
    total_field = reader.uint(2)
    total = None if total_field == 0xFFFF else total_field
    seed = reader.uint(4)
    body = reader.rest()
    whole = _parse_parts(boundary, requested, total, iter([body]))
    chunked = _parse_parts(boundary, requested, total, _chunked(body, seed))
    if chunked is None:
        # Chunked feeding may hit a size limit before a delimiter that a single chunk would
        # reveal; the converse (chunks accepted, the whole refused) is a bug.
        return False
    _require(whole == chunked, f"chunking changed the parts: {whole} vs {chunked}")
    _require(len(chunked) <= len(requested), f"{len(chunked)} parts for {len(requested)} ranges")
    for part in chunked:
        _require(len(part.data) == part.range.length, f"part {part.range} has {len(part.data)}")
        _require(any(r.contains(part.range) for r in requested), f"unasked part {part.range}")
    return True


def multipart_seeds() -> list[bytes]:
    content = bytes(range(256)) * 4

    def body(boundary: bytes, ranges: Sequence[tuple[int, int]], total: int | None) -> bytes:
        out = bytearray(b"preamble")
        size = b"*" if total is None else str(total).encode()
        for start, stop in ranges:
            out += b"\r\n--" + boundary + b" \t\r\nContent-Type: application/octet-stream\r\n"
            out += b"Content-Range: bytes %d-%d/%s\r\n\r\n" % (start, stop - 1, size)
            out += content[start:stop]
        return bytes(out + b"\r\n--" + boundary + b"--\r\nepilogue")

    cases = [
        (b"THIS_STRING_SEPARATES", [(0, 10), (500, 600)], 1024),
        (b"3d6b6a416f9b5", [(1, 2)], 1024),
        (b"b", [(0, 1), (2, 3), (4, 5), (1000, 1024)], None),
        (b'"quoted\'(+_,-./:=?)"', [(100, 356), (700, 701)], 1024),
    ]
    return [multipart_input(b, r, t, seed, body(b, r, t)) for seed, (b, r, t) in enumerate(cases)]


# -- the download control record ------------------------------------------------------------
# First byte odd: the rest is a record body, sealed here with a valid header and checksum so
# that mutations reach the JSON and the validation; even: the rest is a whole record, as read.


def _seal(body: bytes) -> bytes:
    framed = struct.pack(">8sHI", control.MAGIC, control.VERSION, len(body)) + body
    return framed + hashlib.sha256(framed).digest()


def target_control(data: bytes) -> bool:
    raw = _seal(data[1:]) if data[:1] and data[0] & 1 else data[1:]
    record = _typed(lambda: control.decode(raw))
    if record is None:
        return False
    _require(control.encode(record) == raw, "decode accepted a record encode would not write")
    control.durable_bytes(record)
    control.is_complete(record)
    for segment in record.segments:
        control.tail_range(segment)
    return True


def control_seeds() -> list[bytes]:
    tail = hashlib.sha256(b"tail").hexdigest()
    records = [
        control.ControlRecord(url="https://example.com/a.bin", total=None),
        control.ControlRecord(
            url="https://example.com/ü?x=1",
            total=1000,
            etag='W/"abc"',
            last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
            segments=(
                control.Segment(0, 100, 500, tail),
                control.Segment(500, 500, 1000, ""),
            ),
            generation=7,
        ),
        control.ControlRecord(
            url="http://h/x", total=None, segments=(control.Segment(0, 10, None, tail),)
        ),
    ]
    seeds = []
    for record in records:
        encoded = control.encode(record)
        seeds.append(b"\x01" + encoded[14:-32])
        seeds.append(b"\x00" + encoded)
    return seeds


# -- zip and tar planners -------------------------------------------------------------------


def target_zip(data: bytes) -> bool:
    try:
        archive = ZipStream(BytesSource(data))
    except RangeioError:
        return False
    members = archive.members()
    for m in members:
        _require(0 <= m.header_offset < len(data), f"member {m.name!r} at {m.header_offset}")
    small = [m for m in members if m.size <= _MAX_READ][:_MAX_MEMBERS_READ]
    contents: list[bytes | None] = []
    for m in small:
        content = _typed(partial(archive.read, m))
        contents.append(content)
        if content is not None:
            _require(len(content) == m.size, f"{m.name!r}: {len(content)} bytes, not {m.size}")
        try:
            with archive.open(m) as f:
                streamed = f.read()
        except RangeioError:
            streamed = None
        if content is not None:
            _require(streamed == content, f"{m.name!r}: open() and read() disagree")
    together = _typed(partial(archive.read_many, small))
    _require(together is None or together == contents, "read_many() and read() disagree")
    return True


def _zip(build: Callable[[zipfile.ZipFile], None], prefix: bytes = b"") -> bytes:
    buf = io.BytesIO()
    buf.write(prefix)
    with zipfile.ZipFile(buf, "a" if prefix else "w") as zf:
        build(zf)
    return buf.getvalue()


def zip_seeds() -> list[bytes]:
    text = b"hello, range requests " * 8

    def plain(zf: zipfile.ZipFile) -> None:
        zf.writestr("a.txt", text, zipfile.ZIP_STORED)
        zf.writestr("dir/", b"")
        zf.writestr("b.txt", text, zipfile.ZIP_DEFLATED)

    def methods(zf: zipfile.ZipFile) -> None:
        zf.writestr("bz", text, zipfile.ZIP_BZIP2)
        zf.writestr("xz", text, zipfile.ZIP_LZMA)
        zf.writestr("ünïcode.txt", b"x")
        zf.comment = b"an archive comment"

    def zip64(zf: zipfile.ZipFile) -> None:
        with zf.open("big", "w", force_zip64=True) as f:
            f.write(text)
        zf.writestr("small", b"s")

    def empty(zf: zipfile.ZipFile) -> None:
        pass

    seeds = [_zip(plain), _zip(methods), _zip(zip64), _zip(empty)]
    seeds.append(_zip(plain, prefix=b"#!/bin/sh\nexit 0\n"))
    entries = [(b"one", b"first member"), (b"two/", b""), (b"three", text)]
    seeds.append(_zip_by_hand(entries, zip64=False))
    seeds.append(_zip_by_hand(entries, zip64=True))
    seeds.append(_zip_by_hand(entries[:1], zip64=True, comment=b"c" * 40))
    # A local header whose extra field is longer than the central one's (more than guessed);
    # a zstd member (method 93); and an end record more than 8 KiB from the end.
    seeds.append(_zip_by_hand(entries[:1], zip64=False, local_extra=b"\xfe\xca" + bytes(2000)))
    try:
        import zstandard

        squeezed = zstandard.ZstdCompressor().compress(text)
        seeds.append(_zip_by_hand([(b"z", text)], zip64=False, method=(93, squeezed)))
    except ImportError:
        pass
    seeds.append(_zip_by_hand(entries[:1], zip64=True, comment=b"c" * 9000))
    return seeds


def _zip_by_hand(
    entries: Sequence[tuple[bytes, bytes]],
    *,
    zip64: bool,
    comment: bytes = b"",
    local_extra: bytes = b"",
    method: tuple[int, bytes] | None = None,
) -> bytes:
    """Stored members; with ``zip64``, every central entry's sizes, offset and disk saturated
    and given in a zip64 extra field, and zip64 end records (APPNOTE 4.3.14, 4.3.15, 4.5.3)."""
    out = bytearray()
    central = bytearray()
    for name, content in entries:
        crc, usize, offset = zlib.crc32(content), len(content), len(out)
        kind, stored = (0, content) if method is None else method
        size = len(stored)
        out += struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            45,
            0,
            kind,
            0,
            0,
            crc,
            size,
            usize,
            len(name),
            len(local_extra),
        )
        out += name + local_extra + stored
        extra = b""
        fields = (size, usize, offset, 0)
        if zip64:
            extra = struct.pack("<HHQQQI", 1, 28, usize, size, offset, 0)
            fields = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF)
        csize, usize, at, disk = fields
        # Signature, versions, flags, method, time, date, CRC, sizes, lengths, disk, attributes.
        head = (0x02014B50, 45, 45, 0, kind, 0, 0, crc, csize, usize)
        tail = (len(name), len(extra), 0, disk, 0, 0, at)
        central += struct.pack("<IHHHHHHIIIHHHHHII", *head, *tail)
        central += name + extra
    cd_offset, count = len(out), len(entries)
    out += central
    if zip64:
        record_at = len(out)
        out += struct.pack(
            "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(central), cd_offset
        )
        out += struct.pack("<IIQI", 0x07064B50, 0, record_at, 1)
        count, cd_size, cd_offset = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
    else:
        cd_size = len(central)
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset, len(comment)
    )
    return bytes(out + comment)


def lzma_zip(*, dict_size: int) -> bytes:
    """One lzma (method 14) member whose header asks for a dictionary of ``dict_size`` bytes."""
    raw = bytearray(_zip(lambda zf: zf.writestr("xz", b"lzma " * 100, zipfile.ZIP_LZMA)))
    # After the 30-byte local header and the 2-byte name: 4 bytes of lzma header, then the
    # properties byte and the dictionary size (APPNOTE 5.8.8).
    raw[37:41] = struct.pack("<I", dict_size)
    return bytes(raw)


# First byte odd: every 512-byte block of the rest gets a valid header checksum before the
# walk (data blocks too, harmlessly), so mutations reach past the checksum; even: as it is.


def target_tar(data: bytes) -> bool:
    data = _with_checksums(data[1:]) if data[:1] and data[0] & 1 else data[1:]
    try:
        index = TarIndex(BytesSource(data))
    except RangeioError:
        return False
    members = index.members()
    for m in members:
        start, stop = m.data_range
        _require(0 <= m.header_offset < start <= stop <= len(data), f"member {m}")
        _require(m.size == stop - start, f"member {m.name!r} size {m.size}")
    small = [m for m in members if not m.sparse][:_MAX_MEMBERS_READ]
    contents = _typed(lambda: index.read_many(small))
    if contents is not None:
        for m, content in zip(small, contents):
            _require(content == data[m.data_range[0] : m.data_range[1]], f"{m.name!r} bytes")
    return True


def _tar(fmt: int, entries: Sequence[tuple[str, bytes | None, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, content, link in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if content is None and link:
                info.type = tarfile.SYMTYPE
                info.linkname = link
            elif content is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(content)
            tf.addfile(info, io.BytesIO(content or b""))
    return buf.getvalue()


def tar_seeds() -> list[bytes]:
    long = "deep/" * 30 + "name.txt"
    entries: list[tuple[str, bytes | None, str]] = [
        ("a.txt", b"alpha", ""),
        ("dir", None, ""),
        ("link", None, "a.txt"),
        (long, b"x" * 700, ""),
    ]
    seeds = [
        _tar(tarfile.USTAR_FORMAT, entries[:3] + [("b" * 99, b"b", "")]),
        _tar(tarfile.GNU_FORMAT, entries),
        _tar(tarfile.PAX_FORMAT, [*entries, ("ü.txt", b"u", "")]),
    ]
    # A PAX header with a fractional mtime and a size record; and a base-256 size field.
    pax = io.BytesIO()
    with tarfile.open(fileobj=pax, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("p")
        info.size = 3
        info.pax_headers = {"mtime": "1.5", "comment": "c"}
        tf.addfile(info, io.BytesIO(b"pax"))
    seeds.append(pax.getvalue())
    # Long link names: a GNU "K" header, and a PAX linkpath record.
    far = "target/" * 20 + "file"
    seeds.append(_tar(tarfile.GNU_FORMAT, [("l", None, far)]))
    seeds.append(_tar(tarfile.PAX_FORMAT, [("l", None, far)]))
    # A PAX size record, and PAX GNU sparse records (listed, never read).
    seeds.append(_pax_tar({"size": "3"}))
    seeds.append(_pax_tar({"GNU.sparse.major": "1", "GNU.sparse.name": "real"}))
    # A base-256 size field; an old GNU sparse header followed by one extension block.
    gnu = bytearray(_tar(tarfile.GNU_FORMAT, [("g", b"gnu", "")]))
    gnu[124:136] = b"\x80" + (3).to_bytes(11, "big")
    seeds.append(_with_checksum(gnu))
    sparse = bytearray(_tar(tarfile.GNU_FORMAT, [("s", b"sparse", "")]))
    sparse[156:157] = b"S"
    sparse[482] = 1
    sparse[512:512] = bytes(BLOCK_SIZE)
    seeds.append(_with_checksum(sparse))
    return [b"\x01" + seed for seed in seeds]


def _with_checksums(archive: bytes) -> bytes:
    out = bytearray(archive)
    for at in range(0, len(out) - BLOCK_SIZE + 1, BLOCK_SIZE):
        block = out[at : at + BLOCK_SIZE]
        if any(block):  # an all-zero block ends the archive, and must stay zero
            out[at + 148 : at + 156] = b" " * 8
            out[at + 148 : at + 155] = b"%06o\0" % sum(out[at : at + BLOCK_SIZE])
    return bytes(out)


BLOCK_SIZE = 512


def _pax_tar(records: dict[str, str]) -> bytes:
    """One 3-byte member ``s`` with these PAX records."""
    pax = io.BytesIO()
    with tarfile.open(fileobj=pax, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("s")
        info.size = 3
        info.pax_headers = records
        tf.addfile(info, io.BytesIO(b"abc"))
    return pax.getvalue()


def _with_checksum(archive: bytearray) -> bytes:
    """The archive with its first header's checksum recomputed (the field counts as spaces)."""
    archive[148:156] = b" " * 8
    archive[148:155] = b"%06o\0" % sum(archive[:BLOCK_SIZE])
    return bytes(archive)


# -- the registry and the engine ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    # True when the parser accepted the input, False when it refused it with a typed error.
    run: Callable[[bytes], bool]
    seeds: Callable[[], list[bytes]]
    # Tokens the mutator splices in: what the format's grammar is made of.
    tokens: tuple[bytes, ...] = ()


_HEADER_TOKENS = (b"bytes", b"=", b"-", b",", b"*", b"/", b" ", b"\t", b"\xa0", "\u0661".encode())
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("range", target_range, range_seeds, (*_HEADER_TOKENS, b"9" * 19, b"9" * 20)),
        Target("content_range", target_content_range, content_range_seeds, _HEADER_TOKENS),
        Target(
            "multipart",
            target_multipart,
            multipart_seeds,
            (b"\r\n", b"\r\n\r\n", b"--", b"Content-Range: bytes 0-9/1024", b":", b" "),
        ),
        Target(
            "control",
            target_control,
            control_seeds,
            (b'"', b"null", b"[]", b"{}", b"-1", b"4611686018427387905", b"\\ud800", b"1.5"),
        ),
        Target(
            "zip",
            target_zip,
            zip_seeds,
            (
                b"PK\x01\x02",
                b"PK\x03\x04",
                b"PK\x05\x06",
                b"PK\x06\x06",
                b"PK\x06\x07",
                b"\x01\x00",
            ),
        ),
        Target(
            "tar",
            target_tar,
            tar_seeds,
            (
                b"ustar\x00",
                b"ustar  \x00",
                b"\x80",
                b"\xff",
                b"0000644\x00",
                b"L",
                b"x",
                b"S",
                b"5",
            ),
        ),
    )
}

# Inputs that once failed, or that probe a limit, kept as regression examples: each must be
# accepted or refused with a typed error.
REGRESSIONS: dict[str, list[bytes]] = {
    "range": [b"items=0-1", b"bytes=" + b"9" * 5000 + b"-"],
    "content_range": [b"bytes 0-" + b"9" * 5000 + b"/*", "bytes \u0661-\u0662/9".encode()],
    # A boundary outside latin-1, as httpx hands over a UTF-8 Content-Type: UnicodeEncodeError.
    "multipart": [multipart_input("\u076f".encode(), [(0, 1)], 10, 0, "--\u076f".encode())],
    # The checksum is right but the JSON nests deeply, or carries a 5000-digit number.
    "control": [b"\x01" + b"[" * 100_000, b'\x01{"generation":' + b"9" * 5000 + b"}"],
    # An lzma member asking for a 4 GiB dictionary: MemoryError where memory is limited.
    "zip": [b"", b"PK\x05\x06" + bytes(18), lzma_zip(dict_size=0xFFFFFFFF)],
    # A PAX size record of 5000 digits: int() refused it with a ValueError.
    "tar": [b"\x00" + _pax_tar({"size": "3" * 5000})],
}

_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1)


def max_len(seeds: Sequence[bytes]) -> int:
    """How long a mutated input may grow: twice the longest seed, and at least 4 KiB."""
    return max(4096, 2 * max((len(s) for s in seeds), default=0))


def mutate(
    data: bytes, rng: random.Random, target: Target, others: Sequence[bytes], limit: int
) -> bytes:
    """A few random edits of ``data``: bit flips, byte and integer overwrites, token splices,
    deletions, duplications and crossovers with another input."""
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        op = rng.randrange(10)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.choice((0, 0xFF, 0x80, 0x7F, 13, 10, 32, 48, 57))
        elif op == 2:
            value = rng.choice(_INTERESTING)
            width = rng.choice((1, 2, 4, 8))
            number = value % (1 << (8 * width))
            big = rng.random() < 0.5
            buf[at : at + width] = number.to_bytes(width, "big" if big else "little")
        elif op == 3 and target.tokens:
            token = rng.choice(target.tokens)
            if rng.random() < 0.5:
                buf[at:at] = token
            else:
                buf[at : at + len(token)] = token
        elif op == 4 and buf:
            n = rng.randrange(1, min(len(buf), 64) + 1)
            del buf[at : at + n]
        elif op == 5 and buf:
            n = rng.randrange(1, min(len(buf), 64) + 1)
            start = rng.randrange(len(buf))
            buf[at:at] = buf[start : start + n] * rng.choice((1, 2, 16))
        elif op == 6 and others:
            other = rng.choice(others)
            if other:
                start = rng.randrange(len(other))
                piece = other[start : start + rng.randrange(1, 256)]
                buf[at : at + (len(piece) if rng.random() < 0.5 else 0)] = piece
        elif op == 7:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif op == 8 and buf:
            del buf[rng.randrange(len(buf)) :]
        elif op == 9:
            # Digits: lengths, sizes and offsets are where parsers go wrong.
            if rng.random() < 0.1:
                # Long runs too: int() refuses more than 4300 digits with a ValueError.
                buf[at:at] = b"9" * rng.choice((20, 25, 400, 5000))
            else:
                number = rng.choice((0, 1, 9, 10**19 - 1, 10**19, 2**62, rng.randrange(1 << 20)))
                buf[at:at] = str(number).encode()
    # Unbounded, inputs would grow run after run and slow every parse down.
    return bytes(buf[:limit])


@dataclass
class Failure:
    target: str
    data: bytes
    error: BaseException
    trace: str

    def describe(self) -> str:
        return (
            f"target {self.target}: {type(self.error).__name__}: {self.error}\n"
            f"input (hex): {self.data.hex()}\n{self.trace}"
        )


def check(target: Target, data: bytes) -> Failure | bool:
    """Run one input: whether it was accepted, or a Failure for anything but acceptance or a
    typed refusal."""
    try:
        return target.run(data)
    except RangeioError:
        return False
    except Exception as exc:  # every other exception is the finding
        return Failure(target.name, data, exc, traceback.format_exc())


@dataclass
class Report:
    target: str
    inputs: int = 0
    accepted: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0


def fuzz(
    target: Target,
    *,
    count: int,
    seed: int = 0,
    seconds: float | None = None,
    keep: int = 20,
    on_input: Callable[[], object] | None = None,
    extra: Sequence[bytes] = (),
) -> Report:
    """Run the seeds, then ``count`` mutated inputs in all (fewer if ``seconds`` run out).

    ``extra`` inputs (saved failures, say) run after the seeds. Accepted inputs join the pool that mutations start from (bounded), which takes the run
    past the early rejects into the code behind them.
    """
    rng = random.Random(seed)
    seeds = [*target.seeds(), *extra]
    pool = list(seeds)
    limit = max_len(seeds)
    report = Report(target.name)
    started = time.monotonic()
    deadline = None if seconds is None else started + seconds
    for i in range(count):
        if i < len(seeds):
            data = seeds[i]
        else:
            data = mutate(rng.choice(pool), rng, target, pool, limit)
        if on_input is not None:
            on_input()
        outcome = check(target, data)
        report.inputs += 1
        if isinstance(outcome, Failure):
            if len(report.failures) >= keep:
                outcome.trace = ""  # counted, not kept in full
            report.failures.append(outcome)
        elif outcome:
            report.accepted += 1
        if outcome is True and i >= len(seeds) and rng.random() < 0.1:
            if len(pool) < 512:
                pool.append(data)
            else:
                pool[rng.randrange(len(seeds), len(pool))] = data
        if deadline is not None and time.monotonic() > deadline:
            break
    report.seconds = time.monotonic() - started
    return report
