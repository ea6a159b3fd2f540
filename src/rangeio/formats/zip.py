"""ZipStream: list and read the members of a remote zip, fetching only the directory and their bytes."""

from __future__ import annotations

import bisect
import io
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rangeio._core.prefetch import find_zip_end_record
from rangeio.formats._common import (
    FormatError,
    Inflater,
    KiB,
    MiB,
    RangePull,
    RangeSource,
    SourceHolder,
    StoredInflater,
    ZlibInflater,
    close_source,
    decode_text,
    decompression_errors,
    open_source,
    read_exact,
    unpack,
    zstd_inflater,
)

__all__ = ["Zip64EndRecord", "ZipEndRecord", "ZipMember", "ZipStream", "open"]

# Record layouts (APPNOTE.TXT 4.3). Signatures are checked separately from the layouts.
_EOCD = struct.Struct("<IHHHHIIH")  # 4.3.16, 22 bytes
_ZIP64_LOCATOR = struct.Struct("<IIQI")  # 4.3.15, 20 bytes
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")  # 4.3.14, 56 bytes before its extensible data
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 4.3.12, 46 bytes
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # 4.3.7, 30 bytes
_EXTRA_HEADER = struct.Struct("<HH")

_ZIP64_LOCATOR_SIG = 0x07064B50
_ZIP64_EOCD_SIG = 0x06064B50
_CENTRAL_SIG = 0x02014B50
_LOCAL_SIG = 0x04034B50
_ZIP64_EXTRA_ID = 0x0001

# The EOCD is 22 bytes followed by a comment of at most 65535 bytes: it starts in this tail.
_MAX_TAIL = _EOCD.size + 0xFFFF
# Where it is looked for first: enough for the zip64 records and a short comment, and no
# bigger than rangeio's smallest range request (8 KiB), so it costs no more than 22 bytes.
_FIRST_TAIL = 8 * KiB
_FLAG_ENCRYPTED = 0x0001
_FLAG_UTF8 = 0x0800

# A local header's extra field may differ from the central one (zip64 sizes, timestamps,
# alignment padding): a member's first fetch allows this much more, so that it usually
# brings the local header and all the data at once.
_LOCAL_SLACK = 1 * KiB
# Compressed bytes fetched per step when a member is streamed, and with its header at first.
_STREAM_CHUNK = 256 * KiB
# The open's prefetch: ZipStream reads the whole central directory as soon as it opens (and
# conda_info then the members stored last), so it asks for the last 1 MiB, which holds the
# directory of an archive of ~10,000 members: listing one costs that single request, where the
# 16 KiB suffix a zip URL gets by default (``ZIP_END_PREFETCH`` in ``_core/prefetch.py``, sized for
# readers that may want only the end record) would cost a second one once the directory is
# larger (the formats benchmark's 4,200-member zip).
OPEN_PREFETCH = 1 * MiB
# The central directory is held in memory; past this it is refused rather than fetched.
MAX_DIRECTORY_BYTES = 1024 * MiB

METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "lzma", 93: "zstd"}


@dataclass(frozen=True)
class ZipMember:
    """One central directory entry. ``header_offset`` is where its local header sits in the
    file (adjusted when bytes were prepended to the archive, as in self-extracting ones)."""

    name: str
    compressed_size: int
    size: int
    method: int
    crc32: int
    header_offset: int
    is_dir: bool
    flags: int = 0
    raw_name: bytes = field(default=b"", repr=False, compare=False)
    # The central extra field's length: the best guess of the local one's.
    extra_length: int = field(default=0, repr=False, compare=False)
    # The rest of the central directory record (APPNOTE 4.3.12), named as zipfile.ZipInfo
    # names them; ``central_offset`` is where the record starts in the file.
    create_version: int = field(default=0, repr=False, compare=False)
    create_system: int = field(default=0, repr=False, compare=False)
    extract_version: int = field(default=0, repr=False, compare=False)
    date_time: tuple[int, int, int, int, int, int] = field(
        default=(1980, 1, 1, 0, 0, 0), repr=False, compare=False
    )
    internal_attr: int = field(default=0, repr=False, compare=False)
    external_attr: int = field(default=0, repr=False, compare=False)
    extra: bytes = field(default=b"", repr=False, compare=False)
    comment: bytes = field(default=b"", repr=False, compare=False)
    central_offset: int = field(default=0, repr=False, compare=False)


