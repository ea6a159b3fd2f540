"""The formats' sans-IO layer on bytes, no network: the record codecs, and the exact reads each
program yields, answered by a scripted runner (the ops seam of ``formats/_program.py``)."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from rangeio.formats import BytesSource, FormatError
from rangeio.formats._inflate import InflateStream, StoredInflater
from rangeio.formats._program import (
    EndPull,
    Forward,
    Program,
    Pull,
    ReadAhead,
    ReadNext,
    ReadRanges,
    Window,
    in_memory,
    read_exact,
    through,
)
from rangeio.formats._runner import SyncRunner
from rangeio.formats._zip_records import (
    ZipMember,
    local_data_start,
    parse_directory,
    parse_end_record,
)
from rangeio.formats.tar import TarIndex, walk
from rangeio.formats.zip import ZipStream, decode_member, read_index


def scripted(program: Program[Any], data: bytes) -> tuple[Any, list[Any]]:
    """Run ``program`` over ``data``, recording every op it yields."""
    ops: list[Any] = []
    return in_memory(program, data, ops), ops


def small_zip(n: int = 3, comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(n):
            z.writestr(f"m{i}.txt", b"member %d " % i * 50)
        z.comment = comment
    return buf.getvalue()


# -- zip records ----------------------------------------------------------------------------


def test_zip_records_parse_what_zipfile_wrote() -> None:
    data = small_zip(4, b"a comment")
    ref = zipfile.ZipFile(io.BytesIO(data))
    eocd = data.rindex(b"PK\x05\x06")
    end = parse_end_record(data, eocd, eocd)
    assert (end.offset, end.entries, end.comment) == (eocd, 4, b"a comment")
    assert end.directory_offset == ref.start_dir
    directory = data[end.directory_offset : eocd]
    members = parse_directory(directory, 0, end.directory_offset)
    assert [m.name for m in members] == ref.namelist()
    for m, info in zip(members, ref.infolist()):
        assert (m.header_offset, m.crc32, m.compressed_size) == (
            info.header_offset,
            info.CRC,
            info.compress_size,
        )
        start = local_data_start(m, data[m.header_offset :])
        assert zlib.decompress(data[start : start + m.compressed_size], -15) == ref.read(m.name)
    # Prepended bytes shift every header offset, not the parse.
    shifted = parse_directory(directory, 100, end.directory_offset + 100)
    assert [m.header_offset - 100 for m in shifted] == [m.header_offset for m in members]


def test_zip_records_refuse_bad_bytes() -> None:
    data = small_zip(2)
    eocd = data.rindex(b"PK\x05\x06")
    start = parse_end_record(data, eocd, eocd).directory_offset
    with pytest.raises(FormatError, match="bad signature"):
        parse_directory(b"XX" + data[start + 2 : eocd], 0, start)
    with pytest.raises(FormatError, match="truncated"):
        parse_directory(data[start : start + 20], 0, start)
    member = parse_directory(data[start:eocd], 0, start)[0]
    with pytest.raises(FormatError, match="no local header signature"):
        local_data_start(member, b"\0" * 64)
    renamed = data[:30] + b"X" + data[31:]
    with pytest.raises(FormatError, match="differs"):
        local_data_start(member, renamed)


def test_zip_member_decoding_checks_size_and_crc() -> None:
    content = b"content " * 100
    packed = zlib.compressobj(6, zlib.DEFLATED, -15)
    compressed = packed.compress(content) + packed.flush()
    member = ZipMember("m", len(compressed), len(content), 8, zlib.crc32(content), 0, False)
    assert decode_member(member, compressed) == content
    with pytest.raises(FormatError, match="CRC-32"):
        decode_member(ZipMember("m", len(compressed), len(content), 8, 1, 0, False), compressed)
    with pytest.raises(FormatError, match="more than its declared"):
        decode_member(ZipMember("m", len(compressed), 10, 8, 0, 0, False), compressed)
    with pytest.raises(FormatError, match="not the declared"):
        decode_member(ZipMember("m", 5, len(content), 8, 0, 0, False), compressed[:5])


# -- the reads programs yield ---------------------------------------------------------------


def test_zip_index_program_reads_the_tail_then_the_directory() -> None:
    data = small_zip(3)
    eocd = data.rindex(b"PK\x05\x06")
    index, ops = scripted(read_index(len(data)), data)
    start = index.directory_range[0]
    # The small file's whole tail holds the end record: then the directory, nothing else.
    assert ops == [ReadRanges(((0, len(data)),)), ReadRanges(((start, eocd),))]
    assert [m.name for m in index.members] == ["m0.txt", "m1.txt", "m2.txt"]
    # A long comment: the first 8 KiB tail misses the record, the 64 KiB one finds it.
    padded = small_zip(3, b"c" * 20_000)
    big = b"\0" * 100_000 + padded
    index, ops = scripted(read_index(len(big)), big)
    size = len(big)
    assert [op.ranges[0] for op in ops[:2]] == [(size - 8192, size), (size - 22 - 0xFFFF, size)]
    assert index.prepended == 100_000


def test_zip_member_programs_fetch_header_and_data_at_once() -> None:
    data = small_zip(3)
    index = in_memory(read_index(len(data)), data)
    contents, ops = scripted(index.read_many(["m1.txt", "m2.txt"]), data)
    assert len(ops) == 1 and len(ops[0].ranges) == 2  # one vectored read for both
    ref = zipfile.ZipFile(io.BytesIO(data))
    assert contents == [ref.read("m1.txt"), ref.read("m2.txt")]
    # The headers are known now: the spans cost no read.
    spans, ops = scripted(index.file_ranges(["m1.txt"]), data)
    assert ops == []
    assert zlib.decompress(data[slice(*spans[0])], -15) == ref.read("m1.txt")
    # A streamed member: its first span, then ReadNext of its Pull, then EndPull.
    decoder, ops = scripted(index.open_member("m0.txt"), data)
    assert len(ops) == 1
    out, ops = scripted(decoder.read(), data)
    assert out == ref.read("m0.txt") and ops == []  # the first span held it all
    _, ops = scripted(decoder.close(), data)
    assert [type(op) for op in ops] == [EndPull]


def test_tar_walk_reads_ahead_while_members_are_small() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for i in range(40):
            info = tarfile.TarInfo(f"f{i}")
            info.size = 300
            t.addfile(info, io.BytesIO(bytes(300)))
    data = buf.getvalue()
    members, ops = scripted(walk(len(data), head=0), data)
    assert len(members) == 40
    # One read: the first window (START_PREFETCH, 64 KiB) holds the whole archive.
    assert ops == [ReadRanges(((0, len(data)),))]


def test_read_ahead_sizes() -> None:
    ahead = ReadAhead(first=1000, small_span=100, most=5000, alone=7)
    assert ahead.extent(10) == 1000 and ahead.reading_through
    ahead.observe(50)
    assert ahead.extent(10) == 5000
    ahead.observe(10_000)  # the average is now over small_span: headers alone
    assert not ahead.reading_through and ahead.extent(10) == 10 and ahead.extent(3) == 7


def test_window_refuses_reads_past_the_end() -> None:
    window = Window(100, ReadAhead(first=10))
    with pytest.raises(FormatError, match="past the end"):
        scripted(window.get(90, 101, "thing"), bytes(100))
    got, ops = scripted(window.get(0, 5, "thing"), bytes(range(100)))
    assert got == bytes(range(5)) and ops == [ReadRanges(((0, 10),))]
    assert scripted(window.get(5, 10, "thing"), b"")[1] == []  # held: no read
    with pytest.raises(FormatError, match="expected 10 bytes"):
        scripted(Window(100, ReadAhead(first=10)).get(0, 5, "thing"), bytes(3))


def test_forward_answers_a_walk_from_a_stream() -> None:
    data = tarfile_bytes()
    pull = Pull(0, len(data), what="stream")
    forward = Forward(pull.take, "stream", step=1000)
    members, ops = scripted(through(walk(Forward.UNKNOWN, forward=True), forward), data)
    assert [m.name for m in members] == ["a", "b"]
    assert {type(op) for op in ops} == {ReadNext}  # ranges became reads in order
    with pytest.raises(FormatError, match="read backwards"):
        backwards = Forward(Pull(0, 100).take, "stream")
        scripted(backwards.read_ranges([(50, 60), (10, 20)]), bytes(100))


def tarfile_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, size in (("a", 2000), ("b", 10)):
            info = tarfile.TarInfo(name)
            info.size = size
            t.addfile(info, io.BytesIO(bytes(size)))
    return buf.getvalue()


def test_inflate_stream_decodes_concatenated_frames_and_refuses_a_cut_one() -> None:
    zstandard = pytest.importorskip("zstandard")
    from rangeio.formats._inflate import zstd_inflater

    one, two = os.urandom(3000), b"second frame " * 500
    frames = zstandard.ZstdCompressor().compress(one) + zstandard.ZstdCompressor().compress(two)

    def everything(compressed: bytes) -> Program[bytes]:
        stream = InflateStream(Pull(0, len(compressed)).take, lambda: zstd_inflater("t"), "t", 700)
        out = bytearray()
        while piece := (yield from stream.read(4096)):
            assert len(piece) <= 4096
            out += piece
        return bytes(out)

    assert scripted(everything(frames), frames)[0] == one + two
    cut = frames[:-40]
    with pytest.raises(FormatError):
        scripted(everything(cut), cut)
    stored = InflateStream(Pull(0, 5).take, StoredInflater, "s")
    assert scripted(stored.read(3), b"abcde")[0] == b"abc"


def test_read_exact_names_what_was_cut() -> None:
    with pytest.raises(FormatError, match="lie outside"):
        scripted(read_exact(10, 5, 11, "footer"), bytes(10))
    with pytest.raises(FormatError, match="footer: expected 5 bytes"):
        scripted(read_exact(10, 5, 10, "footer"), bytes(7))


# -- the sync runner --------------------------------------------------------------------------


def test_runner_throws_a_failed_read_into_the_program() -> None:
    """A read that fails is raised inside the program, so its ``finally`` still yields (here:
    the EndPull that closes a cursor)."""

    class Failing(BytesSource):
        def read_ranges(self, ranges: Any) -> list[bytes]:
            raise OSError("the network went away")

    closed: list[bool] = []

    def program() -> Program[None]:
        pull = Pull(0, 10)
        try:
            yield ReadRanges(((0, 5),))
        finally:
            yield from pull.close()
            closed.append(True)

    with pytest.raises(OSError, match="went away"):
        SyncRunner(Failing(bytes(10))).run(program())
    assert closed == [True]


def test_sync_runner_reads_a_seekable_local_file(tmp_path: Path) -> None:
    """A plain file (seek and read, no read_ranges) is a source too."""
    data = small_zip(5)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    ref = zipfile.ZipFile(io.BytesIO(data))
    with path.open("rb") as f, ZipStream(f) as z:
        assert z.read_many(z.namelist()) == [ref.read(n) for n in ref.namelist()]
        with z.open("m3.txt") as member:
            assert member.read() == ref.read("m3.txt")
    with path.open("rb") as f, pytest.raises(FormatError):
        TarIndex(f)


@pytest.mark.parametrize("name", ["_common.py", "_program.py", "_zip_records.py", "_inflate.py"])
def test_the_pure_format_modules_import_no_io(name: str) -> None:
    """The seam and the codecs do no I/O: the core's banned modules are banned here too (the
    runners, ``_runner.py`` and ``_async/formats``, are where the I/O is)."""
    import ast

    from tests.core.test_core_is_io_free import BANNED, BANNED_CALLS, PACKAGE

    tree = ast.parse((PACKAGE / "formats" / name).read_text())
    imported: set[str] = set()
    calls: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            calls.add(node.func.id)
    assert imported and not imported & BANNED, imported & BANNED
    assert not calls & BANNED_CALLS
