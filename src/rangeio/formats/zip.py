"""ZipStream: list and read the members of a remote zip, fetching only the directory and their bytes.

The records are pure codecs (``_zip_records.py``); what to fetch is decided here, once, as
programs (``_program.py``) that the sync face below and ``rangeio.aio.formats.zip`` both run.
"""

from __future__ import annotations

import bisect
import io
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from rangeio._core.planner import READ_WINDOW_MAX, ReadPolicy
from rangeio._core.prefetch import END, END_PREFETCH, find_zip_end_record
from rangeio.formats._common import FormatError, KiB, MiB, Source
from rangeio.formats._inflate import ZIP_METHODS, Inflater, decompress
from rangeio.formats._inflate import zip_method_inflater as _method_inflater
from rangeio.formats._program import Program, Pull, in_memory, read_exact, read_ranges
from rangeio.formats._runner import SourceHolder, SyncRunner
from rangeio.formats._zip_records import (
    CENTRAL,
    EOCD,
    LOCAL,
    MAX_TAIL,
    ZIP64_EOCD,
    Zip64EndRecord,
    ZipEndRecord,
    ZipMember,
    local_data_start,
    parse_directory,
    parse_end_record,
    parse_zip64_record,
    zip64_candidates,
    zip64_locator,
)

__all__ = ["Zip64EndRecord", "ZipEndRecord", "ZipMember", "ZipStream", "open"]

METHODS = ZIP_METHODS

# Where the end record is looked for first: enough for the zip64 records and a short comment,
# and no bigger than rangeio's smallest range request, so it costs no more than 22 bytes.
_FIRST_TAIL = ReadPolicy().minimum_range_request_bytes
# A local header's extra field may differ from the central one (zip64 sizes, timestamps,
# alignment padding): a member's first fetch allows this much more, so that it usually
# brings the local header and all the data at once.
_LOCAL_SLACK = 1 * KiB
# Compressed bytes fetched with a streamed member's header at first, and per step after: the
# planner's first window of a sequential run (what one round trip carries).
_STREAM_CHUNK = READ_WINDOW_MAX
# The open's prefetch: ZipStream reads the whole central directory as soon as it opens (and
# conda_info then the members stored last), so it asks for the suffix a columnar file gets
# (``END_PREFETCH``, 1 MiB), which holds the directory of an archive of ~10,000 members:
# listing one costs that single request, where the 16 KiB suffix a zip URL gets by default
# (``ZIP_END_PREFETCH`` in ``_core/prefetch.py``, sized for readers that may want only the end
# record) would cost a second one once the directory is larger (the formats benchmark's
# 4,200-member zip).
OPEN_PREFETCH = END_PREFETCH
OPEN_OPTIONS: dict[str, Any] = {"prefetch_direction": END, "prefetch_bytes": OPEN_PREFETCH}
# The central directory is held in memory; past this it is refused rather than fetched.
MAX_DIRECTORY_BYTES = 1024 * MiB


# -- the directory ------------------------------------------------------------------------


def read_index(size: int) -> Program[ZipIndex]:
    """The program that reads a zip's end records and its whole central directory."""
    if size < EOCD.size:
        raise FormatError(f"not a zip file: {size} bytes is shorter than its end record")
    # Most archives have no comment, so the end record is in the last bytes: look there
    # first (a small read, cached after rangeio's open), then in the whole 64 KiB tail.
    tail_start = size - min(size, _FIRST_TAIL)
    tail = yield from read_exact(size, tail_start, size, "zip end of central directory")
    eocd_pos = find_zip_end_record(tail, exact_only=tail_start > 0)
    if eocd_pos is None and tail_start > 0:
        tail_start = size - min(size, MAX_TAIL)
        tail = yield from read_exact(size, tail_start, size, "zip end of central directory")
        eocd_pos = find_zip_end_record(tail, exact_only=False)
    if eocd_pos is None:
        raise FormatError("not a zip file: no end of central directory record in its last 64 KiB")
    eocd_abs = tail_start + eocd_pos
    stored = parse_end_record(tail, eocd_pos, eocd_abs)
    zip64 = yield from _zip64_record(size, tail, tail_start, eocd_abs)
    end_record = replace(stored, zip64=zip64)
    disk, cd_disk = stored.disk_number, stored.directory_disk
    count_here, count = stored.entries_on_disk, stored.entries
    cd_size, cd_offset = stored.directory_size, stored.directory_offset
    cd_end = eocd_abs
    if zip64 is not None:
        cd_end = zip64.offset
        disk, cd_disk = zip64.disk_number, zip64.directory_disk
        count_here, count = zip64.entries_on_disk, zip64.entries
        cd_size, cd_offset = zip64.directory_size, zip64.directory_offset
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
    if count > cd_size // CENTRAL.size:
        raise FormatError(f"zip claims {count} entries in a {cd_size}-byte directory")
    cd_start = cd_offset + shift
    directory = yield from read_exact(size, cd_start, cd_end, "zip central directory")
    members = parse_directory(directory, shift, cd_start)
    # Without zip64, writers store the count modulo 2**16 (some overflow it silently).
    expected = count if zip64 is not None else count % 0x10000
    got = len(members) if zip64 is not None else len(members) % 0x10000
    if got != expected:
        raise FormatError(
            f"zip central directory holds {len(members)} entries, its end record says {count}"
        )
    return ZipIndex(members, end_record, (cd_start, cd_end), shift)


