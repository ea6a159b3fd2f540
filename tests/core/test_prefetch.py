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
    Prefetch,
    choose_prefetch,
    direction_from_answer,
    index_hint,
    url_extension,
)
from rangeio._core.ranges import ByteRange


@pytest.mark.parametrize(
    ("url", "direction"),
    [
        ("https://h/a/data.zip", END),
        ("https://h/pkg-1.0-py3-none-any.whl", END),
        ("https://h/t.parquet?X-Amz-Signature=abc.tif", END),
        ("https://h/cog.tif", START),
        ("https://h/IMG.JPG", START),
        ("https://h/p.png", START),
        ("https://h/table.csv", START),
        ("https://h/a.npy", START),
        ("https://h/f.h5", START),
        ("https://h/archive.tar", START),
        ("https://h/blob", END),
        ("https://h/data.bin", END),
    ],
)
def test_auto_direction_follows_the_extension(url: str, direction: str) -> None:
    chosen = choose_prefetch(url, "auto", None)
    assert chosen.direction == direction
    size = END_PREFETCH if direction == END else START_PREFETCH
    assert chosen.size == (HDF5_PREFETCH if url.endswith(".h5") else size)


def test_explicit_direction_and_size_win() -> None:
    assert choose_prefetch("https://h/a.zip", "START", None) == Prefetch(START, START_PREFETCH)
    assert choose_prefetch("https://h/a.tif", "end", 4096) == Prefetch(END, 4096)
    with pytest.raises(ValueError):
        choose_prefetch("https://h/a", "middle", None)


def test_prefetch_is_cut_to_a_share_of_the_cache() -> None:
    assert choose_prefetch("https://h/a.zip", "auto", None, 2 * 1024 * 1024).size == 512 * 1024
    # No cache: nothing to fit.
    assert choose_prefetch("https://h/a.zip", "auto", None, 0).size == END_PREFETCH


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
