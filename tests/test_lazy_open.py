"""Lazy open: ``rangeio.open(url, lazy=True)`` and ``rangeio.aio.open(url, lazy=True)`` make no
request until the file's first use, share one opening request among the cursors that ask at
once, and try a failed open again; ``prefetch(ranges)`` returns the bytes it fetched. Every
adapter, against the fault server's request log."""

from __future__ import annotations

import asyncio
import threading

import pytest

import rangeio
from rangeio.testing import FaultServer
from tests.adapters import Opener


def test_lazy_file_costs_nothing_until_its_first_read(
    opener: Opener, fault_server: FaultServer, sample_files: dict[str, bytes]
) -> None:
    data = sample_files["data.bin"]
    f = opener(fault_server.url("/data.bin"), lazy=True)
    try:
        # Position-only members, a clone and repr need no request.
        assert f.seek(1000) == 1000
        assert f.seek(24, 1) == 1024
        assert f.tell() == 1024
        twin = f.clone()
        repr(f.file if opener.is_async else f)
        if not opener.is_async:
            assert f.name == f.url == fault_server.url("/data.bin")
        assert fault_server.requests == []
        assert f.read(100) == data[1024:1124]
        assert twin.read(10) == data[:10]
        assert fault_server.requests
    finally:
        f.close()


def test_size_etag_and_seek_from_the_end_open_a_lazy_sync_file(
    client: object, fault_server: FaultServer, sample_files: dict[str, bytes]
) -> None:
    """A careful user expects `size` to answer, so it opens the file (one request); so do
    `etag` and `seek(n, 2)`, which need what the opening request learns."""
    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    with rangeio.open(url, client=client, lazy=True) as f:
        assert fault_server.requests == []
        assert f.size == len(data)
        assert len(fault_server.requests) == 1
    with rangeio.open(url, client=client, lazy=True) as f:
        assert f.seek(-100, 2) == len(data) - 100
        assert len(fault_server.requests) == 2
        assert f.read() == data[-100:]
    with rangeio.open(url, client=client, lazy=True) as f:
        assert f.etag is not None and f.etag.startswith('"')
        assert len(fault_server.requests) == 3
        assert f.size == len(data)
        assert len(fault_server.requests) == 3  # opened once


def test_a_lazy_async_file_refuses_size_before_it_is_opened(
    opener: Opener, fault_server: FaultServer, sample_files: dict[str, bytes]
) -> None:
    """An async file's `size` cannot wait for a request: before the open it raises, and an
    explicit open() (one request, made once) answers it."""
    if not opener.is_async:
        pytest.skip("the sync file's size opens it (previous test)")
    data = sample_files["data.bin"]
    f = opener(fault_server.url("/data.bin"), lazy=True)
    try:
        with pytest.raises(ValueError, match="not been opened yet"):
            f.size  # noqa: B018
        with pytest.raises(ValueError, match="not been opened yet"):
            f.seek(-10, 2)
        with pytest.raises(ValueError, match="not been opened yet"):
            f.etag  # noqa: B018
        assert fault_server.requests == []
        f.open()
        f.open()
        assert len(fault_server.requests) == 1
        assert f.size == len(data)
        assert f.seek(-10, 2) == len(data) - 10
        assert f.read() == data[-10:]
    finally:
        f.close()


def test_explicit_open_makes_the_request_once(
    opener: Opener, fault_server: FaultServer, sample_files: dict[str, bytes]
) -> None:
    f = opener(fault_server.url("/small.bin"), lazy=True)
    try:
        assert fault_server.requests == []
        assert f.open() is f
        assert len(fault_server.requests) == 1
        f.open()
        # The opening request brought the small file whole: reads cost nothing more.
        assert f.read() == sample_files["small.bin"]
        assert len(fault_server.requests) == 1
    finally:
        f.close()


def test_a_lazy_file_closed_unused_made_no_request(
    opener: Opener, fault_server: FaultServer
) -> None:
    f = opener(fault_server.url("/data.bin"), lazy=True)
    f.close()
    assert f.closed
    with pytest.raises(ValueError, match="closed"):
        f.read(1)
    assert fault_server.requests == []