@dataclass(frozen=True)
class Zip64EndRecord:
    """The zip64 end of central directory record (APPNOTE 4.3.14), as stored; ``offset`` is
    where it starts in the file."""

    offset: int
    version_made_by: int
    version_needed: int
    disk_number: int
    directory_disk: int
    entries_on_disk: int
    entries: int
    directory_size: int
    directory_offset: int


@dataclass(frozen=True)
class ZipEndRecord:
    """The end of central directory record (APPNOTE 4.3.16), its fields as stored (a zip64
    archive saturates them, 0xFFFF or 0xFFFFFFFF, and ``zip64`` holds the real values);
    ``offset`` is where it starts in the file."""

    offset: int
    disk_number: int
    directory_disk: int
    entries_on_disk: int
    entries: int
    directory_size: int
    directory_offset: int
    comment: bytes
    zip64: Zip64EndRecord | None = None


class ZipStream(SourceHolder):
    """A remote zip archive, read through byte ranges.

    Opening reads the end of central directory record and the whole central directory:
    with the open's prefetch (the last 1 MiB, ``OPEN_PREFETCH``) that is one request for
    archives whose directory fits in it, two otherwise. A member then costs one request (its local
    header and data together); ``read_many`` fetches several with one ``read_ranges``.

    ``source`` is a URL (opened with ``client`` and ``options``, as ``rangeio.open`` does, and
    closed with the stream) or an open file with ``size`` and ``read_ranges`` (left open).
    """

    def __init__(self, source: str | RangeSource, client: Any = None, **options: Any) -> None:
        self._source, self._owned = open_source(
            source, client, options, prefetch_direction="END", prefetch_bytes=OPEN_PREFETCH
        )
        try:
            self._load()
        except BaseException:
            close_source(self._source, self._owned)
            raise

    # -- the directory --------------------------------------------------------------------

    def _load(self) -> None:
        size = self._source.size
        if size < _EOCD.size:
            raise FormatError(f"not a zip file: {size} bytes is shorter than its end record")
        # Most archives have no comment, so the end record is in the last bytes: look there
        # first (a small read, cached after rangeio's open), then in the whole 64 KiB tail.
        tail_start = size - min(size, _FIRST_TAIL)
        tail = read_exact(self._source, tail_start, size, "zip end of central directory")
        eocd_pos = find_zip_end_record(tail, exact_only=tail_start > 0)
        if eocd_pos is None and tail_start > 0:
            tail_start = size - min(size, _MAX_TAIL)
            tail = read_exact(self._source, tail_start, size, "zip end of central directory")
            eocd_pos = find_zip_end_record(tail, exact_only=False)
        if eocd_pos is None:
            raise FormatError(
                "not a zip file: no end of central directory record in its last 64 KiB"
            )
        eocd_abs = tail_start + eocd_pos
        (_, disk, cd_disk, count_here, count, cd_size, cd_offset, comment_len) = unpack(
            _EOCD, tail, eocd_pos, "zip end of central directory record"
        )
        self.comment = tail[eocd_pos + _EOCD.size : eocd_pos + _EOCD.size + comment_len]
        stored = (disk, cd_disk, count_here, count, cd_size, cd_offset)
        cd_end = eocd_abs
        zip64 = self._zip64_record(tail, tail_start, eocd_abs)
        if zip64 is not None:
            cd_end = zip64.offset
            disk, cd_disk = zip64.disk_number, zip64.directory_disk
            count_here, count = zip64.entries_on_disk, zip64.entries
            cd_size, cd_offset = zip64.directory_size, zip64.directory_offset
        self.end_record = ZipEndRecord(eocd_abs, *stored, comment=self.comment, zip64=zip64)
        if disk != 0 or cd_disk != 0 or count_here != count:
            raise FormatError("multi-disk (split) zip archives are not supported")
        # Bytes prepended to the archive (a self-extractor's stub) shift every offset: the
        # directory ends where the end records start, whatever its offset field says.
        shift = cd_end - cd_size - cd_offset
        if shift < 0:
            raise FormatError(
                f"zip central directory (offset {cd_offset}, size {cd_size}) overlaps its end "
                f"record at {cd_end}"
            )
        if cd_size > MAX_DIRECTORY_BYTES:
            raise FormatError(f"zip central directory of {cd_size} bytes is too large")
        if count > cd_size // _CENTRAL.size:
            raise FormatError(f"zip claims {count} entries in a {cd_size}-byte directory")
        self._cd_start = cd_offset + shift
        # Bytes before the archive proper (a self-extractor's stub); every offset is shifted.
        self.prepended = shift
        self.directory_range = (self._cd_start, cd_end)
        directory = read_exact(self._source, self._cd_start, cd_end, "zip central directory")
        self._members = _parse_directory(directory, shift, self._cd_start)
        # Without zip64, writers store the count modulo 2**16 (some overflow it silently).
        expected = count if zip64 is not None else count % 0x10000
        got = len(self._members) if zip64 is not None else len(self._members) % 0x10000
        if got != expected:
            raise FormatError(
                f"zip central directory holds {len(self._members)} entries, its end record "
                f"says {count}"
            )
        self._by_name = {m.name: m for m in self._members}
        # Where each member's bytes must end: the next local header, or the directory.
        self._starts = sorted({m.header_offset for m in self._members})
        # Where each member's data starts, by local header offset, once its header was read.
        self._data_starts: dict[int, int] = {}

    def _zip64_record(self, tail: bytes, tail_start: int, eocd_abs: int) -> Zip64EndRecord | None:
        """The zip64 end record's fields, when a locator precedes the end record."""
        locator_abs = eocd_abs - _ZIP64_LOCATOR.size
        if locator_abs < tail_start:
            return None
        (sig, _, record_offset, _) = unpack(
            _ZIP64_LOCATOR, tail, locator_abs - tail_start, "zip64 locator"
        )
        if sig != _ZIP64_LOCATOR_SIG:
            return None
        # The locator's offset ignores prepended bytes; the record normally ends at the
        # locator, which is where it is looked for next.
        for candidate in (record_offset, locator_abs - _ZIP64_EOCD.size):
            if 0 <= candidate <= locator_abs - _ZIP64_EOCD.size:
                record = self._bytes_at(tail, tail_start, candidate, _ZIP64_EOCD.size)
                fields = unpack(_ZIP64_EOCD, record, 0, "zip64 end of central directory")
                if fields[0] == _ZIP64_EOCD_SIG:
                    return Zip64EndRecord(candidate, *fields[2:])
        raise FormatError(f"zip64 locator points at {record_offset}, where no zip64 end record is")

    def _bytes_at(self, tail: bytes, tail_start: int, start: int, length: int) -> bytes:
        if start >= tail_start:
            return tail[start - tail_start : start - tail_start + length]
        return read_exact(self._source, start, start + length, "zip64 end record")

    def members(self) -> list[ZipMember]:
        """Every entry of the central directory, in its order."""
        return list(self._members)

    def namelist(self) -> list[str]:
        return [m.name for m in self._members]

    def member(self, name: str | ZipMember) -> ZipMember:
        """The entry called ``name`` (the last one, when a name repeats); KeyError if none."""
        if isinstance(name, ZipMember):
            return name
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no member named {name!r} in the zip archive") from None

    # -- members' bytes -------------------------------------------------------------------

    def _bound(self, member: ZipMember) -> int:
        """Where ``member``'s bytes must end: the next local header, or the directory."""
        i = bisect.bisect_right(self._starts, member.header_offset)
        return self._starts[i] if i < len(self._starts) else self._cd_start

    def _first_span(self, member: ZipMember, data_limit: int | None = None) -> tuple[int, int]:
        """The range fetched first for ``member``: its local header (guessed from the central
        entry) and its data, never past the next member's header."""
        data = member.compressed_size if data_limit is None else data_limit
        guess = _LOCAL.size + len(member.raw_name) + member.extra_length + _LOCAL_SLACK
        stop = min(self._bound(member), member.header_offset + guess + data)
        return member.header_offset, max(stop, member.header_offset)

    def _data_start(self, member: ZipMember, head: bytes) -> int:
        """Check ``member``'s local header (at the start of ``head``) and return where its
        data starts. ``head`` must hold the fixed part; the name is checked when present."""
        what = f"zip local header of {member.name!r}"
        if member.flags & _FLAG_ENCRYPTED:
            raise FormatError(f"zip member {member.name!r} is encrypted (not supported)")
        (sig, _, _, _, _, _, _, _, _, name_len, extra_len) = unpack(_LOCAL, head, 0, what)
        if sig != _LOCAL_SIG:
            raise FormatError(f"{what}: no local header signature at {member.header_offset}")
        name = head[_LOCAL.size : _LOCAL.size + name_len]
        if len(name) == name_len and name != member.raw_name:
            raise FormatError(f"{what}: its name {name!r} differs from the directory's")
        start = member.header_offset + _LOCAL.size + int(name_len) + int(extra_len)
        if start + member.compressed_size > self._bound(member):
            raise FormatError(
                f"zip member {member.name!r}: its data ({member.compressed_size} bytes at "
                f"{start}) runs into the next member or the directory"
            )
        self._data_starts[member.header_offset] = start
        return start

    def file_range(self, name: str | ZipMember) -> tuple[int, int]:
        """``(start, stop)``: where a member's (compressed) data lies in the file, after its
        local header. See ``file_ranges``."""
        return self.file_ranges([name])[0]

    def file_ranges(self, names: Iterable[str | ZipMember]) -> list[tuple[int, int]]:
        """Where each member's data lies in the file. The local header decides it (its extra
        field may differ from the central one), so the headers not read yet (by ``read``,
        ``read_many`` or ``open``) are fetched, all with one ``read_ranges`` call, only
        their fixed part and name; the spans can then be read by any client, e.g. added
        to a ``RangeStream``."""
        members = [self.member(n) for n in names]
        unknown = list(
            {
                m.header_offset: m for m in members if m.header_offset not in self._data_starts
            }.values()
        )
        spans = [
            (m.header_offset, min(self._bound(m), m.header_offset + _LOCAL.size + len(m.raw_name)))
            for m in unknown
        ]
        heads = self._source.read_ranges(spans) if spans else []
        for member, head in zip(unknown, heads):
            if len(head) < _LOCAL.size:
                head += self._tail_for(member, len(head), _LOCAL.size)
            self._data_start(member, head)
        out = []
        for m in members:
            start = self._data_starts[m.header_offset]
            out.append((start, start + m.compressed_size))
        return out

    def _compressed(self, members: Sequence[ZipMember]) -> list[bytes]:
        """The compressed bytes of ``members``: one read_ranges for all of them, and a second
        one only for members whose local header was longer than guessed."""
        spans = [self._first_span(m) for m in members]
        heads = self._source.read_ranges(spans) if spans else []
        for i, (member, head) in enumerate(zip(members, heads)):
            if len(head) < _LOCAL.size:
                # Too short even for the fixed part (a malformed bound): fetch that part.
                heads[i] = head + self._tail_for(member, len(head), _LOCAL.size)
        starts = [self._data_start(m, h) for m, h in zip(members, heads)]
        missing: list[tuple[int, int]] = []
        for member, head, start in zip(members, heads, starts):
            have = member.header_offset + len(head)
            if have < start + member.compressed_size:
                missing.append((max(have, start), start + member.compressed_size))
        rest = iter(self._source.read_ranges(missing) if missing else [])
        out: list[bytes] = []
        for member, head, start in zip(members, heads, starts):
            offset = start - member.header_offset
            piece = head[offset : offset + member.compressed_size]
            if len(piece) < member.compressed_size:
                piece += next(rest)
            if len(piece) != member.compressed_size:
                raise FormatError(f"zip member {member.name!r} is cut short by the file's end")
            out.append(piece)
        return out

    def _tail_for(self, member: ZipMember, have: int, need: int) -> bytes:
        start = member.header_offset + have
        return read_exact(self._source, start, member.header_offset + need, "zip local header")

    def read(self, name: str | ZipMember) -> bytes:
        """A member's content, decompressed and checked against its size and CRC-32."""
        return self.read_many([name])[0]

    def read_many(self, names: Iterable[str | ZipMember]) -> list[bytes]:
        """Several members' contents, in the order asked, fetched with one ``read_ranges``
        call (rangeio merges close ranges and sends the rest as one multipart request)."""
        members = [self.member(n) for n in names]
        return [
            _decode(m, io.BytesIO(data).read, known_size=len(data))
            for m, data in zip(members, self._compressed(members))
        ]

    def open(self, name: str | ZipMember) -> io.BufferedReader:
        """A streaming binary file over a member's decompressed content: compressed bytes are
        fetched in steps as it is read (sequential reads become one streaming request), and
        the size and CRC-32 are checked when it reaches the end."""
        member = self.member(name)
        first = self._first_span(member, min(member.compressed_size, _STREAM_CHUNK))
        (head,) = self._source.read_ranges([first])
        if len(head) < _LOCAL.size:
            head += self._tail_for(member, len(head), _LOCAL.size)
        start = self._data_start(member, head)
        stop = start + member.compressed_size
        have = member.header_offset + len(head)
        prefix = head[start - member.header_offset :] if have > start else b""
        pull = RangePull(
            self._source,
            max(start, have),
            stop,
            prefix[: stop - start],
            f"zip member {member.name!r}",
        )
        raw = _MemberReader(member, pull)
        return io.BufferedReader(raw, 64 * KiB)

    # -- the file -------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<rangeio.formats.zip.ZipStream members={len(self._members)}>"


