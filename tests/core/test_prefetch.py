"""Where the open's prefetch goes and how much it takes (pure decisions)."""

from __future__ import annotations

import pytest

from rangeio._core.cache import ByteCache
from rangeio._core.prefetch import (
    END,
    END_PREFETCH,
    HDF5_PREFETCH,
    START,
    START_PREFETCH,
    ZIP_END_PREFETCH,
    Prefetch,
    choose_prefetch,
    direction_from_answer,
    index_hint,
    index_start,
    url_extension,
)
from rangeio._core.ranges import ByteRange


@pytest.mark.parametrize(
    ("url", "prefetch"),
    [
        ("https://h/a/data.zip", Prefetch(END, ZIP_END_PREFETCH)),
        ("https://h/pkg-1.0-py3-none-any.whl", Prefetch(END, ZIP_END_PREFETCH)),
        ("https://h/book.EPUB", Prefetch(END, ZIP_END_PREFETCH)),
        ("https://h/t.parquet?X-Amz-Signature=abc.tif", Prefetch(END, END_PREFETCH)),
        ("https://h/t.arrow", Prefetch(END, END_PREFETCH)),
        ("https://h/cog.tif", Prefetch(START, START_PREFETCH)),
        ("https://h/IMG.JPG", Prefetch(START, START_PREFETCH)),
        ("https://h/p.png", Prefetch(START, START_PREFETCH)),
        ("https://h/table.csv", Prefetch(START, START_PREFETCH)),
        ("https://h/a.npy", Prefetch(START, START_PREFETCH)),
        ("https://h/f.h5", Prefetch(START, HDF5_PREFETCH)),
        ("https://h/climate.nc", Prefetch(START, HDF5_PREFETCH)),
        ("https://h/archive.tar", Prefetch(START, START_PREFETCH)),
        ("https://h/blob", Prefetch(END, END_PREFETCH)),
        ("https://h/data.bin", Prefetch(END, END_PREFETCH)),
    ],
)
def test_auto_prefetch_follows_the_extension(url: str, prefetch: Prefetch) -> None:
    assert choose_prefetch(url, "auto", None) == prefetch


def test_zip_gets_a_small_suffix_columnar_files_a_large_one() -> None:
    """A zip's reader reads the 22-byte end record, then the directory where it says: a small
    first suffix wastes nothing and the rest of the directory comes in one more request. A
    Parquet reader (pyarrow) reads the last 64 KiB at once, and the last row group before the
    footer is usually read too."""
    assert 98 < ZIP_END_PREFETCH <= 16 * 1024  # the zip64 end records fit
    assert END_PREFETCH >= 64 * 1024  # pyarrow's first footer read fits
    # A forced END direction on a zip URL keeps the zip's size; a number wins.
    assert choose_prefetch("https://h/a.whl", "END", None) == Prefetch(END, ZIP_END_PREFETCH)
    assert choose_prefetch("https://h/a.whl", "END", 1 << 20) == Prefetch(END, 1 << 20)


def test_explicit_direction_and_size_win() -> None:
    assert choose_prefetch("https://h/a.zip", "START", None) == Prefetch(START, START_PREFETCH)
    assert choose_prefetch("https://h/a.tif", "end", 4096) == Prefetch(END, 4096)
    assert choose_prefetch("https://h/a.tif", "end", None) == Prefetch(END, END_PREFETCH)
    with pytest.raises(ValueError):
        choose_prefetch("https://h/a", "middle", None)


def test_prefetch_is_cut_to_a_share_of_the_cache() -> None:
    assert choose_prefetch("https://h/a.parquet", "auto", None, 2 * 1024 * 1024).size == 512 * 1024
    assert choose_prefetch("https://h/a.zip", "auto", None, 32 * 1024).size == 8 * 1024
    # No cache: nothing to fit.
    assert choose_prefetch("https://h/a.parquet", "auto", None, 0).size == END_PREFETCH


