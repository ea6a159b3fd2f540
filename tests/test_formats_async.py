"""rangeio.aio.formats against real servers: the same results and the same requests as the sync faces.

Each format is opened twice on the same file, by ``rangeio.formats`` (HttpFile) and by
``rangeio.aio.formats`` (AsyncHttpFile); both run the same programs, so their answers and their
traffic (requests and bytes fetched) must be equal, not merely close."""

from __future__ import annotations

import asyncio
import io
import tarfile
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

import rangeio
import rangeio.aio
from rangeio.formats import FormatError
from rangeio.formats.conda import CondaPackage
from rangeio.formats.png import PngImage
from rangeio.formats.tar import TarIndex
from rangeio.formats.zip import ZipStream
from rangeio.testing import Faults, FaultServer
from tests.servers.nginx import Nginx
from tests.test_formats import (
    FAST_RETRY,
    MiB,
    make_conda,
    make_png,
    parquet_bytes,
    python_tar,
    python_zip,
    rand,
    serve,
    text,
)

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(main())  # type: ignore[arg-type]


def traffic(stats: Any) -> tuple[int, int]:
    return stats.requests, stats.bytes_fetched


# -- zip ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_zip_async_matches_sync(nginx: Nginx, method: int) -> None:
    data = python_zip(method)
    url = serve(nginx, data, ".zip")
    ref = zipfile.ZipFile(io.BytesIO(data))
    steps: list[tuple[int, int]] = []
    with ZipStream(url) as z:
        steps.append(traffic(z.stats))
        members = z.members()
        contents = z.read_many(z.namelist())
        steps.append(traffic(z.stats))
        spans = z.file_ranges(z.namelist())
        steps.append(traffic(z.stats))
        with z.open("big.bin") as f:
            streamed = f.read()
        steps.append(traffic(z.stats))

    async def main() -> list[tuple[int, int]]:
        seen: list[tuple[int, int]] = []
        async with rangeio.aio.formats.zip.open(url) as az:
            seen.append(traffic(az.stats))
            assert az.members() == members
            assert (az.comment, az.end_record, az.directory_range) == (
                ref.comment,
                z.end_record,
                z.directory_range,
            )
            assert await az.read_many(az.namelist()) == contents
            seen.append(traffic(az.stats))
            assert await az.file_ranges(az.namelist()) == spans
            seen.append(traffic(az.stats))
            async with await az.open("big.bin") as reader:
                head = await reader.read(1000)
                assert head + await reader.read() == streamed
            seen.append(traffic(az.stats))
        return seen

    assert run(main) == steps
    assert contents == [ref.read(n) for n in ref.namelist()] and streamed == ref.read("big.bin")
    assert steps[0][0] == 1  # the open's prefetch held the directory, for both


def test_zip_async_streamed_member_requests_match_sync(nginx: Nginx) -> None:
    """A 6 MB deflated member streamed: the same ramp of requests to one stream."""
    payload = text(6 * MiB, 11) + rand(2 * MiB, 12)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("payload", payload)
    url = serve(nginx, buf.getvalue(), ".zip")
    with ZipStream(url) as z, z.open("payload") as f:
        while f.read(64 * 1024):
            pass
        sync = traffic(z.stats)

    async def main() -> tuple[int, int]:
        async with rangeio.aio.formats.zip.open(url) as az:
            async with await az.open("payload") as reader:
                out = bytearray()
                while piece := await reader.read(64 * 1024):
                    out += piece
            assert out == payload
            return traffic(az.stats)

    assert run(main) == sync
    assert sync[0] <= 12


def test_zip_async_errors_and_given_files(nginx: Nginx) -> None:
    data = python_zip(zipfile.ZIP_DEFLATED, big=10_000)
    url = serve(nginx, data, ".zip")
    ref = zipfile.ZipFile(io.BytesIO(data))

    async def main() -> None:
        # An AsyncHttpFile the caller opened is used as it is, and left open.
        async with rangeio.aio.open(url) as f:
            async with rangeio.aio.formats.zip.open(f) as az:
                assert await az.read("text.txt") == ref.read("text.txt")
                with pytest.raises(KeyError):
                    await az.read("missing")
            assert not f.closed
            with pytest.raises(TypeError):
                await rangeio.aio.formats.zip.open(f, prefetch_bytes=0)
        # Awaited rather than entered: the caller closes it.
        az = await rangeio.aio.formats.zip.open(url)
        assert az.namelist() == ref.namelist()
        await az.close()
        assert az.file.closed
        not_zip = serve(nginx, rand(5000), ".zip")
        with pytest.raises(FormatError):
            await rangeio.aio.formats.zip.open(not_zip)

    run(main)