def _zip64_record(
    size: int, tail: bytes, tail_start: int, eocd_abs: int
) -> Program[Zip64EndRecord | None]:
    """The zip64 end record, when a locator precedes the end record."""
    located = zip64_locator(tail, tail_start, eocd_abs)
    if located is None:
        return None
    locator, record_offset = located
    for candidate in zip64_candidates(locator, record_offset):
        if candidate >= tail_start:
            at = candidate - tail_start
            record = tail[at : at + ZIP64_EOCD.size]
        else:
            stop = candidate + ZIP64_EOCD.size
            record = yield from read_exact(size, candidate, stop, "zip64 end record")
        found = parse_zip64_record(record, candidate)
        if found is not None:
            return found
    raise FormatError(f"zip64 locator points at {record_offset}, where no zip64 end record is")


class ZipIndex:
    """What the central directory says, and the programs that fetch members' bytes from it.
    No I/O: the faces run the programs."""

    def __init__(
        self,
        members: list[ZipMember],
        end_record: ZipEndRecord,
        directory_range: tuple[int, int],
        prepended: int,
    ) -> None:
        self.members = members
        self.end_record = end_record
        self.directory_range = directory_range
        self.prepended = prepended
        self.by_name = {m.name: m for m in members}
        # Where each member's bytes must end: the next local header, or the directory.
        self._starts = sorted({m.header_offset for m in members})
        # Where each member's data starts, by local header offset, once its header was read.
        self._data_starts: dict[int, int] = {}

    def member(self, name: str | ZipMember) -> ZipMember:
        """The entry called ``name`` (the last one, when a name repeats); KeyError if none."""
        if isinstance(name, ZipMember):
            return name
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"no member named {name!r} in the zip archive") from None

    def _bound(self, member: ZipMember) -> int:
        """Where ``member``'s bytes must end: the next local header, or the directory."""
        i = bisect.bisect_right(self._starts, member.header_offset)
        return self._starts[i] if i < len(self._starts) else self.directory_range[0]

    def _first_span(self, member: ZipMember, data_limit: int | None = None) -> tuple[int, int]:
        """The range fetched first for ``member``: its local header (guessed from the central
        entry) and its data, never past the next member's header."""
        data = member.compressed_size if data_limit is None else data_limit
        guess = LOCAL.size + len(member.raw_name) + member.extra_length + _LOCAL_SLACK
        stop = min(self._bound(member), member.header_offset + guess + data)
        return member.header_offset, max(stop, member.header_offset)

    def _data_start(self, member: ZipMember, head: bytes) -> int:
        """Check ``member``'s local header (at the start of ``head``) and return where its
        data starts."""
        start = local_data_start(member, head)
        if start + member.compressed_size > self._bound(member):
            raise FormatError(
                f"zip member {member.name!r}: its data ({member.compressed_size} bytes at "
                f"{start}) runs into the next member or the directory"
            )
        self._data_starts[member.header_offset] = start
        return start

    def _fixed_part(self, member: ZipMember, head: bytes) -> Program[bytes]:
        """``head`` (fetched from the member's local header) with at least the fixed part."""
        if len(head) >= LOCAL.size:
            return head
        # Too short even for the fixed part (a malformed bound): fetch that part.
        start, stop = member.header_offset + len(head), member.header_offset + LOCAL.size
        size = self.directory_range[1]
        return head + (yield from read_exact(size, start, stop, "zip local header"))

    def file_ranges(self, names: Iterable[str | ZipMember]) -> Program[list[tuple[int, int]]]:
        """Where each member's data lies (see ``ZipStream.file_ranges``)."""
        members = [self.member(n) for n in names]
        unknown = list(
            {
                m.header_offset: m for m in members if m.header_offset not in self._data_starts
            }.values()
        )
        spans = [
            (m.header_offset, min(self._bound(m), m.header_offset + LOCAL.size + len(m.raw_name)))
            for m in unknown
        ]
        heads = yield from read_ranges(spans)
        for member, head in zip(unknown, heads):
            self._data_start(member, (yield from self._fixed_part(member, head)))
        out = []
        for m in members:
            start = self._data_starts[m.header_offset]
            out.append((start, start + m.compressed_size))
        return out

    def _compressed(self, members: Sequence[ZipMember]) -> Program[list[bytes]]:
        """The compressed bytes of ``members``: one read_ranges for all of them, and a second
        one only for members whose local header was longer than guessed."""
        heads = yield from read_ranges([self._first_span(m) for m in members])
        for i, (member, head) in enumerate(zip(members, heads)):
            heads[i] = yield from self._fixed_part(member, head)
        starts = [self._data_start(m, h) for m, h in zip(members, heads)]
        missing: list[tuple[int, int]] = []
        for member, head, start in zip(members, heads, starts):
            have = member.header_offset + len(head)
            if have < start + member.compressed_size:
                missing.append((max(have, start), start + member.compressed_size))
        rest = iter((yield from read_ranges(missing)))
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

    def read_many(self, names: Iterable[str | ZipMember]) -> Program[list[bytes]]:
        """Members' contents, decompressed and checked (see ``ZipStream.read_many``)."""
        members = [self.member(n) for n in names]
        datas = yield from self._compressed(members)
        return [decode_member(m, data) for m, data in zip(members, datas)]

    def open_member(self, name: str | ZipMember) -> Program[MemberDecoder]:
        """A decoder over a member's data: its local header and first step fetched now."""
        member = self.member(name)
        first = self._first_span(member, min(member.compressed_size, _STREAM_CHUNK))
        (head,) = yield from read_ranges([first])
        head = yield from self._fixed_part(member, head)
        start = self._data_start(member, head)
        stop = start + member.compressed_size
        have = member.header_offset + len(head)
        prefix = head[start - member.header_offset :] if have > start else b""
        what = f"zip member {member.name!r}"
        return MemberDecoder(member, Pull(max(start, have), stop, prefix[: stop - start], what))