def test_extension_ignores_query_and_needs_a_name() -> None:
    assert url_extension("https://h/x/y.TIFF?sig=1.zip#f") == ".tiff"
    assert url_extension("https://h/.hidden") == ""


@pytest.mark.parametrize(
    ("head", "where"),
    [
        (b"PK\x03\x04rest", END),
        (b"PAR1....", END),
        (b"II*\x00\x08\x00", START),
        (b"\x89PNG\r\n\x1a\n....", START),
        (b"\x93NUMPY\x01\x00", START),
        (b"\x89HDF\r\n\x1a\n\x00", START),
        (bytes(257) + b"ustar\x0000", START),
        (b"a,b,c\n1,2,3\n", None),
    ],
)
def test_magic_bytes_tell_where_the_index_is(head: bytes, where: str | None) -> None:
    assert direction_from_answer(None, head, None) == where


def test_tail_magic_and_content_type() -> None:
    assert direction_from_answer(None, None, b"....PAR1") == END
    assert direction_from_answer("text/csv; charset=utf-8", None, None) == START
    assert direction_from_answer("application/zip", None, None) == END
    assert direction_from_answer("application/octet-stream", None, None) is None


def test_index_hint_only_for_an_end_index_found_at_the_start() -> None:
    taken = Prefetch(START, 65536)
    assert index_hint(taken, END, 10_000_000, END_PREFETCH) == (
        10_000_000 - END_PREFETCH,
        10_000_000,
    )
    assert index_hint(taken, START, 10_000_000, END_PREFETCH) is None
    assert index_hint(Prefetch(END, END_PREFETCH), END, 10_000_000, END_PREFETCH) is None
    # The prefetch covered the file: nothing left to fetch.
    assert index_hint(Prefetch(START, 65536), END, 60_000, END_PREFETCH) is None


def test_held_bytes_are_evicted_after_read_ones() -> None:
    cache = ByteCache(300)
    cache.insert(900, b"t" * 100, hold=True)  # the prefetched tail
    cache.insert(0, b"a" * 100)
    cache.insert(100, b"b" * 100)
    cache.insert(200, b"c" * 100)  # over budget: the oldest non-held segment goes
    assert cache.missing(ByteRange(900, 1000)) == []
    assert cache.missing(ByteRange(0, 100)) == [ByteRange(0, 100)]
    # Once read, held bytes are ordinary (LRU) again.
    assert cache.get(ByteRange(900, 1000)) == b"t" * 100
    cache.insert(300, b"d" * 100)
    assert cache.missing(ByteRange(100, 200)) == [ByteRange(100, 200)]


# -- the rest of an index whose start the prefetched tail tells ---------------------------------


def _zip(members: int, comment: bytes = b"", zip64: bool = False, prefix: bytes = b"") -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    buf.write(prefix)
    with zipfile.ZipFile(buf, "a" if prefix else "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(members):
            z.writestr(f"pkg/module_{i:05d}.py", f"x = {i}\n", zipfile.ZIP_DEFLATED)
        z.comment = comment
    data = buf.getvalue()
    return _as_zip64(data) if zip64 else data


def _as_zip64(data: bytes) -> bytes:
    """``data`` with its end record replaced by zip64's (record, locator, then an end record
    whose fields say "see zip64"), as a writer past 65,535 members or 4 GiB writes them."""
    import struct

    eocd = data.rindex(b"PK\x05\x06")
    _, _, _, _, count, cd_size, cd_offset, _ = struct.unpack("<IHHHHIIH", data[eocd : eocd + 22])
    record = struct.pack(
        "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, cd_size, cd_offset
    )
    locator = struct.pack("<IIQI", 0x07064B50, 0, eocd, 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:eocd] + record + locator + end


def _directory_start(data: bytes) -> int:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return int(z.start_dir)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _zip(2000),
        lambda: _zip(2000, comment=b"built by a test; " * 100),
        lambda: _zip(2000, zip64=True),
        lambda: _zip(2000, prefix=b"#!/bin/sh\nexec python3 $0\n" * 50),  # self-extracting
    ],
    ids=["plain", "comment", "zip64", "prepended"],
)
def test_the_tail_tells_where_a_zip_directory_starts(make: object) -> None:
    data = make()  # type: ignore[operator]
    start = _directory_start(data)
    for tail_length in (ZIP_END_PREFETCH, 4096, len(data)):
        tail = data[-tail_length:]
        assert index_start(tail, len(data)) == start
    # The directory (~60 KB) is past a 16 KiB tail: the rest of it is the hint, one request.
    tail = data[-ZIP_END_PREFETCH:]
    taken = Prefetch(END, len(tail))
    assert index_hint(taken, END, len(data), ZIP_END_PREFETCH, tail) == (
        start,
        len(data) - ZIP_END_PREFETCH,
    )