def test_zip_async_cut_response_resumes(fault_server: FaultServer) -> None:
    data = python_zip(zipfile.ZIP_DEFLATED)
    fault_server.add_file("/a.zip", data)
    ref = zipfile.ZipFile(io.BytesIO(data))

    async def main() -> None:
        url = fault_server.url("/a.zip")
        async with rangeio.aio.formats.zip.open(url, retries=FAST_RETRY) as az:
            fault_server.faults = Faults(truncate_after=100_000, times=1)
            fault_server.clear_log()
            assert await az.read("big.bin") == ref.read("big.bin")
            first, second = (r.range for r in fault_server.requests)
            assert first is not None and second is not None
            assert int(second[6:].split("-")[0]) == int(first[6:].split("-")[0]) + 100_000

    run(main)


def test_zip_async_streamed_member_survives_cut_responses(fault_server: FaultServer) -> None:
    payload = text(6 * MiB, 11) + rand(2 * MiB, 12)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("payload", payload)
    fault_server.add_file("/s.zip", buf.getvalue())

    async def main() -> None:
        url = fault_server.url("/s.zip")
        async with rangeio.aio.formats.zip.open(url, retries=FAST_RETRY) as az:
            async with await az.open("payload") as reader:
                fault_server.faults = Faults(truncate_after=50_000, times=1)
                assert await reader.read() == payload
            assert az.stats.retries == 1
            # Each cut response was resumed where it stopped, never fetched again from its start.
            assert az.stats.bytes_fetched == len(buf.getvalue())

    run(main)


def test_conda_async_corrupt_payload_is_a_format_error(nginx: Nginx) -> None:
    data, _ = make_conda(200_000)
    pkg = zipfile.ZipFile(io.BytesIO(data)).getinfo("pkg-demo-1.0-0.tar.zst")
    broken = bytearray(data)
    at = pkg.header_offset + 30 + len(pkg.filename) + pkg.compress_size // 2
    broken[at : at + 8] = b"\xff" * 8
    url = serve(nginx, bytes(broken), ".conda")

    async def main() -> None:
        with pytest.raises(FormatError):
            await rangeio.aio.formats.conda.conda_payload(url)

    run(main)
    with CondaPackage(url) as package, pytest.raises(FormatError):
        package.payload()


def test_zip_async_changed_remote_is_not_a_format_error(fault_server: FaultServer) -> None:
    data = python_zip(zipfile.ZIP_DEFLATED)
    fault_server.add_file("/a.zip", data)

    async def main() -> None:
        async with rangeio.aio.formats.zip.open(fault_server.url("/a.zip")) as az:
            fault_server.replace("/a.zip", data[::-1])
            with pytest.raises(rangeio.RemoteChangedError):
                await az.read("big.bin")

    run(main)


@pytest.mark.parametrize(
    ("faults", "requests"),
    [(Faults(suffix_501=True), 3), (Faults(ignore_range=True), 1)],
    ids=["suffix-refused", "ranges-ignored"],
)
def test_zip_async_on_awkward_servers_costs_what_sync_costs(
    fault_server: FaultServer, faults: Faults, requests: int
) -> None:
    """A server refusing suffix ranges (the open falls back to a prefix, the end record costs
    one request) or ignoring ranges (one 200 serves everything): the same count either way."""
    data = python_zip(zipfile.ZIP_DEFLATED)
    fault_server.add_file("/a.zip", data)
    fault_server.faults = faults
    url = fault_server.url("/a.zip")
    with ZipStream(url) as z:
        opened = traffic(z.stats)
        contents = z.read_many(z.namelist())
        read = traffic(z.stats)

    async def main() -> None:
        async with rangeio.aio.formats.zip.open(url) as az:
            assert traffic(az.stats) == opened
            assert await az.read_many(az.namelist()) == contents
            assert traffic(az.stats) == read

    run(main)
    assert opened[0] == requests


# -- tar ----------------------------------------------------------------------------------


def big_members_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for i in range(8):
            payload = rand(1_500_000 + i, i)
            info = tarfile.TarInfo(f"big-{i}.bin")
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("make", "options"),
    [(lambda: python_tar(tarfile.GNU_FORMAT), {}), (big_members_tar, {"prefetch_bytes": 0})],
    ids=["small", "big-members"],
)
def test_tar_async_matches_sync(
    nginx: Nginx, make: Callable[[], bytes], options: dict[str, Any]
) -> None:
    data = make()
    url = serve(nginx, data, ".tar")
    with TarIndex(url, **options) as index:
        members = index.members()
        walked = traffic(index.stats)
        regular = [m for m in members if m.is_file]
        contents = index.read_many(regular)
        read = traffic(index.stats)

    async def main() -> None:
        async with rangeio.aio.formats.tar.open(url, **options) as t:
            assert t.members() == members and t.names() == [m.name for m in members]
            assert traffic(t.stats) == walked
            assert await t.read_many(regular) == contents
            assert traffic(t.stats) == read
            assert await t.read(regular[-1].name) == contents[-1]

    run(main)
    ref = tarfile.open(fileobj=io.BytesIO(data))
    assert [m.name.rstrip("/") for m in members] == ref.getnames()


