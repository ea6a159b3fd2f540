"""64 concurrent readers on one file: every byte right, requests bounded, no deadlock.

The readers ask for aligned 4 KiB blocks with read-ahead off and the minimum request set to one
block, so every request the file makes is exactly one block (or the open). That makes the
request count provable:

- with a cache that holds the whole region, each block is fetched at most once whatever the
  number of readers (the in-flight table makes late readers wait for the fetch under way), so
  ``requests <= 1 + distinct blocks``;
- with a tiny cache (eviction under contention) a miss costs at most two requests: its fill,
  and one direct fetch if another reader's insert evicted the block before it was copied, so
  ``requests <= 1 + 2 * misses``; and as eviction keeps only whole protected blocks, a block is
  cached whole or not at all, so each read is one hit or one miss: ``misses <= reads``.

``read_ranges`` claims its requests in the same in-flight table and cuts each request to start
on a byte that is neither cached nor being fetched, so with the big cache (and aligned blocks)
every request has a first block of its own: ``requests <= 1 + distinct blocks`` again. With the
tiny cache the bound is per call: the holes of one call, cut around fetches in flight, go in one
multipart request (fewer than 100 ranges), so ``requests <= 1 + calls``.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio.testing import Faults, FaultServer
from tests.adapters import sync_client
from tests.servers.nginx import Nginx

DATA = "/data.bin"
READERS = 64
BLOCK = 4096
# The blocks read: 1..64 of data.bin. Block 0 is left out: the open caches its first byte, and
# a read of a block that is partly cached would be split in two (a hit and a miss).
BLOCKS = 64
READS_EACH = 24
SMALL_READS_EACH = 6  # with a tiny cache nearly every read is a request: keep the test quick
BIG_CACHE = 8 * 1024 * 1024
SMALL_CACHE = 16 * 1024  # four blocks for 64 readers: constant eviction
HOT_BLOCKS = 16  # read_ranges asks for runs of blocks starting in 1..16: many calls collide
# One block per request; no read-ahead, no streaming, no coalescing into bigger requests.
BLOCK_OPTIONS: dict[str, Any] = {
    "prefetch_bytes": 0,
    "minimum_range_request_bytes": BLOCK,
    "readahead_max": 0,
    "stride_readahead_max": 0,
    "stream_after_bytes": 1 << 40,
    "max_concurrency": 8,
}


def combos(default: str, *others: str) -> list[Any]:
    """(server, adapter, cache) cases: the default adapter on both servers with both caches,
    each other adapter on two of the four (every adapter meets each server and each cache)."""
    cases = [
        (server, default, cache)
        for server in ("nginx", "fault")
        for cache in (BIG_CACHE, SMALL_CACHE)
    ]
    for i, adapter in enumerate(others):
        small_on = "fault" if i % 2 == 0 else "nginx"
        big_on = "nginx" if small_on == "fault" else "fault"
        cases += [(small_on, adapter, SMALL_CACHE), (big_on, adapter, BIG_CACHE)]
    return [
        pytest.param(
            server,
            adapter,
            cache,
            id=f"{server}-{adapter}-{'big' if cache == BIG_CACHE else 'small'}",
        )
        for server, adapter, cache in cases
    ]


@pytest.fixture
def origin(
    request: pytest.FixtureRequest, nginx: Nginx, fault_server: FaultServer
) -> Iterator[tuple[str, FaultServer | None]]:
    """The data file's URL on each server; the fault server delays every answer a little so
    that concurrent readers really overlap (many wait on a fetch in flight)."""
    if request.param == "nginx":
        yield nginx.url("data.bin"), None
    else:
        fault_server.faults = Faults(delay=0.02)
        yield fault_server.url(DATA), fault_server


def block_plans(cache: int) -> list[list[int]]:
    """Each reader's blocks: half from a shared hot set, so readers collide on the same
    fetches."""
    reads = READS_EACH if cache == BIG_CACHE else SMALL_READS_EACH
    plans = []
    for seed in range(READERS):
        rng = random.Random(seed)
        plans.append([1 + rng.randrange(8 if k % 2 else BLOCKS) for k in range(reads)])
    return plans


def run_threads(work: Callable[[int], None]) -> None:
    """Run ``work(i)`` on READERS threads that start together; re-raise the first failure."""
    barrier = threading.Barrier(READERS, timeout=30)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(READERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "reader threads deadlocked"
    if errors:
        raise errors[0]


def check_request_bound(stats: rangeio.Stats, reads: int, distinct: int, cache: int) -> None:
    if cache == BIG_CACHE:
        assert stats.requests <= 1 + distinct, stats
    else:
        assert stats.cache_misses <= reads, stats
        assert stats.requests <= 1 + 2 * stats.cache_misses, stats
    assert stats.retries == 0, stats


def check_server_log(server: FaultServer | None, stats: rangeio.Stats) -> None:
    # Stats are counted under the file's lock: under contention they still match the wire.
    if server is not None:
        assert len(server.requests) == stats.requests


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("origin", "adapter", "cache"), combos("urllib3", "requests", "httpx"), indirect=["origin"]
)
def test_64_threads_on_clones(
    origin: tuple[str, FaultServer | None],
    sample_files: dict[str, bytes],
    adapter: str,
    cache: int,
) -> None:
    url, server = origin
    data = sample_files["data.bin"]
    client, close_client = sync_client(adapter)
    plans = block_plans(cache)
    try:
        with rangeio.open(url, client=client, cache_bytes=cache, **BLOCK_OPTIONS) as f:
            clones = [f.clone() for _ in range(READERS)]

            def work(i: int) -> None:
                cursor = clones[i]
                for block in plans[i]:
                    cursor.seek(block * BLOCK)
                    got = cursor.read(BLOCK)
                    if got != data[block * BLOCK : (block + 1) * BLOCK]:
                        raise AssertionError(f"reader {i}: wrong bytes for block {block}")

            run_threads(work)
            distinct = len({b for plan in plans for b in plan})
            check_request_bound(f.stats, sum(map(len, plans)), distinct, cache)
            check_server_log(server, f.stats)
            for c in clones:
                c.close()
            assert not f.closed
    finally:
        close_client()


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("origin", "adapter", "cache"), combos("urllib3", "httpx"), indirect=["origin"]
)
def test_64_threads_read_ranges(
    origin: tuple[str, FaultServer | None],
    sample_files: dict[str, bytes],
    adapter: str,
    cache: int,
) -> None:
    url, server = origin
    data = sample_files["data.bin"]
    client, close_client = sync_client(adapter)
    calls_each = 3
    # Each thread's calls, each a few runs of 1 to 3 whole blocks (aligned, so the count of
    # requests is provable: see the module's docstring).
    plans: list[list[list[tuple[int, int]]]] = []
    for i in range(READERS):
        rng = random.Random(1000 + i)
        calls = []
        for _ in range(calls_each):
            firsts = [1 + rng.randrange(HOT_BLOCKS) for _ in range(rng.randint(1, 6))]
            calls.append([(b * BLOCK, (b + rng.randint(1, 3)) * BLOCK) for b in firsts])
        plans.append(calls)
    distinct = len(
        {b for calls in plans for ranges in calls for a, z in ranges for b in range(a, z, BLOCK)}
    )
    try:
        with rangeio.open(url, client=client, cache_bytes=cache, **BLOCK_OPTIONS) as f:
            # Half the threads share the file itself, half use clones: both are the same file.
            handles = [f if i % 2 else f.clone() for i in range(READERS)]

            def work(i: int) -> None:
                for ranges in plans[i]:
                    got = handles[i].read_ranges(ranges)
                    for (start, stop), piece in zip(ranges, got):
                        if piece != data[start:stop]:
                            raise AssertionError(f"thread {i}: wrong bytes for {start}-{stop}")

            run_threads(work)
            if cache == BIG_CACHE:
                # Calls share the fetches in flight: each request starts on a block of its own.
                assert f.stats.requests <= 1 + distinct, f.stats
            else:
                assert f.stats.requests <= 1 + READERS * calls_each, f.stats
            assert f.stats.retries == 0
            check_server_log(server, f.stats)
    finally:
        close_client()


async def _async_client(kind: str) -> tuple[Any, Callable[[], Any]]:
    if kind == "aiohttp":
        return None, _nothing
    if kind == "httpx-async":
        import httpx

        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=16))
        return client, client.aclose
    import niquests

    session = niquests.AsyncSession()
    return session, session.close


async def _nothing() -> None:
    return None


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("origin", "adapter", "cache"),
    combos("aiohttp", "httpx-async", "niquests-async"),
    indirect=["origin"],
)
def test_64_async_cursors(
    origin: tuple[str, FaultServer | None],
    sample_files: dict[str, bytes],
    adapter: str,
    cache: int,
) -> None:
    url, server = origin
    data = sample_files["data.bin"]
    plans = block_plans(cache)

    async def main() -> rangeio.Stats:
        client, close_client = await _async_client(adapter)
        try:
            async with rangeio.aio.open(
                url, client=client, cache_bytes=cache, **BLOCK_OPTIONS
            ) as f:
                cursors = [f.clone() for _ in range(READERS)]

                async def reader(i: int) -> None:
                    cursor = cursors[i]
                    for block in plans[i]:
                        cursor.seek(block * BLOCK)
                        got = await cursor.read(BLOCK)
                        if got != data[block * BLOCK : (block + 1) * BLOCK]:
                            raise AssertionError(f"cursor {i}: wrong bytes for block {block}")

                # A deadlock fails here, not at the test's timeout.
                await asyncio.wait_for(asyncio.gather(*(reader(i) for i in range(READERS))), 60)
                # Mixed in: vectored reads from the same cursors at once.
                ranges = [(b * BLOCK + 7, b * BLOCK + 3000) for b in range(0, BLOCKS, 5)]
                results = await asyncio.gather(*(c.read_ranges(ranges) for c in cursors[:8]))
                for got in results:
                    assert got == [data[a:b] for a, b in ranges]
                for c in cursors:
                    await c.close()
                return f.stats
        finally:
            await close_client()

    stats = asyncio.run(main())
    distinct = len({b for plan in plans for b in plan})
    # The 8 read_ranges calls add at most one request each.
    vectored = 8
    if cache == BIG_CACHE:
        assert stats.requests <= 1 + distinct + vectored, stats
    else:
        assert stats.requests <= 1 + 2 * stats.cache_misses + vectored, stats
    assert stats.retries == 0
    check_server_log(server, stats)
