"""TarIndex: walk a remote uncompressed tar's headers with few requests and read members by range.

The walk and the reads are programs (``_program.py``), run by the sync face here and by
``rangeio.aio.formats.tar``; the headers are parsed by pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from rangeio._core.prefetch import START, START_PREFETCH
from rangeio.formats._common import FormatError, KiB, Source, decode_text, prefetched_head
from rangeio.formats._program import WALK_PREFETCH, Program, ReadAhead, Window, read_ranges
from rangeio.formats._runner import SourceHolder

__all__ = ["TarIndex", "TarMember", "open"]

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
# Types whose header is followed by no data whatever their size field says (tarfile and GNU
# tar agree): hard and symbolic links, devices, directories, FIFOs.
_NO_DATA = frozenset("123456")
# Headers that describe the next header rather than a member.
_META = frozenset("LKxg")
# Long names and PAX records are read into memory; a bigger one is refused, not fetched.
MAX_META_BYTES = 1024 * KiB
# In a walk that fetches headers alone (members are big), each fetch also takes the next two
# blocks: a PAX header is usually one block of records and then the member's own header.
_HEADER_EXTENT = 3 * BLOCK


@dataclass(frozen=True)
class TarMember:
    """One member. ``type`` is the header's type flag ("0" regular file, "5" directory, "2"
    symbolic link, ...; old-style regular files are reported as "0"). ``data_range`` is
    ``(start, stop)`` of the content, after the header; ``header_offset`` is where the member's
    first header (a PAX or long-name header, when it has one) starts."""

    name: str
    size: int
    type: str
    data_range: tuple[int, int]
    header_offset: int
    linkname: str = ""
    mode: int = 0
    mtime: float = 0.0
    sparse: bool = False

    @property
    def padded_size(self) -> int:
        """The bytes its data takes in the archive: ``size`` rounded up to whole 512-byte
        blocks (the next header starts that far after ``data_range[0]``)."""
        return _padded(self.size)

    @property
    def is_file(self) -> bool:
        return self.type in ("0", "7")

    @property
    def is_dir(self) -> bool:
        return self.type == "5"


OPEN_OPTIONS: dict[str, Any] = {"prefetch_direction": START, "prefetch_bytes": WALK_PREFETCH}


class TarFacts:
    """What TarIndex and rangeio.aio's AsyncTarIndex share: the members, no I/O."""

    _members: list[TarMember]
    _by_name: dict[str, TarMember]

    def _found(self, members: list[TarMember]) -> None:
        self._members = members
        self._by_name = {m.name: m for m in members}

    def members(self) -> list[TarMember]:
        return list(self._members)

    def names(self) -> list[str]:
        return [m.name for m in self._members]

    def member(self, name: str | TarMember) -> TarMember:
        """The member called ``name`` (the last one, when a name repeats); KeyError if none."""
        if isinstance(name, TarMember):
            return name
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no member named {name!r} in the tar archive") from None

    def _read_many(self, names: Iterable[str | TarMember]) -> Program[list[bytes]]:
        members = [self.member(n) for n in names]
        for m in members:
            if m.sparse:
                raise FormatError(f"tar member {m.name!r} is a GNU sparse file (not supported)")
        datas = yield from read_ranges([m.data_range for m in members])
        for m, data in zip(members, datas):
            if len(data) != m.data_range[1] - m.data_range[0]:
                raise FormatError(f"tar member {m.name!r} is cut short by the file's end")
        return datas

    def __repr__(self) -> str:
        kind = f"{type(self).__module__}.{type(self).__qualname__}"
        return f"<{kind} members={len(self._members)}>"


class TarIndex(TarFacts, SourceHolder):
    """The members of a remote uncompressed tar, found by walking its 512-byte headers.

    A header's position is known only once the previous one is read, so the walk reads ahead:
    while members are small one request covers many headers; when they are big each header
    is fetched alone (with the next two blocks, for PAX headers). The default prefetch of the
    open request is taken from the start of the file, where the walk begins.

    ``source`` is a URL (opened with ``client`` and ``options`` like ``rangeio.open``) or an
    open file with ``size`` and ``read_ranges``.
    """

    def __init__(self, source: Source, client: Any = None, **options: Any) -> None:
        self._attach(source, client, options, **OPEN_OPTIONS)
        head = prefetched_head(self._source, self._owned)
        self._found(self._load(walk(self._size, head)))

    def read(self, name: str | TarMember) -> bytes:
        """A member's content: one range request (none if the bytes are cached)."""
        return self.read_many([name])[0]

    def read_many(self, names: Iterable[str | TarMember]) -> list[bytes]:
        """Several members' contents with one ``read_ranges`` call."""
        return self._run(self._read_many(names))


