"""rangeio as an fsspec filesystem on nginx: fsspec, pandas, pyarrow, dask, DuckDB, zarr, GDAL."""

from __future__ import annotations

import io
import os
import pickle
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import rangeio  # noqa: E402
from rangeio._core.prefetch import ZIP_END_PREFETCH  # noqa: E402
from rangeio.fsspec import RangeioFileSystem  # noqa: E402
from rangeio.testing import Faults, FaultServer  # noqa: E402
from tests.servers.nginx import Nginx  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def registered() -> Iterator[None]:
    # The installed package registers the protocol through its fsspec.specs entry point; the
    # tests register it in-process so they do not depend on how the package was installed.
    fsspec.register_implementation("rangeio", RangeioFileSystem, clobber=True)
    yield


def parquet_bytes(first: int, rows: int) -> bytes:
    table = pa.table(
        {
            "id": pa.array(range(first, first + rows), pa.int64()),
            "name": pa.array([f"row-{i}" for i in range(first, first + rows)]),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=250)
    return buf.getvalue()


@pytest.fixture(scope="module")
def parts(nginx: Nginx) -> list[str]:
    """Two small parquet files on nginx: ids 0..999 and 1000..1499."""
    return [
        nginx.add_file("fs-part-0.parquet", parquet_bytes(0, 1000)),
        nginx.add_file("fs-part-1.parquet", parquet_bytes(1000, 500)),
    ]


def fresh(**options: Any) -> Any:
    return fsspec.filesystem("rangeio", skip_instance_cache=True, **options)


# -- fsspec ------------------------------------------------------------------------------------


def test_filesystem_open_read_seek(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    data = sample_files["data.bin"]
    fs = fsspec.filesystem("rangeio")
    assert isinstance(fs, RangeioFileSystem)
    with fs.open(nginx.url("data.bin")) as f:
        assert isinstance(f, rangeio.HttpFile)
        assert f.size == len(data)
        assert f.read(100) == data[:100]
        f.seek(-50, io.SEEK_END)
        assert f.read() == data[-50:]
    assert fs.open(nginx.url("small.bin"), "rb").read() == sample_files["small.bin"]


@pytest.mark.parametrize("prefix", ["rangeio::", "rangeio://"])
def test_fsspec_open_url_forms(nginx: Nginx, sample_files: dict[str, bytes], prefix: str) -> None:
    url = nginx.url("small.bin")
    with fsspec.open(prefix + url) as f:
        assert f.read() == sample_files["small.bin"]
    fs, path = fsspec.url_to_fs(prefix + url)
    assert isinstance(fs, RangeioFileSystem)
    assert path == url
    with fsspec.open(prefix + nginx.url("table.csv"), "rt") as t:
        assert t.readline() == "a,b,c\n"


def test_chained_path_arrives_as_fo(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    # What url_to_fs("rangeio::http://...") builds on fsspec releases before ChainedFileSystem:
    # an empty path, and the URL as ``fo``.
    url = nginx.url("small.bin")
    fs = RangeioFileSystem(target_protocol="http", target_options={}, fo=url)
    assert fs.cat_file("") == sample_files["small.bin"]
    assert fs.info("")["name"] == url


def test_chained_url_needs_http_underneath() -> None:
    with pytest.raises(ValueError, match="cannot be layered on 'memory'"):
        fsspec.open("rangeio::memory://x").open()


def test_storage_options_reach_rangeio(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    url = nginx.url("data.bin")
    options = {"prefetch_bytes": 0, "cache_bytes": 1 << 20, "headers": {"X-Test": "1"}}
    with fsspec.open("rangeio::" + url, **options) as f:
        assert f.read(10) == sample_files["data.bin"][:10]
    fs, _ = fsspec.url_to_fs("rangeio://" + url, **options)
    assert fs.options == options
    with fs.open(url) as f:
        # prefetch_bytes=0: opening fetched one byte, not rangeio's default 1 MiB.
        assert f.stats.bytes_fetched < 4096
    # An option given at open() overrides the filesystem's.
    with fs.open(url, prefetch_bytes=64 * 1024) as f:
        assert f.stats.bytes_fetched >= 64 * 1024
    with pytest.raises(TypeError, match="unknown option"):
        fresh(prefetch_byte=0)


def test_client_is_used(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    urllib3 = pytest.importorskip("urllib3")
    requests = pytest.importorskip("requests")
    pool = urllib3.PoolManager()
    assert fresh(client=pool).client is pool
    with requests.Session() as session:
        fs = fresh(client=session)
        assert fs.cat_file(nginx.url("small.bin")) == sample_files["small.bin"]


def test_cat_file_ranges(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    data = sample_files["data.bin"]
    url = nginx.url("data.bin")
    fs = fresh()
    assert fs.cat_file(nginx.url("small.bin")) == sample_files["small.bin"]
    assert fs.cat_file(url, 1000, 5000) == data[1000:5000]
    assert fs.cat_file(url, -100) == data[-100:]
    assert fs.cat_file(url, -100, -10) == data[-100:-10]
    assert fs.cat_file(url, None, 10) == data[:10]
    assert fs.cat_file(url, len(data) - 5, len(data) + 100) == data[-5:]
    assert fs.cat_file(url, 10, 5) == b""
    assert fs.cat_file(url, -(len(data) + 10), 3) == data[:3]
    assert fs.cat_file(nginx.url("empty.bin")) == b""
    assert fs.cat(url, start=7, end=9) == data[7:9]
    assert fs.read_block(url, 100, 50) == data[100:150]


def test_cat_ranges_over_two_files(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    data, small = sample_files["data.bin"], sample_files["small.bin"]
    a, b = nginx.url("data.bin"), nginx.url("small.bin")
    fs = fresh()
    got = fs.cat_ranges(
        [a, b, a, "rangeio://" + a, b],
        [0, 10, 2_000_000, -20, 90],
        [100, 20, 2_000_050, None, 200],
    )
    assert got == [data[:100], small[10:20], data[2_000_000:2_000_050], data[-20:], small[90:]]
    # One int for every path, like fsspec's default.
    assert fs.cat_ranges([a, b], 0, 4) == [data[:4], small[:4]]
    with pytest.raises(ValueError):
        fs.cat_ranges([a, b], [0], [1, 2])


def test_cat_ranges_errors(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    missing, ok = nginx.url("no-such-file.bin"), nginx.url("small.bin")
    fs = fresh()
    got = fs.cat_ranges([missing, ok, missing], [0, 0, 5], [10, 10, 10])
    assert isinstance(got[0], FileNotFoundError) and isinstance(got[2], FileNotFoundError)
    assert got[1] == sample_files["small.bin"][:10]
    with pytest.raises(FileNotFoundError):
        fs.cat_ranges([missing, ok], [0, 0], [10, 10], on_error="raise")


def test_info_size_exists(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    url = nginx.url("data.bin")
    fs = fresh()
    info = fs.info(url)
    assert info["name"] == url
    assert info["size"] == len(sample_files["data.bin"])
    assert info["type"] == "file"
    assert info["etag"].startswith('"')  # nginx sends a strong ETag
    assert info["last_modified"].endswith(" GMT")
    assert fs.size("rangeio://" + url) == len(sample_files["data.bin"])
    assert fs.sizes([url, nginx.url("small.bin")]) == [info["size"], 100]
    fs.invalidate_cache(url)
    assert fs.info(url) == info

    assert fs.exists(url) and fs.isfile(url) and not fs.isdir(url)
    assert fs.info(nginx.url("empty.bin"))["size"] == 0

    missing = nginx.url("no-such-file.bin")
    assert not fs.exists(missing)
    with pytest.raises(FileNotFoundError):
        fs.info(missing)
    with pytest.raises(FileNotFoundError):
        fs.open(missing)


@pytest.mark.parametrize("path", ["test/test", "rangeio://test/test", "ftp://host/x", "/etc/x"])
def test_a_path_that_is_not_a_url_is_not_found(path: str) -> None:
    # rasterio's opener= check calls size("test/test") and expects FileNotFoundError.
    fs = fresh()
    for call in (fs.size, fs.info, fs.open, fs.cat_file, fs.modified, fs.ukey):
        with pytest.raises(FileNotFoundError):
            call(path)
    assert not fs.exists(path)
    got = fs.cat_ranges([path], [0], [1])
    assert isinstance(got[0], FileNotFoundError)


def test_gone_is_not_found(fault_server: FaultServer) -> None:
    fault_server.faults = Faults(status=410)
    with pytest.raises(FileNotFoundError):
        fresh().size(fault_server.url("/small.bin"))


def test_modified_ukey_checksum(nginx: Nginx) -> None:
    path = nginx.www / "stamped.bin"
    path.write_bytes(b"x" * 1000)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    url = nginx.url("stamped.bin")
    fs = fresh()
    when = fs.modified(url)
    assert when == datetime.fromtimestamp(1_700_000_000, timezone.utc)
    assert when.tzinfo is not None
    key = fs.ukey(url)
    assert fs.checksum(url) == int(key, 16)
    # nginx's ETag is mtime-size: a rewrite changes it, once the filesystem looks again.
    path.write_bytes(b"y" * 1001)
    assert fs.ukey(url) == key  # still the pinned identity
    fs.invalidate_cache(url)
    assert fs.ukey(url) != key
    assert fs.modified(url) > when


def test_ukey_from_last_modified_and_size_without_etag(fault_server: FaultServer) -> None:
    fault_server.add_file("/no-etag.bin", b"a" * 100, etag="none")
    fault_server.add_file("/no-validators.bin", b"a" * 100, etag="none", last_modified=False)
    fs = fresh()
    key = fs.ukey(fault_server.url("/no-etag.bin"))
    fault_server.replace("/no-etag.bin", b"b" * 100)  # Last-Modified moves on 1 s
    fs.invalidate_cache()
    assert fs.ukey(fault_server.url("/no-etag.bin")) != key
    bare = fault_server.url("/no-validators.bin")
    assert len(fs.ukey(bare)) == 64
    with pytest.raises(NotImplementedError, match="no Last-Modified"):
        fs.modified(bare)


def test_no_listing(nginx: Nginx) -> None:
    url = nginx.url("small.bin")
    fs = fresh()
    assert fs.ls(url, detail=False) == [url]
    assert fs.ls(url)[0]["size"] == 100
    assert fs.find(url) == [url]
    assert fs.glob(url) == [url]
    assert fs.expand_path(url) == [url]
    for call in (fs.ls, fs.find, fs.info):
        with pytest.raises(NotImplementedError, match="no directory listing"):
            call(nginx.origin + "/")
    with pytest.raises(NotImplementedError, match="no directory listing"):
        fs.glob(nginx.origin + "/*.parquet")
    with pytest.raises(NotImplementedError, match="no directory listing"):
        fsspec.open_files("rangeio://" + nginx.origin + "/*.bin")


def test_read_only(nginx: Nginx) -> None:
    fs = fresh()
    with pytest.raises(NotImplementedError, match="read-only"):
        fs.open(nginx.url("small.bin"), "wb")
    with pytest.raises(NotImplementedError):
        fs.pipe_file(nginx.url("new.bin"), b"x")


def test_pickle_round_trip(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    fs = fresh(prefetch_bytes=0)
    twin = pickle.loads(pickle.dumps(fs))
    assert twin.options == {"prefetch_bytes": 0}
    assert twin.cat_file(nginx.url("small.bin")) == sample_files["small.bin"]


# -- pandas, pyarrow, dask ---------------------------------------------------------------------


def test_pandas_read_parquet(parts: list[str]) -> None:
    pd = pytest.importorskip("pandas")
    expected = pd.DataFrame({"id": range(1000), "name": [f"row-{i}" for i in range(1000)]})

    df = pd.read_parquet("rangeio://" + parts[0], storage_options={"cache_bytes": 1 << 20})
    pd.testing.assert_frame_equal(df, expected)

    df = pd.read_parquet(parts[0], filesystem=fresh(), columns=["id"])
    pd.testing.assert_frame_equal(df, expected[["id"]])


def test_pandas_read_csv(nginx: Nginx) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.read_csv("rangeio://" + nginx.url("table.csv"))
    assert list(df.columns) == ["a", "b", "c"] and len(df) == 5000


def test_pyarrow_dataset(parts: list[str]) -> None:
    ds = pytest.importorskip("pyarrow.dataset")
    pafs = pytest.importorskip("pyarrow.fs")
    filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(fresh()))

    dataset = ds.dataset(parts[0], filesystem=filesystem, format="parquet")
    table = dataset.to_table(filter=ds.field("id") >= 990)
    assert table.column("id").to_pylist() == list(range(990, 1000))

    both = ds.dataset(parts, filesystem=filesystem, format="parquet")
    assert both.count_rows() == 1500


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # dask's own use of pandas
def test_dask_read_parquet(parts: list[str]) -> None:
    dd = pytest.importorskip("dask.dataframe")
    df = dd.read_parquet(["rangeio://" + p for p in parts])
    assert df.npartitions == 2
    got = df.compute()
    assert len(got) == 1500
    assert sorted(got["id"].tolist()) == list(range(1500))
    assert int(df["id"].sum().compute()) == sum(range(1500))
    assert len(df) == 1500  # dask opens with default_cache="none" to count rows


# -- one remote file per URL, shared by the opens of one filesystem -------------------------------

PARQUET = "/table.parquet"


def gets(server: FaultServer, path: str) -> list[str | None]:
    """The Range header of every GET of ``path`` the server received."""
    return [r.range for r in server.requests if r.method == "GET" and r.path == path]


def test_opens_share_one_remote_file(fault_server: FaultServer) -> None:
    pd = pytest.importorskip("pandas")
    ds = pytest.importorskip("pyarrow.dataset")
    pafs = pytest.importorskip("pyarrow.fs")
    data = fault_server.get_file(PARQUET)
    url = fault_server.url(PARQUET)
    # A prefetch smaller than the file: the open fetches the footer, reading fetches the rest.
    fs = fresh(prefetch_bytes=16 * 1024)
    assert len(data) > 64 * 1024

    assert fs.size(url) == len(data)
    for describe in (fs.info, fs.modified, fs.ukey, fs.checksum, fs.exists):
        describe(url)
    assert gets(fault_server, PARQUET) == ["bytes=-16384"]  # the open's request, once

    expected = pq.read_table(io.BytesIO(data))
    with fs.open(url) as f:
        assert pq.read_table(f).equals(expected)
    first_read = len(fault_server.requests)
    for _ in range(3):
        with fs.open(url) as f:
            assert pq.read_table(f).equals(expected)
    assert pd.read_parquet(url, filesystem=fs).equals(expected.to_pandas())
    filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    assert ds.dataset(url, filesystem=filesystem, format="parquet").count_rows() == 20_000
    assert fs.cat_file(url, -8) == data[-8:]
    # Every later open, info and read was served from the shared file: no request at all.
    assert len(fault_server.requests) == first_read
    assert [r for r in gets(fault_server, PARQUET) if r and r.startswith("bytes=-")] == [
        "bytes=-16384"
    ]


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # dask's own use of pandas
def test_dask_fetches_the_footer_once(fault_server: FaultServer) -> None:
    dd = pytest.importorskip("dask.dataframe")
    url = fault_server.url(PARQUET)
    options = {"prefetch_bytes": 16 * 1024, "skip_instance_cache": True}
    df = dd.read_parquet("rangeio://" + url, storage_options=options)
    assert int(df["id"].sum().compute()) == sum(range(20_000))
    suffixes = [r for r in gets(fault_server, PARQUET) if r and r.startswith("bytes=-")]
    # skip_instance_cache: dask builds its filesystem once and passes that instance around.
    assert suffixes == ["bytes=-16384"]


def test_a_file_held_open_pins_its_version_for_new_opens(fault_server: FaultServer) -> None:
    url = fault_server.url("/small.bin")
    old = fault_server.get_file("/small.bin")
    fs = fresh()
    held = fs.open(url)
    fault_server.replace("/small.bin", b"new" * 50)
    with fs.open(url) as again:
        assert again.read() == old  # the same version as the file still open
        assert again.etag == held.etag
    held.close()
    # Within the trust period of an idle shared file: still the pinned version ...
    assert fs.cat_file(url) == old
    # ... until told to look again.
    fs.invalidate_cache(url)
    assert fs.cat_file(url) == b"new" * 50
    assert fs.size(url) == 150


def test_a_change_under_a_shared_file_is_refused_not_mixed(fault_server: FaultServer) -> None:
    # 3 MiB: far more than the first read takes along (a small file's rest comes with it).
    url = fault_server.url("/data.bin")
    data = fault_server.get_file("/data.bin")
    fs = fresh(prefetch_bytes=0)
    with fs.open(url) as held:
        assert held.read(100) == data[:100]
        fault_server.replace("/data.bin", data[::-1])
        with fs.open(url) as again:
            assert again.read(100) == data[:100]  # cached, of the pinned version
            again.seek(len(data) // 2)
            with pytest.raises(rangeio.RemoteChangedError):
                again.read(100)


def test_an_idle_file_past_its_trust_period_is_opened_again(fault_server: FaultServer) -> None:
    url = fault_server.url("/small.bin")
    fs = fresh(share_seconds=0)
    with fs.open(url) as f:
        assert f.read() == fault_server.get_file("/small.bin")
    fault_server.replace("/small.bin", b"changed")
    with fs.open(url) as f:
        assert f.read() == b"changed"
    assert fs.size(url) == len(b"changed")


def test_shared_files_are_bounded(fault_server: FaultServer) -> None:
    a, b = fault_server.url("/small.bin"), fault_server.url("/archive.zip")
    for bound, opens_of_a in ((1, 2), (2, 1)):
        fault_server.clear_log()
        fs = fresh(max_shared_files=bound)
        for url in (a, b, a):
            with fs.open(url) as f:
                f.read(10)
        assert len(gets(fault_server, "/small.bin")) == opens_of_a


def test_concurrent_first_opens_open_once(fault_server: FaultServer) -> None:
    url = fault_server.url("/small.bin")
    data = fault_server.get_file("/small.bin")
    fs = fresh()
    start = threading.Barrier(6)
    got: list[bytes] = []

    def reader() -> None:
        start.wait()
        with fs.open(url) as f:
            got.append(f.read())

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [data] * 6
    assert len(gets(fault_server, "/small.bin")) == 1


def test_closing_one_shared_file_leaves_the_others(fault_server: FaultServer) -> None:
    url = fault_server.url("/archive.zip")
    data = fault_server.get_file("/archive.zip")
    fs = fresh(prefetch_bytes=0, share_seconds=0, max_shared_files=0)
    first, second = fs.open(url), fs.open(url)
    first.close()
    with pytest.raises(ValueError, match="closed file"):
        first.read(1)
    assert second.read() == data  # the remote file lives while any file on it is open
    second.close()
    assert len(gets(fault_server, "/archive.zip")) >= 1
    with fs.open(url) as third:  # nothing kept idle: opened again
        assert third.read(4) == data[:4]


def test_each_thread_reads_at_its_own_position(fault_server: FaultServer) -> None:
    # DuckDB's pattern: seek() then read() on one file object, from several threads at once.
    url = fault_server.url("/archive.zip")
    data = fault_server.get_file("/archive.zip")
    with fresh().open(url) as f:
        f.seek(1000)
        a_sought, b_done = threading.Event(), threading.Event()
        got: dict[str, bytes] = {}

        def a() -> None:
            f.seek(100)
            a_sought.set()
            b_done.wait(5)
            got["a"] = f.read(50)  # where this thread sought, whatever b did meanwhile

        def b() -> None:
            a_sought.wait(5)
            got["b0"] = f.read(10)  # a new thread starts where the file was last left: 100
            f.seek(5000)
            got["b"] = f.read(50)
            b_done.set()

        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert got == {"a": data[100:150], "b0": data[100:110], "b": data[5000:5050]}
        assert f.read(5) == data[1000:1005]  # the opening thread's own position
        assert [line for line in f][:1]  # iteration goes through the same cursors


def test_coroutines_read_through_rangeio_aio(fault_server: FaultServer) -> None:
    import asyncio

    small, zipped = fault_server.url("/small.bin"), fault_server.url("/archive.zip")
    small_data, zip_data = (
        fault_server.get_file("/small.bin"),
        fault_server.get_file("/archive.zip"),
    )

    async def main() -> Any:
        fs = RangeioFileSystem(asynchronous=True, skip_instance_cache=True)
        assert fs.async_impl and fs.asynchronous
        assert await fs._cat_file(small) == small_data
        assert await fs._cat_file("rangeio://" + small, 10, 20) == small_data[10:20]
        assert await fs._cat_file(small, -5) == small_data[-5:]
        info = await fs._info(small)
        assert info["size"] == 100 and info["etag"] and info["last_modified"]
        assert await fs._size(small) == 100
        assert await fs._exists(small) and not await fs._exists(fault_server.url("/none"))
        assert await fs._isfile(small) and not await fs._isdir(small)
        assert await fs._ls(small, detail=False) == [small]
        assert await fs._find(small) == [small]
        got = await fs._cat_ranges(
            [small, zipped, small, fault_server.url("/none")], [0, 100, 50, 0], [10, 200, 60, 1]
        )
        assert got[:3] == [small_data[:10], zip_data[100:200], small_data[50:60]]
        assert isinstance(got[3], FileNotFoundError)
        with pytest.raises(FileNotFoundError):
            await fs._cat_file(fault_server.url("/none"))
        with pytest.raises(FileNotFoundError):
            await fs._info("test/test")
        async with await fs.open_async(zipped) as f:  # the shared file: no new request
            f.seek(-10, io.SEEK_END)
            assert await f.read() == zip_data[-10:]
            twin = await fs.open_async(zipped)
            assert await twin.read(4) == zip_data[:4]
        await twin.close()
        state = fs._async_states[asyncio.get_running_loop()]
        assert state.table._table[zipped].users == 0
        async with await fs.open_async(zipped, prefetch_bytes=0) as own:  # a file of its own
            assert await own.read(2) == zip_data[:2]
        with pytest.raises(FileNotFoundError):
            await fs.open_async(fault_server.url("/none"))
        fs.invalidate_cache(small)
        assert await fs._size(small) == 100  # opened again, and the old file closed
        return fs, state, state.table.take(small, 0)

    fs, state, shared = asyncio.run(main())
    # The loop's end closed the files it had opened (their connections belonged to it).
    assert shared is not None and shared.closed
    assert state.closed and len(state.table) == 0
    # One open for each file's first coroutine, then every call shared it; one more after
    # invalidate_cache.
    assert len(gets(fault_server, "/small.bin")) == 2
    # One open for the shared file (a zip URL's suffix, ZIP_END_PREFETCH) whatever read it, and
    # one for open_async's own file; the other GETs are reads of bytes the suffix did not hold.
    zip_gets = gets(fault_server, "/archive.zip")
    opens = [g for g in zip_gets if g is not None and (g.startswith("bytes=-") or g == "bytes=0-0")]
    assert zip_gets[0] == f"bytes=-{ZIP_END_PREFETCH}"
    assert opens == [f"bytes=-{ZIP_END_PREFETCH}", "bytes=0-0"]


def test_sync_calls_stay_on_the_sync_engine(nginx: Nginx, sample_files: dict[str, bytes]) -> None:
    fs = fsspec.filesystem("rangeio", asynchronous=False, skip_instance_cache=True)
    assert fs.async_impl and not fs.asynchronous
    assert fs._loop is None  # no fsspec IO thread was needed for these
    assert fs.cat(nginx.url("small.bin")) == sample_files["small.bin"]
    assert fs._loop is None
    # fsspec's own sync helper runs the coroutines on its IO thread, for callers that use it.
    assert (
        fsspec.asyn.sync(fs.loop, fs._cat_file, nginx.url("small.bin"), 0, 4)
        == (sample_files["small.bin"][:4])
    )


# -- the fsspec setups of DuckDB, zarr and rasterio --------------------------------------------


def test_duckdb_register_filesystem(fault_server: FaultServer) -> None:
    duckdb = pytest.importorskip("duckdb")
    url = fault_server.url(PARQUET)
    fs = fresh(prefetch_bytes=16 * 1024)
    con = duckdb.connect()
    try:
        con.register_filesystem(fs)
        query = f"SELECT count(*), sum(id), max(name) FROM read_parquet('rangeio://{url}')"
        assert con.sql(query).fetchall() == [(20_000, sum(range(20_000)), "row-9999")]
        assert con.sql(query).fetchall()[0][0] == 20_000
    finally:
        con.close()
    suffixes = [r for r in gets(fault_server, PARQUET) if r and r.startswith("bytes=-")]
    assert suffixes == ["bytes=-16384"]


def test_zarr_v3_from_url(nginx: Nginx) -> None:
    zarr = pytest.importorskip("zarr")
    np = pytest.importorskip("numpy")
    from zarr.storage import FsspecStore

    values = np.arange(20 * 30, dtype="int32").reshape(20, 30)
    z = zarr.create_array(
        store=str(nginx.www / "fs-array.zarr"), shape=(20, 30), chunks=(10, 10), dtype="int32"
    )
    z[:] = values
    url = "rangeio://" + nginx.url("fs-array.zarr")
    store = FsspecStore.from_url(url, read_only=True)  # passes asynchronous=True
    assert isinstance(store.fs, RangeioFileSystem)  # native async, not a wrapper in threads
    array = zarr.open_array(store, mode="r")
    assert array.shape == (20, 30)
    np.testing.assert_array_equal(array[:], values)
    np.testing.assert_array_equal(zarr.open_array(url, mode="r")[5:15, 7], values[5:15, 7])


def test_rasterio_opener(nginx: Nginx) -> None:
    rasterio = pytest.importorskip("rasterio")
    np = pytest.importorskip("numpy")
    pixels = (np.arange(64 * 32, dtype="uint16") * 7).reshape(1, 32, 64)
    profile = {"driver": "GTiff", "width": 64, "height": 32, "count": 1, "dtype": "uint16"}
    transform = rasterio.Affine(10, 0, 500_000, 0, -10, 4_200_000)
    with rasterio.open(nginx.www / "fs-image.tif", "w", transform=transform, **profile) as dst:
        dst.write(pixels)
    with rasterio.open(nginx.url("fs-image.tif"), opener=fresh()) as src:
        assert src.shape == (32, 64)
        assert src.transform == transform
        np.testing.assert_array_equal(src.read(), pixels)


def test_a_file_dropped_unclosed_still_releases_its_share(fault_server: FaultServer) -> None:
    import gc

    url = fault_server.url("/small.bin")
    fs = fresh()
    f = fs.open(url)
    f.read(1)
    assert fs._shared._table[url].users == 1
    del f
    gc.collect()
    assert fs._shared._table[url].users == 0  # idle now: a bound or the trust period can drop it