def open(  # noqa: A001 - the module's entry point, like zipfile.ZipFile / gzip.open
    source: str | RangeSource, client: Any = None, **options: Any
) -> ZipStream:
    """Open a remote zip archive: see ZipStream."""
    return ZipStream(source, client, **options)


# -- parsing ------------------------------------------------------------------------------


def _parse_directory(data: bytes, shift: int, cd_start: int) -> list[ZipMember]:
    members: list[ZipMember] = []
    pos = 0
    while pos < len(data):
        what = f"zip central directory entry {len(members)} (at {cd_start + pos})"
        fields = unpack(_CENTRAL, data, pos, what)
        (sig, made_by, needed, flags, method, dos_time, dos_date, crc, csize, usize) = fields[:10]
        (name_len, extra_len, comment_len, disk, internal, external, offset) = fields[10:]
        if sig != _CENTRAL_SIG:
            raise FormatError(f"{what}: bad signature {sig:#010x}")
        name_at = pos + _CENTRAL.size
        extra_at = name_at + name_len
        end = extra_at + extra_len + comment_len
        if end > len(data):
            raise FormatError(f"{what}: its name, extra and comment run past the directory")
        raw_name = data[name_at:extra_at]
        extra = data[extra_at : extra_at + extra_len]
        if 0xFFFFFFFF in (usize, csize, offset) or disk == 0xFFFF:
            usize, csize, offset, disk = _zip64_fields(extra, usize, csize, offset, disk, what)
        if disk != 0:
            raise FormatError(f"{what}: member on disk {disk} (split archives not supported)")
        header_offset = offset + shift
        if header_offset + _LOCAL.size > cd_start:
            raise FormatError(f"{what}: local header offset {offset} is past the directory")
        name = decode_text(raw_name, "utf-8" if flags & _FLAG_UTF8 else "cp437")
        members.append(
            ZipMember(
                name=name,
                compressed_size=csize,
                size=usize,
                method=method,
                crc32=crc,
                header_offset=header_offset,
                is_dir=name.endswith("/"),
                flags=flags,
                raw_name=raw_name,
                extra_length=extra_len,
                create_version=made_by & 0xFF,
                create_system=made_by >> 8,
                extract_version=needed,
                date_time=_dos_date_time(dos_date, dos_time),
                internal_attr=internal,
                external_attr=external,
                extra=extra,
                comment=data[extra_at + extra_len : end],
                central_offset=cd_start + pos,
            )
        )
        pos = end
    return members