def open(  # noqa: A001 - the module's entry point, as zip's
    source: Source, client: Any = None, **options: Any
) -> TarIndex:
    """Open a remote uncompressed tar archive: see TarIndex."""
    return TarIndex(source, client, **options)


class _Pending:
    """What PAX and GNU long-name headers say about the next member."""

    def __init__(self) -> None:
        self.start: int | None = None
        self.name: str | None = None
        self.linkname: str | None = None
        self.pax: dict[str, bytes] = {}

    def __bool__(self) -> bool:
        return self.start is not None


def walk(size: int, head: int = 0, *, forward: bool = False) -> Program[list[TarMember]]:
    """The program that walks the headers of a tar of ``size`` bytes (``forward``: a stream of
    unknown size, ``Forward``), ``head`` bytes of which the open prefetched."""
    readahead = ReadAhead(first=max(head, START_PREFETCH), alone=_HEADER_EXTENT)
    window = Window(size, readahead, forward=forward)
    members: list[TarMember] = []
    pending = _Pending()
    pos = 0
    while True:
        if pos + BLOCK > size:
            if pos == size and not pending:
                break  # no end-of-archive blocks: tolerated, as tar and tarfile do
            raise FormatError(f"tar archive ends inside the header at {pos} (size {size})")
        block = yield from window.get(pos, pos + BLOCK, f"tar header at {pos}")
        if block == _ZERO_BLOCK:
            if pending:
                raise FormatError(f"tar extended header at {pending.start} describes no member")
            break
        header = _parse_header(block, pos)
        kind = header.type
        data_start = pos + BLOCK
        if kind == "S" and block[482]:
            data_start = yield from _skip_sparse_extensions(window, data_start, size)
        stored = 0 if kind in _NO_DATA else header.size
        if "size" in pending.pax and kind not in _META:
            stored = 0 if kind in _NO_DATA else _pax_int(pending.pax["size"], "size", pos)
        data_stop = data_start + stored
        if data_stop > size:
            raise FormatError(
                f"tar member at {pos} claims {stored} bytes of data, past the end of the file"
            )
        following = data_start + _padded(stored)
        if kind in _META:
            if stored > MAX_META_BYTES:
                raise FormatError(f"tar extended header at {pos} is {stored} bytes (too large)")
            if kind != "g":  # global PAX records are skipped, not applied
                if pending.start is None:
                    pending.start = pos
                # Fetch the member's own header with the records: they are read together.
                yield from window.get(
                    data_start, min(size, following + BLOCK), f"tar header at {pos}"
                )
                meta = yield from window.get(data_start, data_stop, f"tar extended header at {pos}")
                _apply_meta(pending, kind, meta, pos)
        else:
            member = _member(header, pending, pos, data_start, data_stop)
            members.append(member)
            window.readahead.observe(following - member.header_offset)
            pending = _Pending()
        pos = following
    return members


def _member(
    header: _Header, pending: _Pending, pos: int, data_start: int, data_stop: int
) -> TarMember:
    name = header.name
    linkname = header.linkname
    mtime = float(header.mtime)
    sparse = header.type == "S"
    if pending.name is not None:
        name = pending.name
    if pending.linkname is not None:
        linkname = pending.linkname
    pax = pending.pax
    if "path" in pax:
        name = decode_text(pax["path"])
    if "linkpath" in pax:
        linkname = decode_text(pax["linkpath"])
    if "mtime" in pax:
        try:
            mtime = float(pax["mtime"])
        except ValueError:
            raise FormatError(
                f"tar PAX mtime {pax['mtime']!r} before {pos} is not a number"
            ) from None
    if "GNU.sparse.major" in pax or "GNU.sparse.map" in pax or "GNU.sparse.size" in pax:
        sparse = True
        if "GNU.sparse.name" in pax:
            name = decode_text(pax["GNU.sparse.name"])
    kind = header.type
    if kind == "\0":
        # Before POSIX, a NUL type was a regular file, and a trailing slash a directory.
        kind = "5" if name.endswith("/") else "0"
    return TarMember(
        name=name,
        size=data_stop - data_start,
        type=kind,
        data_range=(data_start, data_stop),
        header_offset=pending.start if pending.start is not None else pos,
        linkname=linkname,
        mode=header.mode,
        mtime=mtime,
        sparse=sparse,
    )


