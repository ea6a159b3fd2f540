"""HttpFile behaves as a real binary file, against nginx and the fault server, for every adapter."""

from __future__ import annotations

import io
import tarfile
import zipfile
from typing import Any

import pytest

import rangeio
from rangeio.testing import FaultServer
from tests.adapters import Opener
from tests.servers.nginx import Nginx


@pytest.fixture(params=["nginx", "faults"])
def url_of(request: pytest.FixtureRequest, nginx: Nginx, fault_server: FaultServer) -> Any:
    if request.param == "nginx":
        return lambda name: nginx.url(name)
    return lambda name: fault_server.url("/" + name)


def test_reads_match_source(url_of: Any, opener: Opener, sample_files: dict[str, bytes]) -> None:
    data = sample_files["data.bin"]
    with opener(url_of("data.bin")) as f:
        assert f.size == len(data)
        assert f.stats.requests == 1
        assert f.read(10) == data[:10]
        assert f.tell() == 10
        f.seek(1_000_000)
        assert f.read(70_000) == data[1_000_000:1_070_000]
        f.seek(-5, io.SEEK_END)
        assert f.read() == data[-5:]
        assert f.read() == b""
        f.seek(-100, io.SEEK_CUR)
        assert f.tell() == len(data) - 100
        buf = bytearray(50)
        assert f.readinto(buf) == 50
        assert bytes(buf) == data[-100:-50]
        f.seek(0)
        assert f.read() == data
    assert f.closed
    with pytest.raises(ValueError):
        f.read(1)


def test_sync_file_protocol(url_of: Any, client: Any, sample_files: dict[str, bytes]) -> None:
    data = sample_files["data.bin"]
    with rangeio.open(url_of("data.bin"), client=client) as f:
        f.seek(-50, io.SEEK_END)
        assert f.read1(10) == data[-50:-40]
        assert f.readable() and f.seekable() and not f.writable()
        assert f.name == f.url


def test_readline_and_iteration(url_of: Any, client: Any, sample_files: dict[str, bytes]) -> None:
    csv = sample_files["table.csv"]
    with rangeio.open(url_of("table.csv"), client=client) as f:
        assert f.readline() == csv.split(b"\n")[0] + b"\n"
        assert list(f) == [line + b"\n" for line in csv.split(b"\n")[1:-1]]


def test_read_ranges(url_of: Any, opener: Opener, sample_files: dict[str, bytes]) -> None:
    data = sample_files["data.bin"]
    wanted = [
        (0, 10),
        (5, 4000),
        (2_000_000, 2_000_100),
        (3_000_000, 3_000_001),
        (len(data) - 3, len(data) + 50),
    ]
    with opener(url_of("data.bin"), prefetch_bytes=0) as f:
        got = f.read_ranges(wanted)
        assert got == [data[a:b] for a, b in wanted]
        with pytest.raises(ValueError):
            f.read_ranges([(10, 5)])


def test_open_costs_one_request_and_pins_identity(fault_server: FaultServer, client: Any) -> None:
    with rangeio.open(fault_server.url("/data.bin"), client=client) as f:
        assert len(fault_server.requests) == 1
        first = fault_server.requests[0]
        assert first.method == "GET"
        assert first.range == "bytes=-1048576"
        assert first.headers["accept-encoding"] == "identity"
        assert first.headers["cache-control"] == "no-transform"
        f.seek(0)
        f.read(100)
        later = fault_server.requests[-1]
        assert later.headers.get("if-match") == fault_server.etag("/data.bin")


@pytest.mark.parametrize(
    ("options", "expected_range"),
    [
        ({"prefetch_bytes": 0}, "bytes=0-0"),
        # START's own size: a header's worth (prefetch.START_PREFETCH).
        ({"prefetch_direction": "START"}, "bytes=0-65535"),
        ({"prefetch_direction": "START", "prefetch_bytes": 1 << 20}, "bytes=0-1048575"),
    ],
)
def test_open_request_shape(
    fault_server: FaultServer, options: dict[str, Any], expected_range: str
) -> None:
    with rangeio.open(fault_server.url("/data.bin"), **options) as f:
        assert f.size == len(fault_server.get_file("/data.bin"))
    assert [r.range for r in fault_server.requests] == [expected_range]


def test_empty_and_small_files(url_of: Any, opener: Opener, sample_files: dict[str, bytes]) -> None:
    with opener(url_of("empty.bin")) as f:
        assert f.size == 0
        assert f.read() == b""
        assert f.read(10) == b""
    with opener(url_of("small.bin")) as f:
        assert f.size == 100
        assert f.read() == sample_files["small.bin"]
        assert f.stats.requests == 1


