"""rangeio as an fsspec filesystem, against nginx: fsspec itself, pandas, pyarrow and dask."""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import rangeio  # noqa: E402
from rangeio.fsspec import RangeioFileSystem  # noqa: E402
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


def test_info_size_exists(
    nginx: Nginx, sample_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = nginx.url("data.bin")
    fs = fresh()
    opened: list[str] = []
    real_open_file = fs._open_file
    monkeypatch.setattr(
        fs, "_open_file", lambda u, **kw: opened.append(u) or real_open_file(u, **kw)
    )

    info = fs.info(url)
    assert info["name"] == url
    assert info["size"] == len(sample_files["data.bin"])
    assert info["type"] == "file"
    assert info["etag"].startswith('"')  # nginx sends a strong ETag
    assert fs.size("rangeio://" + url) == len(sample_files["data.bin"])
    assert fs.sizes([url, nginx.url("small.bin")]) == [info["size"], 100]
    assert opened == [url, nginx.url("small.bin")]  # infos are cached per instance
    fs.invalidate_cache(url)
    assert fs.info(url) == info
    assert len(opened) == 3

    assert fs.exists(url) and fs.isfile(url) and not fs.isdir(url)
    assert fs.info(nginx.url("empty.bin"))["size"] == 0
    assert fs.ukey(url) == info["etag"]

    missing = nginx.url("no-such-file.bin")
    assert not fs.exists(missing)
    with pytest.raises(FileNotFoundError):
        fs.info(missing)
    with pytest.raises(FileNotFoundError):
        fs.open(missing)


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