def _apply_meta(pending: _Pending, kind: str, data: bytes, pos: int) -> None:
    if kind == "L":
        pending.name = decode_text(data.split(b"\0", 1)[0])
    elif kind == "K":
        pending.linkname = decode_text(data.split(b"\0", 1)[0])
    else:
        pending.pax.update(_parse_pax(data, pos))


def _parse_pax(data: bytes, pos: int) -> dict[str, bytes]:
    """PAX extended header records: ``"%d %s=%s\\n" % (length, key, value)``, the length
    counting the whole record (POSIX pax, "pax Extended Header")."""
    records: dict[str, bytes] = {}
    at = 0
    while at < len(data):
        if data[at] == 0:
            break  # padding after the last record
        space = data.find(b" ", at, at + 21)
        digits = data[at:space] if space > at else b""
        if not digits.isdigit():
            raise FormatError(f"tar PAX header at {pos}: malformed record length at byte {at}")
        length = int(digits)
        record = data[at : at + length]
        if length <= len(digits) + 1 or len(record) != length or not record.endswith(b"\n"):
            raise FormatError(f"tar PAX header at {pos}: record at byte {at} is malformed")
        body = record[len(digits) + 1 : -1]
        key, eq, value = body.partition(b"=")
        if not eq or not key:
            raise FormatError(f"tar PAX header at {pos}: record at byte {at} has no key=value")
        records[decode_text(key)] = value
        at += length
    return records


def _pax_int(value: bytes, key: str, pos: int) -> int:
    if not value.isdigit():
        raise FormatError(f"tar PAX {key} {value!r} for the member at {pos} is not a number")
    # Refused before int() sees it: past 4300 digits int() raises ValueError (CPython's limit),
    # and no size a file can have needs more than 20.
    if len(value.lstrip(b"0")) > 20:
        raise FormatError(f"tar PAX {key} {value[:40]!r}... for the member at {pos} is too large")
    return int(value)


class _Header(NamedTuple):
    name: str
    mode: int
    size: int
    mtime: int
    type: str
    linkname: str


def _parse_header(block: bytes, pos: int) -> _Header:
    """The fields of one 512-byte header, after checking its checksum."""
    stored = _number(block[148:156], "checksum", pos)
    unsigned = sum(block) - sum(block[148:156]) + 8 * 0x20
    # Some old tars summed signed chars; tarfile and GNU tar accept either.
    signed = unsigned - 256 * sum(
        1 for i, b in enumerate(block) if b >= 0x80 and not 148 <= i < 156
    )
    if stored not in (unsigned, signed):
        raise FormatError(f"tar header at {pos}: bad checksum (not a tar archive, or corrupt)")
    name = _text(block[0:100])
    magic = block[257:263]
    if magic == b"ustar\0":
        # POSIX ustar: a long path is split at a slash into prefix and name.
        prefix = _text(block[345:500])
        if prefix:
            name = f"{prefix}/{name}"
    kind = chr(block[156])
    size = _number(block[124:136], "size", pos)
    if size < 0:
        raise FormatError(f"tar header at {pos}: negative size {size}")
    return _Header(
        name=name,
        mode=_number(block[100:108], "mode", pos),
        size=size,
        mtime=_number(block[136:148], "mtime", pos),
        type=kind,
        linkname=_text(block[157:257]),
    )


def _number(field: bytes, what: str, pos: int) -> int:
    """A numeric field: NUL/space-terminated octal, or GNU base-256 (first byte 0x80 for a
    positive number, 0xff for a negative one; the rest big-endian)."""
    if field and field[0] in (0x80, 0xFF):
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            value -= 256 ** (len(field) - 1)
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if any(c not in b"01234567" for c in text):
        raise FormatError(f"tar header at {pos}: {what} field {field!r} is not octal")
    return int(text, 8)


def _text(field: bytes) -> str:
    return decode_text(field.split(b"\0", 1)[0])


def _padded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def _skip_sparse_extensions(window: Window, pos: int, size: int) -> Program[int]:
    """Old GNU sparse headers may be followed by extension blocks (each flags the next at
    byte 504); the data starts after the last."""
    for _ in range(1 << 20):
        if pos + BLOCK > size:
            raise FormatError(f"tar sparse extension header at {pos} is cut short")
        block = yield from window.get(pos, pos + BLOCK, f"tar sparse extension header at {pos}")
        pos += BLOCK
        if not block[504]:
            return pos
    raise FormatError("tar sparse header has too many extension blocks")
