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


HEADER_FIRST = [
    # (name, magic at the start, the open's prefetch)
    ("image.png", b"\x89PNG\r\n\x1a\n", 64 * 1024),
    ("photo.jpg", b"\xff\xd8\xff\xe1", 64 * 1024),
    ("table.csv", b"id,name,value\n", 64 * 1024),
    ("array.npy", b"\x93NUMPY\x01\x00", 64 * 1024),
    ("data.h5", b"\x89HDF\r\n\x1a\n", 2 * 1024 * 1024),
    ("climate.nc", b"\x89HDF\r\n\x1a\n", 2 * 1024 * 1024),
]


@pytest.mark.parametrize(("name", "magic", "prefetch"), HEADER_FIRST)
def test_each_header_first_format_opens_with_its_start_prefetch(
    opener: Opener, name: str, magic: bytes, prefetch: int
) -> None:
    """The open's one request reads the start, where these formats keep what a reader needs
    first; the header read costs nothing more (HDF5 and netCDF-4: 2 MiB, see HDF5_PREFETCH)."""
    data = magic + make_bytes(6 * 1024 * 1024 - len(magic), seed=11)
    with FaultServer({f"/{name}": data}) as server:
        with opener(server.url(f"/{name}")) as f:
            assert f.read(512) == data[:512]
            f.seek(prefetch - 4096)
            assert f.read(4096) == data[prefetch - 4096 : prefetch]
            assert f.stats.requests == 1
            assert f.stats.bytes_fetched == prefetch
        assert [r.range for r in server.requests] == [f"bytes=0-{prefetch - 1}"]


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