def test_small_reads_after_open_use_cache(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    data = sample_files["data.bin"]
    with rangeio.open(nginx.url("data.bin")) as f:
        f.seek(len(data) - 500_000)
        for _ in range(1000):
            assert f.read(64)
        assert f.stats.requests == 1


def test_zipfile(url_of: Any, client: Any, sample_files: dict[str, bytes]) -> None:
    local = zipfile.ZipFile(io.BytesIO(sample_files["archive.zip"]))
    with rangeio.open(url_of("archive.zip"), client=client) as f, zipfile.ZipFile(f) as z:
        assert z.namelist() == local.namelist()
        assert z.read("dir/member-00123.txt") == local.read("dir/member-00123.txt")
        # The open's 16 KiB suffix (a zip's END prefetch) holds the end record; the rest of
        # the directory is one request, the member another.
        assert f.stats.requests == 3
        assert f.stats.bytes_fetched < len(sample_files["archive.zip"])


def test_tarfile(url_of: Any, sample_files: dict[str, bytes]) -> None:
    local = tarfile.open(fileobj=io.BytesIO(sample_files["archive.tar"]))
    with rangeio.open(url_of("archive.tar"), prefetch_bytes=0) as f, tarfile.open(fileobj=f) as t:
        assert t.getnames() == local.getnames()
        member = t.extractfile("files/f7.bin")
        assert member is not None
        expected = local.extractfile("files/f7.bin")
        assert expected is not None
        assert member.read() == expected.read()


def test_pyarrow_parquet(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    import pyarrow.parquet as pq

    local = pq.read_table(io.BytesIO(sample_files["table.parquet"]))
    with rangeio.open(nginx.url("table.parquet")) as f:
        pf = pq.ParquetFile(f)
        assert pf.metadata.num_rows == local.num_rows
        assert pf.read_row_group(2, columns=["id", "name"]).equals(
            local.select(["id", "name"]).slice(10_000, 5_000)
        )


def test_pandas(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    import pandas as pd

    with rangeio.open(nginx.url("table.parquet")) as f:
        frame = pd.read_parquet(f)
    assert frame.equals(pd.read_parquet(io.BytesIO(sample_files["table.parquet"])))
    with rangeio.open(nginx.url("table.csv")) as f:
        csv = pd.read_csv(f)
    assert csv.equals(pd.read_csv(io.BytesIO(sample_files["table.csv"])))


def test_sequential_read_streams(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    data = sample_files["data.bin"]
    with rangeio.open(nginx.url("data.bin"), prefetch_bytes=0) as f:
        pieces = []
        while chunk := f.read(64 * 1024):
            pieces.append(chunk)
        assert b"".join(pieces) == data
        # Discrete requests would need len(data) / 64 KiB = 48; the stream takes over after
        # the first MiB (growing read-ahead before that).
        assert f.stats.requests <= 8


def test_short_sequential_run_does_not_stream(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    data = sample_files["data.bin"]
    with rangeio.open(nginx.url("data.bin"), prefetch_bytes=0) as f:
        for i in range(4):
            assert f.read(8192) == data[i * 8192 : (i + 1) * 8192]
        assert f.stats.bytes_fetched < 256 * 1024


def test_copy_from_byte_zero_streams_at_once(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    data = sample_files["data.bin"]
    with rangeio.open(nginx.url("data.bin")) as f:
        pieces = []
        while chunk := f.read(1024 * 1024):
            pieces.append(chunk)
        assert b"".join(pieces) == data
        # The open, then one stream that stops where the open's prefetch (the tail) begins.
        assert f.stats.requests == 2
        assert f.stats.bytes_fetched == len(data)


def test_random_small_reads_are_lean(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    import random

    data = sample_files["data.bin"]
    rng = random.Random(5)
    with rangeio.open(nginx.url("data.bin"), prefetch_bytes=0) as f:
        for _ in range(50):
            pos = rng.randrange(0, 2_000_000)
            f.seek(pos)
            assert f.read(4096) == data[pos : pos + 4096]
        assert f.stats.requests <= 51
        # Two padded reads (8 KiB) before the pattern counts as random, then 4 KiB each.
        assert f.stats.bytes_fetched <= 2 * 8192 + 48 * 4096 + 1


def test_bad_urls_and_options() -> None:
    with pytest.raises(rangeio.UrlError):
        rangeio.open("ftp://example.com/x")
    with pytest.raises(rangeio.UrlError):
        rangeio.open("http:///nohost")
    with pytest.raises(TypeError):
        rangeio.open("http://127.0.0.1:9/x", no_such_option=1)
    with pytest.raises(ValueError):
        rangeio.open("http://127.0.0.1:9/x", mode="wb")


def test_connection_refused_is_typed() -> None:
    from tests.servers.nginx import free_port

    with pytest.raises(rangeio.NetworkError) as info:
        rangeio.open(f"http://127.0.0.1:{free_port()}/x", retries=0)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("cache_bytes", [0, 100_000, 256 * 1024])
def test_small_cache_budgets(
    nginx: Nginx, sample_files: dict[str, bytes], cache_bytes: int
) -> None:
    """Streams and plans stay correct when the cache evicts the open's prefetch under them."""
    data = sample_files["data.bin"]
    with rangeio.open(nginx.url("data.bin"), cache_bytes=cache_bytes) as f:
        pieces = []
        while chunk := f.read(64 * 1024):
            pieces.append(chunk)
        assert b"".join(pieces) == data
        f.seek(1234)
        assert f.read(10) == data[1234:1244]
        assert f.read_ranges([(5, 10), (3_000_000, 3_000_010)]) == [
            data[5:10],
            data[3_000_000:3_000_010],
        ]