# -- decompression ------------------------------------------------------------------------


class MemberDecoder:
    """A member's decompressed bytes from its compressed ones (a Pull), as programs: checked
    against the declared size and CRC-32 at the end, never more than the declared size held or
    produced."""

    def __init__(self, member: ZipMember, pull: Pull, chunk: int = 64 * KiB) -> None:
        self.member = member
        self._pull = pull
        self._chunk = chunk
        self._inflater: Inflater = _method_inflater(member.method, member.size, member.name)
        self._input_done = False
        self._produced = 0
        self._crc = 0
        self._finished = False

    def read_some(self, n: int) -> Program[bytes]:
        """At most ``n`` next bytes, b"" at the end (once the size and CRC-32 are checked)."""
        if self._finished or n <= 0:
            return b""
        # One byte more than may remain: output past the declared size is caught at once.
        limit = min(n, self.member.size - self._produced + 1)
        stalls = 0
        while True:
            data = b""
            if self._inflater.needs_input and not self._input_done and not self._inflater.eof:
                data = yield from self._pull.take(self._chunk)
                self._input_done = not data
            if self._inflater.eof or (self._input_done and self._inflater.needs_input):
                self._finish()
                return b""
            out = self._decompress(data, limit)
            if out:
                return self._deliver(out)
            if not data:
                stalls += 1
                if stalls > 2:
                    raise FormatError(f"zip member {self.member.name!r}: decompressor is stuck")

    def read(self, n: int = -1) -> Program[bytes]:
        """``n`` bytes (all that are left with -1), short only at the end."""
        out = bytearray()
        while n < 0 or len(out) < n:
            piece = yield from self.read_some(_STREAM_CHUNK if n < 0 else n - len(out))
            if not piece:
                break
            out += piece
        return bytes(out)

    def close(self) -> Program[None]:
        yield from self._pull.close()

    def _decompress(self, data: bytes, limit: int) -> bytes:
        return decompress(self._inflater, data, limit, f"zip member {self.member.name!r}")

    def _deliver(self, out: bytes) -> bytes:
        self._produced += len(out)
        if self._produced > self.member.size:
            raise FormatError(
                f"zip member {self.member.name!r} decompresses to more than its declared "
                f"{self.member.size} bytes"
            )
        self._crc = zlib.crc32(out, self._crc)
        return out

    def _finish(self) -> None:
        self._finished = True
        name = self.member.name
        if self._produced != self.member.size:
            raise FormatError(
                f"zip member {name!r} decompresses to {self._produced} bytes, not the declared "
                f"{self.member.size}"
            )
        if self._crc != self.member.crc32:
            raise FormatError(
                f"zip member {name!r}: CRC-32 {self._crc:08x} does not match the declared "
                f"{self.member.crc32:08x}"
            )


