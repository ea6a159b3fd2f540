"""The zip records (APPNOTE.TXT 4.3) as pure codecs: end records, zip64, central entries, local headers."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from rangeio.formats._common import FormatError, decode_text, unpack

# Record layouts (APPNOTE.TXT 4.3). Signatures are checked separately from the layouts.
EOCD = struct.Struct("<IHHHHIIH")  # 4.3.16, 22 bytes
ZIP64_LOCATOR = struct.Struct("<IIQI")  # 4.3.15, 20 bytes
ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")  # 4.3.14, 56 bytes before its extensible data
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 4.3.12, 46 bytes
LOCAL = struct.Struct("<IHHHHHIIIHH")  # 4.3.7, 30 bytes
_EXTRA_HEADER = struct.Struct("<HH")

_ZIP64_LOCATOR_SIG = 0x07064B50
_ZIP64_EOCD_SIG = 0x06064B50
_CENTRAL_SIG = 0x02014B50
_LOCAL_SIG = 0x04034B50
_ZIP64_EXTRA_ID = 0x0001

# The EOCD is 22 bytes followed by a comment of at most 65535 bytes: it starts in this tail.
MAX_TAIL = EOCD.size + 0xFFFF
FLAG_ENCRYPTED = 0x0001
_FLAG_UTF8 = 0x0800


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


def parse_end_record(tail: bytes, pos: int, offset: int) -> ZipEndRecord:
    """The end record at ``pos`` in ``tail``, which starts at ``offset`` in the file."""
    (_, disk, cd_disk, count_here, count, cd_size, cd_offset, comment_len) = unpack(
        EOCD, tail, pos, "zip end of central directory record"
    )
    comment = tail[pos + EOCD.size : pos + EOCD.size + comment_len]
    return ZipEndRecord(offset, disk, cd_disk, count_here, count, cd_size, cd_offset, comment)


def zip64_locator(tail: bytes, tail_start: int, eocd_offset: int) -> tuple[int, int] | None:
    """``(locator offset, the record offset it states)`` when a zip64 locator precedes the end
    record at ``eocd_offset`` (``tail`` starts at ``tail_start``), else None."""
    locator = eocd_offset - ZIP64_LOCATOR.size
    if locator < tail_start:
        return None
    (sig, _, record_offset, _) = unpack(ZIP64_LOCATOR, tail, locator - tail_start, "zip64 locator")
    if sig != _ZIP64_LOCATOR_SIG:
        return None
    return locator, record_offset


def zip64_candidates(locator: int, record_offset: int) -> list[int]:
    """Where the zip64 end record may start: the locator's offset ignores prepended bytes, and
    the record normally ends at the locator, which is where it is looked for next."""
    latest = locator - ZIP64_EOCD.size
    return [c for c in (record_offset, latest) if 0 <= c <= latest]


def parse_zip64_record(record: bytes, offset: int) -> Zip64EndRecord | None:
    """The zip64 end record in ``record`` (found at ``offset``), or None without its signature."""
    fields = unpack(ZIP64_EOCD, record, 0, "zip64 end of central directory")
    if fields[0] != _ZIP64_EOCD_SIG:
        return None
    return Zip64EndRecord(offset, *fields[2:])


def parse_directory(data: bytes, shift: int, cd_start: int) -> list[ZipMember]:
    """The central directory's entries: ``data`` starts at ``cd_start`` in the file, and
    ``shift`` bytes were prepended to the archive (every stated offset moves by it)."""
    members: list[ZipMember] = []
    pos = 0
    while pos < len(data):
        what = f"zip central directory entry {len(members)} (at {cd_start + pos})"
        fields = unpack(CENTRAL, data, pos, what)
        (sig, made_by, needed, flags, method, dos_time, dos_date, crc, csize, usize) = fields[:10]
        (name_len, extra_len, comment_len, disk, internal, external, offset) = fields[10:]
        if sig != _CENTRAL_SIG:
            raise FormatError(f"{what}: bad signature {sig:#010x}")
        name_at = pos + CENTRAL.size
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
        if header_offset + LOCAL.size > cd_start:
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


def local_data_start(member: ZipMember, head: bytes) -> int:
    """Check ``member``'s local header (at the start of ``head``) and return where its data
    starts in the file. ``head`` must hold the fixed part; the name is checked when present."""
    what = f"zip local header of {member.name!r}"
    if member.flags & FLAG_ENCRYPTED:
        raise FormatError(f"zip member {member.name!r} is encrypted (not supported)")
    (sig, _, _, _, _, _, _, _, _, name_len, extra_len) = unpack(LOCAL, head, 0, what)
    if sig != _LOCAL_SIG:
        raise FormatError(f"{what}: no local header signature at {member.header_offset}")
    name = head[LOCAL.size : LOCAL.size + name_len]
    if len(name) == name_len and name != member.raw_name:
        raise FormatError(f"{what}: its name {name!r} differs from the directory's")
    return member.header_offset + LOCAL.size + int(name_len) + int(extra_len)


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
