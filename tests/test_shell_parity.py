"""The sync and async shells offer the same public surface; every difference is listed here,
with its reason, so a member added to one shell and forgotten in the other fails this test."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import rangeio
import rangeio.aio
import rangeio.formats
from rangeio._async.streams import AsyncRangeResponse

# Members only the sync file has: HttpFile is an io.BufferedReader, and these are io's
# (peek, read1, readline, the write side that raises, fileno that raises, raw, detach).
# An async file is not an io object: none of them could be awaited as io calls them.
FILE_SYNC_ONLY = {
    "detach",
    "fileno",
    "flush",
    "isatty",
    "peek",
    "raw",
    "read1",
    "readinto1",
    "readline",
    "readlines",
    "truncate",
    "writable",
    "write",
    "writelines",
}
# `async with` awaits start() (no request with lazy=True); a sync file starts in __init__.
FILE_ASYNC_ONLY = {"start"}
# The members that do I/O: plain calls in the sync shell, coroutines in the async one.
FILE_AWAITED = {"close", "open", "prefetch", "read", "read_ranges", "readinto"}

PAIRS: list[tuple[type[Any], type[Any], set[str], set[str], set[str]]] = [
    (rangeio.HttpFile, rangeio.aio.AsyncHttpFile, FILE_SYNC_ONLY, FILE_ASYNC_ONLY, FILE_AWAITED),
    # `await rangeio.aio.RangeStream(...).open()` (or `async with`) makes the async stream's
    # runner on the running loop; the sync one has its runner at once.
    (rangeio.RangeStream, rangeio.aio.RangeStream, set(), {"open"}, {"add", "close", "read"}),
    (rangeio.RangeResponse, AsyncRangeResponse, set(), set(), {"close", "read"}),
]
# The format faces: each pair runs the same programs (`formats/_program.py`); `rows` is a
# generator in one and an async generator in the other, both plain functions to inspect.
_ZIP_AWAITED = {"close", "file_range", "file_ranges", "open", "read", "read_many"}
_AIO = rangeio.aio.formats
PAIRS += [
    (rangeio.formats.ZipStream, _AIO.zip.AsyncZipStream, set(), set(), _ZIP_AWAITED),
    (
        rangeio.formats.TarIndex,
        _AIO.tar.AsyncTarIndex,
        set(),
        set(),
        {"close", "read", "read_many"},
    ),
    (rangeio.formats.PngImage, _AIO.png.AsyncPngImage, set(), set(), {"close"}),
    (
        rangeio.formats.ParquetPlan,
        _AIO.parquet.AsyncParquetPlan,
        set(),
        set(),
        {"close", "read_columns"},
    ),
    (
        rangeio.formats.CondaPackage,
        _AIO.conda.AsyncCondaPackage,
        set(),
        set(),
        _ZIP_AWAITED | {"info", "payload"},
    ),
]


def _public(cls: type[Any]) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def _kind(cls: type[Any], name: str) -> str:
    member = inspect.getattr_static(cls, name)
    if isinstance(member, property) or inspect.isgetsetdescriptor(member):
        return "property"
    if inspect.iscoroutinefunction(member):
        return "coroutine"
    return "plain"


@pytest.mark.parametrize(
    ("sync", "aio", "sync_only", "async_only", "awaited"),
    PAIRS,
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_the_shells_offer_the_same_members(
    sync: type[Any], aio: type[Any], sync_only: set[str], async_only: set[str], awaited: set[str]
) -> None:
    assert _public(sync) - _public(aio) == sync_only
    assert _public(aio) - _public(sync) == async_only
    for name in sorted(_public(sync) & _public(aio)):
        expected = "coroutine" if name in awaited else _kind(sync, name)
        if name in awaited:
            assert _kind(sync, name) != "coroutine", name
        # A property in one shell is a property in the other (io's C getsets count as such).
        assert _kind(aio, name) == expected, name


def test_file_facts_agree() -> None:
    """name and mode mean the same in both shells (no request needed for them)."""
    url = "http://127.0.0.1:9/data.bin"
    sync = rangeio.open(url, lazy=True)
    aio = rangeio.aio.AsyncHttpFile(url, lazy=True)
    try:
        assert (sync.name, sync.mode) == (aio.name, aio.mode) == (url, "rb")
    finally:
        sync.close()
