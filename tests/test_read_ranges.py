"""read_ranges: multipart/byteranges when the server speaks it, coalesced ranges when it does not."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener
from tests.poll import until
from tests.servers.nginx import Nginx

DATA = "/data.bin"


def spread(size: int, count: int = 60, length: int = 4096, seed: int = 3) -> list[tuple[int, int]]:
    """``count`` ranges at jittered, evenly spaced offsets (far enough apart not to merge)."""
    rng = random.Random(seed)
    step = size // count
    starts = [i * step + rng.randrange(0, step // 4) for i in range(count)]
    return [(s, s + length) for s in starts]


def test_nginx_multipart_is_one_request(
    nginx: Nginx, opener: Opener, sample_files: dict[str, bytes]
) -> None:
    data = sample_files["data.bin"]
    wanted = spread(len(data))
    with opener(nginx.url("data.bin"), prefetch_bytes=0) as f:
        assert f.read_ranges(wanted) == [data[a:b] for a, b in wanted]
        assert f.stats.requests == 2  # the open probe, then one multipart request
        assert f.stats.bytes_fetched < 60 * 4096 * 2  # gaps under 16 KiB are merged
        assert f._remote.multipart_support is True


def test_multipart_groups_bound_range_count(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    wanted = spread(len(data), count=250, length=100)
    options = {"prefetch_bytes": 0, "max_ranges_per_request": 100, "multipart_gap_bytes": 0}
    with rangeio.open(fault_server.url(DATA), **options) as f:
        fault_server.clear_log()
        assert f.read_ranges(wanted) == [data[a:b] for a, b in wanted]
    counts = [r.range.count(",") + 1 for r in fault_server.requests if r.range]
    assert len(counts) >= 3 and max(counts) <= 100


def test_server_without_multipart_falls_back(fault_server: FaultServer, opener: Opener) -> None:
    """A server that answers multi-range requests with 200 (S3 does) is remembered."""
    data = fault_server.get_file(DATA)
    wanted = spread(len(data))
    with opener(fault_server.url(DATA), prefetch_bytes=0, cache_bytes=1 << 20) as f:
        fault_server.faults = Faults(max_ranges=1)
        assert f.read_ranges(wanted) == [data[a:b] for a, b in wanted]
        assert f._remote.multipart_support is False
        fault_server.clear_log()
        wanted2 = [(a + 1, b + 1) for a, b in wanted]
        assert f.read_ranges(wanted2) == [data[a:b] for a, b in wanted2]
        assert all("," not in (r.range or "") for r in fault_server.requests)


def test_multipart_false_never_asks(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    wanted = spread(len(data), count=10)
    with rangeio.open(fault_server.url(DATA), prefetch_bytes=0, multipart=False) as f:
        assert f.read_ranges(wanted) == [data[a:b] for a, b in wanted]
    assert all("," not in (r.range or "") for r in fault_server.requests)


def test_cut_multipart_resumes_missing_parts_only(
    fault_server: FaultServer, opener: Opener
) -> None:
    data = fault_server.get_file(DATA)
    wanted = spread(len(data), count=20)
    with opener(fault_server.url(DATA), prefetch_bytes=0, retries=2) as f:
        fault_server.faults = Faults(truncate_after=30_000, times=1)
        fault_server.clear_log()
        assert f.read_ranges(wanted) == [data[a:b] for a, b in wanted]
    first, second = (r.range or "" for r in fault_server.requests)
    assert first.count(",") == 19
    assert 0 < second.count(",") < 19


def test_changed_file_during_read_ranges(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.open(fault_server.url(DATA), prefetch_bytes=0) as f:
        fault_server.replace(DATA, data[::-1])
        with pytest.raises(rangeio.RemoteChangedError):
            f.read_ranges(spread(len(data), count=5))


# Blocks 64 KiB apart (farther than multipart_gap_bytes): one multipart request of 8 parts.
BLOCKS = [(k * 65536, k * 65536 + 4096) for k in range(1, 9)]
# One block per ordinary read: no read-ahead, no streaming, no open prefetch.
SHARING_OPTIONS: dict[str, Any] = {
    "prefetch_bytes": 0,
    "minimum_range_request_bytes": 4096,
    "readahead_max": 0,
    "stride_readahead_max": 0,
    "stream_after_bytes": 1 << 40,
}


def requested_spans(server: FaultServer) -> list[tuple[int, int]]:
    """Every byte range the server was asked for (half-open), multipart parts each."""
    spans = []
    for r in server.requests:
        for part in (r.range or "").removeprefix("bytes=").split(","):
            if part.strip():
                first, last = part.strip().split("-")
                spans.append((int(first), int(last) + 1))
    return sorted(spans)


def assert_each_byte_asked_once(server: FaultServer) -> None:
    spans = requested_spans(server)
    assert spans, "nothing was requested"
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        assert stop <= start, f"bytes requested twice: {spans}"


def wait_for_fetch_in_flight(f: Any) -> None:
    """Until ``f`` has claimed a fetch (the server's delay keeps it in flight a while)."""
    deadline = time.monotonic() + 10
    while not len(f._remote._inflight):
        assert time.monotonic() < deadline, "no fetch started"
        time.sleep(0.001)


def test_concurrent_read_ranges_share_fetches(fault_server: FaultServer) -> None:
    """Two threads asking for the same ranges at once: the second waits for the first's
    request instead of repeating it."""
    data = fault_server.get_file(DATA)
    with rangeio.open(fault_server.url(DATA), **SHARING_OPTIONS) as f:
        fault_server.clear_log()
        fault_server.faults = Faults(delay=0.3)
        barrier = threading.Barrier(2, timeout=10)
        results: list[list[bytes]] = []

        def work() -> None:
            barrier.wait()
            results.append(f.read_ranges(BLOCKS))

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [[data[a:b] for a, b in BLOCKS]] * 2
        assert len(f._remote._inflight) == 0
    assert_each_byte_asked_once(fault_server)


@pytest.mark.parametrize("first", ["read", "read_ranges"])
def test_read_ranges_and_reads_on_a_clone_share_fetches(
    fault_server: FaultServer, first: str
) -> None:
    """Ordinary reads and read_ranges wait for each other's fetches, whichever starts first."""
    data = fault_server.get_file(DATA)
    with rangeio.open(fault_server.url(DATA), **SHARING_OPTIONS) as f:
        clone = f.clone()
        fault_server.clear_log()
        fault_server.faults = Faults(delay=0.3)
        got: dict[str, Any] = {}

        def read() -> None:
            pieces = []
            for a, b in BLOCKS[:3]:
                clone.seek(a)
                pieces.append(clone.read(b - a))
            got["read"] = pieces

        def read_ranges() -> None:
            got["read_ranges"] = f.read_ranges(BLOCKS)

        jobs = {"read": read, "read_ranges": read_ranges}
        thread = threading.Thread(target=jobs[first])
        thread.start()
        wait_for_fetch_in_flight(f)
        jobs["read" if first == "read_ranges" else "read_ranges"]()
        thread.join(30)
        assert got["read"] == [data[a:b] for a, b in BLOCKS[:3]]
        assert got["read_ranges"] == [data[a:b] for a, b in BLOCKS]
        clone.close()
    assert_each_byte_asked_once(fault_server)


def test_async_read_ranges_waiter_survives_owner_cancelled(fault_server: FaultServer) -> None:
    """The call whose request the other waits on is cancelled: the request goes on, the other
    call gets its bytes from it, and the in-flight table empties."""
    data = fault_server.get_file(DATA)

    async def main() -> None:
        async with rangeio.aio.open(fault_server.url(DATA), **SHARING_OPTIONS) as f:
            fault_server.clear_log()
            fault_server.faults = Faults(delay=0.3)
            owner = asyncio.ensure_future(f.read_ranges(BLOCKS))
            deadline = time.monotonic() + 10
            while not len(f._remote._inflight):
                assert time.monotonic() < deadline, "no fetch started"
                await asyncio.sleep(0.001)
            misses = f._remote.stats.cache_misses
            waiter = asyncio.ensure_future(f.read_ranges(BLOCKS))
            # Let the waiter claim (it waits on the owner's fetch) before the owner goes: it
            # counts its miss, then claims and joins with no await in between. If it came later
            # it would still find the fetch in flight: cancelling never stops it.
            await until(lambda: f._remote.stats.cache_misses > misses, "the waiter's claim")
            assert not owner.done()
            owner.cancel()
            assert await waiter == [data[a:b] for a, b in BLOCKS]
            with pytest.raises(asyncio.CancelledError):
                await owner
            assert len(f._remote._inflight) == 0

    asyncio.run(main())
    assert_each_byte_asked_once(fault_server)
