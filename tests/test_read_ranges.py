"""read_ranges: multipart/byteranges when the server speaks it, coalesced ranges when it does not."""

from __future__ import annotations

import random

import pytest

import rangeio
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener
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
        fault_server.faults = Faults(ignore_range=True, times=1)
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