# -- png ----------------------------------------------------------------------------------


def test_png_async_matches_sync(nginx: Nginx) -> None:
    """The chunk walk past big IDATs, then the first rows: the same chunks, rows and requests."""
    data = make_png(1200, 1200, idat=MiB, seed=4)
    url = serve(nginx, data, ".png")
    with PngImage(url, prefetch_bytes=0) as image:
        info = image.info
        walked = traffic(image.stats)
        rows = list(image.rows(10))
        decoded = traffic(image.stats)

    async def main() -> None:
        async with rangeio.aio.formats.png.open(url, prefetch_bytes=0) as aimage:
            assert aimage.info == info and aimage.header == info.header
            assert traffic(aimage.stats) == walked
            assert [row async for row in aimage.rows(10)] == rows
            assert traffic(aimage.stats) == decoded
        assert await rangeio.aio.formats.png.png_chunks(url) == info

    run(main)
    assert walked[0] <= 1 + 1 + len(info.find("IDAT"))


def test_png_async_rows_check_the_whole_stream(nginx: Nginx) -> None:
    data = make_png(60, 40, idat=500, seed=2)
    url = serve(nginx, data, ".png")
    with PngImage(url) as image:
        rows = list(image.rows())

    async def main() -> None:
        async with rangeio.aio.formats.png.open(url) as aimage:
            assert [row async for row in aimage.rows()] == rows
        cut = data[:-200] + data[-12:]  # IDAT bytes gone before IEND: the walk refuses it
        with pytest.raises(FormatError):
            await rangeio.aio.formats.png.open(serve(nginx, cut, ".png"))

    run(main)
    assert len(rows) == 40


# -- parquet ------------------------------------------------------------------------------


def test_parquet_async_matches_sync(nginx: Nginx) -> None:
    pytest.importorskip("pyarrow")
    from rangeio.formats.parquet import ParquetPlan

    data = parquet_bytes(200_000, row_group_size=50_000)
    url = serve(nginx, data, ".parquet")
    with ParquetPlan(url) as plan:
        opened = traffic(plan.stats)
        ranges = plan.column_chunk_ranges([2], ["value", "name"])
        table = plan.read_columns(2, ["value", "name"])
        read = traffic(plan.stats)

    async def main() -> None:
        async with rangeio.aio.formats.parquet.open(url) as ap:
            assert traffic(ap.stats) == opened
            assert (ap.num_rows, ap.num_row_groups) == (200_000, 4)
            assert ap.column_chunk_ranges([2], ["value", "name"]) == ranges
            assert (await ap.read_columns(2, ["value", "name"])).equals(table)
            assert traffic(ap.stats) == read

    run(main)
    assert opened[0] == 1 and read[0] == 2


# -- conda --------------------------------------------------------------------------------


def test_conda_async_matches_sync(nginx: Nginx) -> None:
    data, info_files = make_conda(3 * MiB)
    url = serve(nginx, data, ".conda")
    with CondaPackage(url) as package:
        info = package.info()
        after_info = traffic(package.stats)
        payload = package.payload()
        after_payload = traffic(package.stats)

    async def main() -> None:
        async with rangeio.aio.formats.conda.open(url) as apackage:
            assert await apackage.info() == info
            assert traffic(apackage.stats) == after_info
            assert await apackage.payload() == payload
            assert traffic(apackage.stats) == after_payload
        assert (await rangeio.aio.formats.conda.conda_info(url)).files == info_files
        assert await rangeio.aio.formats.conda.conda_payload(url) == payload

    run(main)
    assert [m.name for m in payload] == ["lib/demo.py"]
    assert after_info[0] == 2


def test_formats_load_on_first_use() -> None:
    """``rangeio.aio.formats`` and each of its modules are lazy names, as rangeio's are."""
    import subprocess
    import sys

    code = (
        "import sys, rangeio.aio\n"
        "before = 'rangeio._async.formats' in sys.modules\n"
        "z = rangeio.aio.formats.zip\n"
        "print(before, 'rangeio._async.formats.tar' in sys.modules, z.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "rangeio._async.formats.zip"]
