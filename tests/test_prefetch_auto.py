"""The open's prefetch fits the file (real server, every adapter)."""

from __future__ import annotations

import struct

import pytest

from rangeio._core.prefetch import ZIP_END_PREFETCH
from rangeio.testing import FaultServer
from tests.adapters import Opener
from tests.conftest import make_bytes


def _tiff(n: int) -> bytes:
    return b"II*\x00" + struct.pack("<I", 8) + make_bytes(n - 8, seed=7)


def test_header_first_file_opens_with_a_start_prefetch(opener: Opener) -> None:
    data = _tiff(3 * 1024 * 1024)
    with FaultServer({"/cog.tif": data}) as server:
        with opener(server.url("/cog.tif")) as f:
            assert f.read(4096) == data[:4096]  # the header: no request of its own
            assert f.stats.requests == 1
        assert [r.range for r in server.requests] == ["bytes=0-65535"]


def test_zip_keeps_its_suffix_prefetch(opener: Opener, fault_server: FaultServer) -> None:
    with opener(fault_server.url("/archive.zip")) as f:
        f.seek(-22, 2)
        f.read(22)
        assert f.stats.requests == 1
    assert fault_server.requests[0].range == f"bytes=-{ZIP_END_PREFETCH}"


@pytest.mark.parametrize("cache", [2 << 20, 1 << 20])
def test_whole_file_read_fetches_the_prefetched_tail_once(
    opener: Opener, fault_server: FaultServer, cache: int
) -> None:
    data = fault_server.get_file("/data.bin")
    with opener(fault_server.url("/data.bin"), cache_bytes=cache) as f:
        assert f.read() == data
    ranges = [r.range or "" for r in fault_server.requests]
    tail = int(ranges[0].removeprefix("bytes=-"))
    later_stops = [int(r.split("-")[1]) for r in ranges[1:]]
    # No later request reaches into the prefetched tail.
    assert all(stop < len(data) - tail for stop in later_stops)