def test_cursors_reading_a_lazy_file_at_once_share_one_open(
    opener: Opener, fault_server: FaultServer, sample_files: dict[str, bytes]
) -> None:
    """Eight cursors make their first reads together: one opening request, which brings the
    small file whole, serves them all (an open per cursor would be eight requests)."""
    data = sample_files["small.bin"]
    f = opener(fault_server.url("/small.bin"), lazy=True)
    try:
        cursors = [f] + [f.clone() for _ in range(7)]
        for i, c in enumerate(cursors):
            c.seek(i * 10)
        if opener.is_async:

            async def read_all() -> list[bytes]:
                return list(await asyncio.gather(*(c.file.read(10) for c in cursors)))

            results = opener._run(read_all())
        else:
            barrier = threading.Barrier(len(cursors))
            results = [b""] * len(cursors)

            def read(i: int) -> None:
                barrier.wait()
                results[i] = cursors[i].read(10)

            threads = [threading.Thread(target=read, args=(i,)) for i in range(len(cursors))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert results == [data[i * 10 : i * 10 + 10] for i in range(len(cursors))]
        assert len(fault_server.requests) == 1
    finally:
        f.close()


def test_a_failed_lazy_open_is_tried_again_by_the_next_use(
    opener: Opener, fault_server: FaultServer, sample_files: dict[str, bytes]
) -> None:
    data = sample_files["small.bin"]
    f = opener(fault_server.url("/late.bin"), lazy=True)
    try:
        with pytest.raises(rangeio.HTTPStatusError) as caught:
            f.read(10)
        assert caught.value.status == 404
        fault_server.add_file("/late.bin", data)
        assert f.read(10) == data[:10]
        assert len(fault_server.requests) == 2
    finally:
        f.close()


def test_prefetch_returns_the_bytes_it_fetched(
    opener: Opener, fault_server: FaultServer, sample_files: dict[str, bytes]
) -> None:
    """prefetch brings ranges into the cache and says how many bytes that took: the bytes the
    server sent for them; then reading them costs no request, and prefetching them again
    returns 0 without a request."""
    data = sample_files["data.bin"]
    f = opener(fault_server.url("/data.bin"), prefetch_bytes=0)
    try:
        ranges = [(1000, 2000), (2_000_000, 2_001_000)]
        base = f.stats.bytes_fetched
        asked = len(fault_server.requests)
        fetched = f.prefetch(ranges)
        # The ranges' bytes (with any gap the plan filled), not the multipart framing that
        # stats.bytes_fetched counts too.
        assert 2000 <= fetched <= f.stats.bytes_fetched - base
        assert len(fault_server.requests) > asked
        asked = len(fault_server.requests)
        assert f.prefetch(ranges) == 0
        f.seek(2_000_000)
        assert f.read(1000) == data[2_000_000:2_001_000]
        assert f.read_ranges([(1000, 2000)]) == [data[1000:2000]]
        assert f.prefetch([(5, 5), (len(data) + 10, len(data) + 20)]) == 0
        assert len(fault_server.requests) == asked
    finally:
        f.close()
    fault_server.clear_log()
    # On a lazy file prefetch opens it first; the opening request (which brings this small
    # file whole) is not counted, and leaves nothing to fetch.
    g = opener(fault_server.url("/small.bin"), lazy=True)
    try:
        assert fault_server.requests == []
        assert g.prefetch([(0, 50)]) == 0
        assert len(fault_server.requests) == 1
    finally:
        g.close()


def test_rangeio_aio_open_lazy(fault_server: FaultServer, sample_files: dict[str, bytes]) -> None:
    """`async with rangeio.aio.open(url, lazy=True)` and `await rangeio.aio.open(url, lazy=True)`
    make no request; the first read does."""
    import rangeio.aio

    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")

    async def main() -> None:
        async with rangeio.aio.open(url, lazy=True) as f:
            f.seek(100)
            assert fault_server.requests == []
            assert await f.read(10) == data[100:110]
            assert len(fault_server.requests) == 2  # the END prefetch, then the read
        g = await rangeio.aio.open(url, lazy=True)
        assert len(fault_server.requests) == 2
        await g.close()
        assert len(fault_server.requests) == 2

    asyncio.run(main())