def test_a_directory_in_hand_needs_no_hint() -> None:
    data = _zip(20)
    assert len(data) < ZIP_END_PREFETCH
    assert index_hint(Prefetch(END, len(data)), END, len(data), None, data) is None
    big = _zip(2000)
    # A 1 MiB tail (the file whole) holds it too.
    assert index_hint(Prefetch(END, len(big)), END, len(big), None, big) is None


def test_parquet_and_arrow_footers() -> None:
    footer = 200_000
    size = 5_000_000
    tail = bytes(8186) + footer.to_bytes(4, "little") + b"PAR1"
    assert index_start(tail, size) == size - 8 - footer
    assert index_hint(Prefetch(END, len(tail)), END, size, None, tail) == (
        size - 8 - footer,
        size - len(tail),
    )
    # A footer in hand: nothing to fetch; an encrypted footer ("PARE") has the same layout.
    small = bytes(100) + (50).to_bytes(4, "little") + b"PARE"
    assert index_start(small, size) == size - 58
    assert index_hint(Prefetch(END, len(small)), END, size, None, small) is None
    arrow = bytes(100) + (3000).to_bytes(4, "little") + b"ARROW1"
    assert index_start(arrow, size) == size - 10 - 3000


def test_a_tail_that_tells_nothing_or_lies_gives_no_hint() -> None:
    size = 10_000_000
    assert index_start(bytes(4096), size) is None
    # A footer length longer than the file.
    assert index_start(bytes(4) + (2**32 - 1).to_bytes(4, "little") + b"PAR1", 1000) is None
    # An end record claiming more entries than its directory can hold.
    record = b"PK\x05\x06" + bytes(4) + (500).to_bytes(2, "little") * 2
    record += (1000).to_bytes(4, "little") + (0).to_bytes(4, "little") + bytes(2)
    assert index_start(bytes(100) + record, size) is None
    # A zip64 locator whose record is not in the tail: unknown, not guessed.
    data = _zip(300, zip64=True)
    assert index_start(data[-60:], len(data)) is None
    # A signature inside a comment is not the end record: its comment does not reach the end.
    data = _zip(300, comment=b"PK\x05\x06" + bytes(40))
    real = data.rindex(b"PK\x05\x06", 0, len(data) - 44)
    cd_size = int.from_bytes(data[real + 12 : real + 16], "little")
    assert index_start(data[-8192:], len(data)) == real - cd_size


def test_an_index_larger_than_the_cache_can_hold_is_left_to_the_reader() -> None:
    size = 50_000_000
    footer = 20_000_000
    tail = bytes(8) + footer.to_bytes(4, "little") + b"PAR1"
    taken = Prefetch(END, len(tail))
    assert index_hint(taken, END, size, None, tail, cache_bytes=64 * 1024 * 1024) is None
    assert index_hint(taken, END, size, None, tail, cache_bytes=128 * 1024 * 1024) is not None
    # Nor one longer than a request may be.
    big_cache = 1024 * 1024 * 1024
    assert index_hint(taken, END, size, None, tail, big_cache, 8 * 1024 * 1024) is None
    assert index_hint(taken, END, size, None, tail, big_cache, 32 * 1024 * 1024) == (
        size - 8 - footer,
        size - len(tail),
    )