def decode_member(member: ZipMember, data: bytes) -> bytes:
    """A whole member from its compressed bytes, held in memory (pure)."""
    decoder = MemberDecoder(member, Pull(0, 0, data), chunk=max(len(data), 1))
    # Grown as output arrives, never allocated from the declared size: that is the archive's
    # claim, and a corrupt or hostile one may claim anything up to 2**64.
    step = min(max(member.size, 1), _STREAM_CHUNK) + 1
    out = bytearray()
    while piece := in_memory(decoder.read_some(step), b""):
        out += piece
    return bytes(out)


# -- the faces' shared, I/O-free members ----------------------------------------------------


class ZipFacts:
    """What ZipStream and rangeio.aio's AsyncZipStream share: the directory, no I/O."""

    _index: ZipIndex

    @property
    def end_record(self) -> ZipEndRecord:
        return self._index.end_record

    @property
    def comment(self) -> bytes:
        return self._index.end_record.comment

    @property
    def prepended(self) -> int:
        """Bytes before the archive proper (a self-extractor's stub); every offset is shifted."""
        return self._index.prepended

    @property
    def directory_range(self) -> tuple[int, int]:
        return self._index.directory_range

    @property
    def _cd_start(self) -> int:
        return self._index.directory_range[0]

    def members(self) -> list[ZipMember]:
        """Every entry of the central directory, in its order."""
        return list(self._index.members)

    def namelist(self) -> list[str]:
        return [m.name for m in self._index.members]

    def member(self, name: str | ZipMember) -> ZipMember:
        """The entry called ``name`` (the last one, when a name repeats); KeyError if none."""
        return self._index.member(name)

    def __repr__(self) -> str:
        kind = f"{type(self).__module__}.{type(self).__qualname__}"
        return f"<{kind} members={len(self._index.members)}>"


# -- the sync face --------------------------------------------------------------------------


class ZipStream(ZipFacts, SourceHolder):
    """A remote zip archive, read through byte ranges.

    Opening reads the end of central directory record and the whole central directory:
    with the open's prefetch (the last 1 MiB, ``OPEN_PREFETCH``) that is one request for
    archives whose directory fits in it, two otherwise. A member then costs one request (its local
    header and data together); ``read_many`` fetches several with one ``read_ranges``.

    ``source`` is a URL (opened with ``client`` and ``options``, as ``rangeio.open`` does, and
    closed with the stream) or an open file with ``size`` and ``read_ranges`` (left open).
    """

    def __init__(self, source: Source, client: Any = None, **options: Any) -> None:
        self._attach(source, client, options, **OPEN_OPTIONS)
        self._index = self._load(read_index(self._size))

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
        return self._run(self._index.file_ranges(names))

    def read(self, name: str | ZipMember) -> bytes:
        """A member's content, decompressed and checked against its size and CRC-32."""
        return self.read_many([name])[0]

    def read_many(self, names: Iterable[str | ZipMember]) -> list[bytes]:
        """Several members' contents, in the order asked, fetched with one ``read_ranges``
        call (rangeio merges close ranges and sends the rest as one multipart request)."""
        return self._run(self._index.read_many(names))

    def open(self, name: str | ZipMember) -> io.BufferedReader:
        """A streaming binary file over a member's decompressed content: compressed bytes are
        fetched in steps as it is read (sequential reads become one streaming request), and
        the size and CRC-32 are checked when it reaches the end."""
        decoder = self._run(self._index.open_member(name))
        return io.BufferedReader(_MemberFile(decoder, self._runner), 64 * KiB)


class _MemberFile(io.RawIOBase):
    """A MemberDecoder as a raw binary file, its programs run by the ZipStream's runner."""

    def __init__(self, decoder: MemberDecoder, runner: SyncRunner) -> None:
        super().__init__()
        self._decoder = decoder
        self._runner = runner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        out = self._runner.run(self._decoder.read_some(len(view)))
        view[: len(out)] = out
        return len(out)

    def close(self) -> None:
        if not self.closed:
            self._runner.run(self._decoder.close())
        super().close()


def open(  # noqa: A001 - the module's entry point, like zipfile.ZipFile / gzip.open
    source: Source, client: Any = None, **options: Any
) -> ZipStream:
    """Open a remote zip archive: see ZipStream."""
    return ZipStream(source, client, **options)