def _dos_date_time(date: int, time: int) -> tuple[int, int, int, int, int, int]:
    """A DOS date and time (APPNOTE 4.4.6) as zipfile's ``date_time`` tuple."""
    return (
        (date >> 9) + 1980,
        (date >> 5) & 0xF,
        date & 0x1F,
        time >> 11,
        (time >> 5) & 0x3F,
        (time & 0x1F) * 2,
    )


def _zip64_fields(
    extra: bytes, usize: int, csize: int, offset: int, disk: int, what: str
) -> tuple[int, int, int, int]:
    """Replace the central entry's saturated fields with the zip64 extra's values, which come
    in this order and only for the fields that are saturated (APPNOTE 4.5.3)."""
    pos = 0
    while pos + _EXTRA_HEADER.size <= len(extra):
        kind, length = _EXTRA_HEADER.unpack_from(extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if len(body) != length:
            break
        if kind == _ZIP64_EXTRA_ID:
            values = [usize, csize, offset, disk]
            at = 0
            for i, (saturated, width) in enumerate(
                ((0xFFFFFFFF, 8), (0xFFFFFFFF, 8), (0xFFFFFFFF, 8), (0xFFFF, 4))
            ):
                if values[i] != saturated:
                    continue
                if at + width > len(body):
                    raise FormatError(f"{what}: its zip64 extra field is too short")
                values[i] = int.from_bytes(body[at : at + width], "little")
                at += width
            return values[0], values[1], values[2], values[3]
        pos += 4 + length
    raise FormatError(f"{what}: sizes or offset need a zip64 extra field, and it has none")


# -- decompression ------------------------------------------------------------------------


class _ZipLzma:
    """Method 14: a 4-byte header (LZMA SDK version, properties size), the 5 LZMA1
    properties, then a raw LZMA1 stream (APPNOTE 5.8.8)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._head = b""
        self._d: Any = None

    @property
    def needs_input(self) -> bool:
        return self._d is None or bool(self._d.needs_input)

    @property
    def eof(self) -> bool:
        return self._d is not None and bool(self._d.eof)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._d is None:
            self._head += data
            if len(self._head) < 4:
                return b""
            props_size = int.from_bytes(self._head[2:4], "little")
            if props_size != 5:
                raise FormatError(f"zip lzma: properties are {props_size} bytes, not 5")
            if len(self._head) < 9:
                return b""
            self._d = _lzma1_decompressor(self._head[4:9], self._size)
            data, self._head = self._head[9:], b""
        return bytes(self._d.decompress(data, max_length))


def _lzma1_decompressor(props: bytes, size: int) -> Any:
    import lzma

    packed, dict_size = props[0], int.from_bytes(props[1:5], "little")
    if packed >= 9 * 5 * 5:
        raise FormatError(f"zip lzma: invalid properties byte {packed}")
    pb, rest = divmod(packed, 45)
    lp, lc = divmod(rest, 9)
    # The header may ask for a 4 GiB dictionary. No match reaches back further than the output
    # so far, and output past the member's declared ``size`` is refused, so a bigger dictionary
    # would never be used: the same bytes decode either way.
    dict_size = min(dict_size, max(size + 1, 1 * MiB))
    filters = [{"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": dict_size}]
    try:
        return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
    except lzma.LZMAError as exc:
        raise FormatError(f"zip lzma: unusable properties ({exc})") from exc
    except MemoryError:
        raise FormatError(f"zip lzma: no memory for a {dict_size}-byte dictionary") from None


def _inflater(member: ZipMember) -> Inflater:
    method = member.method
    if method == 0:
        return StoredInflater()
    if method == 8:
        return ZlibInflater(-15)
    if method == 12:
        import bz2

        return bz2.BZ2Decompressor()
    if method == 14:
        return _ZipLzma(member.size)
    if method == 93:
        try:
            return zstd_inflater("conda")
        except ImportError as exc:
            raise FormatError(
                f"zip member {member.name!r} is zstd-compressed (method 93) and {exc}"
            ) from exc
    raise FormatError(
        f"zip member {member.name!r} uses compression method {method}, which is not supported "
        f"(supported: {', '.join(f'{k} {v}' for k, v in METHODS.items())})"
    )


class _MemberReader(io.RawIOBase):
    """A member's decompressed bytes, checked against the declared size and CRC-32 at the end,
    never more than the declared size held or produced."""

    def __init__(self, member: ZipMember, pull: Any, chunk: int = 64 * KiB) -> None:
        super().__init__()
        self._member = member
        self._pull = pull
        self._chunk = chunk
        self._inflater = _inflater(member)
        # bz2 reports corrupt data as OSError ("Invalid data stream"); no I/O happens there.
        self._errors: tuple[type[BaseException], ...] = (*decompression_errors(), OSError)
        self._input_done = False
        self._produced = 0
        self._crc = 0
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._finished or not len(view):
            return 0
        # One byte more than may remain: output past the declared size is caught at once.
        limit = min(len(view), self._member.size - self._produced + 1)
        stalls = 0
        while True:
            data = b""
            if self._inflater.needs_input and not self._input_done and not self._inflater.eof:
                data = self._pull(self._chunk)
                self._input_done = not data
            if self._inflater.eof or (self._input_done and self._inflater.needs_input):
                self._finish()
                return 0
            out = self._decompress(data, limit)
            if out:
                return self._deliver(out, view)
            if not data:
                stalls += 1
                if stalls > 2:
                    raise FormatError(f"zip member {self._member.name!r}: decompressor is stuck")

    def _decompress(self, data: bytes, limit: int) -> bytes:
        try:
            return self._inflater.decompress(data, limit)
        except FormatError:
            raise
        except self._errors as exc:
            raise FormatError(
                f"zip member {self._member.name!r}: corrupt compressed data ({exc})"
            ) from exc

    def _deliver(self, out: bytes, view: memoryview) -> int:
        self._produced += len(out)
        if self._produced > self._member.size:
            raise FormatError(
                f"zip member {self._member.name!r} decompresses to more than its declared "
                f"{self._member.size} bytes"
            )
        self._crc = zlib.crc32(out, self._crc)
        view[: len(out)] = out
        return len(out)

    def _finish(self) -> None:
        self._finished = True
        name = self._member.name
        if self._produced != self._member.size:
            raise FormatError(
                f"zip member {name!r} decompresses to {self._produced} bytes, not the declared "
                f"{self._member.size}"
            )
        if self._crc != self._member.crc32:
            raise FormatError(
                f"zip member {name!r}: CRC-32 {self._crc:08x} does not match the declared "
                f"{self._member.crc32:08x}"
            )

    def close(self) -> None:
        if not self.closed:
            close = getattr(self._pull, "close", None)
            if close is not None:
                close()
        super().close()


def _decode(member: ZipMember, pull: Any, *, known_size: int) -> bytes:
    """A whole member from its compressed bytes (held in memory: ``known_size`` of them)."""
    reader = _MemberReader(member, pull, chunk=max(known_size, 1))
    # Grown as output arrives, never allocated from the declared size: that is the archive's
    # claim, and a corrupt or hostile one may claim anything up to 2**64.
    out = bytearray()
    piece = bytearray(min(max(member.size, 1), _STREAM_CHUNK) + 1)
    while n := reader.readinto(piece):
        out += memoryview(piece)[:n]
    return bytes(out)
